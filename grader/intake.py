"""What a student handed in, found and read the way a patient teaching assistant would.

One rule for every way in (``check``, both layouts of ``grade``, an LMS's download, Gradescope):
- the file is ``vae.py`` (or ``flows.py``); failing that, a re-upload the LMS renamed
  (``vae-1.py``), the notebook (``vae.ipynb``), an extension Windows hid (``vae.py.txt``), the
  same name in another case (``VAE.py``), or the only Python file or notebook there is; a file
  that is still the unchanged starter is graded only when nothing else could be (``choose``);
- a zip or tar handed in is opened safely (grader/unpack.py) and its files take its place;
- a notebook is graded from its code cells (read as JSON; IPython magics and shell lines left
  out), and so is a ``.py`` that really holds a notebook's JSON;
- a symbolic link is never followed: a submission that is, or holds, one is refused, saying so;
- the feedback names the file graded when it is not vae.py, and every file that was not graded;
- otherwise nothing is graded, and the message names what was expected and what was found.
"""
import json
import os
import re

NOTEBOOK_LIMIT = 20 << 20  # bytes: larger is no student's notebook
IGNORED = ("__MACOSX", ".ipynb_checkpoints", "__pycache__")  # what zips and Jupyter leave beside the work


class Refused(Exception):
    """The submission cannot be graded as handed in; the message is for the student."""


def is_notebook(path):
    """Whether ``path`` holds a Jupyter notebook: by its name, or by its content (JSON with cells)."""
    if path.endswith(".ipynb"):
        return True
    try:
        with open(path, "rb") as f:
            start = f.read(4096).lstrip()
    except OSError:
        return False
    return start.startswith(b"{") and b'"cells"' in start or start.startswith(b'{\n "cells"')


def notebook_source(path):
    """The Python source of a notebook's code cells, in order: IPython magics (``%matplotlib``,
    ``%%time``) and shell lines (``!pip install``) are left out, as Python could not run them."""
    if os.path.getsize(path) > NOTEBOOK_LIMIT:
        raise Refused(f"{os.path.basename(path)} is larger than any notebook of this assignment")
    try:
        with open(path, encoding="utf-8-sig") as f:
            notebook = json.load(f)
        cells = notebook["cells"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise Refused(f"{os.path.basename(path)} is not a notebook Jupyter can open ({type(e).__name__})") from None
    chunks = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        text = cell.get("source", "")
        text = "".join(text) if isinstance(text, list) else str(text)
        if text.lstrip().startswith("%%"):
            continue  # a cell magic makes the whole cell something other than Python
        lines = [line for line in text.splitlines() if not line.lstrip().startswith(("%", "!"))]
        chunks.append("\n".join(lines))
    return "\n\n".join(chunks) + "\n"


def visible(folder):
    """The entries of ``folder`` a student handed in: not hidden files (macOS's ``._`` ones among
    them), nor what zips and Jupyter leave beside the work."""
    return [n for n in sorted(os.listdir(folder)) if not n.startswith(".") and n not in IGNORED]


def _rank(name, module):
    """(rank, tie-break, why) of a file named ``name`` as the student's MODULE.py, best first; None
    for a file that is not named as it. An LMS or a browser renames a second upload of vae.py to
    vae-1.py or "vae (1).py": the highest number is the latest."""
    if name == f"{module}.py":
        return 0, 0, ""
    for rank, ending, why in ((1, ".py", "renamed on upload"), (3, ".ipynb", "the notebook, renamed on upload")):
        match = re.fullmatch(rf"{re.escape(module)}(?:-(\d+)| \((\d+)\))" + re.escape(ending), name)
        if match:
            return rank, -int(match.group(1) or match.group(2)), why
    if name == f"{module}.ipynb":
        return 2, 0, "the notebook"
    if name == f"{module}.py.txt":
        return 4, 0, "Windows had hidden its .py extension"
    if name.lower() in (f"{module}.py", f"{module}.ipynb"):
        return 5, 0, "another case"
    return None


def is_starter(path, module="vae"):
    """Whether ``path`` is the assignment's starter file as handed out: it defines graded functions
    of MODULE and every one of them still only raises NotImplementedError (or passes)."""
    import ast
    try:
        source = notebook_source(path) if is_notebook(path) else open(path, encoding="utf-8-sig").read()
        tree = ast.parse(source)
    except (Refused, OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return False
    from .parts import PARTS
    graded = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in PARTS.get(module, ())]

    def stub(function):
        body = [s for s in function.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        return all(isinstance(s, ast.Pass) or (isinstance(s, ast.Raise) and "NotImplementedError" in ast.dump(s))
                   for s in body)
    return bool(graded) and all(stub(f) for f in graded)


CODE_ENDINGS = (".py", ".ipynb", ".py.txt")


def choose(files, module="vae", others=("flows",)):
    """(path, note): of ``files`` ([(name as shown to the student, path)]: what they handed in), the
    one to grade as MODULE.py. The rule, in order:

    1. a file named as MODULE: ``vae.py``; ``vae-1.py`` or ``vae (1).py`` (a re-upload the LMS
       or the browser renamed; the highest number first); ``vae.ipynb`` (and renamed); ``vae.py.txt``;
       the same names in another case; a file at the top before one in a folder;
    2. failing that, the only Python file or notebook (not another part's, such as flows.py);
    3. in either, a file that is still the unchanged starter is graded only when nothing else is.

    The note names the file graded when it is not MODULE.py, and the files that were not graded.
    Refused when nothing, or several files with nothing to choose between them, could be MODULE.py."""
    def depth(name):
        return name.count("/")
    named = sorted((_rank(os.path.basename(n), module) + (depth(n), n, p)) for n, p in files
                   if _rank(os.path.basename(n), module) is not None)
    skip = {f"{o}{e}" for o in others for e in (".py", ".ipynb")}
    if named:
        pool = [c for c in named if not is_starter(c[-1], module)] or named
        rank, _, why, _, name, path = min(pool, key=lambda c: (c[0], c[3], c[1], c[4]))
        why = why if name == os.path.basename(name) else (why + "; " if why else "") + "in a folder"
        note = "" if not why else f"graded {name} ({why}; the assignment asks for {module}.py)"
    else:
        code = [(n, p) for n, p in files if n.lower().endswith(CODE_ENDINGS)
                and os.path.basename(n).lower() not in skip]
        pool = [c for c in code if not is_starter(c[1], module)] or code
        if len(pool) != 1:
            shown = [n for n, _ in files]
            listed = ", ".join(shown[:8]) + (", ..." if len(shown) > 8 else "") or "nothing"
            raise Refused(f"no {module}.py was handed in: expected {module}.py (or {module}.ipynb), found {listed}")
        name, path = pool[0]
        note = f"graded {name}, the only Python file or notebook handed in (the assignment asks for {module}.py)"
    left = [n for n, p in files if p != path and os.path.basename(n).lower() not in skip]
    if left:
        why = {n: " (the unchanged starter file)" for n, p in files if p != path and n in left
               and n.lower().endswith(CODE_ENDINGS) and is_starter(p, module)}
        shown = [n + why.get(n, "") for n in left]
        note = (note + "; " if note else f"graded {name}; ") + "not graded: " + ", ".join(shown[:8]) + \
            (f" and {len(shown) - 8} more" if len(shown) > 8 else "")
    refuse_links(path)
    return path, note


ARCHIVE_ENDINGS = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def is_archive(name):
    return name.lower().endswith(ARCHIVE_ENDINGS)


def handed_in(folder, open_archive=None):
    """([(name as the student sees it, path)], [why an archive stayed closed]): every file below
    ``folder`` (what zips and Jupyter leave aside), never following a link. With ``open_archive``
    (grader/unpack.opener: path -> [(name inside, path)], or Refused), a zip or tar among them is
    opened and its files stand in for it ("work.zip/vae.py"); one that cannot be opened safely
    stays a file, and the reason is returned."""
    files, problems = [], []
    for directory, folders, names in os.walk(folder):
        folders[:] = [d for d in sorted(folders) if not d.startswith(".") and d not in IGNORED]
        for name in sorted(names):
            if name.startswith(".") or name in IGNORED:
                continue
            path = os.path.join(directory, name)
            shown = os.path.relpath(path, folder).replace(os.sep, "/")
            if open_archive is not None and is_archive(name) and not os.path.islink(path):
                try:
                    files += [(f"{shown}/{inner.replace(os.sep, '/')}", p) for inner, p in open_archive(path)]
                    continue
                except Refused as e:
                    problems.append(str(e))
            files.append((shown, path))
    return files, problems


def locate(folder, module="vae", others=("flows",), open_archive=None):
    """(path, note): the file of ``folder`` to grade as MODULE.py (grader/intake.choose's rule), and
    a line saying which file it was when it is not MODULE.py itself and which were not graded.
    Refused when there is none, or when the folder is, or holds, a symbolic link. With
    ``open_archive`` (grader/unpack.opener), archives handed in are opened first."""
    if os.path.islink(folder):
        raise Refused(f"{os.path.basename(folder)} is a symbolic link: hand in files, not links")
    links = links_in(folder)
    if links:
        raise Refused(f"your submission holds a symbolic link ({', '.join(links[:3])}): hand in files, not links")
    files, problems = handed_in(folder, open_archive)
    try:
        path, note = choose(files, module, others)
    except Refused as e:
        raise Refused("; ".join([str(e), *problems])) from None
    return path, "; ".join(n for n in (note, *problems) if n)


def refuse_links(path):
    """Refused when ``path`` is a symbolic link (whatever it points at, it is never followed)."""
    if os.path.islink(path):
        raise Refused(f"{os.path.basename(path)} is a symbolic link, not a file: hand in the file itself")


def links_in(folder):
    """The symbolic links anywhere below ``folder`` (relative paths), never following one."""
    found = []
    for directory, folders, files in os.walk(folder):
        for name in folders + files:
            if os.path.islink(os.path.join(directory, name)):
                found.append(os.path.relpath(os.path.join(directory, name), folder))
    return found


def readable_source(path):
    """(Python source to grade, or None to grade ``path`` as it is): a notebook's code cells."""
    refuse_links(path)
    if not os.path.isfile(path):
        raise Refused(f"{os.path.basename(path)} is not a file")
    return notebook_source(path) if is_notebook(path) else None
