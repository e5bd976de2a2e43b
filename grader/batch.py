"""Grade a folder of submissions: in parallel, resumable, one broken file never stops the batch.

DIR holds one .py per student (the file's stem names the student) or one folder per
student holding vae.py. OUT receives, per student, NAME.json (the result, hidden checks
included) and NAME.txt (the feedback a student reads), and grades.csv with a row per
student: a column per function and the total.
"""
import csv
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed

from .checks import FUNCTIONS
from .grade import evaluate, public_json, text_report


def find_submissions(directory):
    """{student: path}; a folder without vae.py still gets a row (its path does not exist)."""
    found = {}
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if entry.startswith("."):
            continue
        if os.path.isdir(path):
            found[entry] = os.path.join(path, "vae.py")
        elif entry.endswith(".py"):
            found[entry[:-3]] = path
    return found


def grade_one(student, path, out, sandbox, hidden_paths):
    try:
        result = evaluate(path, include_hidden=True, sandbox=sandbox, hidden_paths=hidden_paths)
    except Exception as e:  # the grader itself failed on this one: record it, go on
        result = {"submission": path, "score": 0.0, "max_score": 100.0, "tests": [], "functions": {},
                  "warnings": [f"grading failed: {type(e).__name__}: {e}"]}
    record = dict(public_json(result) if result["tests"] else result, student=student)
    _write(os.path.join(out, f"{student}.json"), json.dumps(record, indent=1))
    feedback = text_report(result, hidden_note=False) if result["tests"] else "\n".join(result["warnings"])
    _write(os.path.join(out, f"{student}.txt"), feedback + "\n")
    return student, result


def _write(path, text):
    with open(path + ".part", "w") as f:
        f.write(text)
    os.replace(path + ".part", path)


def grade_folder(directory, out, jobs=2, force=False, sandbox=False, progress=True):
    """Grade every submission in ``directory``; returns the rows of grades.csv."""
    from tqdm import tqdm

    os.makedirs(out, exist_ok=True)
    submissions = find_submissions(directory)
    todo = {s: p for s, p in submissions.items()
            if force or not os.path.exists(os.path.join(out, f"{s}.json"))}
    hidden_paths = [os.path.abspath(directory), os.path.abspath(out)]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # each job is a child process
        futures = [pool.submit(grade_one, s, p, out, sandbox, hidden_paths) for s, p in todo.items()]
        with tqdm(total=len(futures), desc="grading", unit="student", file=sys.stderr,
                  disable=not progress) as bar:
            for future in as_completed(futures):
                future.result()
                bar.update(1)
    rows = []
    for student in submissions:
        with open(os.path.join(out, f"{student}.json")) as f:
            record = json.load(f)
        row = {"student": student}
        for function in FUNCTIONS:
            row[function] = round(sum(t["score"] for t in record.get("tests", []) if t["function"] == function), 2)
        row["total"] = round(record["score"], 2)
        row["max_score"] = round(record["max_score"], 2)
        rows.append(row)
    _write(os.path.join(out, "grades.csv"), _csv(rows))
    return rows


def _csv(rows):
    import io
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["student", *FUNCTIONS, "total", "max_score"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
