"""The student script is generated from the reference, and it is never stale."""
import os
import subprocess
import sys

import pytest

from conftest import REPO
from grader.paths import ASSIGNMENT, GENERATED, ROOT, SOLUTION
from grader.release import ReleaseError, assignment_source, solution_regions, strip_solutions


@pytest.mark.parametrize("solution, assignment", GENERATED, ids=[os.path.basename(a) for _, a in GENERATED])
def test_checked_in_assignment_is_generated_from_solution(solution, assignment):
    with open(assignment) as f:
        checked_in = f.read()
    assert checked_in == assignment_source(solution), (
        f"{os.path.relpath(assignment, REPO)} differs from what {os.path.relpath(solution, REPO)} generates: "
        f"run `python -m grader release`")
    with open(solution) as f:
        regions = solution_regions(f.read())
    for region in regions:
        for line in region.splitlines():
            if line.strip() and not line.strip().startswith("#"):
                assert line.strip() not in checked_in, f"solution line reached the students: {line.strip()!r}"


def test_assignment_holds_no_solution_code():
    with open(SOLUTION) as f:
        regions = solution_regions(f.read())
    assert len(regions) == 5
    with open(ASSIGNMENT) as f:
        assignment = f.read()
    stubs = [line for line in assignment.splitlines() if line.strip() == "raise NotImplementedError()"]
    assert "BEGIN SOLUTION" not in assignment and len(stubs) == 5
    for region in regions:
        for line in region.splitlines():
            code = line.strip()
            if code and not code.startswith("#"):
                assert code not in assignment, f"solution line reached the students: {code!r}"


def test_strip_keeps_indentation_and_surroundings():
    source = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n\nz = 2\n"
    assert strip_solutions(source) == ("def f(x):\n    y = 1\n    # YOUR CODE HERE\n"
                                       "    raise NotImplementedError()\n\nz = 2\n")


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx\n", "1: ### BEGIN SOLUTION is never closed"),
    ("x\n### END SOLUTION\n", "2: ### END SOLUTION without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "2: ### BEGIN SOLUTION inside the region opened at line 1"),
])
def test_malformed_markers_are_reported_with_line(source, message):
    with pytest.raises(ReleaseError, match=message):
        strip_solutions(source, "s.py")


def test_release_check_command_reports_fresh_files():
    result = subprocess.run([sys.executable, "-m", "grader", "release", "--check"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def run_script(path, cwd, *args):
    return subprocess.run([sys.executable, path, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_unfinished_script_names_every_missing_function_in_one_line():
    result = run_script("vae.py", os.path.join(REPO, "assignment"), "--epochs", "1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "vae.py: sample_latent_variables_from_posterior, bernoulli_log_prob, compute_KL, vae_lower_bound, adam_step "
        "are not implemented yet. Replace each 'raise NotImplementedError()' with your code, then run again."]


def test_partly_finished_script_names_the_next_function(tmp_path):
    """Paste the reference's first two answers: the script must point at compute_KL."""
    with open(SOLUTION) as f:
        solution = f.read()
    regions = solution_regions(solution)
    with open(ASSIGNMENT) as f:
        partial = f.read()
    stub = "    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    for region in regions[:2]:
        partial = partial.replace(stub, region, 1)
    (tmp_path / "vae.py").write_text(partial)
    # beside data/ and training_tools.py, as students have them in the bundle
    os.symlink(os.path.join(REPO, "data"), tmp_path / "data")
    os.symlink(os.path.join(REPO, "assignment", "training_tools.py"), tmp_path / "training_tools.py")
    result = run_script("vae.py", str(tmp_path))
    assert result.returncode == 1 and "vae.py: compute_KL, vae_lower_bound, adam_step are not implemented yet" \
        in result.stderr


# ------------------------------------------------------------------ the student bundle
@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from grader.release import build_bundle
    return build_bundle(str(tmp_path_factory.mktemp("bundle")))


def test_bundle_holds_no_solution_code_and_no_private_module(bundle):
    import zipfile
    folder, archive = bundle
    solution_lines = {line.strip() for solution, _ in GENERATED for region in solution_regions(open(solution).read())
                      for line in region.splitlines() if line.strip() and not line.strip().startswith("#")}
    names = zipfile.ZipFile(archive).namelist()
    assert {"vae-assignment/vae.py", "vae-assignment/flows.py", "vae-assignment/grader/fixtures/public.npz"} <= set(names)
    for private in ("grader/expected.py", "grader/hidden.py", "grader/release.py", "grader/batch.py", "solution/"):
        assert not any(name.startswith(f"vae-assignment/{private}") for name in names), private
    for name in names:
        if name.endswith((".py", ".md", ".txt", ".json")):
            text = zipfile.ZipFile(archive).read(name).decode()
            for line in solution_lines:
                assert line not in text, f"{name} contains solution code: {line!r}"


def test_bundle_self_check_judges_without_the_reference(bundle, tmp_path):
    folder, _ = bundle
    stub = subprocess.run([sys.executable, "-m", "grader", "check", "vae.py"], cwd=folder,
                          capture_output=True, text=True, timeout=120)
    assert "Total: 0 / 100" in stub.stdout and "is not implemented yet" in stub.stdout
    reference_copy = tmp_path / "mine.py"
    reference_copy.write_text(open(SOLUTION).read())
    correct = subprocess.run([sys.executable, "-m", "grader", "check", str(reference_copy), "--json"], cwd=folder,
                             capture_output=True, text=True, timeout=120)
    import json
    data = json.loads(correct.stdout)
    assert data["score"] == data["max_score"] == 100
    hidden = subprocess.run([sys.executable, "-m", "grader", "check", str(reference_copy), "--all"], cwd=folder,
                            capture_output=True, text=True, timeout=120)
    assert hidden.returncode == 2 and "students do not receive" in hidden.stderr


def test_bundle_offers_only_what_works_in_it_and_says_where_to_run_it(bundle):
    folder, _ = bundle
    shown = subprocess.run([sys.executable, "-m", "grader", "--help"], cwd=folder, capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0 and "{check}" in shown.stdout, shown.stdout  # the only command offered
    readme = open(os.path.join(folder, "README.md")).read()
    assert "cd vae-assignment" in readme


def test_bundle_self_check_grades_flows_beside_the_pristine_vae(bundle, tmp_path):
    folder, _ = bundle
    run = lambda path: subprocess.run([sys.executable, "-m", "grader", "check", str(path)], cwd=folder,
                                      capture_output=True, text=True, timeout=120).stdout
    assert "Total: 0 / 30" in run("flows.py") and run("flows.py").count("is not implemented yet") == 3
    (tmp_path / "flows.py").write_text(open(os.path.join(ROOT, "solution", "flows.py")).read())
    assert "Total: 30 / 30" in run(tmp_path / "flows.py")


def test_stored_expected_values_match_the_reference():
    from grader.release import fixtures_are_current
    assert fixtures_are_current()[0], "grader/fixtures/public.npz is stale: run `python -m grader release`"


def test_github_workflow_steps_run_here_as_written(tmp_path):
    """The self-check workflow for ubuntu, macos and windows runners cannot run here; its steps can,
    in a copy of the kit, with the portable runner those systems use forced (pip installs left out:
    this environment has the requirements)."""
    import shutil

    import yaml
    with open(os.path.join(ROOT, ".github", "workflows", "self-check.yml")) as f:
        workflow = yaml.safe_load(f)
    job = workflow["jobs"]["self-check"]
    assert job["strategy"]["matrix"]["os"] == ["ubuntu-latest", "macos-latest", "windows-latest"]
    copy = tmp_path / "kit"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", "build", "results", "__pycache__", ".pytest_cache"))
    env = dict(os.environ, VAE_GRADER_PORTABLE="1")
    outputs = []
    for step in job["steps"]:
        if "run" not in step:
            continue
        script = "\n".join(line for line in step["run"].splitlines() if not line.startswith("pip install"))
        cwd = copy / step.get("working-directory", ".")
        done = subprocess.run(["bash", "-e", "-c", script.replace("python ", f"{sys.executable} ")], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{step['name']}:\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    assert len(outputs) == 3 and "stub 0.0 reference 100.0" in outputs[1]
    assert "variant 100.0 original 45.0" in outputs[2]  # fall2027 changes the sampler, the KL and Adam


def test_the_student_file_opens_with_its_docstring_and_plain_imports():
    """Like the HIPS example: no sys.path edits and no try/except before the code; how the
    reference finds training_tools.py is the kit's concern (solution/training_tools.py)."""
    import ast
    tree = ast.parse(open(os.path.join(REPO, "assignment", "vae.py")).read())
    first = next(i for i, node in enumerate(tree.body) if isinstance(node, (ast.FunctionDef, ast.ClassDef)))
    opening = tree.body[:first]
    assert isinstance(opening[0], ast.Expr) and isinstance(opening[0].value, ast.Constant)  # the docstring
    assert all(isinstance(node, (ast.Import, ast.ImportFrom)) for node in opening[1:]), \
        [ast.dump(node)[:80] for node in opening[1:] if not isinstance(node, (ast.Import, ast.ImportFrom))]
