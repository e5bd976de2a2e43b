"""Blackboard Learn: Grade Center > the column's menu > Assignment File Download (Original), or
the assignment's submissions > Download all (Ultra); Work Offline > Upload (Original), or
Gradebook > Upload (Ultra).

The download is a flat zip, ``gradebook_COURSE_ASSIGNMENT_DATE.zip``, holding for each attempt
a receipt, ``ASSIGNMENT_USERNAME_attempt_YYYY-MM-DD-HH-MM-SS.txt`` (its first line ``Name: First
Last (USERNAME)``; its Files section pairs each "Original filename" with the "Filename" in the
zip), and each file as ``ASSIGNMENT_USERNAME_attempt_YYYY-MM-DD-HH-MM-SS_name``. With "all
attempts" chosen, a student has several attempts: the latest is graded.

The gradebook upload is a CSV matched on its Username column; a column headed ``NAME [Total
Pts: 100 Score] |123456`` (as the gradebook's own download heads it) updates that column, any
other header makes a new one.
"""
import os
import re

from . import RECEIPT, Entry
from ..intake import visible
from ..spreadsheet import csv_text

NAME, TITLE = "blackboard", "Blackboard"
FILE = re.compile(r"(?P<assignment>.*)_(?P<user>[^_]+)_attempt_(?P<date>\d{4}(?:-\d\d){5})(?:(?P<receipt>\.txt)|_(?P<file>.+))")
RECEIPT_NAME = re.compile(r"Name:\s*(?P<name>.*?)\s*\((?P<user>[^()]+)\)\s*$")
COLUMNS = ["Last Name", "First Name", "Username"]


def entries(directory):
    for name in visible(directory):
        path = os.path.join(directory, name)
        match = FILE.fullmatch(name)
        if not match or os.path.isdir(path):
            continue
        if match["receipt"]:
            yield Entry(path, match["user"], receipt_name(path), name, match["date"], kind=RECEIPT)
        else:
            yield Entry(path, match["user"], "", original_names(directory, name, match).get(name, match["file"]),
                        match["date"])


def _receipt_lines(path):
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            return f.read(1 << 16).splitlines()
    except OSError:
        return []


def receipt_name(path):
    for line in _receipt_lines(path)[:5]:
        match = RECEIPT_NAME.match(line.strip())
        if match:
            return match["name"]
    return ""


def original_names(directory, name, match):
    """{file name in the zip: the name the student uploaded}, from the attempt's receipt."""
    receipt = os.path.join(directory, f"{match['assignment']}_{match['user']}_attempt_{match['date']}.txt")
    names, original = {}, None
    for line in _receipt_lines(receipt):
        line = line.strip()
        if line.startswith("Original filename:"):
            original = line.split(":", 1)[1].strip()
        elif line.startswith("Filename:") and original:
            names[line.split(":", 1)[1].strip()] = original
            original = None
    return names


def shown_attempt(attempt):
    day, hour = attempt[:10], attempt[11:].replace("-", ":")
    return f"{day} {hour}"


def export(records, options):
    column = options.get("column") or f"VAE [Total Pts: {max((r['max_score'] for r in records), default=100):g} Score]"
    rows = []
    for r in records:
        first, _, last = (r.get("name") or "").partition(" ")
        rows.append([last, first, r["lms_id"], r["score"]])
    return {"blackboard-grades.csv": csv_text(COLUMNS + [column], rows).encode()}, []
