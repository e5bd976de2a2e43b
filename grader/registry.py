"""What every part's checks share: the Check, how a failure is reported, the helpers that judge
numbers, and the registry in which each part (grader/checks.py for vae.py, grader/flow_checks.py
for flows.py) enters its builders, judges and public checks. It knows no part: the parts import
it, and grader/parts.py gathers them, so the import graph has no circle.
"""
import re

import numpy as np

from . import variants

BUILDERS, JUDGES = {}, {}  # family -> how its inputs and calls are built, how its answers are judged
PUBLIC = {}  # part -> its public checks (a function)
FUNCTIONS_OF = {}  # part -> its graded functions, in order
PART_OF_FUNCTION = {}  # graded function -> its part


def register(part, functions, builders, judges, public):
    """Enter a part: its graded functions, the builders and judges of its check families, and the
    function that returns its public checks."""
    FUNCTIONS_OF[part] = list(functions)
    PART_OF_FUNCTION.update({f: part for f in functions})
    BUILDERS.update(builders)
    JUDGES.update(judges)
    PUBLIC[part] = public


def only_original(variant):
    """VariantError unless ``variant`` is the original: the optional flows.py exists only there."""
    if variant is not None and not variants.variant(variant).is_original:
        raise variants.VariantError(f"the optional flows.py part is written for the original assignment only, "
                                    f"not for variant {variants.variant(variant).name}")


RTOL, ATOL = 1e-6, 1e-8
FD_STEP, FD_RTOL = 1e-5, 1e-4
HIDDEN_FROM_AUTOGRAD = "autograd cannot see part of the computation (its gradient disagrees with finite differences)"


class Check:
    """One named check of one function. ``family`` names how expected values are computed."""

    def __init__(self, name, function, family, weight, seed, hidden=False, advice=False, variant=None, **params):
        self.name, self.function, self.family = name, function, family
        self.weight, self.seed, self.hidden, self.advice = weight, seed, hidden, advice
        self.variant = variants.variant(variant) if variant is not None else variants.ORIGINAL  # its conventions
        self.params = params
        self.inputs, self.calls = BUILDERS[family](self, np.random.RandomState(seed), **params)

    @property
    def key(self):
        return f"{self.function}/{self.name}"

    @property
    def part(self):
        return PART_OF_FUNCTION[self.function]

    def call_id(self, suffix):
        return f"{self.key}/{suffix}"

    def judge(self, results, expected):
        """(passed, message) from the child's results and the grader's expected values."""
        return JUDGES[self.family](self, results, expected)


# ------------------------------------------------------------------ helpers for judging
class Failed(Exception):
    """Raised inside a judge with the message to show. ``mistake``: a short, fixed name for a known
    mistake, by which grade summaries count the students who made it (None: not a named one)."""

    def __init__(self, message, mistake=None, convention=None):
        super().__init__(message)
        self.mistake = mistake
        self.convention = convention  # the canonical name of the variant this answer is right for


class OtherConvention(Failed):
    """An answer that is right for another variant of the assignment: the function scores 0 whole.
    Summaries count it under one name per function, as a signal for the instructor."""

    def __init__(self, message, other):
        super().__init__(message, mistake=OTHER_CONVENTION, convention=other.canonical)


OTHER_CONVENTION = "right for another version's conventions"


class Named(Failed):
    """A known mistake whose message names it and holds no numbers of this student's: the message
    is its name."""

    def __init__(self, message):
        super().__init__(message, mistake=message)


def call_failed(header):
    """Failed with the child's own account of a call that did not answer (it raised, hung, ended)."""
    message = header.get("message", "no answer")
    label = re.search(r"autograd cannot differentiate np\.\w+|raised \w+|did not finish within|ended the process"
                      r"|sent more data", message)
    return Failed(message, mistake=label.group(0).replace("raised", "raises") if label else None)


def answer(check, results, suffix, *keys):
    """The arrays a call returned, or Failed with the call's own error."""
    header, arrays = results[check.call_id(suffix)]
    if header.get("status") != "ok":
        raise call_failed(header)
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise Failed(f"no {missing[0]} came back")
    return [arrays[k] for k in keys] if len(keys) > 1 else arrays[keys[0]]


def shape_of(got, expected_shape, what, hints=()):
    if got.shape != tuple(expected_shape):
        message = f"{what} has shape {got.shape}, expected {tuple(expected_shape)}"
        for shape, hint in hints:
            if got.shape == tuple(shape):
                message += f": {hint}"
                raise Failed(message, mistake=hint)
        raise Failed(message)
    if not np.all(np.isfinite(got)):
        bad = np.argwhere(~np.isfinite(got))[0]
        raise Failed(f"{what} is not finite: {got[tuple(bad)]} at index {tuple(int(i) for i in bad)}")


def close(got, want, rtol=RTOL, atol=ATOL):
    return got.shape == want.shape and np.allclose(got, want, rtol=rtol, atol=atol)


def differs(got, want, what, rtol=RTOL, atol=ATOL):
    """'expected ..., got ... at index ... (relative difference ...)' where the answer is furthest
    outside the tolerance, with as many digits as it takes to see that the two differ."""
    with np.errstate(invalid="ignore"):
        excess = np.nan_to_num(np.abs(got - want) / (atol + rtol * np.abs(want)), nan=np.inf)
    index = np.unravel_index(np.argmax(excess), excess.shape) if excess.ndim else ()
    where = f" at index {tuple(int(i) for i in index)}" if index else ""
    expected, answer = float(want[index]), float(got[index])
    shown_expected, shown_answer = _distinct(expected, answer)
    gap = abs(answer - expected)
    size = (f"relative difference {gap / abs(expected):.2g}" if expected and np.isfinite(gap)
            else f"difference {gap:.2g}")
    return f"{what}: expected {shown_expected}, got {shown_answer}{where} ({size})"


def _distinct(a, b):
    """a and b with the fewest significant digits (at least 6) that tell them apart."""
    for digits in range(6, 18):
        shown = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if shown[0] != shown[1]:
            return shown
    return shown


def _fmt(x):
    return f"{float(x):.6g}"


def name_mistake(got, expected, mistakes, what, check=None):
    """Failed naming the first known mistake whose values match, else the largest difference. With
    ``check``, in a variant other than the original, an answer right for another variant's
    conventions is named first (OtherConvention)."""
    if check is not None:
        other_convention(check, lambda key: key in expected and close(got, expected[key], rtol=1e-5, atol=1e-6))
    for name, message in mistakes:
        if name in expected and close(got, expected[name], rtol=1e-5, atol=1e-6):
            raise Named(message)
    raise Failed(differs(got, expected["value"], what))


def convention_key(other):
    """The name under which expected values hold what variant ``other``'s reference gives."""
    return f"convention:{other.canonical}"


def other_convention(check, matches):
    """OtherConvention for the first neighbouring variant whose values ``matches(key)`` accepts."""
    for other, message in check.variant.neighbours(check.function):
        if matches(convention_key(other)):
            raise OtherConvention(message, other)


def with_mistakes(expected, case):
    """The expected values of one case ('value') and its mistakes' values ('case/NAME' -> 'NAME')."""
    prefix = f"{case}/"
    return {"value": expected[case], **{k[len(prefix):]: v for k, v in expected.items() if k.startswith(prefix)}}


def directional_fd(check, results, suffixes, weights, direction, grad):
    """Central finite difference of sum(weights * f) along direction, against the autograd gradient."""
    plus, minus = (answer(check, results, s, "out") for s in suffixes)
    fd = (np.sum(weights * plus) - np.sum(weights * minus)) / (2 * FD_STEP)
    analytic = float(np.sum(grad * direction))
    if not abs(fd - analytic) <= FD_RTOL * (1 + abs(fd)):
        raise Failed(f"autograd's gradient of your function ({analytic:.6g} along a random direction) does not "
                     f"match its finite differences ({fd:.6g}): autograd cannot see part of the computation "
                     f"(plain numpy instead of autograd.numpy, in-place writes, float() or .astype on the way)",
                     mistake=HIDDEN_FROM_AUTOGRAD)


def value_call(check, suffix, function, args, **extra):
    return dict({"id": check.call_id(suffix), "function": function, "kind": "value", "args": args}, **extra)
