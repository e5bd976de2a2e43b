"""An nbgrader course from the same reference and the same checks. Instructors only.

    python -m grader nbgrader-course DIR

writes DIR/nbgrader_config.py and DIR/source/vae/ holding vae.ipynb, the data package and
the public grader (which the test cells call). The notebook is built from solution/vae.py
with nbformat: the module docstring and each graded function's docstring become markdown
cells (the assignment text); each graded function becomes an autograded-answer cell that
keeps its ### BEGIN/END SOLUTION region; the provided code sits in locked cells; after
each answer, a locked autograder-test cell worth that function's points runs the kit's
checks, with the hidden checks (and their expected values) between ### BEGIN/END HIDDEN
TESTS, which nbgrader removes from the students' copy.
"""
import ast
import os
import shutil
import textwrap

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from .checks import FUNCTIONS
from .grade import expected_for, load_config
from .paths import ROOT, SOLUTION

TRAIN_CELL = '''# Train the VAE and write the figures into results/ (30 epochs: a few minutes on a laptop).
# Skipped while nbgrader validates or grades the notebook.
import os
if os.environ.get("NBGRADER_EXECUTION"):
    print("Training is skipped while nbgrader runs this notebook.")
else:
    main(["--out", "results"])'''


def _meta(grade_id, grade=False, solution=False, locked=False, points=None):
    meta = {"grade": grade, "solution": solution, "locked": locked, "grade_id": grade_id, "schema_version": 3}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def _docstring_markdown(text):
    """Docstring text as markdown: indented blocks (the math) become code blocks."""
    out, block = [], []
    for line in text.splitlines():
        if line.startswith("    ") and line.strip():
            block.append(line[4:])
            continue
        if block and not line.strip():
            block.append("")
            continue
        if block:
            while block and not block[-1]:
                block.pop()
            out += ["```", *block, "```"]
            block = []
        out.append(line)
    if block:
        out += ["```", *[b for b in block], "```"]
    return "\n".join(out).strip() + "\n"


def _strip_comment_tail(lines):
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("# ---") or
                     lines[-1].startswith("# ") and lines[-1].rstrip().endswith(".")):
        lines.pop()
    return lines


def test_cell_source(function, hidden_blob):
    return (f"# Autograder tests for {function}: run this cell to see your points and what failed.\n"
            f"from grader.notebook import check_function\n"
            f"hidden = None\n"
            f"### BEGIN HIDDEN TESTS\n"
            f"hidden = \"{hidden_blob}\"\n"
            f"### END HIDDEN TESTS\n"
            f"check_function(\"{function}\", globals(), hidden)")


def build_notebook(solution_path=SOLUTION, config=None, variant=None):
    """The nbgrader source notebook of ``variant`` (None: the original, from ``solution_path``)."""
    from .hidden import hidden_checks
    from .notebook import encode_hidden
    from .variants import variant as variant_named
    config = config or load_config()
    if variant is None or variant_named(variant).is_original:
        with open(solution_path) as f:
            source = f.read()
    else:
        from .release import variant_source
        source = variant_source(variant)
    lines = source.splitlines()
    tree = ast.parse(source)
    graded = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in FUNCTIONS}

    def end_of(node):  # the AST ends at the last statement; keep the indented comments after it
        end = node.end_lineno
        while end < len(lines) and lines[end].startswith((" ", "\t")) and lines[end].strip().startswith("#"):
            end += 1
        return end

    first = min(node.lineno for node in graded.values())
    last = max(end_of(node) for node in graded.values())
    docstring_end = tree.body[0].end_lineno

    cells = [new_markdown_cell(_docstring_markdown("# " + ast.get_docstring(tree)))]
    setup = _strip_comment_tail(lines[docstring_end:first - 1])
    cells.append(new_code_cell("\n".join(setup).strip("\n"), metadata=_meta("setup", locked=True)))
    hidden = hidden_checks(variant=variant)
    for name in FUNCTIONS:
        node = graded[name]
        doc = node.body[0]
        header = lines[node.lineno - 1:doc.lineno - 1]
        body = lines[doc.end_lineno:end_of(node)]
        cells.append(new_markdown_cell(f"## `{name}`\n\n" + _docstring_markdown(textwrap.dedent(ast.get_docstring(node)))))
        cells.append(new_code_cell("\n".join(header + body), metadata=_meta(name, solution=True)))
        checks = [c for c in hidden if c.function == name]
        blob = encode_hidden(checks, expected_for(checks, use_reference=True))
        cells.append(new_code_cell(test_cell_source(name, blob),
                                   metadata=_meta(f"test_{name}", grade=True, locked=True,
                                                  points=config["points"][name])))
    main_guard = next(node for node in tree.body if isinstance(node, ast.If))
    provided = _strip_comment_tail(lines[last:main_guard.lineno - 1])
    cells.append(new_markdown_cell("## Training and figures (provided)\n\nRun these cells once your functions "
                                   "pass their tests; the last one trains the model and writes the figures."))
    cells.append(new_code_cell("\n".join(provided).strip("\n"), metadata=_meta("provided", locked=True)))
    cells.append(new_code_cell(TRAIN_CELL, metadata=_meta("train", locked=True)))
    notebook = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        # nbconvert --to script names the file from file_extension: vae.py, not vae.txt
        "language_info": {"name": "python", "file_extension": ".py", "mimetype": "text/x-python"}})
    nbformat.validate(notebook)
    return notebook


NBGRADER_CONFIG = '''# nbgrader configuration for the VAE assignment, written by `python -m grader nbgrader-course`.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades
from traitlets import List


class ClearHiddenTestsInFeedback(ClearHiddenTests):
    """ClearHiddenTests as a feedback preprocessor. nbconvert's HTML exporter configures
    display_data_priority on every preprocessor; this one accepts it, as GetGrades does,
    instead of warning that it is not recognized."""
    display_data_priority = List(GetGrades.display_data_priority.default_value, config=True)


c = get_config()
c.CourseDirectory.course_id = "vae-course"
# Feedback is rendered from the autograded notebook, where nbgrader has put the hidden tests
# back; clear them again so that the students' feedback never carries the hidden checks.
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTestsInFeedback, CSSHTMLHeaderPreprocessor]
# Each test cell runs the kit's checks in well under nbgrader's default 30 s per cell;
# a little headroom for slow machines:
c.Execute.timeout = 120
'''


def student_notebook(notebook):
    """What nbgrader's generate_assignment gives students of a source notebook: each solution region
    replaced by the stub, each hidden test block removed (the kit's bundle carries this one)."""
    import copy
    import re
    from .release import strip_solutions
    out = copy.deepcopy(notebook)
    for cell in out.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            cell.source = strip_solutions(cell.source, "the notebook")
        if meta.get("grade"):
            cell.source = re.sub(r"### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS\n", "", cell.source, flags=re.S)
    return out


def write_course(directory, variant=None):
    """DIR/nbgrader_config.py and DIR/source/vae/ (notebook, data package, training_tools.py, public grader),
    of ``variant`` (None: the original)."""
    from .release import bundle_files
    assignment = os.path.join(directory, "source", "vae")
    os.makedirs(assignment, exist_ok=True)
    with open(os.path.join(directory, "nbgrader_config.py"), "w") as f:
        f.write(NBGRADER_CONFIG)
    nbformat.write(build_notebook(variant=variant), os.path.join(assignment, "vae.ipynb"))
    data = os.path.join(assignment, "data")
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    for name in os.listdir(os.path.join(ROOT, "data")):
        if name.endswith(".py"):
            shutil.copyfile(os.path.join(ROOT, "data", name), os.path.join(data, name))
    shutil.copyfile(os.path.join(ROOT, "assignment", "training_tools.py"), os.path.join(assignment, "training_tools.py"))
    grader = os.path.join(assignment, "grader")
    shutil.rmtree(grader, ignore_errors=True)
    for name, content in bundle_files(variant).items():  # the bundle's grader: its variant's stored values
        if name.startswith("grader/"):
            path = os.path.join(assignment, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content.encode() if isinstance(content, str) else content)
    return os.path.join(assignment, "vae.ipynb")
