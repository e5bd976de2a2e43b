"""The Gradescope autograder zip, installed and run as Gradescope does: unpacked into
ROOT/source, run_autograder copied to ROOT/run_autograder and run from ROOT as root, with
bubblewrap working and with it failing as in Gradescope's container."""
import csv
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import zipfile

import pytest

from attacks import attack_source
from conftest import REPO, fake_bwrap_path, make_venv, open_folder, public_python
from grader import isolation
from submissions import BUGS, FLOW_BUGS, source_with


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("gs") / "autograder.zip")
    result = subprocess.run([sys.executable, "-m", "grader", "gradescope-bundle", out], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return out


def test_bundle_follows_gradescopes_layout(bundle):
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        assert {"setup.sh", "run_autograder", "requirements-grading.txt", "solution/vae.py",
                "grader/checks.py", "grader/expected.py", "grader/hidden.py", "data/mnist.py",
                "solution/flows.py", "grader/flow_checks.py", "assignment/vae.py"} <= names
        assert stat.S_IMODE(z.getinfo("run_autograder").external_attr >> 16) & 0o111
        setup = z.read("setup.sh").decode()
        assert "pip install -r /autograder/source/requirements-grading.txt" in setup
        assert "nbgrader" not in z.read("requirements-grading.txt").decode()


@pytest.fixture(scope="module")
def pythons():
    """{mode: (the folder to stand as ROOT/venv, PATH)}, made once: for bubblewrap, a venv under /tmp
    (the sandbox once hid such a Python); for the user mode (bubblewrap failing as in a container),
    a Python other users can run, as Gradescope's /autograder/venv is."""
    made, folders = {}, []
    try:  # a set-up that fails half-way still removes what it made
        if isolation.sandbox_available()[0]:
            venv = open_folder("vae-gs-venv-")
            folders.append(venv)
            make_venv(venv)
            made["bwrap"] = (venv, os.environ["PATH"])
        python = public_python() if os.geteuid() == 0 else None
        if python:
            prefix = subprocess.run([python, "-c", "import sys; print(sys.prefix != sys.base_prefix and sys.prefix)"],
                                    capture_output=True, text=True).stdout.strip()
            if prefix == "False":
                prefix = open_folder("vae-gs-venv-")
                folders.append(prefix)
                make_venv(prefix, python)
            bin_folder = open_folder("vae-gs-bin-")
            folders.append(bin_folder)
            made["user"] = (prefix, fake_bwrap_path(bin_folder))
        yield made
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def install(bundle, venv):
    """The zip installed as Gradescope installs it: ROOT/source, ROOT/run_autograder, ROOT/venv."""
    root = open_folder("vae-autograder-")
    with zipfile.ZipFile(bundle) as z:
        z.extractall(os.path.join(root, "source"))
    for name in ("run_autograder", "setup.sh"):
        shutil.copy(os.path.join(root, "source", name), os.path.join(root, name))
        os.chmod(os.path.join(root, name), 0o755)
    os.symlink(venv, os.path.join(root, "venv"))
    os.makedirs(os.path.join(root, "submission"))
    return root


def run_autograder(bundle, pythons, *submission, mode="bwrap", wait=0.0, metadata=None):
    """Install, place the submitted (name, text) files (and ``metadata`` as ROOT/submission_metadata.json,
    where Gradescope puts who submitted), run ROOT/run_autograder from ROOT as Gradescope does (no
    AUTOGRADER_ROOT, no chosen Python), and read ROOT/results/results.json ``wait`` s later."""
    if mode not in pythons:
        pytest.skip(f"no {mode} isolation here (bubblewrap not working, or no Python other users can run)")
    venv, path = pythons[mode]
    root = install(bundle, venv)
    try:
        if metadata is not None:
            with open(os.path.join(root, "submission_metadata.json"), "w") as f:
                json.dump(metadata, f)
        for name, text in submission:  # a text "-> TARGET" is a symbolic link to TARGET
            file = os.path.join(root, "submission", name)
            os.makedirs(os.path.dirname(file), exist_ok=True)
            if text.startswith("-> "):
                os.symlink(text[3:].replace("ROOT_OF_AUTOGRADER", root), file)
                continue
            with open(file, "w") as f:
                f.write(text.replace("ROOT_OF_AUTOGRADER", root))
        env = {k: v for k, v in os.environ.items() if k not in ("AUTOGRADER_ROOT", "VAE_GRADER_PYTHON", "PYTHONPATH")}
        env["PATH"] = path
        result = subprocess.run(["./run_autograder"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        time.sleep(wait)
        with open(os.path.join(root, "results", "results.json")) as f:
            return json.load(f), result.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


def check_format(data, total=100):
    assert {"score", "execution_time", "output", "tests"} <= set(data)
    for test in data["tests"]:
        assert {"name", "score", "max_score", "status", "output", "visibility"} <= set(test)
        assert test["status"] in ("passed", "failed")
        assert test["visibility"] == ("after_published" if "hidden" in test["name"] else "visible")
    assert sum(t["max_score"] for t in data["tests"]) == pytest.approx(total)


def test_reference_scores_full_marks(bundle, pythons):
    data, _ = run_autograder(bundle, pythons, ("vae.py", source_with({})))
    check_format(data)
    assert data["score"] == 100 and any("hidden" in t["name"] for t in data["tests"])


def test_buggy_submission_loses_its_functions_points(bundle, pythons):
    data, _ = run_autograder(bundle, pythons, ("vae.py", source_with({"compute_KL": BUGS["kl_logvar"][1]})))
    check_format(data)
    lost = {t["name"].split(":")[0] for t in data["tests"] if t["status"] == "failed"}
    assert lost == {"compute_KL"} and data["score"] == 80
    assert any("log-variance" in t["output"] for t in data["tests"])


def test_flows_beside_vae_adds_the_optional_parts_tests_and_points(bundle, pythons):
    flows = source_with({"planar_flow": FLOW_BUGS["planar_u_in_log_det"][1]}, "flows")
    data, _ = run_autograder(bundle, pythons, ("vae.py", source_with({})), ("flows.py", flows))
    check_format(data, total=130)
    failed = {t["name"].split(":")[0] for t in data["tests"] if t["status"] == "failed"}
    assert failed == {"planar_flow"} and data["score"] == pytest.approx(120)


def test_flows_alone_is_not_graded_as_vae(bundle, pythons):
    data, _ = run_autograder(bundle, pythons, ("flows.py", source_with({}, "flows")))
    check_format(data, total=130)
    assert "upload your vae.py" in data["output"] and data["score"] == 30


def test_missing_submission_still_writes_a_valid_zero(bundle, pythons):
    data, _ = run_autograder(bundle, pythons)
    check_format(data)
    assert data["score"] == 0 and "upload your vae.py" in data["output"]


def test_unimportable_submission_scores_zero_with_the_reason(bundle, pythons):
    data, _ = run_autograder(bundle, pythons, ("my_vae.py", "def f(:\n"))
    check_format(data)
    assert data["score"] == 0 and "SyntaxError" in data["tests"][0]["output"]
    assert "graded my_vae.py" in data["output"]


@pytest.mark.parametrize("mode", ["bwrap", "user"])
def test_reference_and_attackers_in_both_modes(bundle, pythons, mode):
    data, stderr = run_autograder(bundle, pythons, ("vae.py", source_with({})), mode=mode)
    assert data["score"] == 100
    stolen, _ = run_autograder(bundle, pythons, ("vae.py", attack_source("steal_reference")), mode=mode)
    assert stolen["score"] == 0 and all("no kit found" in t["output"] for t in stolen["tests"])


@pytest.mark.parametrize("mode", ["bwrap", "user"])
def test_a_process_left_behind_cannot_rewrite_results_json(bundle, pythons, mode):
    forged, _ = run_autograder(bundle, pythons, ("vae.py", attack_source("forge_results", kit_hint="ROOT_OF_AUTOGRADER")),
                               mode=mode, wait=1.5)
    assert forged["score"] == 0 and forged.get("output") != "forged" and forged["tests"]


def test_uploads_as_students_make_them(bundle, pythons):
    """The cases of a class folder, as uploads: a notebook (and notebook JSON saved as vae.py), a
    byte-order mark, odd names, a syntax error in one function, an Adam that ignores its arguments,
    a macOS zip of a folder, and a link to the kit's own reference."""
    from test_batch import ADAM_WITH_DEFAULTS, SYNTAX_ERROR_IN_KL, notebook_of
    reference = source_with({})
    for upload, words in ((("vae.ipynb", notebook_of(reference)), "notebook vae.ipynb"),
                          (("vae.py", notebook_of(reference)), "notebook vae.py"),
                          (("VAE.py", reference), "graded VAE.py"), (("vae.py.txt", reference), "graded vae.py.txt")):
        data, _ = run_autograder(bundle, pythons, upload)
        assert data["score"] == 100 and words in data["output"], (upload[0], data["output"])
    data, _ = run_autograder(bundle, pythons, ("vae.py", "\ufeff" + reference))
    assert data["score"] == 100
    data, _ = run_autograder(bundle, pythons, ("vae.py", SYNTAX_ERROR_IN_KL))
    assert data["score"] == 80 and "compute_KL has a syntax error" in data["output"]
    data, _ = run_autograder(bundle, pythons, ("vae.py", ADAM_WITH_DEFAULTS))
    assert 85 < data["score"] < 100 and any("use the arguments beta1" in t["output"] for t in data["tests"])
    data, _ = run_autograder(bundle, pythons, ("hw3/vae.py", source_with({})), ("__MACOSX/hw3/._vae.py", "\x00\x05"))
    assert data["score"] == 100 and "graded hw3/vae.py" in data["output"]
    data, _ = run_autograder(bundle, pythons, ("vae.py", "-> ROOT_OF_AUTOGRADER/source/solution/vae.py"))
    check_format(data)
    assert data["score"] == 0 and "symbolic link" in data["output"]


# ------------------------------------------------------------------ variants: one per class, one per student
@pytest.fixture(scope="module")
def per_student(tmp_path_factory):
    """release --variant fall2027 --roster: the autograder.zip that grades each student against their own."""
    out = tmp_path_factory.mktemp("gs-roster")
    roster = out / "roster.csv"
    roster.write_text("student_id,name,email\ns001,Ann Lee,ann@uni.edu\ns002,Bo Chan,bo@uni.edu\n")
    result = subprocess.run([sys.executable, "-m", "grader", "release", "--variant", "fall2027", "--roster",
                             str(roster), "--bundle-dir", str(out / "build")], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    with open(out / "build" / "students" / "manifest.csv") as f:
        manifest = {row["student_id"]: row["variant"] for row in csv.DictReader(f)}
    return out / "build", manifest


def metadata_of(sid, email):
    """submission_metadata.json as Gradescope writes it (its users list)."""
    return {"id": 123456, "created_at": "2027-10-01T12:00:00.0-07:00", "assignment": {"title": "VAE"},
            "users": [{"email": email, "id": 9876, "name": "A Student", "sid": sid}]}


def test_each_student_is_graded_against_their_own_variant(per_student, pythons):
    build, manifest = per_student
    bundle = str(build / "autograder.zip")
    own = (build / "instructor" / f"{manifest['s001']}.py").read_text()
    data, _ = run_autograder(bundle, pythons, ("vae.py", own), metadata=metadata_of("s001", "ann@uni.edu"))
    assert data["score"] == 100, [t["output"] for t in data["tests"] if t["status"] != "passed"]
    by_email, _ = run_autograder(bundle, pythons, ("vae.py", own), metadata=metadata_of("", "ANN@uni.edu"))
    assert by_email["score"] == 100
    neighbour, _ = run_autograder(bundle, pythons, ("vae.py", own), metadata=metadata_of("s002", "bo@uni.edu"))
    assert neighbour["score"] < 100
    assert any("another version of this assignment" in t["output"] for t in neighbour["tests"])


def test_a_student_not_on_the_roster_gets_a_zero_that_says_so(per_student, pythons):
    build, manifest = per_student
    own = (build / "instructor" / f"{manifest['s001']}.py").read_text()
    data, _ = run_autograder(str(build / "autograder.zip"), pythons, ("vae.py", own),
                             metadata=metadata_of("s999", "eve@uni.edu"))
    check_format(data)
    assert data["score"] == 0 and "eve@uni.edu is not on the roster" in data["tests"][0]["output"]


def test_a_class_variant_bundle_grades_against_that_variant(per_student, pythons, tmp_path):
    out = str(tmp_path / "autograder.zip")
    result = subprocess.run([sys.executable, "-m", "grader", "gradescope-bundle", out, "--variant", "fall2027"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    build, _ = per_student
    own, _ = run_autograder(out, pythons, ("vae.py", (build / "instructor" / "solution.py").read_text()))
    assert own["score"] == 100
    original, _ = run_autograder(out, pythons, ("vae.py", source_with({})))
    assert original["score"] <= 60
