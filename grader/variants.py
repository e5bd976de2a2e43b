"""Assignment variants: the one definition that release, the checks and the expected values read.

A variant is a choice on five convention axes, each a modelling choice a course could teach:

    encoder    the encoder's second half is log_std (log sigma) or log_var (log sigma^2)
    prior      p(z) = N(0, sigma_p^2 I) with sigma_p = 1, 2 or 0.5
    pixels     binarized pixels are {0, 1} or {-1, +1} (the encoder then reads (x + 1) / 2)
    direction  adam_step ascends the lower bound, or descends the loss -L
    bound      vae_lower_bound is the batch mean, or scaled to the data set: N / |B| * sum

``original`` is today's assignment (log_std, 1, {0, 1}, ascend, mean). Every other variant a
name can give changes the correct answer of at least three of the five graded functions (the
POOL). A name maps to a variant by a hash that never changes, so a name released once always
means the same variant: tests/test_variants.py pins several. Do not reorder AXES or their values,
and add new values only at the end of a new pool (a new POOL changes what old names mean).

This module holds no solution code: it ships in the student bundle, where the self-check reads
the bundle's variant (grader/fixtures/variant.json) and the phrases it names conventions by.
The texts of each variant's reference are in solution/variants.py (instructors only).
"""
import hashlib
import itertools
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLED = os.path.join(HERE, "fixtures", "variant.json")  # a student bundle's variant
ORIGINAL_NAME = "original"
DATASET_SIZE = 60000  # N of the "dataset" bound: MNIST's training images

S, B, K, LB, A = ("sample_latent_variables_from_posterior", "bernoulli_log_prob", "compute_KL",
                  "vae_lower_bound", "adam_step")

# axis -> its values, the original's first. Append only (see the module docstring).
AXES = {
    "encoder": ("log_std", "log_var"),
    "prior_std": (1.0, 2.0, 0.5),
    "pixels": ("01", "pm1"),
    "direction": ("ascend", "descend"),
    "bound": ("mean", "dataset"),
}
# axis -> the graded functions whose correct answer it changes
FUNCTIONS_OF_AXIS = {"encoder": (S, K), "prior_std": (K,), "pixels": (B, LB), "direction": (A,), "bound": (LB,)}
# the word each non-original value adds to a variant's canonical name
WORDS = {("encoder", "log_var"): "logvar", ("prior_std", 2.0): "prior2", ("prior_std", 0.5): "prior0.5",
         ("pixels", "pm1"): "pm1", ("direction", "descend"): "descend", ("bound", "dataset"): "dataset"}


def _prior(sigma):
    return "N(0, I)" if sigma == 1.0 else f"N(0, {sigma:g}^2 I)"


# (axis, value) -> (what a function right for it is right for, what this assignment says)
PHRASES = {
    ("encoder", "log_std"): ("an encoder that outputs log sigma (the log standard deviation)",
                             "the encoder outputs log sigma, the log standard deviation"),
    ("encoder", "log_var"): ("an encoder that outputs log sigma^2 (the log-variance)",
                             "the encoder outputs log sigma^2, the log-variance"),
    **{("prior_std", s): (f"the prior {_prior(s)}", f"the prior is {_prior(s)}") for s in AXES["prior_std"]},
    ("pixels", "01"): ("pixels that are 0 or 1", "the pixels are 0 or 1"),
    ("pixels", "pm1"): ("pixels that are -1 or +1", "the pixels are -1 or +1"),
    ("direction", "ascend"): ("an Adam step that ascends the lower bound (params + step)",
                              "adam_step ascends the lower bound (params + step)"),
    ("direction", "descend"): ("an Adam step that descends the loss -L (params - step)",
                               "adam_step descends the loss -L (params - step)"),
    ("bound", "mean"): ("a bound averaged over the batch",
                        "the bound is the mean over the batch"),
    ("bound", "dataset"): (f"a bound scaled to the data set (N / batch size times the sum, N = {DATASET_SIZE})",
                           f"the bound is scaled to the data set: N / batch size times the sum, N = {DATASET_SIZE}"),
}


class VariantError(ValueError):
    """A variant name that cannot be used (not a word), or a variant the kit cannot make."""


class Variant:
    """One choice of every axis. ``name``: what the instructor called it (several names can give
    the same variant); ``canonical``: the name of its conventions, which maps to it as well."""

    def __init__(self, axes, name=None):
        self.axes = dict(axes)
        for axis, value in self.axes.items():
            if value not in AXES[axis]:
                raise VariantError(f"{axis} cannot be {value!r}: it is one of {', '.join(map(str, AXES[axis]))}")
        self.canonical = "+".join(WORDS[(a, v)] for a, v in self.axes.items() if (a, v) in WORDS) or ORIGINAL_NAME
        self.name = name or self.canonical

    def __getattr__(self, axis):
        try:
            return self.__dict__["axes"][axis]
        except KeyError:
            raise AttributeError(axis) from None

    def __eq__(self, other):
        return isinstance(other, Variant) and self.axes == other.axes

    def __hash__(self):
        return hash(self.canonical)

    def __repr__(self):
        return f"Variant({self.name!r}: {self.canonical})"

    @property
    def is_original(self):
        return self.canonical == ORIGINAL_NAME

    def changed_functions(self):
        """The graded functions whose correct answer differs from the original's."""
        return [f for f in (S, B, K, LB, A)
                if any(self.axes[a] != AXES[a][0] for a, fs in FUNCTIONS_OF_AXIS.items() if f in fs)]

    def describe(self):
        """One line per axis, as the docs and variant.json say it."""
        return [PHRASES[(a, v)][1] for a, v in self.axes.items()]

    def as_json(self):
        return {"name": self.name, "canonical": self.canonical, "axes": self.axes, "conventions": self.describe(),
                "changed_functions": self.changed_functions()}

    # ---- what the checks need of a convention (no formula of any graded function)
    def log_scale(self, log_std):
        """The encoder's second half for a standard deviation exp(log_std)."""
        return 2.0 * log_std if self.encoder == "log_var" else log_std

    def std_exponent(self):
        """a in sigma = exp(a * second half): 1 for log_std, 1/2 for log_var."""
        return ENCODER_EXPONENT[self.encoder]

    def pixels_from_bits(self, bits):
        """Pixels in this variant's convention from 0/1 floats."""
        return 2.0 * bits - 1.0 if self.pixels == "pm1" else bits

    @property
    def second_half(self):
        """The name the student file gives the encoder's second half."""
        return self.encoder

    def sign(self):
        """+1: adam_step steps params + step (ascent); -1: params - step (descent)."""
        return 1.0 if self.direction == "ascend" else -1.0

    def neighbours(self, function):
        """[(variant, message)]: the variants whose conventions differ from this one's only on the
        axes that change ``function``, each with what to tell a student whose function is right
        for it. None for the original: its checks name its mistakes as they always have."""
        if self.is_original:
            return []
        axes = [a for a, fs in FUNCTIONS_OF_AXIS.items() if function in fs]
        out = []
        for values in itertools.product(*(AXES[a] for a in axes)):
            other = Variant(dict(self.axes, **dict(zip(axes, values))))
            if other != self:
                differ = [a for a in axes if other.axes[a] != self.axes[a]]
                out.append((other, convention_message(function, other, self, differ)))
        return out


ENCODER_EXPONENT = {"log_std": 1.0, "log_var": 0.5}


def convention_message(function, other, own, differ):
    right_for = " and ".join(PHRASES[(a, other.axes[a])][0] for a in differ)
    here = "; ".join(PHRASES[(a, own.axes[a])][1] for a in differ)
    return f"{function} is right for {right_for}, another version of this assignment; in this one {here}"


ORIGINAL = Variant({a: values[0] for a, values in AXES.items()})
# Every variant a name can give: the combinations that change at least three graded functions,
# in the order of itertools.product over AXES. Frozen (see the module docstring).
POOL = [v for v in (Variant(dict(zip(AXES, values))) for values in itertools.product(*AXES.values()))
        if len(v.changed_functions()) >= 3]
BY_CANONICAL = {v.canonical: v for v in POOL + [ORIGINAL]}
_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


def _digest(text):
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16)


def variant(name):
    """The variant a name gives: ``original``, a canonical name (logvar+pm1+descend), or any other
    word, which maps by a hash that never changes. Case and surrounding spaces do not matter."""
    if isinstance(name, Variant):
        return name
    word = (name or ORIGINAL_NAME).strip()
    if not _WORD.match(word):
        raise VariantError(f"a variant name is one word of letters, digits and _ . + - (up to 64), "
                           f"such as fall2027; got {name!r}")
    key = word.lower()
    if key in BY_CANONICAL:
        return Variant(BY_CANONICAL[key].axes, name=word)
    words = {w: axis_value for axis_value, w in WORDS.items()}
    if all(w in words for w in key.split("+")):  # conventions spelled out, but not a variant of the pool
        axes = dict(ORIGINAL.axes, **dict(words[w] for w in key.split("+")))
        raise VariantError(f"{word} changes {len(Variant(axes).changed_functions())} of the five graded functions; "
                           f"a variant changes at least three (the canonical names: python -m grader variants)")
    return Variant(POOL[_digest(f"vae-variant:{key}") % len(POOL)].axes, name=word)


def roster_variants(name, count):
    """The variants of ``count`` students in roster order: neighbours always differ, and the
    sequence starts where ``name`` says (the same roster and name give the same variants)."""
    start = _digest(f"vae-roster:{name.strip().lower()}") % len(POOL)
    step = next(s for s in (7, 11, 13, 17, 19, 23, 1) if len(POOL) % s)  # coprime: the pool is walked whole
    return [POOL[(start + i * step) % len(POOL)] for i in range(count)]


def bundled():
    """The variant of a student bundle (grader/fixtures/variant.json), or the original in the kit."""
    if not os.path.exists(BUNDLED):
        return ORIGINAL
    with open(BUNDLED) as f:
        saved = json.load(f)
    return Variant(saved["axes"], name=saved.get("name"))


def default():
    """The variant a command grades when it is not told: the bundle's, else the original."""
    return bundled()
