"""The nbgrader course, end to end with the real nbgrader: generate, validate, autograde,
feedback, export; the exported scores equal what `python -m grader check --all` gives."""
import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap

import nbformat
import pytest

from conftest import REPO
from grader.parts import FUNCTIONS
from grader.grade import load_config
from grader.paths import SOLUTION
from grader.release import solution_regions
from submissions import BUGS, source_with, write

# nbgrader as this interpreter has it: `venv/bin/python -m pytest` finds it without an activated venv
pytestmark = pytest.mark.skipif(importlib.util.find_spec("nbgrader") is None,
                                reason=f"nbgrader is not installed for {sys.executable}")
NBGRADER = (sys.executable, "-m", "nbgrader")
STUB = "    # YOUR CODE HERE\n    raise NotImplementedError()"
STUDENTS = {"alice": {}, "bob": {"compute_KL": BUGS["kl_logvar"][1]},
            "carol": {"vae_lower_bound": BUGS["lower_bound_sum"][1]}}


def run(*command, cwd):
    # nbgrader runs its own tools (alembic) by name: give it this interpreter's bin/, as activating a venv does
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def answered(release_notebook, replacements, source=None):
    """The released notebook with every answer cell filled in: the reference's code (of ``source``, by
    default solution/vae.py), or a replacement."""
    if source is None:
        with open(SOLUTION) as f:
            source = f.read()
    regions = dict(zip(FUNCTIONS, solution_regions(source)))
    notebook = nbformat.read(release_notebook, as_version=4)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in FUNCTIONS:
            code = replacements.get(grade_id)
            body = textwrap.indent(code.strip("\n"), "    ") if code else regions[grade_id].rstrip("\n")
            assert STUB in cell.source
            cell.source = cell.source.replace(STUB, body)
    return notebook


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("course"))
    run(sys.executable, "-m", "grader", "nbgrader-course", directory, cwd=REPO)
    return directory


def test_notebook_follows_nbgrader_schema_and_the_grader_config(course):
    notebook = nbformat.read(os.path.join(course, "source", "vae", "vae.ipynb"), as_version=4)
    nbformat.validate(notebook)
    meta = [c.metadata["nbgrader"] for c in notebook.cells if "nbgrader" in c.metadata]
    assert all(m["schema_version"] == 3 and {"grade", "solution", "locked", "grade_id"} <= set(m) for m in meta)
    tests = {m["grade_id"]: m["points"] for m in meta if m["grade"]}
    assert tests == {f"test_{f}": load_config()["points"][f] for f in FUNCTIONS}  # the notebook is vae.py's part
    answers = [m["grade_id"] for m in meta if m["solution"]]
    assert answers == FUNCTIONS
    assert sum(1 for c in notebook.cells if c.cell_type == "markdown") >= 6  # the assignment text


def test_full_nbgrader_workflow_matches_the_grader(course, tmp_path):
    run(*NBGRADER, "generate_assignment", "vae", "--force", cwd=course)
    release = os.path.join(course, "release", "vae", "vae.ipynb")
    released = open(release).read()
    assert "BEGIN HIDDEN TESTS" not in released and "hidden = \"" not in released
    for region in solution_regions(open(SOLUTION).read()):
        assert region.strip().splitlines()[-1].strip() not in released
    validation = run(*NBGRADER, "validate", "--invert", release, cwd=course)
    assert "does not pass any tests" in validation.stdout + validation.stderr

    expected = {}
    for student, replacements in STUDENTS.items():
        folder = os.path.join(course, "submitted", student, "vae")
        os.makedirs(folder)
        shutil.copytree(os.path.join(course, "release", "vae", "data"), os.path.join(folder, "data"))
        shutil.copytree(os.path.join(course, "release", "vae", "grader"), os.path.join(folder, "grader"))
        nbformat.write(answered(release, replacements), os.path.join(folder, "vae.ipynb"))
        script = write(tmp_path, f"{student}.py", source_with(replacements))
        check = run(sys.executable, "-m", "grader", "check", script, "--all", "--json", cwd=REPO)
        expected[student] = json.loads(check.stdout)["score"]
    assert expected["alice"] == 100 and expected["bob"] < 100 and expected["carol"] < 100

    run(*NBGRADER, "autograde", "vae", cwd=course)
    feedback_run = run(*NBGRADER, "generate_feedback", "vae", cwd=course)
    assert "not recognized" not in feedback_run.stdout + feedback_run.stderr  # the kit's own config is clean
    # a student who exports their notebook (jupyter nbconvert --to script) gets vae.py, graded as the notebook is
    alice = os.path.join(course, "submitted", "alice", "vae", "vae.ipynb")
    export = tmp_path / "export"
    run(sys.executable, "-m", "nbconvert", "--to", "script", alice, "--output-dir", str(export), cwd=course)
    assert os.listdir(export) == ["vae.py"]
    exported = json.loads(run(sys.executable, "-m", "grader", "check", str(export / "vae.py"), "--all", "--json",
                              cwd=REPO).stdout)
    assert exported["score"] == expected["alice"] and exported["warnings"] == [], exported["warnings"]
    source = nbformat.read(os.path.join(course, "source", "vae", "vae.ipynb"), as_version=4)
    blobs = [line.split('"')[1] for cell in source.cells for line in cell.source.splitlines()
             if line.startswith('hidden = "')]
    assert len(blobs) == len(FUNCTIONS)
    for student in STUDENTS:
        with open(os.path.join(course, "feedback", student, "vae", "vae.html")) as f:
            feedback = f.read()
        assert "check_function" in feedback  # the test cells are there, their hidden part is not
        assert "HIDDEN TESTS" not in feedback
        for blob in blobs:  # the hidden checks' inputs (seeds) and expected values, in any piece
            assert blob[:48] not in feedback and blob[len(blob) // 2:len(blob) // 2 + 48] not in feedback
    run(*NBGRADER, "export", cwd=course)
    with open(os.path.join(course, "grades.csv")) as f:
        exported = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}
    for student, score in expected.items():
        assert exported[student] == pytest.approx(score, abs=1e-3), (student, exported, expected)


def test_in_kernel_checks_keep_stderr_clean_and_agree_with_the_isolated_grader(tmp_path, capfd, monkeypatch):
    """nbgrader scores any stderr output 0: a correct but warning-prone answer must not write there."""
    import importlib.util
    from grader.grade import evaluate
    from grader.notebook import check_function
    from submissions import ALTERNATIVES
    function, code = ALTERNATIVES["bernoulli_naive"]
    path = write(tmp_path, "naive.py", source_with({function: code}))
    monkeypatch.syspath_prepend(os.path.join(REPO, "solution"))  # its training_tools.py, as a kernel beside it has
    spec = importlib.util.spec_from_file_location("naive_submission", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    capfd.readouterr()
    points = {f: check_function(f, vars(module)) for f in FUNCTIONS}
    captured = capfd.readouterr()
    assert captured.err == ""
    isolated = evaluate(path)["functions"]
    assert points == {f: isolated[f]["score"] for f in FUNCTIONS}
    assert "not finite" in captured.out  # the stability advice is still shown, on stdout


def test_a_variant_course_grades_against_that_variant(tmp_path):
    """nbgrader-course --variant: one variant for the whole course, end to end with the real nbgrader."""
    from grader.expected import render
    from grader.variants import variant
    course = str(tmp_path / "course")
    run(sys.executable, "-m", "grader", "nbgrader-course", course, "--variant", "fall2027", cwd=REPO)
    run(*NBGRADER, "generate_assignment", "vae", "--force", cwd=course)
    release = os.path.join(course, "release", "vae", "vae.ipynb")
    released = open(release).read()
    assert "PRIOR_STD" in released and "DESCENDS" in released  # the variant's own text
    own = render(variant("fall2027"))
    for region in solution_regions(own):
        assert max(region.strip().splitlines(), key=len).strip() not in released
    for student, source in (("own", own), ("original", None)):
        folder = os.path.join(course, "submitted", student, "vae")
        os.makedirs(folder)
        for sub in ("data", "grader"):
            shutil.copytree(os.path.join(course, "release", "vae", sub), os.path.join(folder, sub))
        nbformat.write(answered(release, {}, source), os.path.join(folder, "vae.ipynb"))
    run(*NBGRADER, "autograde", "vae", cwd=course)
    run(*NBGRADER, "export", cwd=course)
    with open(os.path.join(course, "grades.csv")) as f:
        scores = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}
    assert scores["own"] == pytest.approx(100) and scores["original"] <= 60
