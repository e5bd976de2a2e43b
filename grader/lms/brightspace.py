"""Brightspace (D2L): Assignments > the folder > select all > Download; Grades > Enter Grades >
Import.

The download is a zip holding ``index.html`` (a page listing the submissions) and each
submitted file as ``SUBMISSION-ID - First Last - Mon D, YYYY HMM AM - name`` (some versions put a
submission's files in a folder of that name, without `` - name``). A student who submitted
several times has several dates: the latest is graded. The download names no username or
Org Defined ID: the student is known by name.

The grades import is a CSV with the columns OrgDefinedId and/or Username, the grade item's
column ``ITEM Points Grade``, and End-of-Line Indicator (``#``). Its identifiers come from the
course's own grades export (Grades > Enter Grades > Export, with Org Defined ID, Username and
the name columns), given to ``export`` as ``--classlist``.
"""
import csv
import os
import re
import time

from . import PAGE, Entry
from ..intake import IGNORED, visible
from ..spreadsheet import csv_text

NAME, TITLE = "brightspace", "Brightspace"
ENTRY = re.compile(r"(?P<ids>\d+-\d+) - (?P<name>.+?) - (?P<date>[A-Z][a-z]{2} \d{1,2}, \d{4} \d{3,4} [AP]M)"
                   r"(?: - (?P<file>.+))?")
DEFAULT_ITEM = "VAE"


class ExportError(ValueError):
    pass


def attempt_of(date):
    """The date of a submission, as a string that sorts in time order."""
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.strptime(date, "%b %d, %Y %I%M %p"))
    except ValueError:
        return date


def entries(directory):
    for name in visible(directory):
        path = os.path.join(directory, name)
        if name.lower() == "index.html":
            yield Entry(path, "", "", name, kind=PAGE)
            continue
        match = ENTRY.fullmatch(name)
        if not match:
            continue
        student = match["name"].strip()
        if os.path.isdir(path) and not os.path.islink(path):
            for folder, folders, files in os.walk(path):
                folders[:] = [f for f in folders if f not in IGNORED and not f.startswith(".")]
                for file in files:
                    inner = os.path.join(folder, file)
                    yield Entry(inner, student, student, os.path.relpath(inner, path).replace(os.sep, "/"),
                                attempt_of(match["date"]))
        elif match["file"]:
            yield Entry(path, student, student, match["file"], attempt_of(match["date"]))


def shown_attempt(attempt):
    return attempt


def read_classlist(path):
    """{lower-case "first last": (OrgDefinedId, Username)} of Brightspace's grades export."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ExportError(f"cannot read the classlist {path}: {e}") from None
    if not rows or not ({"OrgDefinedId", "Username"} & set(rows[0])) or "First Name" not in rows[0]:
        raise ExportError(f"{path} is not a Brightspace grades export: it needs the columns OrgDefinedId or "
                          f"Username, First Name and Last Name (Grades > Enter Grades > Export, with Org Defined ID, "
                          f"Username and the name columns)")
    people = {}
    for row in rows:
        key = " ".join(f"{row.get('First Name', '')} {row.get('Last Name', '')}".lower().split())
        people.setdefault(key, []).append((row.get("OrgDefinedId", ""), row.get("Username", "")))
    return people


def export(records, options):
    if not options.get("classlist"):
        raise ExportError("Brightspace's download names students only by name: give the course's grades export "
                          "as --classlist CSV (Grades > Enter Grades > Export, with Org Defined ID and Username), "
                          "so that each row carries the identifiers Brightspace imports by")
    people = read_classlist(options["classlist"])
    item = options.get("column") or DEFAULT_ITEM
    rows, unmatched = [], []
    for r in records:
        found = people.get(" ".join((r.get("name") or "").lower().split()), [])
        if len(found) != 1:
            unmatched.append(f"{r.get('name')} ({'no one' if not found else 'several people'} of that name in the "
                             f"classlist)")
            continue
        org_id, username = found[0]
        rows.append([org_id, username, r["score"], "#"])
    files = {"brightspace-grades.csv": csv_text(["OrgDefinedId", "Username", f"{item} Points Grade",
                                                 "End-of-Line Indicator"], rows).encode()}
    return files, unmatched
