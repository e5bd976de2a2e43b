"""The grader: full marks for correct code in any form, a named loss for each known mistake,
zero for stubs and for hostile files, and an answer every time."""
import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from conftest import REPO
from grader import runner
from grader.parts import FUNCTIONS, PARTS
from grader.grade import evaluate, load_config, public_json, text_report
from grader.paths import ROOT, SOLUTION
from submissions import ALTERNATIVES, BUGS, FLOW_ALTERNATIVES, FLOW_BUGS, source_with, stub_source, stub_with, write

POINTS = load_config()["points"]
POINTS_VAE = {f: POINTS[f] for f in FUNCTIONS}
ALL_BUGS = {**{("vae", k): v for k, v in BUGS.items()}, **{("flows", k): v for k, v in FLOW_BUGS.items()}}
ALL_ALTERNATIVES = {**{("vae", k): v for k, v in ALTERNATIVES.items()},
                    **{("flows", k): v for k, v in FLOW_ALTERNATIVES.items()}}


_graded = {}


def graded(tmp_path, part, name, function, code):
    """evaluate() of the reference with one function replaced, hidden checks included; computed once
    per run, so that the portable runner's test can compare with the same results."""
    if (part, name) not in _graded:
        _graded[part, name] = evaluate(write(tmp_path, f"{part}.py", source_with({function: code}, part)),
                                       include_hidden=True)
    return _graded[part, name]


def scores(result):
    return {f: result["functions"][f]["score"] for f in result["functions"]}


def failures(result, function):
    return " | ".join(t["output"] for t in result["tests"] if t["function"] == function and t["status"] == "failed")


@pytest.fixture(scope="module")
def reference_result():
    return evaluate(SOLUTION, include_hidden=True)


def test_reference_earns_full_marks(reference_result):
    assert reference_result["score"] == reference_result["max_score"] == 100
    assert all(t["status"] == "passed" for t in reference_result["tests"]), text_report(reference_result)


def test_reference_flows_earns_the_optional_parts_points():
    result = evaluate(os.path.join(ROOT, "solution", "flows.py"), include_hidden=True)
    assert result["part"] == "flows" and set(result["functions"]) == set(PARTS["flows"])
    assert result["score"] == result["max_score"] == sum(POINTS[f] for f in PARTS["flows"])
    assert all(t["status"] == "passed" for t in result["tests"]), text_report(result)
    assert any(t["hidden"] for t in result["tests"])


def test_flow_stubs_earn_zero_each_reported_not_implemented():
    result = evaluate(os.path.join(ROOT, "assignment", "flows.py"), include_hidden=True)
    assert result["score"] == 0 and text_report(result).count("is not implemented yet") == 3


def test_flows_is_graded_beside_the_assignments_vae_not_the_students(tmp_path):
    """A broken vae.py next to flows.py costs nothing there: flows.py imports the assignment's own."""
    write(tmp_path, "vae.py", "def broken(:\n")
    result = evaluate(write(tmp_path, "flows.py", source_with({}, "flows")), include_hidden=True)
    assert result["score"] == result["max_score"] > 0, text_report(result)


def test_stubs_earn_zero_each_reported_not_implemented(tmp_path):
    result = evaluate(write(tmp_path, "stub.py", stub_source()), include_hidden=True)
    assert result["score"] == 0
    for function in FUNCTIONS[:4]:
        assert f"{function} is not implemented yet" in failures(result, function)
    assert "not implemented yet" in failures(result, "adam_step")
    report = text_report(result)
    assert report.count("is not implemented yet") == 5  # once per function, not once per check


@pytest.mark.parametrize("part, bug", sorted(ALL_BUGS), ids=[bug for _, bug in sorted(ALL_BUGS)])
def test_each_mistake_loses_marks_on_its_own_function_only(part, bug, tmp_path):
    function, code, hint = ALL_BUGS[part, bug]
    result = graded(tmp_path, part, bug, function, code)
    got = scores(result)
    assert got[function] < POINTS[function], f"{bug} was not caught:\n{text_report(result)}"
    for other in PARTS[part]:
        if other != function:
            assert got[other] == POINTS[other], f"{bug} cost points on {other}: {failures(result, other)}"
    assert hint in failures(result, function), f"{bug}: hint {hint!r} not in: {failures(result, function)}"


HINTED = sorted(key for key, (_, _, hint) in ALL_BUGS.items() if hint)


@pytest.mark.parametrize("part, bug", HINTED, ids=[bug for _, bug in HINTED])
def test_students_self_check_names_each_mistake_from_the_stored_values(part, bug, tmp_path):
    """On a student's machine the expected values come from fixtures/public.npz, not the reference."""
    function, code, hint = ALL_BUGS[part, bug]
    result = evaluate(write(tmp_path, f"{part}.py", source_with({function: code}, part)), use_reference=False)
    assert hint in failures(result, function), f"{bug}: hint {hint!r} not in: {failures(result, function)}"


@pytest.mark.parametrize("part, alternative", sorted(ALL_ALTERNATIVES), ids=[a for _, a in sorted(ALL_ALTERNATIVES)])
def test_correct_alternatives_earn_full_marks(part, alternative, tmp_path):
    function, code = ALL_ALTERNATIVES[part, alternative]
    result = graded(tmp_path, part, alternative, function, code)
    assert scores(result)[function] == POINTS[function], failures(result, function)
    assert result["score"] == result["max_score"]


def test_portable_runner_gives_the_same_verdicts_on_every_bug_and_alternative(tmp_path, monkeypatch):
    """VAE_GRADER_PORTABLE=1 forces the runner a Windows or macOS laptop uses (a subprocess, a results
    file, a plain kill); every test's status, score and message must be what the Linux runner gives."""
    import grader.runner
    everything = {**{key: (f, c) for key, (f, c, _) in ALL_BUGS.items()}, **ALL_ALTERNATIVES}
    linux = {key: graded(tmp_path, *key, *value) for key, value in everything.items()}
    monkeypatch.setenv("VAE_GRADER_PORTABLE", "1")
    assert grader.runner.portable()
    verdict = lambda result: ([(t["name"], t["status"], t["score"], t["output"]) for t in result["tests"]],
                              result["warnings"])
    for (part, name), (function, code) in everything.items():
        result = evaluate(write(tmp_path, f"{part}.py", source_with({function: code}, part)), include_hidden=True)
        assert verdict(result) == verdict(linux[part, name]), name


def test_naive_bernoulli_gets_stability_advice_without_losing_points(tmp_path):
    function, code = ALTERNATIVES["bernoulli_naive"]
    result = evaluate(write(tmp_path, "vae.py", source_with({function: code})))
    advice = [t for t in result["tests"] if t["advice"]]
    assert advice and advice[0]["status"] == "failed" and "not finite" in advice[0]["output"]
    assert result["score"] == 100
    counted = evaluate(write(tmp_path, "vae.py", source_with({function: code})),
                       config=dict(load_config(), stability_points=5))
    assert counted["max_score"] == 105 and counted["score"] == 100


def test_edited_network_does_not_leak_into_the_lower_bound(tmp_path):
    source = source_with({}).replace("    return np.dot(inputs, W) + b\n", "    return 2 * np.dot(inputs, W) + b + 1\n")
    result = evaluate(write(tmp_path, "vae.py", source), include_hidden=True)
    assert result["score"] == 100, text_report(result)


def test_training_at_module_level_is_not_run_but_functions_are_graded(tmp_path):
    source = source_with({}) + "\nN, train_images, _, _, _ = load_mnist()\nfor i in range(10**9):\n    pass\n"
    result = evaluate(write(tmp_path, "vae.py", source))
    assert result["score"] == 100
    assert result["warnings"] and "was not run" in result["warnings"][0]


def test_top_level_training_without_a_main_guard_keeps_full_marks(tmp_path):
    """The coursework's own pattern: load, count batches and train at the top level, no main guard.
    num_batches reads train_images, which only the skipped load_mnist() line defines."""
    source = source_with({}) + textwrap.dedent("""
        batch_size = 100
        train_images, train_labels, test_images, test_labels = load_mnist()
        num_batches = int(np.ceil(len(train_images) / batch_size))
        init_gen_params = init_net_params([2, 200, 784])
        for epoch in range(30):
            for batch in range(num_batches):
                pass
        """)
    result = evaluate(write(tmp_path, "vae.py", source))
    assert result["score"] == 100, text_report(result)
    skipped = len(source_with({}).splitlines()) + 3
    assert f"line(s) {skipped}, {skipped + 1}" in result["warnings"][0], result["warnings"]


def test_a_failing_top_level_statement_is_a_warning_not_a_zero(tmp_path):
    source = source_with({}) + "\nsaved_weights = np.load('weights_from_last_week.npy')\n"
    result = evaluate(write(tmp_path, "vae.py", source))
    assert result["score"] == 100, text_report(result)
    warning = " ".join(result["warnings"])
    assert "failed (FileNotFoundError" in warning and "weights_from_last_week.npy" in warning
    assert "warning: top-level code at line" in text_report(result)


def test_stand_ins_have_the_signatures_of_the_functions_they_replace():
    """A student's keyword call must reach the stand-in as it would reach their own function."""
    import ast
    import inspect
    import numpy as np
    from grader.stand_ins import STAND_INS, make_stand_ins

    def signatures(path):
        with open(path) as f:
            tree = ast.parse(f.read())
        return {node.name: [a.arg for a in node.args.args] for node in tree.body if isinstance(node, ast.FunctionDef)}

    assignment = {**signatures(os.path.join(ROOT, "assignment", "vae.py")),
                  **signatures(os.path.join(ROOT, "assignment", "flows.py"))}
    chosen = {k: np.zeros((2, 4)) for k in ("z", "e0", "l0", "B", "dB", "K", "dK")}
    stand_ins = {**make_stand_ins(chosen, {}), **{name: make([]) for name, make in STAND_INS.items()}}
    assert set(stand_ins) == {"neural_net_predict", "sample_latent_variables_from_posterior", "bernoulli_log_prob",
                              "compute_KL", "planar_flow", "constrain_u"}
    for name, stand_in in stand_ins.items():
        assert list(inspect.signature(stand_in).parameters) == assignment[name], name


def test_stability_advice_waits_until_the_values_are_right(tmp_path):
    """A naive Bernoulli term without the sum over pixels: the shape is the mistake, not stability."""
    function, code, _ = BUGS["bernoulli_naive_per_pixel"]
    result = evaluate(write(tmp_path, "vae.py", source_with({function: code})))
    advice = next(t for t in result["tests"] if t["advice"])
    assert "not judged" in advice["output"] and "sigmoid" not in advice["output"], advice["output"]
    report = text_report(result)
    assert report.index("one value per element") < report.index("not judged")


def test_a_tiny_difference_is_shown_with_the_digits_that_differ(tmp_path):
    import re
    function, code, _ = BUGS["adam_slightly_off"]  # a step 5e-7 too long, within 6 digits of the right one
    result = evaluate(write(tmp_path, "vae.py", source_with({function: code})))
    message = failures(result, function)
    expected, got, relative = re.search(r"expected (\S+), got (\S+) at index \(\d+,\) \(relative difference (\S+)\)",
                                        message).groups()
    assert expected != got and 0 < abs(float(got) / float(expected) - 1) <= 1e-6, message
    assert 1e-7 < float(relative) <= 5e-7, message  # beyond the tolerance (1e-7), within the 5e-7 of the bug


def test_missing_function_and_wrong_signature_cost_only_that_function(tmp_path):
    source = source_with({}).replace("def compute_KL(q_means_and_log_stds):", "def compute_kl(q_means_and_log_stds):")
    source = source.replace("def adam_step(params, gradient, m, v, t,", "def adam_step(params, gradient, m, v,")
    result = evaluate(write(tmp_path, "vae.py", source))
    got = scores(result)
    assert got["compute_KL"] == 0 and "compute_KL is not defined" in failures(result, "compute_KL")
    assert got["adam_step"] == 0 and "cannot be called as the assignment specifies" in failures(result, "adam_step")
    assert got["bernoulli_log_prob"] == 20 and got["sample_latent_variables_from_posterior"] == 20


@pytest.mark.parametrize("part, function, family, argument, otherwise", [
    ("vae", "compute_KL", "kl_values", "q_means_and_log_stds", "np.zeros(len(q_means_and_log_stds))"),
    ("flows", "constrain_u", "constrain_values", "u", "u")])
def test_hard_coded_public_answers_fail_hidden_checks(part, function, family, argument, otherwise, tmp_path):
    """An answer that only reproduces the public inputs' expected values loses the hidden checks."""
    from grader.parts import public_checks
    from grader.expected import expected_values
    table = {}
    for check in public_checks(part):
        if check.function == function and check.family == family:
            for i, _ in enumerate(check.params["cases"]):
                x = check.inputs[f"{check.key}/a{i}_0"]
                table[x.tobytes().hex()[:64]] = expected_values(check)[f"case{i}"].tolist()
    code = (f"import numpy\ntable = {table!r}\n"
            f"key = numpy.asarray({argument}).tobytes().hex()[:64]\n"
            f"return np.array(table[key]) if key in table else {otherwise}")
    result = evaluate(write(tmp_path, f"{part}.py", source_with({function: code}, part)), include_hidden=True)
    hidden = [t for t in result["tests"] if t["function"] == function and t["hidden"]]
    assert hidden and all(t["status"] == "failed" for t in hidden)
    assert scores(result)[function] < POINTS[function]


# ------------------------------------------------------------------ hostile submissions
FAST = dict(load_config(), limits={"wall_seconds": 8, "function_seconds": 8, "cpu_seconds": 20, "memory_mb": 2048, "file_mb": 16})


def hostile(tmp_path, function, code, isolation="none"):
    result = evaluate(write(tmp_path, "vae.py", stub_with(function, code)), include_hidden=True,
                      config=FAST, isolation=isolation)
    assert result["score"] == 0, text_report(result)
    return result


def test_exit_at_import_is_skipped_and_exit_in_a_function_costs_only_itself(tmp_path):
    source = "import os\nos._exit(0)\n" + source_with({"compute_KL": "import os\nos._exit(0)"})
    result = evaluate(write(tmp_path, "vae.py", source), config=FAST)
    assert scores(result)["compute_KL"] == 0 and "ended the process" in failures(result, "compute_KL")
    assert result["score"] == 80
    hostile(tmp_path, "compute_KL", "import sys\nsys.exit(0)")


def test_hang_that_ignores_sigterm_is_stopped(tmp_path):
    result = hostile(tmp_path, "bernoulli_log_prob",
                     "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass")
    assert "did not finish within 8 s" in failures(result, "bernoulli_log_prob")


def running(pid):
    """Whether a process exists and is neither a zombie nor dead, read from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X", "x")
    except OSError:
        return False


def test_fork_that_outlives_the_run_is_killed(tmp_path):
    pid_file = tmp_path / "daemons.pid"
    hostile(tmp_path, "compute_KL", f"""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                with open({str(pid_file)!r}, "a") as f:
                    f.write(f"{{os.getpid()}}\\n")
                time.sleep(600)
            os._exit(0)
        time.sleep(0.5)
        return np.zeros(len(q_means_and_log_stds))""")
    pids = [int(line) for line in pid_file.read_text().split()]
    left = [pid for pid in pids if running(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)  # this test's own clean-up: the grader should have done it
    assert pids and not left, f"daemons {left} of {pids} outlived the grading"


def test_a_process_forked_while_the_grader_looks_for_them_is_killed_too(tmp_path, monkeypatch):
    """The grader lists /proc, then reads and kills what carries the run's marker; a marked
    process that forks in between leaves a child that list did not hold. Here the fork is made
    to happen exactly then: the listing waits for it."""
    go, child_file = tmp_path / "go", tmp_path / "child.pid"
    marker = uuid.uuid4().hex
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, time
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        if os.fork() == 0:
            with open({str(child_file)!r} + ".part", "w") as f:
                f.write(str(os.getpid()))
            os.rename({str(child_file)!r} + ".part", {str(child_file)!r})
        time.sleep(600)""")], env={"PATH": os.environ["PATH"], runner.MARKER: marker})
    listdir = os.listdir

    def listing_during_which_the_parent_forks(path):
        names = listdir(path)
        if path == "/proc" and not go.exists():
            go.touch()
            deadline = time.monotonic() + 30
            while not child_file.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return names

    monkeypatch.setattr(os, "listdir", listing_during_which_the_parent_forks)
    try:
        runner._kill_marked(f"{runner.MARKER}={marker}".encode())
        monkeypatch.undo()
        child = int(child_file.read_text())
        assert not running(child), "the child forked during the scan lives on"
        assert parent.wait(timeout=10) == -signal.SIGKILL
    finally:
        monkeypatch.undo()
        parent.kill()
        if child_file.exists() and running(int(child_file.read_text())):
            os.kill(int(child_file.read_text()), signal.SIGKILL)


def test_flood_of_output_is_capped(tmp_path):
    result = hostile(tmp_path, "compute_KL", "import sys\nfor _ in range(200000):\n    sys.stdout.write('x' * 1000)")
    assert len(result["output_tail"]) <= 1000


def test_memory_hog_is_stopped(tmp_path):
    result = hostile(tmp_path, "compute_KL", "import numpy\nhog = numpy.ones(10 ** 10)\nreturn hog[:1]")
    assert "MemoryError" in failures(result, "compute_KL") or "ended the process" in failures(result, "compute_KL")


def test_monkeypatched_numpy_and_fake_json_earn_nothing(tmp_path):
    source = stub_with("compute_KL", """
        import json, numpy, numpy.testing
        numpy.allclose = lambda *a, **k: True
        numpy.testing.assert_allclose = lambda *a, **k: None
        print(json.dumps({"score": 100, "max_score": 100, "tests": []}))
        return numpy.zeros(len(q_means_and_log_stds))""")
    source = "import numpy\nnumpy.allclose = lambda *a, **k: True\n" + source
    result = evaluate(write(tmp_path, "vae.py", source), include_hidden=True, config=FAST)
    assert result["score"] == 0


def test_array_subclass_that_equals_everything_earns_nothing(tmp_path):
    hostile(tmp_path, "compute_KL", """
        import numpy
        class Liar(numpy.ndarray):
            def __eq__(self, other): return True
            def __ne__(self, other): return False
            def __array_ufunc__(self, *a, **k): return True
        return numpy.zeros(len(q_means_and_log_stds)).view(Liar)""")


def test_walking_the_callers_frames_finds_no_expected_values(tmp_path):
    hostile(tmp_path, "compute_KL", """
        import inspect, numpy
        for frame in inspect.stack():
            for name, value in frame.frame.f_locals.items():
                if "expect" in name and isinstance(value, dict):
                    return value
        return numpy.full(len(q_means_and_log_stds), -1.0)""")


needs_sandbox = pytest.mark.skipif(not __import__("grader.isolation", fromlist=["x"]).sandbox_available()[0],
                                   reason="bubblewrap cannot create namespaces here")


@needs_sandbox
def test_sandbox_hides_the_reference_and_the_network(tmp_path):
    code = f"""
        import importlib.util, socket
        spec = importlib.util.spec_from_file_location("ref", {SOLUTION!r})
        ref = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ref)
        return ref.compute_KL(q_means_and_log_stds)"""
    result = hostile(tmp_path, "compute_KL", code, isolation="bwrap")
    assert "FileNotFoundError" in failures(result, "compute_KL") or "PermissionError" in failures(result, "compute_KL")
    result = hostile(tmp_path, "compute_KL", """
        import socket
        socket.create_connection(("127.0.0.1", 22), timeout=2)""", isolation="bwrap")
    assert "OSError" in failures(result, "compute_KL") or "Error" in failures(result, "compute_KL")


@needs_sandbox
def test_flows_graded_in_the_sandbox(tmp_path):
    result = evaluate(write(tmp_path, "flows.py", source_with({}, "flows")), include_hidden=True, isolation="bwrap",
                      hidden_paths=[str(tmp_path)])
    assert result["score"] == result["max_score"] == 30, text_report(result)


# ------------------------------------------------------------------ interfaces
def run_grader(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_check_json_prints_only_the_documented_json(tmp_path):
    path = write(tmp_path, "vae.py", source_with({"compute_KL": BUGS["kl_logvar"][1]}))
    result = run_grader("check", path, "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert set(data) == {"score", "max_score", "tests", "warnings"} and data["max_score"] == 100
    for test in data["tests"]:
        assert set(test) == {"name", "function", "score", "max_score", "status", "output"}
        assert test["function"] in FUNCTIONS and test["status"] in ("passed", "failed")
    assert data["score"] == 80 and not any("hidden" in t["name"] for t in data["tests"])


def test_bad_paths_are_errors_not_scorecards(tmp_path):
    for path, words in ((tmp_path / "nope.py", "does not exist"), (tmp_path, "is a folder")):
        result = run_grader("check", str(path))
        assert result.returncode == 2 and words in result.stderr and "Total" not in result.stdout
    (tmp_path / "empty").mkdir()
    result = run_grader("grade", str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "holds no submissions" in result.stderr


def test_check_text_names_the_mistake():
    result = run_grader("check", os.path.join(REPO, "assignment", "vae.py"))
    assert result.returncode == 0 and "Total: 0 / 100" in result.stdout
    assert "sample_latent_variables_from_posterior is not implemented yet" in result.stdout


def test_check_grades_flows_by_its_name_or_by_part(tmp_path):
    by_name = json.loads(run_grader("check", write(tmp_path, "flows.py", source_with({}, "flows")), "--json").stdout)
    renamed = write(tmp_path, "mine.py", source_with({PARTS["flows"][1]: FLOW_BUGS["planar_no_log"][1]}, "flows"))
    by_part = json.loads(run_grader("check", renamed, "--part", "flows", "--json").stdout)
    flow_points = sum(POINTS[f] for f in PARTS["flows"])
    assert by_name["score"] == by_name["max_score"] == by_part["max_score"] == flow_points
    assert by_part["score"] == flow_points - POINTS["planar_flow"]
    assert {t["function"] for t in by_part["tests"]} == set(PARTS["flows"])
    assert any("not the determinant" in t["output"] for t in by_part["tests"])


def test_batch_grades_flows_beside_vae_and_keeps_it_out_of_the_total(tmp_path):
    folder, out = tmp_path / "submissions", tmp_path / "out"
    for student, flows in (("ada", {}), ("bea", {"flow_lower_bound": FLOW_BUGS["bound_sum"][1]}), ("cy", None)):
        (folder / student).mkdir(parents=True)
        write(folder / student, "vae.py", source_with({}))
        if flows is not None:
            write(folder / student, "flows.py", source_with(flows, "flows"))
    result = run_grader("grade", str(folder), "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = {r["student"]: r for r in csv.DictReader(open(out / "grades.csv"))}
    assert all(float(rows[s]["total"]) == 100 for s in rows)
    assert float(rows["ada"]["flows_total"]) == 30 and rows["cy"]["flows_total"] == ""
    assert float(rows["bea"]["flow_lower_bound"]) < POINTS["flow_lower_bound"] == float(rows["ada"]["flow_lower_bound"])
    assert float(rows["bea"]["planar_flow"]) == POINTS["planar_flow"]
    assert "summed over the batch" in (out / "bea.txt").read_text()
    assert json.load(open(out / "ada.json"))["flows"]["score"] == 30


def test_batch_grading_a_mixed_folder(tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    write(folder, "ada.py", source_with({}))
    write(folder, "bea.py", source_with({"compute_KL": BUGS["kl_logvar"][1]}))
    write(folder, "cy.py", "def broken(:\n")
    (folder / "dan").mkdir()
    write(folder / "dan", "vae.py", stub_source())
    (folder / "eve").mkdir()  # a folder without vae.py
    write(folder, "fay.py", stub_with("compute_KL", "import os\nos._exit(3)"))
    out = tmp_path / "out"
    result = run_grader("grade", str(folder), "--out", str(out), "--jobs", "2")
    assert result.returncode == 0, result.stderr
    rows = {r["student"]: r for r in csv.DictReader(open(out / "grades.csv"))}
    assert set(rows) == {"ada", "bea", "cy", "dan", "eve", "fay"}
    assert float(rows["ada"]["total"]) == 100 and float(rows["bea"]["total"]) == 80
    assert float(rows["bea"]["compute_KL"]) == 0 and float(rows["bea"]["adam_step"]) == 15
    assert all(float(rows[s]["total"]) == 0 for s in ("cy", "dan", "eve", "fay"))
    assert "log-variance" in (out / "bea.txt").read_text()
    assert any("hidden" in t["name"] for t in json.load(open(out / "ada.json"))["tests"])
    # resumable: graded students are skipped unless --force
    os.remove(out / "ada.json")
    (out / "bea.json").write_text(json.dumps(dict(json.load(open(out / "bea.json")), score=77.0)))
    rerun = run_grader("grade", str(folder), "--out", str(out))
    assert "skipped 5 already graded" in rerun.stdout and "--force" in rerun.stdout
    rows = {r["student"]: r for r in csv.DictReader(open(out / "grades.csv"))}
    assert float(rows["ada"]["total"]) == 100 and float(rows["bea"]["total"]) == 77
    run_grader("grade", str(folder), "--out", str(out), "--force")
    rows = {r["student"]: r for r in csv.DictReader(open(out / "grades.csv"))}
    assert float(rows["bea"]["total"]) == 80


def test_grade_writes_what_the_class_got_wrong(tmp_path):
    """summary.md: scores per function, each named mistake with its students (most frequent first,
    once per student), import failures and partly run files; and a figure of the scores."""
    folder, out = tmp_path / "class", tmp_path / "out"
    folder.mkdir()
    logvar = {"compute_KL": BUGS["kl_logvar"][1]}
    write(folder, "ada.py", source_with({}))
    write(folder, "bea.py", source_with(logvar))
    write(folder, "gil.py", source_with({**logvar, "sample_latent_variables_from_posterior": BUGS["sample_reseeds"][1]}))
    write(folder, "hal.py", source_with({"vae_lower_bound": BUGS["lower_bound_sum"][1]}))
    write(folder, "cy.py", "def broken(:\n")
    write(folder, "ivy.py", source_with({}) + "\ntrain_images = load_mnist()[1]\nn = len(train_images)\n")
    result = run_grader("grade", str(folder), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "summary.md" in result.stdout
    summary = (out / "summary.md").read_text()
    table = summary[summary.index("## Mistakes"):summary.index("## Files that failed")]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "students |" not in line]
    assert "log-variance" in rows[0] and rows[0].startswith("| 2 | compute_KL |") and rows[0].endswith("| bea, gil |")
    assert any("reseeds" in r and r.endswith("| gil |") for r in rows)
    assert any("summed over the batch" in r and r.endswith("| hal |") for r in rows)
    assert not any("ada" in r or "ivy" in r or "cy" in r.split("|")[-2] for r in rows)
    assert "- **cy**: importing your file failed: SyntaxError" in summary
    partly = summary[summary.index("only partly run"):]
    assert "- **ivy**: top-level code at line(s)" in partly and "ada" not in partly
    assert "| compute_KL | 3 | 0 | 3 | 10.0 / 20 |" in summary  # ada, hal, ivy full; bea, gil, cy zero
    with open(out / "scores.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_public_json_is_what_check_json_prints(reference_result):
    data = public_json(reference_result)
    assert data["score"] == 100 and len(data["tests"]) == len(reference_result["tests"])


def test_pytest_interface_runs_the_same_checks(tmp_path):
    path = write(tmp_path, "vae.py", source_with({"compute_KL": BUGS["kl_logvar"][1]}))
    result = subprocess.run([sys.executable, "-m", "pytest", "grader", "-q", "-p", "no:cacheprovider",
                             "--submission", path], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert failed and all("compute_KL" in line for line in failed), result.stdout[-3000:]
    assert "log-variance" in result.stdout


def test_pytest_interface_grades_flows_and_skips_the_other_parts_checks(tmp_path):
    path = write(tmp_path, "flows.py", source_with({"constrain_u": FLOW_BUGS["constrain_norm"][1]}, "flows"))
    result = subprocess.run([sys.executable, "-m", "pytest", "grader", "-q", "-p", "no:cacheprovider", "-rfs",
                             "--submission", path], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert failed and all("constrain_u" in line for line in failed), result.stdout[-3000:]
    assert "not by |w|" in result.stdout and "a check of vae.py" in result.stdout


def test_a_stub_in_a_notebook_cell_still_reads_not_implemented():
    """In a notebook the student's code lives in the kernel's cell files, not vae.py: a stub's own
    NotImplementedError is still "not implemented yet", not an error inside a library."""
    import types
    from grader.parts import public_checks
    from grader.child import run_call
    cell = types.ModuleType("cell")
    exec(compile("def compute_KL(q_means_and_log_stds):\n    raise NotImplementedError()\n",
                 "/tmp/ipykernel_1/2716.py", "exec"), cell.__dict__)
    check = next(c for c in public_checks() if c.function == "compute_KL")
    header, _ = run_call(cell, check.calls[0], check.inputs)
    assert header == {"status": "not_implemented",
                      "message": "compute_KL is not implemented yet (it raises NotImplementedError)"}


@pytest.mark.parametrize("saved_as", ["a UTF-8 byte-order mark", "CRLF line ends", "a latin-1 encoding declaration"])
def test_a_file_is_read_as_python_reads_it(tmp_path, saved_as):
    """Windows editors write a BOM and CRLF; Python runs such files, so the grader grades them."""
    source = source_with({})
    if saved_as == "a UTF-8 byte-order mark":
        data = b"\xef\xbb\xbf" + source.encode("utf-8")
    elif saved_as == "CRLF line ends":
        data = source.replace("\n", "\r\n").encode("utf-8")
    else:
        data = ("# -*- coding: latin-1 -*-\n# café\n" + source).encode("latin-1", errors="replace")
    path = tmp_path / "vae.py"
    path.write_bytes(data)
    assert subprocess.run([sys.executable, "-c", f"compile(open({str(path)!r}, 'rb').read(), 'vae.py', 'exec')"]
                          ).returncode == 0, "Python itself would not run this file"
    result = evaluate(str(path))
    assert result["score"] == 100, text_report(result)


def test_a_syntax_error_costs_only_the_function_it_is_in(tmp_path):
    """A `(` never closed in compute_KL: the four other functions are graded, and the message
    names the student's own file and line."""
    source = source_with({"compute_KL": "mean, log_std = np.split(q_means_and_log_stds, 2, axis=-1\n"
                                        "return np.sum(mean, axis=-1)"})
    result = evaluate(write(tmp_path, "synerr.py", source), include_hidden=True)
    line = source.splitlines().index("    mean, log_std = np.split(q_means_and_log_stds, 2, axis=-1") + 1
    assert scores(result) == dict(POINTS_VAE, compute_KL=0), text_report(result)
    # Python's own words for it: from 3.10 "'(' was never closed" at the line of the `(`; 3.9 says
    # "invalid syntax" at the line after it
    said = ("'(' was never closed", line) if sys.version_info >= (3, 10) else ("invalid syntax", line + 1)
    assert f"compute_KL has a syntax error: {said[0]} (synerr.py, line {said[1]})" in failures(result, "compute_KL")
    assert any("compute_KL has a syntax error" in w for w in result["warnings"])


def test_a_syntax_error_outside_every_function_still_fails_the_file_naming_it(tmp_path):
    result = evaluate(write(tmp_path, "mine.py", "import numpy as np(\n" + source_with({})))
    assert result["score"] == 0 and "(mine.py, line 1)" in result["tests"][0]["output"]


def test_the_graders_modules_import_each_other_without_a_circle():
    """Every import between grader/'s modules, at the top of a file or inside a function: the graph
    has no cycle (the checks' registry lives apart from each part's checks)."""
    import ast
    folder = os.path.join(ROOT, "grader")
    modules = {name[:-3] for name in os.listdir(folder) if name.endswith(".py")}
    graph = {}
    for module in modules:
        tree = ast.parse(open(os.path.join(folder, f"{module}.py")).read())
        graph[module] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith("grader")):
                target = (node.module or "").replace("grader.", "").replace("grader", "")
                names = [target] if target else [a.name for a in node.names]
                graph[module] |= {n for n in names if n in modules and n != module}
    path = []

    def visit(module, seen):
        assert module not in path, f"import circle: {' -> '.join(path[path.index(module):] + [module])}"
        if module in seen:
            return
        path.append(module)
        for target in sorted(graph[module]):
            visit(target, seen)
        path.pop()
        seen.add(module)
    seen = set()
    for module in sorted(graph):
        visit(module, seen)
    assert {"registry", "checks", "flow_checks", "parts"} <= modules


def test_a_broken_kit_vae_beside_flows_is_the_graders_error_not_the_students(tmp_path, monkeypatch):
    """flows.py is graded beside the kit's own vae.py: when that fails to import before any student
    code ran, the grader stops with its own error instead of scoring the student 0."""
    from grader.isolation import IsolationError
    broken = tmp_path / "kit_vae.py"
    broken.write_text("import numpy as np\ndef damaged(:\n")  # a file the kit never ships
    monkeypatch.setattr(runner, "companion_vae", lambda: str(broken))
    with pytest.raises(IsolationError) as error:
        evaluate(write(tmp_path, "flows.py", source_with({}, "flows")))
    assert "the assignment's vae.py, which flows.py imports, failed to import" in str(error.value)


def test_both_reports_say_why_a_checks_points_differ_between_self_check_and_grading(tmp_path):
    """The self-check shows compute_KL's values check as worth 7 points, grading as 3.5: each says why."""
    path = write(tmp_path, "kl.py", source_with({"compute_KL": BUGS["kl_logvar"][1]}))
    public, graded = evaluate(path), evaluate(path, include_hidden=True)
    assert len({t["max_score"] for r in (public, graded) for t in r["tests"] if t["name"] == "compute_KL: values"}) == 2
    assert "each function's points are then shared among all its checks, so each is worth less" in text_report(public)
    assert "so a check is worth less here than in the self-check" in text_report(graded, hidden_note=False)
