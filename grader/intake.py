"""What a student handed in, found and read the way a patient teaching assistant would.

One rule for every way in (``check``, both layouts of ``grade``, Gradescope):
- the file is ``vae.py`` (or ``flows.py``); failing that, the same name in another case
  (``VAE.py``), with an extension Windows hid (``vae.py.txt``), as a notebook (``vae.ipynb``),
  or the only Python file or notebook there is: graded, with a line naming the file;
- a notebook is graded from its code cells (read as JSON; IPython magics and shell lines left
  out), and so is a ``.py`` that really holds a notebook's JSON;
- a symbolic link is never followed: a submission that is, or holds, one is refused, saying so;
- otherwise nothing is graded, and the message names what was expected and what was found.
"""
import json
import os

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


def _candidates(folder, module):
    """The files of ``folder`` that could be the student's MODULE.py, best first, with why."""
    visible_names = visible(folder)
    lower = {n.lower(): n for n in visible_names}
    for wanted, why in ((f"{module}.py", ""), (f"{module}.ipynb", "the notebook"),
                        (f"{module}.py.txt", "Windows had hidden its .py extension"),
                        (f"{module}.py", "another case")):
        if wanted in visible_names or (why == "another case" and wanted in lower):
            return [lower.get(wanted, wanted) if why == "another case" else wanted], why
    return visible_names, None


def locate(folder, module="vae", others=("flows",)):
    """(path, note): the file of ``folder`` to grade as MODULE.py, and a line saying which file it
    was when it is not MODULE.py itself. Refused when there is none, or when the folder is, or
    holds, a symbolic link."""
    if os.path.islink(folder):
        raise Refused(f"{os.path.basename(folder)} is a symbolic link: hand in files, not links")
    links = links_in(folder)
    if links:
        raise Refused(f"your submission holds a symbolic link ({', '.join(links[:3])}): hand in files, not links")
    found, why = _candidates(folder, module)
    if why is not None:
        path = os.path.join(folder, found[0])
        refuse_links(path)
        return path, "" if not why else f"graded {found[0]} ({why}; the assignment asks for {module}.py)"
    skip = {f"{o}.py" for o in others} | {f"{o}.ipynb" for o in others}
    code = [n for n in found if n.lower().endswith((".py", ".ipynb", ".py.txt")) and n.lower() not in skip
            and os.path.isfile(os.path.join(folder, n))]
    if len(code) == 1:
        path = os.path.join(folder, code[0])
        refuse_links(path)
        return path, f"graded {code[0]}, the only Python file or notebook handed in (the assignment asks for {module}.py)"
    shown = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "") or "nothing"
    raise Refused(f"no {module}.py was handed in: expected {module}.py (or {module}.ipynb), found {shown}")


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
