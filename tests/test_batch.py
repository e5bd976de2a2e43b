"""`grade` as an instructor runs it in a terminal: Ctrl-C is a clean stop, OUT belongs to one run
at a time, a wrong OUT is said before anything is graded, and what a killed run left in the
temporary folder is removed by the next run."""
import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, processes_with
from submissions import source_with

HANG_IN_KL = source_with({"compute_KL": "while True:\n    pass\n"})


def start_grader(*args, tmpdir, read_only=None):
    """`python -m grader ARGS` in its own process group, as a terminal runs a foreground command;
    ``read_only``: a folder mounted read-only for it (bubblewrap), as a full or read-only disk is."""
    env = dict(os.environ, TMPDIR=str(tmpdir))
    env.pop("PYTHONPATH", None)
    prefix = [shutil.which("bwrap"), "--dev-bind", "/", "/", "--ro-bind", read_only, read_only] if read_only else []
    return subprocess.Popen([*prefix, sys.executable, "-m", "grader", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(condition, seconds=120, what="the condition"):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.05)


def leftovers(tmpdir):
    return [n for n in os.listdir(tmpdir) if n.startswith("vae-grade")]


def runs_in(tmpdir):
    """The work folders of submissions' runs (not the isolation probe's)."""
    return [n for n in leftovers(tmpdir) if re.match(r"vae-grade-\d+-", n)]


def a_class(folder, students):
    folder.mkdir()
    for i in range(students):
        (folder / f"s{i:03d}.py").write_text(source_with({}))
    return folder


def test_ctrl_c_stops_grade_cleanly_and_a_rerun_carries_on(tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    folder, out = a_class(tmp_path / "class", 40), tmp_path / "out"
    grader = start_grader("grade", str(folder), "--out", str(out), "--jobs", "2", tmpdir=tmpdir)
    wait_for(lambda: out.is_dir() and len(list(out.glob("*.json"))) >= 2, what="two students graded")
    os.killpg(grader.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    _, stderr = grader.communicate(timeout=60)
    assert grader.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "run the same command again to carry on" in stderr
    graded = sorted(p.stem for p in out.glob("*.json"))
    rows = {r["student"]: float(r["total"]) for r in csv.DictReader(open(out / "grades.csv"))}
    assert 2 <= len(graded) < 40 and sorted(rows) == graded and set(rows.values()) == {100}
    assert (out / "summary.md").exists() and not leftovers(tmpdir)
    assert f"stopped after grading {len(graded)} submission(s)" in stderr

    rerun = start_grader("grade", str(folder), "--out", str(out), tmpdir=tmpdir)
    stdout, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr[-2000:]
    rows = {r["student"]: float(r["total"]) for r in csv.DictReader(open(out / "grades.csv"))}
    assert len(rows) == 40 and set(rows.values()) == {100}
    assert f"skipped {len(graded)} already graded" in stdout and not leftovers(tmpdir)


@pytest.mark.parametrize("command, sign, status", [(("check", "--all"), signal.SIGINT, 130),
                                                   (("check", "--no-sandbox"), signal.SIGINT, 130),
                                                   (("gradescope-run",), signal.SIGTERM, 143)])
def test_a_stop_while_a_submission_runs_kills_it_and_leaves_nothing(tmp_path, command, sign, status):
    """check and the Gradescope run (SIGTERM: Gradescope's timeout) stop within seconds, say so,
    remove the run's folders and record nothing: no score, no results.json."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    submission = tmp_path / "submission" / "vae.py"
    submission.parent.mkdir()
    submission.write_text(HANG_IN_KL)
    args = (*command, str(submission)) if command[0] == "check" else (*command, "--root", str(tmp_path))
    grader = start_grader(*args, tmpdir=tmpdir)
    wait_for(lambda: runs_in(tmpdir), what="the submission's run to start")
    time.sleep(1.0)  # well into the hanging call
    os.killpg(grader.pid, sign)
    stdout, stderr = grader.communicate(timeout=60)
    assert grader.returncode == status, stderr[-2000:]
    assert "Traceback" not in stderr and "stopped" in stderr and "Total" not in stdout
    assert not leftovers(tmpdir) and not (tmp_path / "results" / "results.json").exists()


def test_a_second_grade_on_the_same_out_is_refused_naming_the_first(tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    folder, out = a_class(tmp_path / "class", 12), tmp_path / "out"
    first = start_grader("grade", str(folder), "--out", str(out), "--jobs", "1", tmpdir=tmpdir)
    wait_for(lambda: out.is_dir() and list(out.glob("*.json")), what="the first run to start grading")
    second = start_grader("grade", str(folder), "--out", str(out), tmpdir=tmpdir)
    _, stderr = second.communicate(timeout=300)
    assert second.returncode == 2 and f"is being graded by `grade` run {first.pid}" in stderr, stderr[-2000:]
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-2000:]
    rows = {r["student"]: float(r["total"]) for r in csv.DictReader(open(out / "grades.csv"))}
    assert len(rows) == 12 and set(rows.values()) == {100}


def test_a_killed_run_leaves_no_lock_and_its_folders_are_removed_by_the_next(tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    folder, out = a_class(tmp_path / "class", 1), tmp_path / "out"
    (folder / "hangs.py").write_text(HANG_IN_KL)
    killed = start_grader("grade", str(folder), "--out", str(out), "--no-sandbox", tmpdir=tmpdir)
    wait_for(lambda: runs_in(tmpdir), what="a submission's run to start")
    time.sleep(0.5)
    killed.kill()  # SIGKILL: no clean-up runs
    killed.communicate(timeout=60)
    for pid in processes_with(str(tmpdir)):  # its children, which --no-sandbox does not tie to it
        os.kill(pid, signal.SIGKILL)
    left = leftovers(tmpdir)
    assert left, "the killed run left nothing to clean"
    os.makedirs(tmpdir / "vae-grade-unrelated")  # not of the grader's naming: never touched
    rerun = start_grader("grade", str(folder), "--out", str(out), "--no-sandbox", tmpdir=tmpdir)
    _, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr[-2000:]
    assert leftovers(tmpdir) == ["vae-grade-unrelated"]


@pytest.mark.parametrize("case", ["a file", "read-only", "inside a read-only folder"])
def test_an_out_that_cannot_be_written_is_one_line_before_anything_is_graded(tmp_path, case):
    folder = a_class(tmp_path / "class", 1)
    out, read_only = tmp_path / "out", None
    if case == "a file":
        out.write_text("")
    elif case == "read-only":
        out.mkdir()
        read_only = str(out)
    else:
        (tmp_path / "ro").mkdir()
        out = tmp_path / "ro" / "out"
        read_only = str(tmp_path / "ro")
    if read_only and not (shutil.which("bwrap") and subprocess.run(
            ["bwrap", "--dev-bind", "/", "/", "true"], capture_output=True).returncode == 0):
        pytest.skip("a read-only folder is made with bubblewrap, which cannot run here")
    grader = start_grader("grade", str(folder), "--out", str(out), "--no-sandbox", tmpdir=tmp_path,
                          read_only=read_only)
    stdout, stderr = grader.communicate(timeout=120)
    assert grader.returncode == 2 and "Traceback" not in stderr, stderr[-2000:]
    assert len(stderr.strip().splitlines()) == 1 and str(out) in stderr and not stdout
    assert not list(tmp_path.glob("**/*.json"))


KL = "mean, log_std = np.split(q_means_and_log_stds, 2, axis=-1)\n"
# ways for compute_KL to misbehave, the other four functions being correct -> words its feedback must hold
FAULTS = {
    "exits": ("import os\nos._exit(0)", "exited with status 0"),
    "exit_unprintable": ("class Unprintable:\n    def __str__(self):\n        raise ValueError('no')\n"
                         "raise SystemExit(Unprintable())", "called exit(<a Unprintable that cannot be shown>)"),
    # a real segfault on every Python (a deep recursion through C, as this case once was, is one on
    # 3.9-3.11 only: 3.12 and later stop it with a RecursionError, the case below)
    "segfaults": ("import ctypes\nreturn ctypes.string_at(0)", "killed by SIGSEGV"),
    "deep_recursion": ("import sys\nsys.setrecursionlimit(10 ** 6)\ndef deeper(n):\n    return deeper(n + 1)\n"
                       "return deeper(0)", ("RecursionError", "did not finish within 4 s")),  # a million frames take seconds
    "hangs": ("while True:\n    pass", "did not finish within 4 s"),
    "hangs_ignoring_signals": ("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                               "signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
                               "did not finish within 4 s"),
    "busy_threads": ("import threading\ndef spin():\n    while True:\n        pass\nfor _ in range(60):\n"
                     "    threading.Thread(target=spin, daemon=True).start()\n" + KL + "return 0 * np.sum(mean, axis=-1)",
                     ("expected", "did not finish within 4 s")),  # the threads may starve it of the GIL
}


def test_a_fault_in_one_function_costs_that_function_only(tmp_path):
    """Graded as `grade` grades (hidden checks, default isolation): whatever compute_KL does, the
    other four functions keep every point, and the feedback says what happened."""
    import json
    config = json.load(open(os.path.join(REPO, "grader", "config.json")))
    config["limits"]["function_seconds"] = 4
    (tmp_path / "config.json").write_text(json.dumps(config))
    folder, out = tmp_path / "class", tmp_path / "out"
    folder.mkdir()
    (folder / "honest.py").write_text(source_with({}))
    for name, (code, _) in FAULTS.items():
        (folder / f"{name}.py").write_text(source_with({"compute_KL": code}))
    env = dict(os.environ, VAE_GRADER_CONFIG=str(tmp_path / "config.json"), TMPDIR=str(tmp_path))
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out), "--jobs", "2"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    if "cannot isolate" in result.stderr:
        pytest.skip("no isolation here: " + result.stderr[-300:])
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["student"]: r for r in csv.DictReader(open(out / "grades.csv"))}
    assert float(rows["honest"]["total"]) == 100
    for name, (_, words) in FAULTS.items():
        feedback = (out / f"{name}.txt").read_text()
        others = {f: float(rows[name][f]) for f in ("sample_latent_variables_from_posterior", "bernoulli_log_prob",
                                                     "vae_lower_bound", "adam_step")}
        assert float(rows[name]["compute_KL"]) == 0 and float(rows[name]["total"]) == 80, (name, others, feedback)
        assert any(w in feedback for w in ((words,) if isinstance(words, str) else words)), (name, feedback)
        assert "out of memory" not in feedback


SYNTAX_ERROR_IN_KL = source_with({"compute_KL": "mean, log_std = np.split(q_means_and_log_stds, 2, axis=-1\n"
                                                "return np.sum(mean, axis=-1)"})
ADAM_WITH_DEFAULTS = source_with({"adam_step": "m = 0.9 * m + 0.1 * gradient\nv = 0.999 * v + 0.001 * gradient ** 2\n"
                                               "m_hat = m / (1 - 0.9 ** t)\nv_hat = v / (1 - 0.999 ** t)\n"
                                               "return params + learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8), m, v"})


def notebook_of(source):
    """A student's notebook holding ``source`` in a few code cells, with a magic and a shell line."""
    import nbformat
    notebook = nbformat.v4.new_notebook()
    parts = source.split("\ndef ")
    cells = [parts[0]] + ["def " + p for p in parts[1:]]
    notebook.cells = [nbformat.v4.new_markdown_cell("# My VAE"), nbformat.v4.new_code_cell("%matplotlib inline\n"
                      "!pip install autograd")] + [nbformat.v4.new_code_cell(c) for c in cells]
    return nbformat.writes(notebook)


def test_every_submission_as_students_hand_it_in_gets_its_row(tmp_path):
    """Notebooks, a notebook saved as .py, a BOM, odd names, symbolic links and stray files, in
    both layouts: each gradable one graded as a teaching assistant would, each link refused, and
    every student in grades.csv."""
    reference = source_with({})
    flat, folders, out_flat, out_folders = (tmp_path / n for n in ("flat", "folders", "out-flat", "out-folders"))
    flat.mkdir()
    (flat / "nora.ipynb").write_text(notebook_of(reference))
    (flat / "omar.py").write_text(notebook_of(reference))  # notebook JSON saved as .py
    (flat / "bea.py").write_bytes(b"\xef\xbb\xbf" + reference.encode())
    (flat / "win.py.txt").write_text(reference)
    (flat / "link.py").symlink_to(os.path.join(REPO, "solution", "vae.py"))
    (flat / "README.md").write_text("notes")
    (flat / "syn.py").write_text(SYNTAX_ERROR_IN_KL)
    (flat / "hard.py").write_text(ADAM_WITH_DEFAULTS)
    for student, files in {"ada": {"vae.ipynb": notebook_of(reference)}, "cy": {"VAE.py": reference},
                           "dee": {"vae.py.txt": reference}, "eli": {"my_vae.py": reference, "notes.txt": ""},
                           "fay": {"__MACOSX/._vae.py": "\x00\x05", "vae.py": reference},
                           "gus": {"a.py": reference, "b.py": reference}, "hal": {}}.items():
        for name, text in files.items():
            (folders / student / name).parent.mkdir(parents=True, exist_ok=True)
            (folders / student / name).write_text(text)
    (folders / "hal").mkdir(parents=True, exist_ok=True)
    (folders / "hal" / "vae.py").symlink_to(os.path.join(REPO, "solution", "vae.py"))
    env = dict(os.environ, TMPDIR=str(tmp_path))
    results = {}
    for folder, out in ((flat, out_flat), (folders, out_folders)):
        done = subprocess.run([sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out)], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=600)
        if "cannot isolate" in done.stderr:
            pytest.skip("no isolation here")
        assert done.returncode == 0, done.stderr[-3000:]
        results[folder.name] = (done.stderr, {r["student"]: float(r["total"])
                                              for r in csv.DictReader(open(out / "grades.csv"))})
    stderr, rows = results["flat"]
    hard = rows.pop("hard")
    assert rows == {"nora": 100, "omar": 100, "bea": 100, "win": 100, "link": 0, "syn": 80}
    assert 85 < hard < 100 and "use the arguments beta1, beta2 and epsilon" in (out_flat / "hard.txt").read_text()
    said = "'(' was never closed" if sys.version_info >= (3, 10) else "invalid syntax"  # Python's words, by version
    assert f"compute_KL has a syntax error: {said} (syn.py, line" in (out_flat / "syn.txt").read_text()
    assert "skipped README.md" in stderr
    assert "symbolic link" in (out_flat / "link.txt").read_text()
    assert "graded the code cells of the notebook nora.ipynb" in (out_flat / "nora.txt").read_text()
    _, rows = results["folders"]
    assert rows == {"ada": 100, "cy": 100, "dee": 100, "eli": 100, "fay": 100, "gus": 0, "hal": 0}
    assert "graded VAE.py" in (out_folders / "cy.txt").read_text()
    assert "graded my_vae.py, the only Python file" in (out_folders / "eli.txt").read_text()
    assert "expected vae.py (or vae.ipynb), found a.py, b.py" in (out_folders / "gus.txt").read_text()
    assert "symbolic link (vae.py)" in (out_folders / "hal.txt").read_text()
    for text in [p.read_text() for p in out_folders.glob("*.txt")]:
        assert str(tmp_path) not in text, "the feedback shows the instructor's folders"


def grades_of(out):
    """grades.csv's rows, as {student: row}."""
    with open(os.path.join(out, "grades.csv"), newline="") as f:
        return {r["student"]: r for r in csv.DictReader(f)}


def test_a_rerun_gives_the_rows_a_fresh_run_gives_after_any_change_that_decides_a_grade(tmp_path):
    """A changed file, changed points and a damaged result are each graded again: the rerun's
    grades.csv is a fresh run's, never a stale row."""
    import json
    folder = tmp_path / "class"
    folder.mkdir()
    right, kl_wrong = source_with({}), source_with({"compute_KL": "mean, log_std = np.split(q_means_and_log_stds, "
                                                                  "2, axis=-1)\nreturn np.sum(mean ** 2, axis=-1)"})
    for name in ("ana", "ben", "cy"):
        (folder / f"{name}.py").write_text(right)
    config = json.load(open(os.path.join(REPO, "grader", "config.json")))
    config["points"]["compute_KL"] = 40
    (tmp_path / "points.json").write_text(json.dumps(config))

    def grade(out, config_path=None):
        env = dict(os.environ, TMPDIR=str(tmp_path), **({"VAE_GRADER_CONFIG": str(config_path)} if config_path else {}))
        env.pop("PYTHONPATH", None)
        done = subprocess.run([sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out),
                               "--no-sandbox"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return grades_of(out), done.stdout

    out = tmp_path / "out"
    grade(out)
    (folder / "ana.py").write_text(kl_wrong)  # a file changed since
    rows, said = grade(out)
    assert rows == grade(tmp_path / "fresh1")[0] and float(rows["ana"]["total"]) == 80
    assert "graded 1 submissions" in said and "skipped 2 already graded" in said
    rows, said = grade(out, tmp_path / "points.json")  # points changed: everyone again
    assert rows == grade(tmp_path / "fresh2", tmp_path / "points.json")[0]
    assert float(rows["ben"]["max_score"]) == 120 and "graded 3 submissions" in said
    result = out / "cy.json"
    result.write_text(result.read_text()[:200])  # a truncated result file
    rows, said = grade(out, tmp_path / "points.json")
    assert rows == grade(tmp_path / "fresh3", tmp_path / "points.json")[0] and "graded 1 submissions" in said


def test_an_out_that_fills_up_stops_the_run_and_keeps_what_was_graded(tmp_path, monkeypatch):
    """No space left in OUT half-way: the run stops with a message saying so, the results written
    are whole and kept, and the same command, once there is room, grades only the rest."""
    import errno
    import json

    from grader import batch
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("a1", "a2", "a3"):
        (folder / f"{name}.py").write_text(source_with({}))
    real_write, writes = batch._write, []

    def full_after_the_first_student(path, text):
        writes.append(path)
        if path.endswith(".json") and sum(p.endswith(".json") for p in writes) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(path, text)
    monkeypatch.setattr(batch, "_write", full_after_the_first_student)
    out = tmp_path / "out"
    with pytest.raises(batch.OutOfRoom) as stopped:
        batch.grade_folder(str(folder), str(out), jobs=1, progress=False)
    message = str(stopped.value)
    assert "No space left on device" in message and "run the same command again" in message, message
    kept = [n for n in os.listdir(out) if n.endswith(".json")]
    assert len(kept) == 1 and json.load(open(out / kept[0]))["score"] == 100
    assert not [n for n in os.listdir(out) if n.endswith(".part")]
    monkeypatch.setattr(batch, "_write", real_write)
    rows = batch.grade_folder(str(folder), str(out), jobs=1, progress=False)
    assert rows.skipped == 1 and sorted(r["student"] for r in rows) == ["a1", "a2", "a3"]
    batch.grade_folder(str(folder), str(tmp_path / "fresh"), progress=False)
    assert grades_of(out) == grades_of(tmp_path / "fresh")
