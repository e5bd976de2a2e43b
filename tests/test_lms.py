"""From the LMS's download to its gradebook import, as an instructor does it: each LMS's bulk
download (its own names, receipts and pages, late work, a resubmission, a zip, a student who
uploaded a stub beside the finished notebook) graded to one row per student keyed by the LMS's
identifier, and `export` writing the file that LMS imports, checked against the columns its
documentation (and, for Moodle and Canvas, its source) reads."""
import csv
import io
import json
import os
import subprocess
import sys
import zipfile

import nbformat
import pytest

from conftest import REPO
from submissions import source_with, stub_source

RIGHT = source_with({})
KL_WRONG = source_with({"compute_KL": "mean, log_std = np.split(q_means_and_log_stds, 2, axis=-1)\n"
                                      "return np.sum(mean ** 2, axis=-1)"})
STUB = stub_source()


def notebook(source):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# My VAE"), nbformat.v4.new_code_cell(source)]
    return nbformat.writes(nb)


def zipped(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buffer.getvalue()


WORK_ZIP = zipped({"my work/vae.py": RIGHT, "my work/notes.md": "done", "__MACOSX/my work/._vae.py": "\0\5"})
# what each student scores, whatever LMS they handed in through
TOTALS = {"ana": 100, "ben": 80, "cat": 100, "dan": 100, "eve": 100}
PEOPLE = {"ana": ("Ana", "Smith"), "ben": ("Ben", "Baker"), "cat": ("Cat", "Cato"), "dan": ("Dan", "Dunn"),
          "eve": ("Eve", "Evans")}


def canvas(folder):
    """Canvas's submissions.zip: lastfirst_USERID_ATTACHMENTID_name, _LATE_, a renamed re-upload."""
    files = {"smithana_101_9001_vae.py": RIGHT, "bakerben_LATE_102_9002_vae.py": KL_WRONG,
             "catocat_103_9003_vae-1.py": RIGHT, "catocat_103_text.html": "<p>see my file</p>",
             "dunndan_104_9004_work.zip": WORK_ZIP, "evanseve_105_9005_vae.py": STUB,
             "evanseve_105_9006_vae.ipynb": notebook(RIGHT)}
    return write(folder, files), {"ana": "101", "ben": "102", "cat": "103", "dan": "104", "eve": "105"}


def moodle(folder):
    """Moodle's download in folders: Full Name_PARTICIPANT_assignsubmission_file_/..."""
    files = {"Ana Smith_201_assignsubmission_file_/vae.py": RIGHT,
             "Ben Baker_202_assignsubmission_file_/vae.py": KL_WRONG,
             "Cat Cato_203_assignsubmission_file_/vae (1).py": RIGHT,
             "Cat Cato_203_assignsubmission_onlinetext_/onlinetext.html": "<p>resubmitted</p>",
             "Dan Dunn_204_assignsubmission_file_/work.zip": WORK_ZIP,
             "Eve Evans_205_assignsubmission_file_/vae.py": STUB,
             "Eve Evans_205_assignsubmission_file_/vae.ipynb": notebook(RIGHT)}
    return write(folder, files), {"ana": "201", "ben": "202", "cat": "203", "dan": "204", "eve": "205"}


def receipt(user, first, last, date, names):
    files = "".join(f"\tOriginal filename: {n}\n\tFilename: VAE_{user}_attempt_{date}_{n}\n" for n in names)
    return (f"Name: {first} {last} ({user})\nAssignment: VAE\nDate Submitted: {date}\nCurrent Grade: Needs Grading\n\n"
            f"Submission Field:\nThere is no student submission text data for this assignment.\n\nComments:\n"
            f"There are no student comments for this assignment.\n\nFiles:\n{files}")


def blackboard(folder):
    """Blackboard's gradebook_*.zip: a receipt and the files per attempt; all attempts downloaded."""
    attempts = {"asmith": [("2026-12-01-10-00-00", {"vae.py": RIGHT})],
                "bbaker": [("2026-12-09-23-30-00", {"vae.py": KL_WRONG})],
                "ccato": [("2026-12-01-09-00-00", {"vae.py": STUB}), ("2026-12-03-09-00-00", {"vae.py": RIGHT})],
                "ddunn": [("2026-12-02-12-00-00", {"work.zip": WORK_ZIP})],
                "eevans": [("2026-12-02-13-00-00", {"vae.py": STUB, "vae.ipynb": notebook(RIGHT)})]}
    files = {}
    for (user, tries), who in zip(attempts.items(), PEOPLE):
        for date, uploaded in tries:
            files[f"VAE_{user}_attempt_{date}.txt"] = receipt(user, *PEOPLE[who], date, uploaded)
            files.update({f"VAE_{user}_attempt_{date}_{n}": text for n, text in uploaded.items()})
    return write(folder, files), dict(zip(PEOPLE, attempts))


def brightspace(folder):
    """Brightspace's download: index.html, and SUBMISSION-ID - First Last - date - name."""
    files = {"index.html": "<html>submissions</html>",
             "1001-2001 - Ana Smith - Dec 1, 2026 1000 AM - vae.py": RIGHT,
             "1002-2002 - Ben Baker - Dec 9, 2026 1130 PM - vae.py": KL_WRONG,
             "1003-2003 - Cat Cato - Dec 1, 2026 900 AM - vae.py": STUB,
             "1013-2003 - Cat Cato - Dec 2, 2026 900 AM - vae.py": RIGHT,
             "1004-2004 - Dan Dunn - Dec 2, 2026 1200 PM - work.zip": WORK_ZIP,
             "1005-2005 - Eve Evans - Dec 2, 2026 100 PM - vae.py": STUB,
             "1005-2005 - Eve Evans - Dec 2, 2026 100 PM - vae.ipynb": notebook(RIGHT)}
    return write(folder, files), {who: " ".join(PEOPLE[who]) for who in PEOPLE}


def write(folder, files):
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


DOWNLOADS = {"canvas": canvas, "moodle": moodle, "blackboard": blackboard, "brightspace": brightspace}


def as_zip(folder, path):
    with zipfile.ZipFile(path, "w") as z:
        for directory, _, files in os.walk(folder):
            for name in files:
                full = os.path.join(directory, name)
                z.write(full, os.path.relpath(full, folder))
    return path


def kit(*args, tmp_path, env=None):
    env = dict(os.environ, TMPDIR=str(tmp_path), **(env or {}))
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)


def rows_of(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize("lms", DOWNLOADS)
def test_a_download_in_each_lms_layout_names_every_student_once(tmp_path, lms):
    """Parsed without grading: one student per identifier, the latest attempt's files only, the
    LMS's receipts and pages left out, the name the LMS gave."""
    from grader.batch import find_submissions
    folder, ids = DOWNLOADS[lms](tmp_path / "download")
    found = find_submissions(str(folder))
    assert sorted(found) == sorted(ids.values()), found
    for who, student_id in ids.items():
        student = found[student_id]["lms"]
        first, last = PEOPLE[who]
        assert student.lms == lms and student.student_id == student_id
        if lms in ("moodle", "blackboard", "brightspace"):
            assert student.name == f"{first} {last}"
        names = sorted(n for n, _ in student.files)
        assert not any(n.endswith((".txt", ".html")) for n in names), names  # receipts and pages are no work
        if who == "eve":
            assert names == ["vae.ipynb", "vae.py"]
    if lms in ("blackboard", "brightspace"):  # two attempts: the latest only, the earlier one named
        cat = found[ids["cat"]]["lms"]
        assert len(cat.files) == 1 and open(cat.files[0][1]).read() == RIGHT
        assert "1 earlier attempt(s)" in cat.left_out[0]
    if lms == "canvas":
        assert found["102"]["lms"].late and not found["101"]["lms"].late


@pytest.mark.parametrize("lms", DOWNLOADS)
def test_each_lms_download_grades_to_one_row_per_student_and_exports_its_import(tmp_path, lms):
    folder, ids = DOWNLOADS[lms](tmp_path / "download")
    given = as_zip(folder, tmp_path / f"{lms}.zip") if lms in ("canvas", "blackboard") else folder  # as it comes
    out = tmp_path / "out"
    done = kit("grade", str(given), "--out", str(out), tmp_path=tmp_path)
    if "cannot isolate" in done.stderr:
        pytest.skip("no isolation here: " + done.stderr[-300:])
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["student"]: r for r in csv.DictReader(open(out / "grades.csv", encoding="utf-8"))}
    assert {ids[w]: float(rows[ids[w]]["total"]) for w in ids} == {ids[w]: t for w, t in TOTALS.items()}
    assert len(rows) == len(ids)
    eve = (out / f"{ids['eve']}.txt").read_text()
    assert "graded vae.ipynb" in eve and "not graded: vae.py (the unchanged starter file)" in eve, eve
    dan = (out / f"{ids['dan']}.txt").read_text()
    assert "graded work.zip/my work/vae.py" in dan and "not graded: work.zip/my work/notes.md" in dan, dan
    assert not (out / ".work").exists() and str(tmp_path) not in eve + dan

    classlist = tmp_path / "classlist.csv"
    classlist.write_text("OrgDefinedId,Username,Last Name,First Name,Email,End-of-Line Indicator\n" + "".join(
        f"#{900 + i},#{first.lower()},{last},{first},{first.lower()}@uni.edu,#\n"
        for i, (first, last) in enumerate(PEOPLE.values())))
    extra = ["--classlist", str(classlist)] if lms == "brightspace" else []
    exported = kit("export", str(out), "--to", lms, *extra, tmp_path=tmp_path)
    assert exported.returncode == 0, exported.stderr
    imports = sorted(os.listdir(out / "export"))
    table = rows_of(out / "export" / next(n for n in imports if n.endswith(".csv")))
    header, body = table[0], table[1:]
    total_of = {ids[w]: t for w, t in TOTALS.items()}
    if lms == "canvas":  # the gradebook's import: these five columns first, then the assignment's
        assert header[:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"] and header[5] == "VAE"
        assert body[0][0] == "Points Possible" and float(body[0][5]) == 100
        assert {r[1]: float(r[5]) for r in body[1:]} == total_of
    elif lms == "moodle":  # the grading worksheet: matched on Identifier, Grade and Last modified (grade)
        assert {"Identifier", "Grade", "Last modified (grade)", "Feedback comments"} <= set(header)
        at = {c: header.index(c) for c in header}
        assert {r[at["Identifier"]]: float(r[at["Grade"]]) for r in body} == {
            f"Participant {i}": t for i, t in total_of.items()}
        with zipfile.ZipFile(out / "export" / "moodle-feedback.zip") as z:
            names = z.namelist()
        for name in names:  # as Moodle's importer splits it: name_ID_plugintype_plugin_file
            parts = name.split("_", 4)
            assert len(parts) == 5 and parts[1].isdigit() and parts[2:4] == ["assignsubmission", "file"], name
        assert sorted(n.split("_")[1] for n in names) == sorted(total_of)
    elif lms == "blackboard":  # the Grade Center's upload: matched on Username
        assert "Username" in header and header[-1] == "VAE [Total Pts: 100 Score]"
        assert {r[header.index("Username")]: float(r[-1]) for r in body} == total_of
    else:  # Brightspace's import: OrgDefinedId, Username, ITEM Points Grade, End-of-Line Indicator
        assert header == ["OrgDefinedId", "Username", "VAE Points Grade", "End-of-Line Indicator"]
        people = {f"#{900 + i}": ids[w] for i, w in enumerate(PEOPLE)}
        assert {people[r[0]]: float(r[2]) for r in body} == total_of and {r[3] for r in body} == {"#"}


def test_export_refuses_what_it_cannot_write_and_says_why(tmp_path):
    from grader.lms import ExportError, export_out
    folder = tmp_path / "plain"
    write(folder, {"ana.py": RIGHT})
    out = tmp_path / "out"
    done = kit("grade", str(folder), "--out", str(out), "--no-sandbox", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    with pytest.raises(ExportError, match="not graded from a Canvas download"):
        export_out(str(out), "canvas", {})
    with pytest.raises(ExportError, match="has no grade import"):
        export_out(str(out), "gradescope", {})
    with pytest.raises(ExportError, match="holds no grades.csv"):
        export_out(str(tmp_path), "moodle", {})


def test_brightspace_names_the_students_the_classlist_lacks(tmp_path):
    from grader.lms.brightspace import ExportError, export
    records = [{"name": "Ana Smith", "score": 100.0, "max_score": 100.0, "lms_id": "Ana Smith"},
               {"name": "Zed Unknown", "score": 50.0, "max_score": 100.0, "lms_id": "Zed Unknown"}]
    classlist = tmp_path / "classlist.csv"
    classlist.write_text("OrgDefinedId,Username,Last Name,First Name\n#1,#ana,Smith,Ana\n")
    files, missing = export(records, {"classlist": str(classlist)})
    assert missing == ["Zed Unknown (no one of that name in the classlist)"]
    assert rows_of_text(files["brightspace-grades.csv"]) == [
        ["OrgDefinedId", "Username", "VAE Points Grade", "End-of-Line Indicator"], ["#1", "#ana", "100.0", "#"]]
    with pytest.raises(ExportError, match="--classlist"):
        export(records, {})
    (tmp_path / "wrong.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ExportError, match="not a Brightspace grades export"):
        export(records, {"classlist": str(tmp_path / "wrong.csv")})


def rows_of_text(data):
    return list(csv.reader(io.StringIO(data.decode())))


def test_no_csv_the_kit_writes_starts_a_cell_with_a_formula(tmp_path):
    """Names a spreadsheet would run as formulas, in a Canvas download and a plain folder, come out
    of grades.csv and the export as text."""
    folder = tmp_path / "download"
    write(folder, {"=HYPERLINK(1+1)_301_9301_vae.py": RIGHT, "@SUM(2)_302_9302_vae.py": KL_WRONG,
                   "-cmd_303_9303_vae.py": RIGHT, "+plus_304_9304_vae.py": RIGHT})
    out = tmp_path / "out"
    done = kit("grade", str(folder), "--out", str(out), "--no-sandbox", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert kit("export", str(out), "--to", "canvas", tmp_path=tmp_path).returncode == 0
    plain = tmp_path / "plain"
    write(plain, {"=1+2.py": RIGHT, "-5.py": RIGHT})
    assert kit("grade", str(plain), "--out", str(tmp_path / "out2"), "--no-sandbox", tmp_path=tmp_path).returncode == 0
    written = [out / "grades.csv", out / "export" / "canvas-grades.csv", tmp_path / "out2" / "grades.csv"]
    cells = [c for path in written for row in rows_of(path) for c in row]
    assert "'=HYPERLINK(1+1)" in cells and "'-5" in cells and "'=1+2" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")], cells


def test_an_archive_that_would_escape_or_explode_is_refused(tmp_path):
    import tarfile

    from grader.intake import Refused
    from grader.unpack import Limits, unpack

    def refused(name, data, match, limits=None):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(Refused, match=match):
            unpack(str(path), str(tmp_path / f"into-{name}"), **({"limits": limits} if limits else {}))
        assert not (tmp_path / f"into-{name}").exists()

    refused("up.zip", zipped({"../../evil.py": "x"}), "a path outside the archive")
    refused("abs.zip", zipped({"/etc/evil.py": "x"}), "a path outside the archive")
    link = io.BytesIO()
    with zipfile.ZipFile(link, "w") as z:
        info = zipfile.ZipInfo("vae.py")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    refused("link.zip", link.getvalue(), "symbolic link")
    refused("big.zip", zipped({"vae.py": "x" * 5000}), "more than", Limits(total_bytes=1000))
    refused("many.zip", zipped({f"f{i}.py": "" for i in range(12)}), "more than 10 files", Limits(members=10))
    refused("bad.zip", b"PK\3\4 not really a zip", "not a zip or tar|damaged")
    tar_path = tmp_path / "t.tar"
    with tarfile.open(tar_path, "w") as t:
        info = tarfile.TarInfo("vae.py")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(info)
    refused("t2.tar", tar_path.read_bytes(), "a link")
    ok = tmp_path / "ok.zip"
    ok.write_bytes(WORK_ZIP)
    import errno

    import grader.unpack

    def disk_full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real_copy, grader.unpack._copy = grader.unpack._copy, disk_full
    try:  # the grader's disk filling up is the grader's failure, never the student's "damaged archive"
        with pytest.raises(OSError) as failed:
            unpack(str(ok), str(tmp_path / "full"))
        assert not isinstance(failed.value, Refused) and failed.value.errno == errno.ENOSPC
    finally:
        grader.unpack._copy = real_copy
    assert sorted(unpack(str(ok), str(tmp_path / "ok"))) == [os.path.join("my work", "notes.md"),
                                                              os.path.join("my work", "vae.py")]


@pytest.mark.parametrize("files, graded, note", [
    ({"vae.py": STUB, "vae.ipynb": notebook(RIGHT)}, "vae.ipynb", "not graded: vae.py (the unchanged starter file)"),
    ({"vae.py": RIGHT, "vae_old.py": KL_WRONG}, "vae.py", "not graded: vae_old.py"),
    ({"vae.py": RIGHT, "old/vae.py": KL_WRONG}, "vae.py", "not graded: old/vae.py"),
    ({"vae-1.py": RIGHT}, "vae-1.py", "renamed on upload"),
    ({"vae (1).py": RIGHT, "vae (2).py": RIGHT}, "vae (2).py", "not graded: vae (1).py"),
    ({"mine.py": STUB, "done.py": RIGHT}, "done.py", "the only Python file"),
    ({"vae.py": STUB}, "vae.py", ""),  # the stub alone is graded (and scores 0): nothing else could be
])
def test_several_candidate_files_are_resolved_by_the_documented_rule(tmp_path, files, graded, note):
    from grader.intake import locate
    write(tmp_path / "s", files)
    path, said = locate(str(tmp_path / "s"))
    assert os.path.relpath(path, tmp_path / "s").replace(os.sep, "/") == graded
    assert note in said, said


def test_several_candidates_with_nothing_to_choose_between_are_refused_naming_them(tmp_path):
    from grader.intake import Refused, locate
    write(tmp_path / "s", {"a.py": RIGHT, "b.py": KL_WRONG})
    with pytest.raises(Refused, match="found a.py, b.py"):
        locate(str(tmp_path / "s"))


def test_the_other_forms_of_a_download_are_read_too(tmp_path):
    """Moodle's download without folders, Brightspace's with a folder per submission; a plain class
    folder that happens to hold an index.html stays a plain folder."""
    from grader.batch import find_submissions
    flat = write(tmp_path / "moodle-flat", {"Ana Smith_201_assignsubmission_file_vae.py": RIGHT,
                                            "Ben Baker_202_assignsubmission_file_my_vae.py": RIGHT})
    found = find_submissions(str(flat))
    assert {k: [n for n, _ in v["lms"].files] for k, v in found.items()} == {"201": ["vae.py"], "202": ["my_vae.py"]}
    folders = write(tmp_path / "brightspace-folders", {
        "index.html": "<html/>", "1001-2001 - Ana Smith - Dec 1, 2026 1000 AM/vae.py": RIGHT,
        "1011-2001 - Ana Smith - Dec 3, 2026 1000 AM/vae.py": KL_WRONG})
    ana = find_submissions(str(folders))["Ana Smith"]["lms"]
    assert [n for n, _ in ana.files] == ["vae.py"] and open(ana.files[0][1]).read() == KL_WRONG
    plain = write(tmp_path / "plain", {"index.html": "<html/>", "ana.py": RIGHT, "ben.py": RIGHT})
    assert sorted(find_submissions(str(plain))) == ["ana", "ben"]
    assert all("vae" in v for v in find_submissions(str(plain)).values())
