"""Releasing a variant, or one per student of a roster. Instructors only.

    python -m grader release --variant NAME [--roster roster.csv] [--bundle-dir build]

writes into build/ what release writes for the original, all of that variant: the student bundle
(vae-assignment/ and its zip, with the notebook), an nbgrader course (nbgrader/), the Gradescope
autograder (autograder.zip), variant.json and instructor/solution.py (the variant's complete
reference: never hand it out). With a roster, one bundle per student (students/ID.zip), each of
a variant of its own, neighbours in the roster always different, and students/manifest.csv, which
`grade --manifest` and the Gradescope autograder read to grade each student against theirs.
"""
import csv
import os
import re

from .release import ReleaseError, bundle_files, variant_json, variant_source, write_atomically, write_bundle
from .spreadsheet import csv_text
from .variants import VariantError, roster_variants, variant as variant_named

MANIFEST_COLUMNS = ["student_id", "name", "email", "variant", "release"]
ID_HEADERS = ("student_id", "student id", "id", "sid", "student", "sis user id", "username", "login")


def read_roster(path):
    """[(id, name, email)] of a roster CSV: a student-id column (student_id, id, sid, ...), name and
    email optional. ReleaseError naming what is wrong (no id column, an empty or repeated id)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ReleaseError(f"{path}: no students (a header row, then one row per student)")
    headers = {h.strip().lower(): h for h in rows[0] if h}
    id_column = next((headers[h] for h in ID_HEADERS if h in headers), None)
    if id_column is None:
        raise ReleaseError(f"{path}: no student-id column; name one of {', '.join(ID_HEADERS[:4])} (found: "
                           f"{', '.join(headers.values())})")
    column = lambda row, name: (row.get(headers[name]) or "").strip() if name in headers else ""
    out, seen = [], set()
    for number, row in enumerate(rows, start=2):
        student = (row.get(id_column) or "").strip()
        if not student:
            raise ReleaseError(f"{path}, line {number}: the student id is empty")
        if not re.match(r"^[A-Za-z0-9@._+-]{1,100}$", student):
            raise ReleaseError(f"{path}, line {number}: the student id {student!r} holds characters a file name "
                               f"cannot (letters, digits and @ . _ + - only)")
        if student.lower() in seen:
            raise ReleaseError(f"{path}, line {number}: the student id {student} is there twice")
        seen.add(student.lower())
        out.append((student, column(row, "name"), column(row, "email")))
    return out


class ManifestError(ValueError):
    """A manifest that is not one release --roster wrote."""


def read_manifest(path):
    """[(student id, name, email, variant)] of release --roster's manifest.csv; ManifestError saying why not."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
        roster = [(r["student_id"].strip(), (r.get("name") or "").strip(), (r.get("email") or "").strip(),
                   variant_named(r["variant"])) for r in rows]
    except OSError as e:
        raise ManifestError(f"cannot read the manifest {path}: {e.strerror or e}") from None
    except (KeyError, AttributeError, VariantError) as e:
        raise ManifestError(f"{path} is not a manifest written by `release --roster` (student_id and variant "
                            f"columns): {e}") from None
    if not roster:
        raise ManifestError(f"the manifest {path} lists no students")
    return roster, {r["student_id"].strip(): (r.get("release") or "").strip() for r in rows}


def roster_assignments(name, students, previous=()):
    """[(id, student's name, email, variant)]: neighbours in the roster get different variants; a student
    already in ``previous`` ({id: variant}, an earlier release under the same name) keeps theirs."""
    previous = dict(previous)
    sequence = roster_variants(name, len(previous) + len(students))
    new = iter(sequence[len(previous):])
    return [(student, full_name, email, previous[student] if student in previous else next(new))
            for student, full_name, email in students]


def release_variant(name, out_dir, roster=None, progress=None):
    """Everything an instructor hands out for variant NAME, in OUT_DIR: variant.json, instructor/solution.py,
    the student bundle (vae-assignment/ and its zip, with vae.ipynb), nbgrader/ (a course of this variant)
    and autograder.zip (Gradescope). With ``roster`` (a CSV), also one bundle per student,
    students/ID.zip, and students/manifest.csv mapping each id to the variant name its bundle has
    (Gradescope's autograder.zip then grades each student against theirs). Returns what it wrote."""
    import io
    import shutil
    import nbformat
    from .gradescope import build_bundle as gradescope_bundle
    from .nbgrader_course import build_notebook, student_notebook, write_course
    v = variant_named(name)
    students = read_roster(roster) if roster is not None else None  # a bad roster stops before anything is written
    os.makedirs(out_dir, exist_ok=True)
    written = []
    write_atomically(os.path.join(out_dir, "variant.json"), variant_json(v, for_students=False))
    write_atomically(os.path.join(out_dir, "instructor", "solution.py"), variant_source(v))
    written += ["variant.json", "instructor/solution.py"]

    def student_files(variant):
        files = bundle_files(variant)
        files["vae.ipynb"] = nbformat.writes(student_notebook(build_notebook(variant=variant)))
        return files

    write_bundle(student_files(v), out_dir)
    written += ["vae-assignment/", "vae-assignment.zip"]
    shutil.rmtree(os.path.join(out_dir, "nbgrader"), ignore_errors=True)
    write_course(os.path.join(out_dir, "nbgrader"), variant=v)
    written.append("nbgrader/")
    assignments = None
    if students is not None:
        folder = os.path.join(out_dir, "students")
        manifest = os.path.join(folder, "manifest.csv")
        previous = {}
        if os.path.exists(manifest):
            rows, releases = read_manifest(manifest)
            previous = {s: x for s, _, _, x in rows if releases.get(s, "").lower() == v.name.lower()}
        assignments = roster_assignments(v.name, students, previous)
        os.makedirs(folder, exist_ok=True)
        cache = {}
        for i, (student, _, _, variant) in enumerate(assignments):
            if variant.canonical not in cache:
                cache[variant.canonical] = student_files(variant)
                write_atomically(os.path.join(out_dir, "instructor", f"{variant.canonical}.py"), variant_source(variant))
            write_bundle(cache[variant.canonical], folder, name=student, keep_folder=False)
            if progress:
                progress(i + 1, len(assignments))
        write_atomically(manifest, csv_text(MANIFEST_COLUMNS, [(s, n, e, variant.canonical, v.name)
                                                               for s, n, e, variant in assignments]))
        written += [f"students/ ({len(assignments)} bundles)", "students/manifest.csv",
                    f"instructor/ ({len(cache)} variants' solutions)"]
    gradescope_bundle(os.path.join(out_dir, "autograder.zip"), variant=v,
                      roster=[(s, n, e, x.canonical) for s, n, e, x in assignments] if assignments else None)
    written.append("autograder.zip")
    return v, written
