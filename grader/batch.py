"""Grade a folder of submissions: in parallel, resumable, one broken file never stops the batch.

DIR holds one .py per student (the file's stem names the student) or one folder per
student holding vae.py, and flows.py when the student did the optional part. OUT
receives, per student, NAME.json (the result, hidden checks included, each failed check
with the name of its mistake; the flows part's under "flows") and NAME.txt (the feedback a
student reads); grades.csv with a row per student: a column per function and the total;
when anyone submitted flows.py, also a column per flows function and flows_total (kept apart
from the total: the part is optional); and summary.md with scores.png: what the class got
wrong (grader/summary.py).
"""
import csv
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed

from .checks import FUNCTIONS, PARTS
from .grade import evaluate, public_json, text_report
from .summary import write_summary


def find_submissions(directory):
    """{student: {part: path}}; a folder without vae.py still gets a row (its path does not exist)."""
    found = {}
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if entry.startswith("."):
            continue
        if os.path.isdir(path):
            found[entry] = {"vae": os.path.join(path, "vae.py")}
            if os.path.isfile(os.path.join(path, "flows.py")):
                found[entry]["flows"] = os.path.join(path, "flows.py")
        elif entry.endswith(".py"):
            found[entry[:-3]] = {"vae": path}
    return found


def grade_part(path, part, isolation, hidden_paths):
    """(record for NAME.json, feedback text). A failure of the grader itself (isolation that did
    not start, stale fixtures) raises: it is never recorded as the student's score."""
    result = evaluate(path, include_hidden=True, isolation=isolation, hidden_paths=hidden_paths, part=part)
    record = public_json(result)
    for public, test in zip(record["tests"], result["tests"]):
        public["mistake"] = test.get("mistake")  # what summary.md counts
    return record, text_report(result, hidden_note=False)


def grade_one(student, paths, out, isolation, hidden_paths):
    """Grade one student and only then write NAME.json and NAME.txt: by the time they are
    written, every process of the submission is gone, and OUT was hidden from them."""
    record, feedback = grade_part(paths["vae"], "vae", isolation, hidden_paths)
    record["student"] = student
    if "flows" in paths:
        record["flows"], flows_feedback = grade_part(paths["flows"], "flows", isolation, hidden_paths)
        feedback += "\n\nThe optional part, flows.py\n" + flows_feedback
    _write(os.path.join(out, f"{student}.json"), json.dumps(record, indent=1))
    _write(os.path.join(out, f"{student}.txt"), feedback + "\n")
    return student, record


def _write(path, text):
    with open(path + ".part", "w") as f:
        f.write(text)
    os.replace(path + ".part", path)


class BatchResult(list):
    """The rows of grades.csv, with the students skipped as already graded and those the grader
    itself failed on ({student: reason}: not written, so a rerun grades them)."""
    skipped, failed = 0, None


def grade_folder(directory, out, jobs=2, force=False, isolation="none", progress=True):
    """Grade every submission in ``directory``; returns the rows of grades.csv (a BatchResult)."""
    from tqdm import tqdm

    from .isolation import choose
    isolation = choose(isolation) if isinstance(isolation, str) else isolation
    os.makedirs(out, exist_ok=True)
    submissions = find_submissions(directory)
    todo = {s: p for s, p in submissions.items()
            if force or not os.path.exists(os.path.join(out, f"{s}.json"))}
    hidden_paths = [os.path.abspath(directory), os.path.abspath(out)]
    failed = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # each job is a child process
        futures = {pool.submit(grade_one, s, p, out, isolation, hidden_paths): s for s, p in todo.items()}
        with tqdm(total=len(futures), desc="grading", unit="student", file=sys.stderr,
                  disable=not progress) as bar:
            for future in as_completed(futures):
                try:
                    future.result()
                except Exception as e:  # the grader's own failure: reported, never a student's 0
                    failed[futures[future]] = f"{type(e).__name__}: {e}"
                bar.update(1)
    rows = BatchResult()
    rows.skipped, rows.failed = len(submissions) - len(todo), failed
    records = {}
    for student in submissions:
        if student in failed:
            continue
        with open(os.path.join(out, f"{student}.json")) as f:
            record = records[student] = json.load(f)
        row = {"student": student, **_points(record, FUNCTIONS)}
        row["total"] = round(record["score"], 2)
        row["max_score"] = round(record["max_score"], 2)
        if "flows" in record:
            row.update(_points(record["flows"], PARTS["flows"]), flows_total=round(record["flows"]["score"], 2))
        rows.append(row)
    _write(os.path.join(out, "grades.csv"), _csv(rows))
    if records:
        write_summary(records, out)
    return rows


def _points(record, functions):
    return {f: round(sum(t["score"] for t in record.get("tests", []) if t["function"] == f), 2) for f in functions}


def _csv(rows):
    import io
    buffer = io.StringIO()
    columns = ["student", *FUNCTIONS, "total", "max_score"]
    if any("flows_total" in row for row in rows):
        columns += [*PARTS["flows"], "flows_total"]
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
