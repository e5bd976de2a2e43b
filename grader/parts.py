"""The graded parts of the assignment, gathered: vae.py (grader/checks.py) and the optional
flows.py (grader/flow_checks.py), each entered in grader/registry.py. Import the parts, their
public checks and which part a file answers from here."""
import os

from . import flow_checks  # noqa: F401  (enters flows.py's part)
from .checks import FUNCTIONS
from .registry import FUNCTIONS_OF, PUBLIC, Check, Failed  # noqa: F401  (re-exported)

PARTS = {part: FUNCTIONS_OF[part] for part in ("vae", "flows")}  # the graded file of each part is PART.py
FLOW_FUNCTIONS = PARTS["flows"]


def public_checks(part="vae", variant=None):
    """The checks students can run on ``part`` ("vae": the five functions of vae.py; "flows": the
    optional flows.py), in the conventions of ``variant`` (by default the original): their inputs
    and expected values ship with the assignment."""
    if part not in PUBLIC:
        raise ValueError(f"unknown part {part!r}: the parts are {', '.join(PARTS)}")
    return PUBLIC[part](variant)


def part_of(path):
    """The part a submission belongs to, from its file name: flows.py (or *flows*.py) is flows."""
    return "flows" if "flows" in os.path.basename(path) else "vae"
