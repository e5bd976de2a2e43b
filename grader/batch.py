"""Grade a folder of submissions: in parallel, resumable, one broken file never stops the batch.

DIR is a plain folder (one .py, notebook or zip per student, the file's stem naming the student,
or one folder per student holding vae.py, and flows.py when the student did the optional part),
or an LMS's bulk download, the zip itself or its unpacked folder (grader/lms/: Canvas, Moodle,
Blackboard, Brightspace), in which each student is known by the LMS's identifier and only their
latest attempt is graded. Whatever a student uploaded, they are one row: a zip or tar of theirs
is opened safely, and among several files the one graded is chosen by grader/intake.py's rule.

OUT receives, per student, NAME.json (the result, hidden checks included, each failed check
with the name of its mistake; the flows part's under "flows"; the key of what decided it) and
NAME.txt (the feedback a student reads); grades.csv with a row per student: a column per
function and the total; when anyone submitted flows.py, also a column per flows function and
flows_total (kept apart from the total: the part is optional); and summary.md with scores.png:
what the class got wrong (grader/summary.py). A rerun keeps a result only when its key, the
submission's content, the checks, points and limits, and the variant, is still what it was.
"""
import contextlib
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from . import variants
from .parts import FUNCTIONS, PARTS
from .grade import NOT_ON_ROSTER, evaluate, public_json, text_report
from .intake import ARCHIVE_ENDINGS, Refused, locate, visible
from .spreadsheet import csv_text
from .runner import GradingInterrupted, stopping
from .summary import write_summary

LOCK = ".grading.lock"
WORK = ".work"  # in OUT: students' files as uploaded, copied out of a download and unpacked; removed after
DOWNLOAD = ".download"  # in OUT: a download given as a zip, unpacked


class BatchError(RuntimeError):
    """OUT cannot be used (not creatable, not writable, graded by another run): nothing was graded."""


class OutOfRoom(BatchError):
    """Writing into OUT failed (a full disk, a permission): the run stops; what was written stays."""


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
    """{student: {what to grade}}: every entry of ``directory`` that could be a submission gets a
    student. In an LMS's download (grader/lms/), each student of its names: {"lms": Student}. Otherwise
    (and for the entries a download's names do not account for): a file ending in .py, .ipynb or
    .py.txt ({"vae": path}) or a zip or tar ({"archive": path}), its name less that naming the
    student; a folder ({"folder": path}), its name. A folder with nothing gradable, or holding a
    symbolic link, still gets its student, refused with the reason when it is graded."""
    from . import lms
    module, entries = lms.recognise(directory)
    found, accounted = {}, set()
    if module is not None:
        for student in lms.students(module, entries):
            found[_unique(student.key, found)] = {"lms": student}
        accounted = {lms.top(directory, e.path) for e in entries}
    for entry in visible(directory):
        if entry in accounted:
            continue
        path = os.path.join(directory, entry)
        if os.path.isdir(path):  # a link to a folder too: locate refuses it
            found[_unique(entry, found)] = {"folder": path}
            continue
        for endings, what in ((SUBMISSION_ENDINGS, "vae"), (ARCHIVE_ENDINGS, "archive")):
            ending = next((e for e in endings if entry.lower().endswith(e)), None)
            if ending:
                found[_unique(entry[:-len(ending)], found)] = {what: path}
                break
    return found


def _unique(name, taken):
    """``name``, or ``name (2)``... when a student of that name is already there."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name} ({n})"
    return candidate


def skipped_entries(directory):
    """{entry: why}: the entries of ``directory`` that are no submission (grade names them)."""
    from . import lms
    module, entries = lms.recognise(directory)
    accounted = {lms.top(directory, e.path) for e in entries}
    return {entry: "not a .py file, a notebook, an archive or a student's folder" for entry in visible(directory)
            if entry not in accounted and not (os.path.isdir(os.path.join(directory, entry))
                                               or entry.lower().endswith(SUBMISSION_ENDINGS + ARCHIVE_ENDINGS))}


def prepare(submission, scratch):
    """{"vae": path, "flows": path, "note": what was and was not graded, "refused": why nothing was}:
    the files of one student's ``submission`` (find_submissions' value) to grade, archives opened
    and a download's files copied out under their own names in the folder ``scratch``."""
    if "vae" in submission:
        return {"vae": submission["vae"]}
    try:
        if "folder" in submission:
            folder = submission["folder"]
        elif "archive" in submission:
            from .unpack import unpack
            folder = os.path.join(scratch, "archive")
            unpack(submission["archive"], folder)
        else:
            folder = _copy_out(submission["lms"], os.path.join(scratch, "files"))
    except Refused as e:
        return {"vae": os.path.join(scratch, "vae.py"), "refused": str(e)}
    from .unpack import opener
    paths = {}
    try:
        paths["vae"], paths["note"] = locate(folder, "vae", open_archive=opener(os.path.join(scratch, "unpacked")))
    except Refused as e:
        paths.update(vae=os.path.join(folder, "vae.py"), refused=str(e))
    try:
        paths["flows"], _ = locate(folder, "flows", others=("vae",),
                                   open_archive=opener(os.path.join(scratch, "unpacked-flows")))
        if os.path.basename(paths["flows"]).lower() not in ("flows.py", "flows.ipynb"):
            del paths["flows"]  # the optional part is graded only when handed in under its name
    except Refused:
        pass
    if "lms" in submission:
        student = submission["lms"]
        from .lms import modules
        title = modules()[student.lms].TITLE
        who = student.name if student.name == student.student_id else f"{student.name} ({title} id {student.student_id})"
        said = [f"graded as {who}, from {title}'s latest submission{' (late)' if student.late else ''}",
                *student.left_out]
        paths["note"] = "; ".join(n for n in [*said, paths.get("note", "")] if n)
    return paths


def _copy_out(student, folder):
    """A folder holding ``student``'s files of the download under the names they uploaded them as."""
    os.makedirs(folder, exist_ok=True)
    for name, path in student.files:
        if os.path.islink(path):
            raise Refused(f"{name} is a symbolic link, not a file: hand in the file itself")
        parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
        target = os.path.join(folder, *parts) if parts else os.path.join(folder, "file")
        if os.path.exists(target):
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(path, target)
    return folder


def submission_key(submission, variant, config):
    """What decides a student's grade, as one hash: the bytes of every file they handed in (with
    their names), the grader's checks, points and limits (its source, the reference and
    ``config``), and the variant they are graded against (None: the "not on the roster" row)."""
    digest = hashlib.sha256()
    digest.update(grading_fingerprint(config).encode())
    digest.update(f"variant:{variant.canonical if variant is not None else NOT_ON_ROSTER}".encode())
    for name, path in _files_of(submission):
        digest.update(f"\0file:{name}\0".encode())
        if os.path.islink(path):
            digest.update(b"link:" + os.readlink(path).encode())
        elif os.path.isfile(path):
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def _files_of(submission):
    if "lms" in submission:
        return sorted(submission["lms"].files)
    if "folder" in submission:
        folder, found = submission["folder"], []
        for directory, folders, files in os.walk(folder):
            folders.sort()
            found += [(os.path.relpath(os.path.join(directory, n), folder), os.path.join(directory, n))
                      for n in sorted(files + [d for d in folders if os.path.islink(os.path.join(directory, d))])]
        return found
    path = submission.get("vae") or submission.get("archive")
    return [(os.path.basename(path), path)]


_fingerprints = {}


def grading_fingerprint(config):
    """A hash of what grades every submission alike: the grader's code and fixtures, the reference
    solution, and ``config`` (points and limits)."""
    from .paths import ROOT
    key = json.dumps(config, sort_keys=True)
    if key not in _fingerprints:
        digest = hashlib.sha256(key.encode())
        for folder in ("grader", "solution"):
            for directory, folders, files in os.walk(os.path.join(ROOT, folder)):
                folders[:] = sorted(f for f in folders if f != "__pycache__")
                for name in sorted(files):
                    if name.endswith((".py", ".json", ".npz")):
                        digest.update(os.path.relpath(os.path.join(directory, name), ROOT).encode())
                        with open(os.path.join(directory, name), "rb") as f:
                            digest.update(f.read())
        _fingerprints[key] = digest.hexdigest()
    return _fingerprints[key]


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


def grade_one(student, submission, out, isolation, hidden_paths, variant=None, key="", halt=None):
    """Grade one student (against ``variant``, or the "not on the roster" refusal in the submission)
    and only then write NAME.json and NAME.txt: by the time they are written, every process of the
    submission is gone, and OUT was hidden from them. OutOfRoom when OUT cannot be written."""
    if stopping() or (halt is not None and halt.is_set()):
        raise GradingInterrupted()
    scratch = os.path.join(out, WORK, lms_safe(student))
    try:
        paths = prepare(submission, scratch)
    except OSError as e:
        raise OutOfRoom(f"cannot write into {out}: {e.strerror or e}") from None
    refused = submission.get("not_on_roster") or paths.get("refused")
    record, feedback = grade_part(paths["vae"], "vae", isolation, hidden_paths, paths.get("note", ""), refused,
                                  variant=None if submission.get("not_on_roster") else variant)
    record["student"] = student
    if "lms" in submission:
        who = submission["lms"]
        record.update(lms=who.lms, lms_id=who.student_id, name=who.name, late=who.late)
    if submission.get("not_on_roster"):
        record["variant"] = NOT_ON_ROSTER
    if "flows" in paths and (variant is None or variants.variant(variant).is_original):
        record["flows"], flows_feedback = grade_part(paths["flows"], "flows", isolation, hidden_paths)
        feedback += "\n\nThe optional part, flows.py\n" + flows_feedback
    record["key"] = key
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        _write(os.path.join(out, f"{student}.txt"), feedback + "\n")
        _write(os.path.join(out, f"{student}.json"), json.dumps(record, indent=1))  # last: it marks the student done
    except OSError as e:
        raise OutOfRoom(f"cannot write {student}'s result into {out}: {e.strerror or e}") from None
    return student, record


def lms_safe(name):
    from .lms import safe_name
    return safe_name(name)


def _write(path, text):
    try:
        with open(path + ".part", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(path + ".part", path)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(path + ".part")
        raise


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
    from .grade import load_config
    directory = _unpacked(directory, out)
    submissions = find_submissions(directory)
    config = load_config()
    wanted, keys = {}, {}  # student -> the variant they are graded against (None: not on the roster), and the key
    for student, submission in submissions.items():
        names = [student] + ([submission["lms"].student_id, submission["lms"].name] if "lms" in submission else [])
        wanted[student] = (next((v for v in (student_variant(n, roster) for n in names) if v), None) if roster
                           else (variant or variants.ORIGINAL))
        if roster and wanted[student] is None:
            submission["not_on_roster"] = (f"{student} is not on the roster of the manifest, so the grader does not "
                                           f"know which version of the assignment they were given; nothing was graded "
                                           f"(add them to the roster and release again, or grade them with --variant)")
        keys[student] = submission_key(submission, wanted[student], config)
    todo = {s: p for s, p in submissions.items() if force or not _current(os.path.join(out, f"{s}.json"), keys[s])}
    hidden_paths = [os.path.abspath(directory), os.path.abspath(out)]
    failed, interrupted, halt, full = {}, 0, threading.Event(), None
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # each job is a child process
        futures = {pool.submit(grade_one, s, p, out, isolation, hidden_paths, wanted[s], keys[s], halt): s
                   for s, p in todo.items()}
        with tqdm(total=len(futures), desc="grading", unit="student", file=sys.stderr,
                  disable=not progress) as bar:
            for future in as_completed(futures):
                try:
                    future.result()
                except GradingInterrupted:  # Ctrl-C, or OUT is full: nothing recorded; a rerun grades them
                    interrupted += 1
                    bar.set_description("stopped")
                    continue  # the bar counts only students graded
                except OutOfRoom as e:  # OUT cannot take more: stop, keep what is written
                    full = full or e
                    halt.set()
                    interrupted += 1
                    continue
                except Exception as e:  # the grader's own failure: reported, never a student's 0
                    failed[futures[future]] = f"{type(e).__name__}: {e}"
                bar.update(1)
    shutil.rmtree(os.path.join(out, WORK), ignore_errors=True)
    rows = BatchResult()
    rows.skipped, rows.failed, rows.interrupted = len(submissions) - len(todo), failed, interrupted
    records = {}
    for student in submissions:
        record = _current(os.path.join(out, f"{student}.json"), keys[student])
        if student in failed or record is None:
            continue
        records[student] = record
        row = {"student": student, **_points(record, FUNCTIONS)}
        row["total"] = round(record["score"], 2)
        row["max_score"] = round(record["max_score"], 2)
        row["variant"] = record.get("variant", variants.ORIGINAL.canonical)
        if "lms" in record:
            row.update(name=record.get("name", ""), late="yes" if record.get("late") else "")
        if "flows" in record:
            row.update(_points(record["flows"], PARTS["flows"]), flows_total=round(record["flows"]["score"], 2))
        rows.append(row)
    try:
        _write(os.path.join(out, "grades.csv"), _csv(rows))
        if records:
            write_summary(records, out)
    except OSError as e:
        full = full or OutOfRoom(f"cannot write grades.csv into {out}: {e.strerror or e}")
    if full is not None:
        raise OutOfRoom(f"{full}. The grading stopped; the {len(records)} result(s) written are kept, and nothing "
                        f"half-written was. Make room (or fix the permission) and run the same command again: it "
                        f"grades only the rest.")
    return rows


def _unpacked(directory, out):
    """The folder to grade: ``directory`` itself, or, for a download handed over as a zip (or tar),
    that archive unpacked into OUT (BatchError when it cannot be, saying why)."""
    if os.path.isdir(directory):
        return directory
    from .unpack import DOWNLOAD as LIMITS, unpack
    into = os.path.join(out, DOWNLOAD)
    shutil.rmtree(into, ignore_errors=True)
    try:
        unpack(directory, into, limits=LIMITS)
    except Refused as e:
        raise BatchError(str(e)) from None
    except OSError as e:
        raise OutOfRoom(f"cannot unpack {os.path.basename(directory)} into {out}: {e.strerror or e}") from None
    entries = visible(into)
    if len(entries) == 1 and os.path.isdir(os.path.join(into, entries[0])):
        return os.path.join(into, entries[0])  # a zip of the download's folder
    return into


def _current(path, key):
    """The result in OUT at ``path`` when it is whole and graded from what decides the grade now (the
    same ``key``: content, checks, points, variant); None when it must be graded (again)."""
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key or not {"score", "max_score", "tests"} <= set(record):
        return None
    return record


def _points(record, functions):
    return {f: round(sum(t["score"] for t in record.get("tests", []) if t["function"] == f), 2) for f in functions}


def _csv(rows):
    columns = ["student", *FUNCTIONS, "total", "max_score"]
    if any("name" in row for row in rows):
        columns[1:1] = ["name"]  # a download's rows: the LMS's identifier, then the name it gave
        columns.append("late")
    if any(row.get("variant") != variants.ORIGINAL.canonical for row in rows):
        columns.append("variant")  # which version each student was graded against
    if any("flows_total" in row for row in rows):
        columns += [*PARTS["flows"], "flows_total"]
    return csv_text(columns, rows)
