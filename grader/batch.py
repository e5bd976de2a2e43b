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
import contextlib
import csv
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from . import variants
from .parts import FUNCTIONS, PARTS
from .grade import NOT_ON_ROSTER, evaluate, public_json, text_report
from .intake import Refused, locate, visible
from .runner import GradingInterrupted, stopping
from .summary import write_summary

LOCK = ".grading.lock"


class BatchError(RuntimeError):
    """OUT cannot be used (not creatable, not writable, graded by another run): nothing was graded."""


def prepare_out(out):
    """Make OUT, and prove it writable, before anything is graded; BatchError saying why not."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise BatchError(f"--out {out} is a file, not a folder")
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, f".write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise BatchError(f"cannot write the results into {out}: {e.strerror or e}") from None


@contextlib.contextmanager
def owning(out):
    """Hold OUT for this run: a second `grade` on the same OUT is refused, naming this one. The lock
    is the kernel's (flock), so a run that was killed leaves nothing stuck."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; one run per OUT is then the instructor's to keep
        yield
        return
    path = os.path.join(out, LOCK)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another run"
            raise BatchError(f"{out} is being graded by {holder}: wait for it to finish, or use another --out") \
                from None
        f.seek(0)
        f.truncate()
        f.write(f"`grade` run {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()


SUBMISSION_ENDINGS = (".py", ".ipynb", ".py.txt")  # a file per student: Python, a notebook, a hidden extension


def find_submissions(directory):
    """{student: {"vae": path, "flows": path, "note": which file was graded, "refused": why not}}.

    Every entry that could be a submission gets a student: a file ending in .py, .ipynb or
    .py.txt (its name, less that, names the student), or a folder (its name), in which the file
    to grade is found as grader/intake.py says. A folder with nothing gradable, or holding a
    symbolic link, still gets its student, with the reason."""
    found = {}
    for entry in visible(directory):
        path = os.path.join(directory, entry)
        if os.path.isdir(path):  # a link to a folder too: locate refuses it
            found[entry] = _in_folder(path)
        else:
            ending = next((e for e in SUBMISSION_ENDINGS if entry.lower().endswith(e)), None)
            if ending:
                found[entry[:-len(ending)]] = {"vae": path}
    return found


def skipped_entries(directory):
    """{entry: why}: the entries of ``directory`` that are no submission (grade names them)."""
    return {entry: "not a .py file, a notebook or a student's folder" for entry in visible(directory)
            if not (os.path.isdir(os.path.join(directory, entry)) or entry.lower().endswith(SUBMISSION_ENDINGS))}


def _in_folder(folder):
    paths = {}
    try:
        paths["vae"], paths["note"] = locate(folder, "vae")
    except Refused as e:
        paths.update(vae=os.path.join(folder, "vae.py"), refused=str(e))
    for name in ("flows.py", "flows.ipynb"):
        if os.path.isfile(os.path.join(folder, name)):
            paths["flows"] = os.path.join(folder, name)
            break
    return paths


def grade_part(path, part, isolation, hidden_paths, note="", refused=None, variant=None):
    """(record for NAME.json, feedback text). A failure of the grader itself (isolation that did
    not start, stale fixtures) raises: it is never recorded as the student's score."""
    result = evaluate(path, include_hidden=True, isolation=isolation, hidden_paths=hidden_paths, part=part,
                      refused=refused, variant=variant)
    if note:
        result["warnings"].insert(0, note)
    record = public_json(result)
    for public, test in zip(record["tests"], result["tests"]):
        public["mistake"] = test.get("mistake")  # what summary.md counts
        if test.get("convention"):
            public["convention"] = test["convention"]
    record["variant"] = result.get("variant", variants.ORIGINAL.canonical)
    return record, text_report(result, hidden_note=False)


def grade_one(student, paths, out, isolation, hidden_paths, variant=None):
    """Grade one student (against ``variant``, or the "not on the roster" refusal in paths) and only
    then write NAME.json and NAME.txt: by the time they are written, every process of the
    submission is gone, and OUT was hidden from them."""
    if stopping():
        raise GradingInterrupted()
    refused = paths.get("not_on_roster") or paths.get("refused")
    record, feedback = grade_part(paths["vae"], "vae", isolation, hidden_paths, paths.get("note", ""), refused,
                                  variant=None if paths.get("not_on_roster") else variant)
    record["student"] = student
    if paths.get("not_on_roster"):
        record["variant"] = NOT_ON_ROSTER
    if "flows" in paths and (variant is None or variants.variant(variant).is_original):
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
    """The rows of grades.csv, with the students skipped as already graded, those the grader
    itself failed on ({student: reason}: not written, so a rerun grades them), and how many
    were left ungraded because grading was interrupted."""
    skipped, failed, interrupted = 0, None, 0


def grade_folder(directory, out, jobs=2, force=False, isolation="none", progress=True, variant=None, manifest=None):
    """Grade every submission in ``directory`` against ``variant`` (a name; None: the original), or
    each against their own when ``manifest`` (release --roster's manifest.csv) is given; returns
    the rows of grades.csv (a BatchResult). BatchError, before anything is graded, when OUT or
    the manifest cannot be used."""
    from .isolation import choose
    isolation = choose(isolation) if isinstance(isolation, str) else isolation
    roster = read_manifest(manifest) if manifest else None
    if variant is not None:
        try:
            variant = variants.variant(variant)
        except variants.VariantError as e:
            raise BatchError(str(e)) from None
    prepare_out(out)
    with owning(out):
        return _grade_folder(directory, out, jobs, force, isolation, progress, variant, roster)


def read_manifest(path):
    """[(student id, name, email, variant)] of release --roster's manifest.csv; BatchError saying why not."""
    from .roster import ManifestError, read_manifest as read
    try:
        return read(path)[0]
    except ManifestError as e:
        raise BatchError(str(e)) from None


def student_variant(student, roster):
    """The variant of the student a submission's name (the names intake uses: a file's stem, a
    folder's name) says, matched against the roster's ids, emails and names, case aside; None when
    it matches no one."""
    key = student.strip().lower()
    for student_id, name, email, variant in roster:
        if key in {student_id.lower(), email.lower(), email.lower().split("@")[0] if email else "", name.lower()} - {""}:
            return variant
    return None


def _grade_folder(directory, out, jobs, force, isolation, progress, variant=None, roster=None):
    from tqdm import tqdm
    submissions = find_submissions(directory)
    wanted = {}  # student -> the variant they are graded against (None: not on the roster)
    for student, paths in submissions.items():
        wanted[student] = student_variant(student, roster) if roster else (variant or variants.ORIGINAL)
        if roster and wanted[student] is None:
            paths["not_on_roster"] = (f"{student} is not on the roster of the manifest, so the grader does not know "
                                      f"which version of the assignment they were given; nothing was graded (add "
                                      f"them to the roster and release again, or grade them with --variant)")
    todo = {s: p for s, p in submissions.items()
            if force or not _graded_as(os.path.join(out, f"{s}.json"), wanted[s])}
    hidden_paths = [os.path.abspath(directory), os.path.abspath(out)]
    failed, interrupted = {}, 0
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # each job is a child process
        futures = {pool.submit(grade_one, s, p, out, isolation, hidden_paths, wanted[s]): s for s, p in todo.items()}
        with tqdm(total=len(futures), desc="grading", unit="student", file=sys.stderr,
                  disable=not progress) as bar:
            for future in as_completed(futures):
                try:
                    future.result()
                except GradingInterrupted:  # Ctrl-C: nothing recorded; a rerun grades them
                    interrupted += 1
                    bar.set_description("stopped")
                    continue  # the bar counts only students graded
                except Exception as e:  # the grader's own failure: reported, never a student's 0
                    failed[futures[future]] = f"{type(e).__name__}: {e}"
                bar.update(1)
    rows = BatchResult()
    rows.skipped, rows.failed, rows.interrupted = len(submissions) - len(todo), failed, interrupted
    records = {}
    for student in submissions:
        if student in failed or not os.path.exists(os.path.join(out, f"{student}.json")):
            continue
        with open(os.path.join(out, f"{student}.json")) as f:
            record = records[student] = json.load(f)
        row = {"student": student, **_points(record, FUNCTIONS)}
        row["total"] = round(record["score"], 2)
        row["max_score"] = round(record["max_score"], 2)
        row["variant"] = record.get("variant", variants.ORIGINAL.canonical)
        if "flows" in record:
            row.update(_points(record["flows"], PARTS["flows"]), flows_total=round(record["flows"]["score"], 2))
        rows.append(row)
    _write(os.path.join(out, "grades.csv"), _csv(rows))
    if records:
        write_summary(records, out)
    return rows


def _graded_as(path, variant):
    """Whether OUT already holds this student's result graded against ``variant`` (None: the "not
    on the roster" row); a result of another variant is graded again."""
    if not os.path.exists(path):
        return False
    try:
        with open(path) as f:
            graded = json.load(f).get("variant", variants.ORIGINAL.canonical)
    except (OSError, ValueError):
        return False
    return graded == (variant.canonical if variant is not None else NOT_ON_ROSTER)


def _points(record, functions):
    return {f: round(sum(t["score"] for t in record.get("tests", []) if t["function"] == f), 2) for f in functions}


def _csv(rows):
    import io
    buffer = io.StringIO()
    columns = ["student", *FUNCTIONS, "total", "max_score"]
    if any(row.get("variant") != variants.ORIGINAL.canonical for row in rows):
        columns.append("variant")  # which version each student was graded against
    if any("flows_total" in row for row in rows):
        columns += [*PARTS["flows"], "flows_total"]
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
