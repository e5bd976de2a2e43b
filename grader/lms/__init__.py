"""The bulk downloads of learning-management systems, read as they come, and their gradebook imports.

Each LMS has a module here (canvas, moodle, blackboard, brightspace) with the same parts:

- ``entries(directory)``: an ``Entry`` for each file of the download that its names account for:
  whose it is (the LMS's own identifier and the student's name), which attempt, the file's name
  as the student uploaded it, and whether it is work, a receipt or a page of the LMS's own;
- ``export(records, options)``: ({file name: bytes}, [who was left out, and why]), the file (or
  files) that LMS imports for one assignment column, from the results ``grade`` wrote;
- ``NAME``, ``TITLE`` and ``shown_attempt``: what the messages call it and its attempts.

``recognise`` says which LMS made a folder (or None: a plain folder, graded as before), and
``students`` gathers its entries into one student each: the latest attempt's files to grade,
the earlier attempts named in the feedback as not graded, receipts and pages left out.
grader/batch.py grades them; ``export_out`` (``python -m grader export``) writes the import.
"""
import os
from dataclasses import dataclass, field

from ..intake import visible

WORK, RECEIPT, PAGE = "work", "receipt", "page"


@dataclass
class Entry:
    """One file of a download, as its LMS named it."""
    path: str
    student_id: str
    name: str
    filename: str  # as the student uploaded it ("vae.py"); a path below a Moodle folder
    attempt: str = ""  # sorts in time order: the latest attempt is the largest
    kind: str = WORK
    late: bool = False


@dataclass
class Student:
    """One student of a download: their files of the latest attempt, and what was left out."""
    lms: str
    student_id: str
    name: str
    files: list = field(default_factory=list)  # [(file name as uploaded, path)]
    left_out: list = field(default_factory=list)  # [why], for the feedback
    late: bool = False
    attempt: str = ""

    @property
    def key(self):
        """The student's name in OUT (NAME.json, the row of grades.csv): the LMS's identifier."""
        return safe_name(self.student_id)


def safe_name(text):
    """``text`` as a file name on every system: no separators, no characters Windows refuses."""
    cleaned = "".join("_" if c in '<>:"/\\|?*' or ord(c) < 32 else c for c in text).strip(" .")
    return cleaned or "_"


def modules():
    from . import blackboard, brightspace, canvas, moodle
    return {m.NAME: m for m in (canvas, moodle, blackboard, brightspace)}


def top(directory, path):
    """The entry of ``directory`` that ``path`` is, or lies in."""
    return os.path.relpath(path, directory).split(os.sep)[0]


def recognise(directory):
    """(module, [Entry]) of the LMS whose download ``directory`` is: the LMS whose names account for
    the most entries of the folder, and for at least half of them; (None, []) for a plain folder."""
    names = visible(directory)
    best, best_entries, best_count = None, [], 0
    for module in modules().values():
        entries = list(module.entries(directory))
        count = len({top(directory, e.path) for e in entries if e.student_id})  # its pages alone are not enough
        if count > best_count:
            best, best_entries, best_count = module, entries, count
    if best is None or len({top(directory, e.path) for e in best_entries}) * 2 < len(names):
        return None, []
    return best, best_entries


def students(module, entries):
    """[Student] of a download made by ``module``, from its ``entries``, in the order of their ids."""
    by_id = {}
    for entry in entries:
        if not entry.student_id:
            continue  # a page of the download's own (Brightspace's index.html)
        by_id.setdefault(entry.student_id, []).append(entry)
    found = []
    for student_id, entries in sorted(by_id.items()):
        work = [e for e in entries if e.kind == WORK]
        latest = max((e.attempt for e in work), default="")
        names = [e.name for e in sorted(entries, key=lambda e: e.kind != RECEIPT) if e.name]  # a receipt's first
        student = Student(module.NAME, student_id, names[0] if names else student_id, attempt=latest)
        earlier = sorted({e.attempt for e in work if e.attempt != latest})
        for e in work:
            if e.attempt == latest:
                student.files.append((e.filename, e.path))
                student.late = student.late or e.late
        if earlier:
            student.left_out.append(f"{len(earlier)} earlier attempt(s) ({', '.join(module.shown_attempt(a) for a in earlier)}) "
                                    f"were not graded: the latest, {module.shown_attempt(latest)}, was")
        found.append(student)
    return found


def export(records, to, options):
    """({file name: bytes}, [who could not be exported, and why]): the import for LMS ``to`` from
    the result records of ``grade``."""
    return modules()[to].export(records, options)


class ExportError(ValueError):
    """The export cannot be written as asked; the message says why and what to do."""


GRADESCOPE = ("Gradescope takes its grades from the autograder itself (python -m grader gradescope-bundle): it "
              "has no grade import, so there is nothing to export; Gradescope's own Download Grades, or its Post "
              "Grades to Canvas or Blackboard, carries them on")


def export_out(out, to, options):
    """Write OUT/export/'s import for LMS ``to`` from the rows of OUT/grades.csv; ([paths written],
    [who is missing from them, and why]). ExportError when nothing can be written."""
    import csv
    import json
    if to == "gradescope":
        raise ExportError(GRADESCOPE)
    if to not in modules():
        raise ExportError(f"no export for {to}: the kit exports to {', '.join(modules())} (and says why not to "
                          f"gradescope)")
    grades = os.path.join(out, "grades.csv")
    if not os.path.isfile(grades):
        raise ExportError(f"{out} holds no grades.csv: grade the download first (python -m grader grade DOWNLOAD "
                          f"--out {out})")
    with open(grades, encoding="utf-8", newline="") as f:
        students = [row["student"] for row in csv.DictReader(f)]
    records, others = [], []
    for student in students:
        try:
            with open(os.path.join(out, f"{student}.json"), encoding="utf-8") as f:
                record = json.load(f)
            with open(os.path.join(out, f"{student}.txt"), encoding="utf-8") as f:
                record["feedback"] = f.read()
        except (OSError, ValueError) as e:
            raise ExportError(f"the result of {student} in {out} cannot be read ({e}): grade again (the same "
                              f"command) before exporting") from None
        if record.get("lms") != to:
            others.append(student)
            continue
        record["summary"] = summary_line(record)
        records.append(record)
    if others and not records:
        made = sorted({_source(out, s) for s in others})
        raise ExportError(f"the results in {out} were not graded from a {modules()[to].TITLE} download ({', '.join(made)}): "
                          f"{modules()[to].TITLE} imports by its own identifiers, which only its download carries. "
                          f"Grade the download as {modules()[to].TITLE} gives it (the zip, or its unpacked folder)")
    try:
        files, problems = export(records, to, options)
    except ValueError as e:
        raise ExportError(str(e)) from None
    problems = [f"{s}: not from the {modules()[to].TITLE} download, so it has no {modules()[to].TITLE} identifier"
                for s in others] + problems
    folder = os.path.join(out, "export")
    os.makedirs(folder, exist_ok=True)
    written = []
    for name, data in files.items():
        path = os.path.join(folder, name)
        with open(path + ".part", "wb") as f:
            f.write(data)
        os.replace(path + ".part", path)
        written.append(path)
    return written, problems


def _source(out, student):
    import json
    try:
        with open(os.path.join(out, f"{student}.json"), encoding="utf-8") as f:
            return json.load(f).get("lms") or "a plain folder"
    except (OSError, ValueError):
        return "a plain folder"


def summary_line(record):
    """One line of a result: the total and each function's points."""
    from ..parts import FUNCTIONS
    points = {}
    for test in record.get("tests", []):
        got, out_of = points.get(test["function"], (0, 0))
        points[test["function"]] = (got + test["score"], out_of + test["max_score"])
    each = "; ".join(f"{f} {points[f][0]:g}/{points[f][1]:g}" for f in FUNCTIONS if f in points)
    return f"{record['score']:g}/{record['max_score']:g} ({each}); the attached feedback file says why"
