"""The grader's checks as pytest tests, for instructors who like pytest's tooling:

    pytest grader --submission path/to/vae.py [--public-only] [-k compute_KL]
    pytest grader --submission path/to/flows.py      (the optional part)
    pytest grader --submission path/to/vae.py --variant fall2027   (a variant of the assignment)

One test per check, named after it; a failed test shows the check's hint. The checks
run once, in the isolated child process, exactly as `python -m grader check` runs them;
the checks of the other part are skipped.
"""
import pytest

from grader.parts import PARTS, public_checks
from grader.grade import evaluate, reference_available


def _checks(variant=None):
    from grader.variants import default, variant as variant_named
    variant = variant_named(variant) if variant else default()  # a bundle's own variant, else the original
    parts = PARTS if variant.is_original else ["vae"]
    checks = [c for part in parts for c in public_checks(part, variant)]
    if reference_available():
        from grader.hidden import hidden_checks
        checks += [c for part in parts for c in hidden_checks(part, variant)]
    return checks


def pytest_generate_tests(metafunc):
    """One test per check, of the variant --variant names (by default the original)."""
    if "check" in metafunc.fixturenames:
        checks = _checks(metafunc.config.getoption("--variant"))
        metafunc.parametrize("check", checks, ids=[c.key for c in checks])


@pytest.fixture(scope="session")
def graded(request):
    path = request.config.getoption("--submission")
    if not path:
        pytest.skip("no submission given: pytest grader --submission FILE")
    hidden = reference_available() and not request.config.getoption("--public-only")
    result = evaluate(path, include_hidden=hidden, isolation="auto" if request.config.getoption("--sandbox") else "none",
                      variant=request.config.getoption("--variant"))
    return result["part"], {t["name"]: t for t in result["tests"]}


def test_check(check, graded):
    part, graded = graded
    if check.part != part:
        pytest.skip(f"a check of {check.part}.py; the submission is {part}.py")
    name = f"{check.function}: {check.name}"
    if name not in graded:
        pytest.skip("hidden check (--public-only)")
    test = graded[name]
    if test["advice"] and test["max_score"] == 0 and test["status"] != "passed":
        pytest.xfail(f"advice, no points: {test['output']}")
    assert test["status"] == "passed", test["output"]
