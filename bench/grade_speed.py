"""How fast the grader answers: one self-check, and a batch of 50 submissions.

    python bench/grade_speed.py [--submissions 50] [--jobs 2] [--isolation auto|user|none] [--python PY]

Prints the seconds of `python -m grader check FILE` (the whole command: interpreter
start, the child process, judging; median of 5; the students' self-check, unisolated; and
the same through the portable path that Windows and macOS use), of
`check --all` for vae.py and flows.py (isolated, as grading is), and submissions per minute
for `python -m grader grade DIR --jobs N` over a folder mixing the reference, stubs and
files with one mistake each. --isolation picks the isolation of the last three: auto (the
default flags: bubblewrap where it works), user (bubblewrap made to fail, as in a container;
needs root and a --python other users can run) or none (--no-sandbox).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]


def timed(command, env=None):
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--submissions", type=int, default=50)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--isolation", choices=["auto", "user", "none"], default="auto")
    p.add_argument("--python", default=sys.executable, help="the Python that runs the grader")
    a = p.parse_args()
    from conftest import fake_bwrap_path
    from submissions import BUGS, source_with, stub_source

    env, sandbox = dict(os.environ), ["--no-sandbox"] if a.isolation == "none" else []
    scratch = tempfile.mkdtemp(prefix="vae-bench-bin-")
    if a.isolation == "user":
        env["PATH"] = fake_bwrap_path(scratch)
    python = a.python
    solution = os.path.join(ROOT, "solution", "vae.py")
    check = [timed([python, "-m", "grader", "check", solution]) for _ in range(5)]
    portable = [timed([python, "-m", "grader", "check", solution], dict(os.environ, VAE_GRADER_PORTABLE="1"))
                for _ in range(5)]
    check_all = [timed([python, "-m", "grader", "check", solution, "--all", *sandbox], env) for _ in range(5)]
    mode = subprocess.run([python, "-m", "grader", "check", solution, "--all", *sandbox], cwd=ROOT, env=env,
                          capture_output=True, text=True).stderr.strip().splitlines()[:1]
    print(f"isolation of check --all and grade: {mode[0] if mode else 'none'}")
    print(f"one check (public checks): {statistics.median(check):.2f} s   "
          f"with --all (hidden checks too): {statistics.median(check_all):.2f} s   "
          f"portable path (VAE_GRADER_PORTABLE=1, as on Windows and macOS): {statistics.median(portable):.2f} s")
    flows = os.path.join(ROOT, "solution", "flows.py")
    flows_all = [timed([python, "-m", "grader", "check", flows, "--all", *sandbox], env) for _ in range(5)]
    print(f"check flows.py --all: {statistics.median(flows_all):.2f} s")

    bugs = sorted(BUGS)
    folder = tempfile.mkdtemp(prefix="vae-bench-")
    try:
        for i in range(a.submissions):
            kind = i % (len(bugs) + 2)
            text = source_with({}) if kind == 0 else stub_source() if kind == 1 else \
                source_with({BUGS[bugs[kind - 2]][0]: BUGS[bugs[kind - 2]][1]})
            with open(os.path.join(folder, f"student{i:03d}.py"), "w") as f:
                f.write(text)
        out = os.path.join(folder, "out")
        seconds = timed([python, "-m", "grader", "grade", folder, "--out", out, "--jobs", str(a.jobs), *sandbox], env)
        print(f"grade --jobs {a.jobs}: {a.submissions} submissions in {seconds:.1f} s = "
              f"{a.submissions / seconds * 60:.0f} submissions/min (hidden checks included)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
