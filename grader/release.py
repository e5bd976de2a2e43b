"""Generate the student files from the reference, the way nbgrader does.

Each region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (the delimiters
nbgrader uses) is replaced by nbgrader's own stub, at the region's indentation:

    # YOUR CODE HERE
    raise NotImplementedError()

Everything outside the regions, including the TODO comment each solution carries just
above its region, reaches the students unchanged.
"""
import os
import re

from .paths import GENERATED, ROOT, SOLUTION

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
_MARKER = re.compile(r"^(\s*)(### (?:BEGIN|END) SOLUTION)\s*$")


class ReleaseError(ValueError):
    """The reference's solution markers are malformed."""


def strip_solutions(source, name="solution/vae.py"):
    """Return ``source`` with every solution region replaced by the stub."""
    out, inside, begin_line = [], False, 0
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        match = _MARKER.match(line)
        if not match:
            if not inside:
                out.append(line)
            continue
        indent, marker = match.groups()
        if marker == BEGIN:
            if inside:
                raise ReleaseError(f"{name}:{number}: {BEGIN} inside the region opened at line {begin_line}")
            inside, begin_line = True, number
            out.extend(f"{indent}{stub}\n" for stub in STUB)
        else:
            if not inside:
                raise ReleaseError(f"{name}:{number}: {END} without a {BEGIN} before it")
            inside = False
    if inside:
        raise ReleaseError(f"{name}:{begin_line}: {BEGIN} is never closed by {END}")
    return "".join(out)


def solution_regions(source):
    """The text inside each solution region (what students must not receive)."""
    return re.findall(rf"^[ \t]*{BEGIN}[ \t]*\n(.*?)^[ \t]*{END}", source, flags=re.S | re.M)


def assignment_source(solution_path=SOLUTION):
    with open(solution_path) as f:
        return strip_solutions(f.read(), os.path.relpath(solution_path))


def write_atomically(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".part"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def fixtures_are_current():
    import numpy as np
    from .grade import FIXTURES, compute_fixtures
    if not os.path.exists(FIXTURES):
        return False, compute_fixtures
    with np.load(FIXTURES, allow_pickle=False) as saved:
        stored = {k: saved[k] for k in saved.files}
    fresh = compute_fixtures()
    same = stored.keys() == fresh.keys() and all(
        stored[k].shape == fresh[k].shape and np.allclose(stored[k], fresh[k], rtol=1e-12, atol=1e-14, equal_nan=True)
        for k in fresh)
    return same, lambda: fresh


def write_fixtures(values):
    import numpy as np
    from .grade import FIXTURES
    os.makedirs(os.path.dirname(FIXTURES), exist_ok=True)
    tmp = FIXTURES + ".part.npz"
    np.savez_compressed(tmp, **values)
    os.replace(tmp, FIXTURES)


def release(check_only=False):
    """Write assignment/vae.py and the public checks' expected values; with ``check_only``,
    write nothing and return the stale paths."""
    from .grade import FIXTURES
    stale = []
    for solution, assignment in GENERATED:
        text = assignment_source(solution)
        current = open(assignment).read() if os.path.exists(assignment) else None
        if current != text:
            stale.append(assignment)
            if not check_only:
                write_atomically(assignment, text)
    current, fresh = fixtures_are_current()
    if not current:
        stale.append(FIXTURES)
        if not check_only:
            write_fixtures(fresh())
    return stale


# ------------------------------------------------------------------ the student bundle
# What students receive of the grader: enough to judge their file against the public
# checks' stored expected values. Not expected.py (the reference's values and the
# mistakes' formulas), hidden.py, batch grading or this release code.
BUNDLED_GRADER = ("__init__.py", "__main__.py", "paths.py", "intake.py", "registry.py", "checks.py", "flow_checks.py",
                  "parts.py", "grade.py", "runner.py",
                  "child.py", "stand_ins.py", "isolation.py", "notebook.py", "config.json", "conftest.py", "test_submission.py",
                  "fixtures/public.npz")
STUDENT_GUIDE = os.path.join(ROOT, "docs", "students.md")  # the bundle's README.md: one page, kept in one place


# What in requirements.txt only the kit itself needs (the report, nbgrader, its own tests' YAML),
# with the comments that introduce them: students get the rest.
KIT_ONLY_REQUIREMENTS = ("scikit-learn", "nbgrader", "nbformat", "nbconvert", "pyyaml", "# the report", "# instructors")


def student_requirements():
    """requirements.txt as the student bundle has it: without what only the kit needs."""
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        lines = f.read().splitlines()
    return "\n".join(line for line in lines if not line.startswith(KIT_ONLY_REQUIREMENTS)) + "\n"


def build_bundle(out_dir):
    """Write the student bundle as OUT_DIR/vae-assignment/ and OUT_DIR/vae-assignment.zip."""
    import shutil
    import zipfile
    folder = os.path.join(out_dir, "vae-assignment")
    shutil.rmtree(folder, ignore_errors=True)
    files = {os.path.basename(a): assignment_source(s) for s, a in GENERATED}
    files.update({"README.md": open(STUDENT_GUIDE, encoding="utf-8").read(), "requirements.txt": student_requirements(),
                  "training_tools.py": open(os.path.join(ROOT, "assignment", "training_tools.py")).read()})
    for name in sorted(os.listdir(os.path.join(ROOT, "data"))):
        if name.endswith(".py"):
            files[f"data/{name}"] = open(os.path.join(ROOT, "data", name)).read()
    for name in BUNDLED_GRADER:
        path = os.path.join(ROOT, "grader", name)
        files[f"grader/{name}"] = open(path, "rb").read()
    files["grader/fixtures/vae_stub.py"] = files["vae.py"]  # what a graded flows.py imports (runner.companion_vae)
    for name, content in files.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
    archive = os.path.join(out_dir, "vae-assignment.zip")
    with zipfile.ZipFile(archive + ".part", "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(files):
            z.write(os.path.join(folder, name), f"vae-assignment/{name}")
    os.replace(archive + ".part", archive)
    return folder, archive
