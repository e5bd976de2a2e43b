"""The Gradescope autograder zip, run as Gradescope would, in a folder standing in for /autograder."""
import json
import os
import stat
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO
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


def run_autograder(bundle, tmp_path, *submission):
    """Unpack as Gradescope does into ROOT/source, place the submitted (name, text) files, run run_autograder."""
    root = tmp_path / "autograder"
    source = root / "source"
    with zipfile.ZipFile(bundle) as z:
        z.extractall(source)
    (root / "submission").mkdir(parents=True)
    for name, text in submission:
        (root / "submission" / name).write_text(text)
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), VAE_GRADER_PYTHON=sys.executable)
    result = subprocess.run(["bash", str(source / "run_autograder")], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    with open(root / "results" / "results.json") as f:
        return json.load(f)


def check_format(data, total=100):
    assert {"score", "execution_time", "output", "tests"} <= set(data)
    for test in data["tests"]:
        assert {"name", "score", "max_score", "status", "output", "visibility"} <= set(test)
        assert test["status"] in ("passed", "failed")
        assert test["visibility"] == ("after_published" if "hidden" in test["name"] else "visible")
    assert sum(t["max_score"] for t in data["tests"]) == pytest.approx(total)


def test_reference_scores_full_marks(bundle, tmp_path):
    data = run_autograder(bundle, tmp_path, ("vae.py", source_with({})))
    check_format(data)
    assert data["score"] == 100 and any("hidden" in t["name"] for t in data["tests"])


def test_buggy_submission_loses_its_functions_points(bundle, tmp_path):
    data = run_autograder(bundle, tmp_path, ("vae.py", source_with({"compute_KL": BUGS["kl_logvar"][1]})))
    check_format(data)
    lost = {t["name"].split(":")[0] for t in data["tests"] if t["status"] == "failed"}
    assert lost == {"compute_KL"} and data["score"] == 80
    assert any("log-variance" in t["output"] for t in data["tests"])


def test_flows_beside_vae_adds_the_optional_parts_tests_and_points(bundle, tmp_path):
    flows = source_with({"planar_flow": FLOW_BUGS["planar_u_in_log_det"][1]}, "flows")
    data = run_autograder(bundle, tmp_path, ("vae.py", source_with({})), ("flows.py", flows))
    check_format(data, total=130)
    failed = {t["name"].split(":")[0] for t in data["tests"] if t["status"] == "failed"}
    assert failed == {"planar_flow"} and data["score"] == pytest.approx(120)


def test_flows_alone_is_not_graded_as_vae(bundle, tmp_path):
    data = run_autograder(bundle, tmp_path, ("flows.py", source_with({}, "flows")))
    check_format(data, total=130)
    assert "upload your vae.py" in data["output"] and data["score"] == 30


def test_missing_submission_still_writes_a_valid_zero(bundle, tmp_path):
    data = run_autograder(bundle, tmp_path)
    check_format(data)
    assert data["score"] == 0 and "upload your vae.py" in data["output"]


def test_unimportable_submission_scores_zero_with_the_reason(bundle, tmp_path):
    data = run_autograder(bundle, tmp_path, ("my_vae.py", "def f(:\n"))
    check_format(data)
    assert data["score"] == 0 and "SyntaxError" in data["tests"][0]["output"]
    assert "graded my_vae.py" in data["output"]
