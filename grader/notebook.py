"""The checks inside a Jupyter notebook (nbgrader's autograder test cells).

In a notebook the checks run in the student's own kernel: that is nbgrader's model, and
it trusts the student's code as much as nbgrader does. For grading that does not, export
the answers to a .py file and use `python -m grader grade` (a separate, limited process).

A test cell ends with ``check_function(name, globals(), hidden)``: it prints what failed,
with the hints, to stdout (nbgrader scores any stderr output 0, so nothing goes there) and
returns the points earned, which nbgrader takes as the cell's partial credit. The same
checks, weights and judging as `python -m grader check`, so the scores agree.
"""
import base64
import contextlib
import io
import json
import warnings

import numpy as np

from . import variants
from .parts import Check, public_checks
from .child import run_call
from .grade import judge_check, score_result, expected_for, load_config


class _Namespace:
    """The notebook's globals as a module: the stand-ins patch names where its functions look."""

    def __init__(self, namespace):
        self.__dict__ = namespace


def encode_hidden(checks, expected):
    """The hidden checks of one function and their expected values, as text for a hidden test cell."""
    specs = [dict(name=c.name, function=c.function, family=c.family, weight=c.weight, seed=c.seed,
                  advice=c.advice, variant=c.variant.canonical, **c.params) for c in checks]
    arrays = {f"{i}|{name}": value for i, c in enumerate(checks) for name, value in expected[c.key].items()}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, __specs__=np.array(json.dumps(specs)), **arrays)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_hidden(text):
    with np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False) as saved:
        specs = json.loads(str(saved["__specs__"]))
        stored = {k: saved[k] for k in saved.files if k != "__specs__"}
    checks, expected = [], {}
    for i, spec in enumerate(specs):
        check = Check(hidden=True, **spec)
        checks.append(check)
        expected[check.key] = {k.split("|", 1)[1]: v for k, v in stored.items() if k.split("|", 1)[0] == str(i)}
    return checks, expected


def check_function(function, namespace, hidden=None, quiet=False):
    """Run the checks of ``function`` on the notebook's definitions; print hints; return the points."""
    checks = [c for c in public_checks(variant=variants.default()) if c.function == function]
    expected = dict(expected_for(checks, use_reference=False))
    if hidden:
        hidden_checks, hidden_expected = decode_hidden(hidden)
        checks += hidden_checks
        expected.update(hidden_expected)
    module, answers = _Namespace(namespace), {}
    with warnings.catch_warnings(), np.errstate(all="ignore"), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        for check in checks:
            for call in check.calls:
                try:
                    header, arrays = run_call(module, call, check.inputs)
                except (Exception, SystemExit) as e:
                    header, arrays = {"status": "raised", "message": f"{function} raised {type(e).__name__}: {e}"}, {}
                answers[call["id"]] = (dict(header, id=call["id"]), arrays)
    result = {"tests": [judge_check(c, {"status": "ok"}, answers, expected[c.key]) for c in checks], "warnings": []}
    score_result(result, checks, load_config())
    points = result["functions"][function]
    if not quiet:
        print(f"{function}: {points['score']:g} / {points['max_score']:g}")
        for test in result["tests"]:
            if test["status"] != "passed":
                label = "advice" if test["advice"] else f"{test['score']:g} / {test['max_score']:.3g}"
                print(f"  failed: {test['check']} ({label})\n      {test['output']}")
    return round(points["score"], 4)
