"""How fast the grader answers: one self-check, and a batch of 50 submissions.

    python bench/grade_speed.py [--submissions 50] [--jobs 2] [--sandbox]

Prints the seconds of `python -m grader check FILE` (the whole command: interpreter
start, the child process, judging; median of 5), the same for flows.py, and submissions per minute for
`python -m grader grade DIR --jobs N` over a folder mixing the reference, stubs and
files with one mistake each.
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


def timed(command):
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--submissions", type=int, default=50)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--sandbox", action="store_true")
    a = p.parse_args()
    from submissions import BUGS, source_with, stub_source

    sandbox = ["--sandbox"] if a.sandbox else []
    solution = os.path.join(ROOT, "solution", "vae.py")
    check = [timed([sys.executable, "-m", "grader", "check", solution, *sandbox]) for _ in range(5)]
    check_all = [timed([sys.executable, "-m", "grader", "check", solution, "--all", *sandbox]) for _ in range(5)]
    print(f"one check (public checks): {statistics.median(check):.2f} s   "
          f"with --all (hidden checks too): {statistics.median(check_all):.2f} s")
    flows = os.path.join(ROOT, "solution", "flows.py")
    flows_all = [timed([sys.executable, "-m", "grader", "check", flows, "--all", *sandbox]) for _ in range(5)]
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
        seconds = timed([sys.executable, "-m", "grader", "grade", folder, "--out", out, "--jobs", str(a.jobs),
                         *sandbox])
        print(f"grade --jobs {a.jobs}: {a.submissions} submissions in {seconds:.1f} s = "
              f"{a.submissions / seconds * 60:.0f} submissions/min (hidden checks included)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
