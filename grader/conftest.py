"""pytest's options for grading a submission: pytest grader --submission FILE [--public-only]."""


def pytest_addoption(parser):
    group = parser.getgroup("vae grader")
    group.addoption("--submission", default=None, help="the vae.py (or flows.py) to grade")
    group.addoption("--public-only", action="store_true", help="skip the hidden checks")
    group.addoption("--sandbox", action="store_true", help="isolate the submission as grade does (bubblewrap, or another user as root)")
    group.addoption("--variant", default=None, help="the assignment's variant (default: the original)")
