"""Gradescope: an autograder zip built from the kit, and the command it runs.

    python -m grader gradescope-bundle OUT.zip [--hidden-visibility after_published]

The zip holds setup.sh (installs the grading requirements on Gradescope's Ubuntu image,
and bubblewrap), run_autograder, and the kit: solution/, grader/, data/. Gradescope
unpacks it into /autograder/source; for each submission run_autograder calls

    python -m grader gradescope-run --root /autograder

which grades /autograder/submission/vae.py with the isolated grader (bubblewrap where it
works; otherwise, as Gradescope runs it as root, a fresh unprivileged user), and flows.py
too when the student uploaded the optional part (its points add to the score), and writes
/autograder/results/results.json from the grader's own process. A missing or unimportable
submission still yields a valid file, scored 0, saying why. run_autograder finds the root
from where it is (Gradescope's copy at /autograder/run_autograder), so a test can install
the zip in any folder laid out as /autograder is.
"""
import functools
import json
import os
import time
import zipfile

from .paths import ROOT

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, on its Ubuntu image, to build the autograder.
set -euo pipefail
apt-get update
apt-get install -y python3 python3-pip python3-venv bubblewrap
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --upgrade pip
/autograder/venv/bin/pip install -r /autograder/source/requirements-grading.txt
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope copies this file to /autograder/run_autograder and runs it from /autograder, as
# root, for every submission; the kit is in /autograder/source. It grades
# /autograder/submission/vae.py and writes /autograder/results/results.json.
# AUTOGRADER_ROOT and VAE_GRADER_PYTHON override the root (the folder holding this copy, or
# the parent of source/ when run from there) and the Python (ROOT/venv, made by setup.sh).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
if [ -n "${AUTOGRADER_ROOT:-}" ]; then root="$AUTOGRADER_ROOT"
elif [ -d "$here/source/grader" ]; then root="$here"
else root="$(dirname "$here")"
fi
cd "$root/source" || { echo "run_autograder: no kit in $root/source" >&2; exit 1; }
PYTHON="${VAE_GRADER_PYTHON:-$root/venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
exec "$PYTHON" -m grader gradescope-run --root "$root"
"""

def grading_requirements():
    """The students' requirements that grading needs too: not the offline sample, pytest or comments."""
    from .release import student_requirements
    return [line for line in student_requirements().splitlines()
            if line.strip() and not line.startswith(("mlxtend", "pytest", "#"))]


def build_bundle(out_zip, hidden_visibility="after_published", variant=None, roster=None):
    """Write the autograder zip; returns its path. ``variant``: the assignment's variant (None: the
    original); ``roster``: [(student id, name, email, variant)] of a per-student release, by which
    each submission is graded against its student's variant (from submission_metadata.json)."""
    files = {}
    for folder in ("solution", "assignment", "grader", "data"):  # assignment/vae.py: what a flows.py imports
        for directory, _, names in os.walk(os.path.join(ROOT, folder)):
            if "__pycache__" in directory or os.path.basename(directory) == "mnist":
                continue
            for name in names:
                if name.endswith((".py", ".json", ".npz")):
                    path = os.path.join(directory, name)
                    files[os.path.relpath(path, ROOT)] = open(path, "rb").read()
    config = json.loads(files[os.path.join("grader", "config.json")])
    config["gradescope"] = {"hidden_visibility": hidden_visibility}
    files[os.path.join("grader", "config.json")] = json.dumps(config, indent=2).encode()
    if variant is not None:
        from .release import variant_json
        from .variants import variant as variant_named
        files[os.path.join("grader", "fixtures", "variant.json")] = variant_json(variant_named(variant)).encode()
    if roster:
        files[os.path.join("grader", "fixtures", "roster.json")] = json.dumps(
            [dict(zip(("student_id", "name", "email", "variant"), row)) for row in roster], indent=1).encode()
    files["requirements-grading.txt"] = ("\n".join(grading_requirements()) + "\n").encode()
    files["setup.sh"] = SETUP_SH.encode()
    files["run_autograder"] = RUN_AUTOGRADER.encode()
    os.makedirs(os.path.dirname(os.path.abspath(out_zip)), exist_ok=True)
    with zipfile.ZipFile(out_zip + ".part", "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if name in ("setup.sh", "run_autograder") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, content)
    os.replace(out_zip + ".part", out_zip)
    return out_zip


def find_submission(submission_dir):
    """(path or None, note): the file to grade as vae.py, found as grader/intake.py says (vae.py,
    VAE.py, vae.ipynb, vae.py.txt, or the only Python file or notebook, in the upload or in the one
    folder it holds, as a zip of a folder gives); None, with the reason, when there is none or the
    upload holds a symbolic link."""
    from .intake import Refused, locate, visible
    if not os.path.isdir(submission_dir):
        return None, f"no submission folder at {submission_dir}"
    folder = submission_dir
    while True:  # an upload of one folder (hw3/vae.py), macOS's __MACOSX beside it ignored
        entries = [n for n in visible(folder) if n not in ("flows.py", "flows.ipynb")]
        if len(entries) == 1 and os.path.isdir(os.path.join(folder, entries[0])) \
                and not os.path.islink(os.path.join(folder, entries[0])):
            folder = os.path.join(folder, entries[0])
        else:
            break
    try:
        path, note = locate(folder, "vae")
    except Refused as e:
        return None, f"upload your vae.py: {e}"
    shown = os.path.relpath(path, submission_dir)
    if shown != "vae.py" and not note:
        note = f"graded {shown}"
    return path, note


def results_json(result, visibility, seconds, note=""):
    """Gradescope's format, from the grader's result."""
    tests = [{"name": t["name"], "score": round(t["score"], 4), "max_score": round(t["max_score"], 4),
              "status": t["status"], "output": t["output"],
              "visibility": visibility if t.get("hidden") else "visible"} for t in result["tests"]]
    output = "\n".join([note, *result.get("warnings", [])]).strip()
    return {"score": round(result["score"], 4), "execution_time": round(seconds, 2), "output": output,
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


ROSTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "roster.json")


def variant_of_submission(root):
    """(variant, None), or (None, why not): whose variant this submission is graded against. Without
    a roster, the bundle's variant; with one, the variant of the student submission_metadata.json
    names (by student id, then by email)."""
    from .variants import default, variant
    if not os.path.exists(ROSTER):
        return default(), None
    with open(ROSTER) as f:
        roster = json.load(f)
    users = []
    try:
        with open(os.path.join(root, "submission_metadata.json")) as f:
            users = json.load(f).get("users") or []
    except (OSError, ValueError):
        pass
    if not users:
        return None, ("the autograder could not read who submitted (submission_metadata.json), so it cannot "
                      "tell which version of the assignment is yours: ask your instructor")
    for user in users:
        keys = {str(user.get(k) or "").strip().lower() for k in ("sid", "email", "id")} - {""}
        for row in roster:
            if {row["student_id"].lower(), (row.get("email") or "").lower()} & keys:
                return variant(row["variant"]), None
    shown = ", ".join(str(u.get("email") or u.get("sid") or u.get("name")) for u in users)
    return None, (f"{shown} is not on the roster this assignment was released for, so the autograder does not "
                  f"know which version of the assignment is yours; nothing was graded: ask your instructor")


def run(root):
    """Grade ROOT/submission and write ROOT/results/results.json; returns the JSON written.

    The submission runs isolated (bubblewrap, or a fresh unprivileged user where Gradescope's
    container allows no namespaces), with the kit, the submission folder and the results folder
    out of its reach; results.json is written only after all its processes are gone. When no
    isolation can be had, IsolationError is raised and no results.json is written: Gradescope
    then reports the autograder's failure instead of a score."""
    from .grade import evaluate, load_config
    from .isolation import choose
    started = time.time()
    config = load_config()
    visibility = config.get("gradescope", {}).get("hidden_visibility", "after_published")
    path, note = find_submission(os.path.join(root, "submission"))
    variant, not_on_roster = variant_of_submission(root)
    isolation = choose("auto")
    flows = os.path.join(root, "submission", "flows.py")
    hidden = [os.path.join(root, name) for name in ("source", "submission", "results")]
    os.makedirs(hidden[-1], exist_ok=True)
    grade = functools.partial(evaluate, include_hidden=True, isolation=isolation, hidden_paths=hidden, variant=variant)
    if not_on_roster:
        from .variants import ORIGINAL
        grade = functools.partial(grade, variant=ORIGINAL, refused=not_on_roster)
    result = grade(path or os.path.join(root, "submission", "vae.py"), part="vae")
    if os.path.isfile(flows) and variant is not None and variant.is_original:  # the optional part: its tests and points are added
        extra = grade(flows, part="flows")
        result = dict(result, score=result["score"] + extra["score"], tests=result["tests"] + extra["tests"],
                      warnings=result["warnings"] + [f"flows.py: {w}" for w in extra["warnings"]])
    data = results_json(result, visibility, time.time() - started, note)
    out = os.path.join(root, "results", "results.json")
    with open(out + ".part", "w") as f:
        json.dump(data, f, indent=1)
    os.replace(out + ".part", out)
    return data
