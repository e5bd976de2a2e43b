"""Moodle: the assignment > View all submissions > Download all submissions; Upload grading
worksheet and Upload multiple feedback files in a zip.

The download is a zip with a folder per student and submission plugin,
``Full Name_PARTICIPANTID_assignsubmission_file_`` (Moodle 4.1 and later drop the trailing
``_``), holding the files as uploaded; with "Download submissions in folders" off, the files
are flat, ``Full Name_PARTICIPANTID_assignsubmission_file_vae.py``. Moodle writes the name with
spaces for underscores, and ``Participant`` for it under blind marking. The online-text plugin's
``..._assignsubmission_onlinetext_`` holds a page, ``onlinetext.html``. Only the latest
attempt is in it.

The grading worksheet (feedback type "Offline grading worksheet") is a CSV that Moodle matches
on the columns Identifier ("Participant 123456"), Grade and Last modified (grade), and reads a
Feedback comments column when that feedback type is on; the column names are those of the
site's language (English here). A row is skipped when its grade was changed in Moodle after
Last modified (grade), unless the upload is told to overwrite. The feedback zip holds files
named with the same prefix as the download, ``Full Name_PARTICIPANTID_assignsubmission_file_``.
"""
import os
import re
import time
import zipfile

from . import PAGE, WORK, Entry
from ..intake import IGNORED, visible
from ..spreadsheet import csv_text

NAME, TITLE = "moodle", "Moodle"
PREFIX = re.compile(r"(?P<name>[^_]+)_(?P<id>\d+)_assign(?:submission|feedback)_(?P<plugin>[a-z]+)(?:_(?P<file>.*))?")
COLUMNS = ["Identifier", "Full name", "Grade", "Maximum Grade", "Last modified (grade)", "Feedback comments"]


def entries(directory):
    for name in visible(directory):
        path = os.path.join(directory, name)
        match = PREFIX.fullmatch(name)
        if not match:
            continue
        kind = WORK if match["plugin"] == "file" else PAGE
        if os.path.isdir(path) and not os.path.islink(path):
            for folder, folders, files in os.walk(path):
                folders[:] = [f for f in folders if f not in IGNORED and not f.startswith(".")]
                for file in files:
                    if not file.startswith(".") and file not in IGNORED:
                        inner = os.path.join(folder, file)
                        yield Entry(inner, match["id"], match["name"], os.path.relpath(inner, path).replace(os.sep, "/"),
                                    kind=kind)
        elif match["file"]:
            yield Entry(path, match["id"], match["name"], match["file"], kind=kind)


def shown_attempt(attempt):
    return "the submission"


def export(records, options):
    modified = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(options.get("now", time.time())))
    rows = [[f"Participant {r['lms_id']}", r.get("name", ""), r["score"], r["max_score"], modified, r["summary"]]
            for r in records]
    feedback = {}
    import io
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for r in records:
            prefix = f"{r.get('name') or 'Participant'}_{r['lms_id']}_assignsubmission_file_"
            z.writestr(prefix + "vae-feedback.txt", r["feedback"])
    feedback["moodle-feedback.zip"] = buffer.getvalue()
    return {"moodle-grading-worksheet.csv": csv_text(COLUMNS, rows).encode(), **feedback}, []
