"""Judge one submission: run the checks in a child process, score them here, report.

Every interface (the self-check, batch grading, pytest, nbgrader, Gradescope) goes
through ``evaluate``; the JSON it returns is the format of ``check --json``.
"""
import json
import os
import sys
import threading
import time

import numpy as np

from . import variants
from .parts import PARTS, Failed, part_of, public_checks
from .intake import Refused, readable_source
from .isolation import choose as choose_isolation
from .runner import Limits, run_submission

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "config.json")
FIXTURES = os.path.join(HERE, "fixtures", "public.npz")
# a child's account of a function it could not run, and the name a grade summary counts it under
IMPORT_FAILED = "the file failed to import"
NOT_ON_ROSTER = "not on the roster"  # the variant of a submission that matches no one on a per-student roster
FUNCTION_FAILURES = {"missing": "not defined in the file", "not_implemented": "not implemented (still the stub)",
                     "signature": "cannot be called with the assignment's signature",
                     "syntax": "a syntax error in the function"}


class GraderError(RuntimeError):
    """The grader cannot run as asked (no reference for hidden checks, stale fixtures...)."""


def load_config(path=None):
    with open(path or os.environ.get("VAE_GRADER_CONFIG") or CONFIG) as f:
        return json.load(f)


def reference_available():
    from .paths import SOLUTION
    return os.path.exists(SOLUTION) and os.path.exists(os.path.join(HERE, "expected.py"))


def checks_for(include_hidden, part="vae", variant=None):
    try:
        checks = public_checks(part, variant)
        if include_hidden:
            if not reference_available():
                raise GraderError("hidden checks need the reference (solution/vae.py and grader/expected.py), "
                                  "which students do not receive")
            from .hidden import hidden_checks
            checks += hidden_checks(part, variant)
    except variants.VariantError as e:
        raise GraderError(str(e)) from None
    return checks


def fixture_name(check_key, name):
    """The key of one expected value in public.npz; "/" is not allowed there, "|" stands in
    (check keys and value names hold no "|")."""
    return f"{check_key}::{name}".replace("/", "|")


def compute_fixtures(variant=None):
    """Expected values of the public checks of ``variant`` (by default the original), from its
    reference: what students receive (flows.py's too, in the original)."""
    from .expected import expected_values
    variant = variants.variant(variant) if variant is not None else variants.ORIGINAL
    parts = PARTS if variant.is_original else ["vae"]
    return {fixture_name(c.key, name): value for part in parts for c in public_checks(part, variant)
            for name, value in expected_values(c).items()}


_expected_cache, _expected_lock = {}, threading.Lock()


def expected_for(checks, use_reference):
    """{check key: expected values}; computed once per process (batch grading reuses them)."""
    cache_key = (use_reference, tuple(c.key for c in checks), tuple(sorted({c.variant.canonical for c in checks})))
    with _expected_lock:  # the reference module is shared, and the stand-ins patch it while they run
        if cache_key not in _expected_cache:
            _expected_cache[cache_key] = _compute_expected(checks, use_reference)
        return _expected_cache[cache_key]


def _compute_expected(checks, use_reference):
    if use_reference:
        from .expected import expected_values
        return {c.key: expected_values(c) for c in checks}
    if not os.path.exists(FIXTURES):
        raise GraderError(f"{FIXTURES} is missing: the instructor's `python -m grader release` writes it")
    stored_variant = variants.bundled()
    for check in checks:
        if check.variant != stored_variant:
            raise GraderError(f"the stored expected values are those of variant {stored_variant.name}, not of "
                              f"{check.variant.name}: grading another variant needs the reference (the kit)")
    with np.load(FIXTURES, allow_pickle=False) as saved:
        stored = {k: saved[k] for k in saved.files}
    expected = {}
    for check in checks:
        prefix = fixture_name(check.key, "")
        expected[check.key] = {k[len(prefix):].replace("|", "/"): v for k, v in stored.items() if k.startswith(prefix)}
        if not expected[check.key] and not check.family.startswith("sample_"):
            raise GraderError(f"no stored expected values for {check.key}: the fixtures are stale; "
                              f"run `python -m grader release`")
    return expected


def evaluate(path, include_hidden=False, isolation="none", config=None, use_reference=None, hidden_paths=(),
             part=None, refused=None, variant=None):
    """Grade the file at ``path`` as ``part`` ("vae" or "flows"; by default from the file name),
    running it isolated as ``isolation`` says: "none" (process limits only), "auto", "bwrap",
    "user", or an isolation.Isolation already chosen. Returns the result dict (see check --json);
    raises IsolationError when the isolation asked for cannot be had. ``refused``: why the
    submission cannot be graded at all (grader/intake.py), for a result of 0 saying so. ``variant``:
    the assignment's variant (a name or a Variant; by default a bundle's own, else the original)."""
    config = config or load_config()
    if isinstance(isolation, str):
        isolation = choose_isolation(isolation)
    part = part or part_of(path)
    use_reference = reference_available() if use_reference is None else use_reference
    try:
        variant = variants.variant(variant) if variant is not None else variants.default()
    except variants.VariantError as e:
        raise GraderError(str(e)) from None
    checks = checks_for(include_hidden, part, variant)
    expected = expected_for(checks, use_reference)
    started = time.time()
    result = {"submission": path, "part": part, "tests": [], "warnings": [], "isolation": isolation.mode}
    if not variant.is_original:
        result["variant"] = variant.canonical
    source = None
    if refused is None and not os.path.lexists(path):
        refused = f"no file {os.path.basename(path)} was handed in"
    elif refused is None:
        try:
            source = readable_source(path)
        except Refused as e:
            refused = str(e)
    if source is not None:
        result["warnings"].append(f"graded the code cells of the notebook {os.path.basename(path)} (magics and shell "
                                  f"lines left out)")
    if refused:
        import_info, answers, log = {"status": "raised", "message": refused}, {}, ""
    else:
        inputs, calls = {}, []
        for check in checks:
            inputs.update(check.inputs)
            calls.extend(check.calls)
        import_info, answers, log = run_submission(path, calls, inputs, Limits(**config.get("limits", {})),
                                                   isolation=isolation, hidden_paths=hidden_paths, module=part,
                                                   source=source, display_name=os.path.basename(path))
    if import_info.get("status") == "ok" and import_info.get("skipped"):
        lines = ", ".join(str(n) for n in import_info["skipped"][:8])
        result["warnings"].append(f"top-level code at line(s) {lines} of your file was not run: the grader runs only "
                                  f"imports, definitions and constants. Keep training under "
                                  f"`if __name__ == '__main__':`.")
    broken = import_info.get("broken", {}) if import_info.get("status") == "ok" else {}
    for name, message in broken.items() if isinstance(broken, dict) else []:
        result["warnings"].append(f"{name} has a syntax error, so it scores 0; the other functions were graded"
                                  if name in PARTS[part] else
                                  f"{message.split(';')[0]}: it was left out, and what calls it fails")
    for line, why in import_info.get("failed", []) if import_info.get("status") == "ok" else []:
        result["warnings"].append(f"top-level code at line {line} of your file failed ({why[:300]}); it was skipped, and "
                                  f"your functions were graded without it")
    for check in checks:
        result["tests"].append(judge_check(check, import_info, answers, expected[check.key]))
    score_result(result, checks, config)
    result["seconds"] = round(time.time() - started, 2)
    result["output_tail"] = log[-1000:]
    return result


def judge_check(check, import_info, answers, expected):
    test = {"name": f"{check.function}: {check.name}", "function": check.function, "check": check.name,
            "hidden": check.hidden, "advice": check.advice}
    if import_info.get("status") != "ok":
        return dict(test, status="failed", output=import_info.get("message", "your file could not be imported"),
                    reason="import", mistake=IMPORT_FAILED)
    for call in check.calls:
        header = answers[call["id"]][0]
        if header.get("status") in FUNCTION_FAILURES:
            return dict(test, status="failed", output=header.get("message", ""), reason=header["status"],
                        mistake=FUNCTION_FAILURES[header["status"]])
    try:
        check.judge(answers, expected)
        return dict(test, status="passed", output="")
    except Failed as e:
        test = dict(test, status="failed", output=str(e), mistake=e.mistake)
        return dict(test, convention=e.convention) if e.convention else test
    except Exception as e:  # a malformed answer the judge did not foresee: fail the check, never the grader
        return dict(test, status="failed", output=f"the grader could not judge this answer ({type(e).__name__}: {e})")


def score_result(result, checks, config):
    """Each check's points; a function whose answer is right for another variant's conventions
    scores 0 whole, each of its checks saying so."""
    points, advice_points = config["points"], config.get("stability_points", 0)
    functions = list(dict.fromkeys(c.function for c in checks))
    weights = {f: sum(c.weight for c in checks if c.function == f and not c.advice) for f in functions}
    other = {t["function"]: t for t in result["tests"] if t.get("convention")}
    for check, test in zip(checks, result["tests"]):
        if check.advice:
            test["max_score"] = float(advice_points)
        else:
            test["max_score"] = points[check.function] * check.weight / weights[check.function]
        if check.function in other and not test.get("convention"):
            said = other[check.function]
            output = ("not counted: " + said["output"] if test["status"] == "passed" else
                      f"{said['output']} (and this check: {test['output']})")
            test.update(status="failed", output=output, mistake=said["mistake"], convention=said["convention"])
        test["score"] = test["max_score"] if test["status"] == "passed" else 0.0
    result["score"] = round(sum(t["score"] for t in result["tests"]), 4)
    result["max_score"] = round(sum(t["max_score"] for t in result["tests"]), 4)
    result["functions"] = {f: {"score": round(sum(t["score"] for t in result["tests"] if t["function"] == f), 4),
                               "max_score": round(sum(t["max_score"] for t in result["tests"] if t["function"] == f), 4)}
                           for f in functions}


def public_json(result):
    """The documented JSON: score, max_score and the tests' name, function, score, max_score, status, output."""
    keys = ("name", "function", "score", "max_score", "status", "output")
    return {"score": result["score"], "max_score": result["max_score"],
            "tests": [{k: t[k] for k in keys} for t in result["tests"]], "warnings": result["warnings"]}


def text_report(result, hidden_note=True):
    """What a student reads in a terminal: per function, its points, then each check with its hint."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗".encode(encoding)
        ok, bad = "✓", "✗"
    except (UnicodeEncodeError, LookupError):
        ok, bad = "ok", "X"
    lines = [f"Checking {os.path.basename(result['submission'])}"]  # never the instructor's folders
    lines += [f"warning: {w}" for w in result["warnings"]]
    not_imported = all(t.get("reason") == "import" for t in result["tests"])
    if not_imported:
        lines.append(f"{bad} {result['tests'][0]['output']}")
    for function in result["functions"]:
        tests = [t for t in result["tests"] if t["function"] == function]
        summary = result["functions"][function]
        lines.append("")
        lines.append(f"{function:<50s}{summary['score']:6.1f} / {summary['max_score']:g}")
        reasons = {t.get("reason") for t in tests}
        if not_imported:
            continue
        if len(tests) > 1 and len(reasons) == 1 and reasons & set(FUNCTION_FAILURES):
            lines.append(f"  {bad} {tests[0]['output']}")
            continue
        other = next((t for t in tests if t.get("convention") and not t["output"].startswith("not counted")), None)
        if other and all(t.get("convention") or t["advice"] for t in tests):  # one line: every check says it
            lines.append(f"  {bad} {other['output']}")
            continue
        for t in tests:
            if t["advice"]:
                mark = ok if t["status"] == "passed" else "!"
                label = f"advice, {t['max_score']:g} points" if t["max_score"] else "advice, no points"
                lines.append(f"  {mark} {t['check']} ({label})")
            else:
                lines.append(f"  {ok if t['status'] == 'passed' else bad} {t['check']}"
                             + ("" if t["status"] == "passed" else f"  ({t['score']:g} / {t['max_score']:.3g})"))
            if t["status"] != "passed":
                lines.append(f"      {t['output']}")
    lines.append("")
    lines.append(f"Total: {result['score']:g} / {result['max_score']:g}")
    if not any(t["hidden"] for t in result["tests"]):
        if hidden_note:
            lines.append("(public checks only; grading adds hidden checks of the same kinds on other inputs, and "
                         "each function's points are then shared among all its checks, so each is worth less)")
    else:
        lines.append("(each function's points are shared among its public and hidden checks, so a check is worth "
                     "less here than in the self-check)")
    return "\n".join(lines)
