"""Untrusted code stays untrusted by default: the real attack kinds, written inside the graded
functions, graded with the default flags of `grade` and `check --all`, with bubblewrap working
and with a bubblewrap that fails as it does in a container (then, as root, a fresh
unprivileged user isolates the code). The kit is copied to a folder every user may read and
the class folder is one too, as they are in the field."""
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from attacks import ATTACKS, LINGER_SECONDS, attack_source
from conftest import REPO, fake_bwrap_path, make_venv, open_folder, processes_with, public_python, tree_digest
from grader import isolation
from grader.grade import evaluate
from grader.paths import SOLUTION
from submissions import source_with

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
MODES = ["bwrap", "user"]


@pytest.fixture(scope="module")
def kit():
    """The kit as an instructor keeps it: readable by every user, the reference included."""
    folder = open_folder("vae-kit-")
    for name in ("grader", "solution", "assignment", "data"):
        shutil.copytree(os.path.join(REPO, name), os.path.join(folder, name),
                        ignore=shutil.ignore_patterns("__pycache__", "mnist", "*.gz"))
    shutil.copy(os.path.join(REPO, "requirements.txt"), folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def mode_setup(name, tmp_path):
    """(mode, Python, environment) to run `python -m grader` with, or a skip saying why not."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if name == "none":
        return "none", sys.executable, env
    if name == "bwrap":
        if not isolation.sandbox_available()[0]:
            pytest.skip(f"bubblewrap does not work here: {isolation.sandbox_available()[1]}")
        return "bwrap", sys.executable, env
    if not IS_ROOT:
        pytest.skip("the user mode is for graders running as root (Gradescope, Docker)")
    python = public_python()
    if python is None:
        pytest.skip("no Python with the requirements that other users can run (set VAE_TEST_PUBLIC_PYTHON; "
                    ".ci/run makes /opt/vae-grader)")
    env["PATH"] = fake_bwrap_path(str(tmp_path / "fake-bin"))
    return "user", python, env


@pytest.fixture(params=MODES)
def mode(request, tmp_path):
    """(mode, Python, environment) for each isolated mode."""
    return mode_setup(request.param, tmp_path)


DESCRIBES = {"bwrap": "bubblewrap", "user": "unprivileged user"}


def grader(python, env, *args, cwd, timeout=600, kit=None):
    """`python -m grader ARGS` from ``cwd``; the kit's grader from ``kit`` when cwd is elsewhere."""
    command = [python, "-m", "grader", *args] if kit is None else \
        [python, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); from grader.__main__ import main; "
                       "sys.exit(main())", kit, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_a_batch_with_every_attack_kind(kit, mode):
    name, python, env = mode
    marker = f"honest-{uuid.uuid4().hex}"
    folder, out, loot = open_folder("vae-class-"), open_folder("vae-out-"), open_folder("vae-loot-")
    os.chmod(loot, 0o1777)
    before = tree_digest(kit)
    kinds = [k for k in ATTACKS if k != "forge_results"]
    try:
        with open(os.path.join(folder, "honest.py"), "w") as f:
            f.write(source_with({}) + f"\n# {marker}\n")
        for kind in kinds:
            with open(os.path.join(folder, f"{kind}.py"), "w") as f:
                f.write(attack_source(kind, loot=loot, kit_hint=kit))
        result = grader(python, env, "grade", folder, "--out", out, "--jobs", "2", cwd=kit)
        assert result.returncode == 0, result.stderr[-3000:]
        assert DESCRIBES[name] in result.stderr  # it says what protects the run
        rows = {r["student"]: r for r in csv.DictReader(open(os.path.join(out, "grades.csv")))}
        assert float(rows["honest"]["total"]) == 100, open(os.path.join(out, "honest.txt")).read()
        for kind in kinds:
            assert float(rows[kind]["total"]) == 0, open(os.path.join(out, f"{kind}.txt")).read()
        assert "no kit found" in open(os.path.join(out, "steal_reference.txt")).read()
        assert tree_digest(kit) == before, "a submission changed the kit"
        for path in [os.path.join(loot, n) for n in os.listdir(loot)] + ["/tmp/stolen-honest.py"]:
            assert not os.path.exists(path) or marker not in open(path, errors="replace").read()
        assert not processes_with(LINGER_SECONDS), "a process outlived the grading"
        assert oct(os.stat(kit).st_mode & 0o777) == "0o755"  # the kit's modes are back as they were
    finally:
        for pid in processes_with(LINGER_SECONDS):
            os.kill(pid, signal.SIGKILL)
        for path in (folder, out, loot, "/tmp/stolen-honest.py"):
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else None


def test_check_all_is_isolated_by_default(kit, mode):
    name, python, env = mode
    folder = open_folder("vae-one-")
    before = tree_digest(kit)
    try:
        for kind in ("steal_reference", "write_kit"):
            path = os.path.join(folder, "vae.py")
            with open(path, "w") as f:
                f.write(attack_source(kind, kit_hint=kit))
            result = grader(python, env, "check", path, "--all", "--json", cwd=kit)
            assert result.returncode == 0, result.stderr[-3000:]
            assert '"score": 0' in result.stdout and DESCRIBES[name] in result.stderr
        assert tree_digest(kit) == before
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_attacks_work_without_isolation_so_the_tests_above_mean_something(kit, tmp_path):
    """With --no-sandbox the same attack does steal the reference: the isolation is what stops it."""
    path = tmp_path / "vae.py"
    path.write_text(attack_source("steal_reference", kit_hint=kit))
    result = grader(sys.executable, dict(os.environ), "check", str(path), "--all", "--no-sandbox", cwd=kit)
    assert result.returncode == 0 and "Total: 0 / 100" not in result.stdout, result.stdout[-2000:]
    assert "no isolation (--no-sandbox)" in result.stderr and "the reference" in result.stderr


def test_no_isolation_available_stops_with_what_a_submission_could_reach(monkeypatch, tmp_path):
    monkeypatch.setattr(isolation, "_probes", {})
    monkeypatch.setattr(isolation, "_is_root", lambda: False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap at all
    with pytest.raises(isolation.IsolationError) as error:
        isolation.choose("auto")
    message = str(error.value)
    assert "bubblewrap (bwrap) is not installed" in message and "not running as root" in message
    assert "reference solution" in message and "--no-sandbox" in message


def test_a_sandbox_that_fails_to_start_is_the_graders_error_not_a_zero(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", fake_bwrap_path(str(tmp_path)))
    with pytest.raises(isolation.IsolationError) as error:
        evaluate(SOLUTION, isolation=isolation.Isolation("bwrap"))
    assert "No permissions to create new namespace" in str(error.value)
    assert "out of memory" not in str(error.value)


def test_sandbox_runs_a_python_in_a_venv_under_tmp(tmp_path):
    """A venv in /tmp (or in the kit) was hidden by the sandbox's own /tmp: every submission scored 0."""
    if not isolation.sandbox_available()[0]:
        pytest.skip(f"bubblewrap does not work here: {isolation.sandbox_available()[1]}")
    venv = open_folder("vae-venv-")
    try:
        python = make_venv(venv)
        result = subprocess.run([python, "-m", "grader", "check", SOLUTION, "--all",
                                 "--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert '"score": 100' in result.stdout and "bubblewrap" in result.stderr
    finally:
        shutil.rmtree(venv, ignore_errors=True)


def test_batch_grading_skips_nothing_silently_when_the_sandbox_breaks(tmp_path, monkeypatch):
    """A grader failure records nothing for the student (a rerun grades them), and says so."""
    from grader.batch import grade_folder
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "ada.py").write_text(source_with({}))
    monkeypatch.setenv("PATH", fake_bwrap_path(str(tmp_path / "bin")))
    rows = grade_folder(str(folder), str(tmp_path / "out"), isolation=isolation.Isolation("bwrap"), progress=False)
    assert list(rows) == [] and "No permissions" in rows.failed["ada"]
    assert not (tmp_path / "out" / "ada.json").exists()


@pytest.mark.skipif(not IS_ROOT, reason="making processes of another user needs root")
def test_kill_user_kills_the_users_processes_and_takes_a_zombie_for_dead(monkeypatch):
    """Where PID 1 reaps no orphans (a container's, this kind of VM's), a killed process stays as
    a zombie for good: counted as left, it kept kill_user sending `kill -1` fifty times a run."""
    uid = isolation.allocate_uid()
    as_user = dict(user=uid, group=uid, extra_groups=[], cwd="/")
    zombie = subprocess.Popen(["/bin/true"], **as_user)  # never waited for until the end: a zombie
    sleeper = subprocess.Popen(["sleep", "600"], **as_user)
    kills = []
    run = subprocess.run
    monkeypatch.setattr(isolation.subprocess, "run", lambda command, **kw: kills.append(command) or run(command, **kw))
    try:
        while open(f"/proc/{zombie.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.01)
        isolation.kill_user(uid)
        assert sleeper.wait(timeout=10) == -signal.SIGKILL and kills
        kills.clear()
        isolation.kill_user(uid)  # only the zombie is left
        assert kills == [], f"kill_user still ran {len(kills)} kills with only a zombie of its user left"
    finally:
        monkeypatch.undo()
        sleeper.kill()
        sleeper.wait()
        zombie.wait()
        isolation.release_uid(uid)


# Where an instructor's environment may point the grader: (TMPDIR's parent, its mode, HOME's mode).
ENVIRONMENTS = {"TMPDIR 1777 under /tmp": ("/tmp", 0o1777, None), "TMPDIR 0755 under /tmp": ("/tmp", 0o755, None),
                "TMPDIR 0700 under /tmp": ("/tmp", 0o700, None), "TMPDIR 0700 outside /tmp": ("/var/tmp", 0o700, None),
                "read-only HOME, run from another folder": (None, None, 0o555)}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("name", ["bwrap", "user", "none"])
def test_a_correct_file_scores_full_marks_whatever_the_environment_says(kit, name, environment, tmp_path):
    """An instructor's own TMPDIR once gave every student 0 under bubblewrap: whatever the
    environment, the reference scores 100 and the stub 0, or the grader stops with its own error."""
    mode_name, python, env = mode_setup(name, tmp_path)
    parent, tmp_mode, home_mode = ENVIRONMENTS[environment]
    folder, out, cwd = open_folder("vae-class-"), open_folder("vae-out-"), open_folder("vae-cwd-")
    made = [folder, out, cwd]
    try:
        if parent:
            tmpdir = tempfile.mkdtemp(prefix="vae-tmpdir-", dir=parent)
            made.append(tmpdir)
            os.chmod(tmpdir, tmp_mode)
            env["TMPDIR"] = tmpdir
        if home_mode:
            home = open_folder("vae-home-")
            made.append(home)
            os.chmod(home, home_mode)
            env["HOME"] = home
        shutil.copy(os.path.join(kit, "assignment", "vae.py"), os.path.join(folder, "stub.py"))
        with open(os.path.join(folder, "reference.py"), "w") as f:
            f.write(source_with({}))
        flags = ["--no-sandbox"] if name == "none" else []
        result = grader(python, env, "grade", folder, "--out", out, *flags, cwd=cwd if home_mode else kit,
                        kit=kit)
        assert result.returncode == 0, result.stderr[-3000:]
        rows = {r["student"]: float(r["total"]) for r in csv.DictReader(open(os.path.join(out, "grades.csv")))}
        assert rows == {"reference": 100, "stub": 0}, open(os.path.join(out, "reference.txt")).read()[:2000]
        if parent:
            assert not [n for n in os.listdir(tmpdir) if n.startswith("vae-grade")], "the run left folders behind"
    finally:
        for path in made:
            os.chmod(path, 0o700)
            shutil.rmtree(path, ignore_errors=True)


def test_a_work_folder_the_student_cannot_use_is_the_graders_error(monkeypatch):
    """Whatever makes the set-up fail, the child says so before any student code runs, and the
    grader raises its own error: never a 0 for the student."""
    from grader import runner
    if not IS_ROOT:
        pytest.skip("needs root, to run the child as another user")
    monkeypatch.setattr(runner, "give_to", lambda path, uid: os.chmod(path, 0o700))  # set-up gone wrong
    with pytest.raises(isolation.IsolationError) as error:
        evaluate(SOLUTION, isolation=isolation.Isolation("user"))
    assert "cannot use its work folder" in str(error.value) and "Permission denied" in str(error.value)
