"""Canvas: Assignments > the assignment > Download Submissions, and Grades > Import.

The download is ``submissions.zip``, flat: each file is ``lastfirst_USERID_ATTACHMENTID_name``
(``lastfirst`` is the sortable name, lower case, without spaces; a late submission has
``_LATE_`` after it; ``name`` is the student's own file name, which Canvas renames to
``vae-1.py`` when it already holds a vae.py of theirs). Only each student's latest submission
is in it. Text and URL entries are ``lastfirst_USERID_text.html`` / ``..._link.html`` pages.

The gradebook import is a CSV whose first columns are Student, ID, SIS User ID, SIS Login ID and
Section; ID, the Canvas user id, is what the download names carry. The assignment's column is
headed with its name, and its Canvas id in parentheses to update an existing column
("VAE (123456)"); the second row may give Points Possible.
"""
import os
import re

from . import PAGE, Entry
from ..intake import visible
from ..spreadsheet import csv_text

NAME, TITLE = "canvas", "Canvas"
FILE = re.compile(r"(?P<name>[^_]+)_(?:(?P<late>LATE)_)?(?P<uid>\d+)_(?P<aid>\d+)_(?P<file>.+)")
PAGE_FILE = re.compile(r"(?P<name>[^_]+)_(?:(?P<late>LATE)_)?(?P<uid>\d+)_(?P<kind>text|link)\.html")
COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
DEFAULT_COLUMN = "VAE"


def entries(directory):
    for name in visible(directory):
        path = os.path.join(directory, name)
        if not os.path.isfile(path) and not os.path.islink(path):
            continue
        match = FILE.fullmatch(name)
        if match:
            yield Entry(path, match["uid"], match["name"], match["file"], late=bool(match["late"]))
            continue
        match = PAGE_FILE.fullmatch(name)
        if match:
            yield Entry(path, match["uid"], match["name"], name, kind=PAGE, late=bool(match["late"]))


def shown_attempt(attempt):
    return "the submission"


def export(records, options):
    column = options.get("column") or DEFAULT_COLUMN
    points = max((r["max_score"] for r in records), default=100)
    rows = [["Points Possible", "", "", "", "", points]]
    rows += [[r.get("name", ""), r["lms_id"], "", "", "", r["score"]] for r in records]
    return {"canvas-grades.csv": csv_text(COLUMNS + [column], rows).encode()}, []
