"""Expected values, computed from the reference. Instructors only: never shipped to students.

For every check, the values a correct answer gives (from solution/vae.py) and the values
that known mistakes give ("variants"), so that a failed check can name the mistake. For
the student bundle, `python -m grader release` stores these for the public checks in
grader/fixtures/public.npz; the formulas below stay here.
"""
import importlib.util

import autograd.numpy as anp
import numpy as np
from autograd import make_vjp

from . import stand_ins
from .paths import SOLUTION

_reference = None


def reference():
    """solution/vae.py, imported once into the grader's own process."""
    global _reference
    if _reference is None:
        spec = importlib.util.spec_from_file_location("vae_reference", SOLUTION)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _reference = module
    return _reference


def vjp_of(fn, args, wrt, weights):
    vjp, _ = make_vjp(lambda x: fn(*(args[:wrt] + [x] + args[wrt + 1:])))(args[wrt])
    return vjp(weights)


def case_arrays(check, i):
    prefix = f"{check.key}/a{i}_"
    names = [k for k in check.inputs if k.startswith(prefix) and k[len(prefix):].isdigit()]
    return [check.inputs[n] for n in sorted(names, key=lambda k: int(k[len(prefix):]))]


# ------------------------------------------------------------------ wrong answers students give
def sigmoid(x):
    return 0.5 * (anp.tanh(x / 2.0) + 1.0)


def kl_logvar(x):
    mean, log_var = anp.split(x, 2, axis=-1)
    return anp.sum(0.5 * (anp.exp(log_var) + mean ** 2 - 1.0 - log_var), axis=-1)


def bernoulli_variants(ref, targets, logits, value):
    return {"negated": -value, "swapped": ref.bernoulli_log_prob(logits, targets),
            "mean": value / targets.shape[-1], "sigmoid_twice": ref.bernoulli_log_prob(targets, sigmoid(logits))}


def kl_variants(ref, x, value):
    latent = x.shape[-1] // 2
    return {"logvar": kl_logvar(x), "negated": -value, "mean": value / latent,
            "no_constant": value + latent / 2.0, "half_log": value + 0.5 * np.sum(x[:, latent:], axis=-1)}


def adam_variant(name):
    """An Adam step with one known mistake."""
    def step(params, g, m, v, t, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * (np.abs(g) if name == "abs_not_square" else g ** 2)
        t = {"bias_t_minus_1": t - 1, "bias_t_plus_1": t + 1}.get(name, t)
        with np.errstate(divide="ignore", invalid="ignore"):
            m_hat = m if name == "no_bias_correction" else m / (1 - beta1 ** t)
            v_hat = v if name == "no_bias_correction" else v / (1 - beta2 ** t)
            denominator = {"no_sqrt": v_hat + epsilon, "eps_inside": np.sqrt(v_hat + epsilon)}.get(
                name, np.sqrt(v_hat) + epsilon)
            sign = -1.0 if name == "descent" else 1.0
            return params + sign * learning_rate * m_hat / denominator, m, v
    return step


ADAM_MISTAKES = ("descent", "no_bias_correction", "bias_t_minus_1", "bias_t_plus_1", "no_sqrt",
                 "abs_not_square", "eps_inside")


def adam_sequence(step, check, carry=True):
    k = check.key
    params, m, v = (check.inputs[f"{k}/{n}"].copy() for n in ("params", "m", "v"))
    kwargs = {} if check.params["learning_rate"] is None else {"learning_rate": check.params["learning_rate"]}
    out = {}
    for i in range(len(check.params["scales"])):
        if not carry:
            m, v = np.zeros_like(m), np.zeros_like(v)
        params, m, v = step(params, check.inputs[f"{k}/g{i}"], m, v, i + 1, **kwargs)
        out.update({f"params{i}": params, f"m{i}": m, f"v{i}": v})
    return out


# ------------------------------------------------------------------ per family
def expected_values(check):
    """{name: array} for one check, computed with the reference."""
    ref = reference()
    family, out = check.family, {}
    if family.startswith("sample_"):
        return out  # judged by identities and statistics, no reference needed
    if family in ("bernoulli_values", "bernoulli_stability", "kl_values"):
        fn = ref.bernoulli_log_prob if family.startswith("bernoulli") else ref.compute_KL
        for i, _ in enumerate(check.params["cases"]):
            args = case_arrays(check, i)
            value = np.asarray(fn(*args), float)
            out[f"case{i}"] = value
            variants = bernoulli_variants(ref, *args, value) if fn is ref.bernoulli_log_prob \
                else kl_variants(ref, args[0], value)
            out.update({f"case{i}/{name}": np.asarray(v, float) for name, v in variants.items()})
        return out
    if family in ("bernoulli_gradient", "kl_gradient"):
        fn, wrt = (ref.bernoulli_log_prob, 1) if family.startswith("bernoulli") else (ref.compute_KL, 0)
        for i, _ in enumerate(check.params["cases"]):
            args, weights = case_arrays(check, i), check.inputs[f"{check.key}/w{i}"]
            out[f"grad{i}"] = np.asarray(vjp_of(fn, args, wrt, weights), float)
            if fn is ref.compute_KL:
                out[f"grad{i}/logvar"] = np.asarray(vjp_of(kl_logvar, args, 0, weights), float)
        return out
    if family.startswith("lower_bound"):
        k = check.key
        net = lambda names: [(check.inputs[names[i]], check.inputs[names[i + 1]]) for i in range(0, len(names), 2)]
        gen, rec, data = net(check.nets["gen"]), net(check.nets["rec"]), check.inputs[f"{k}/data"]
        chosen = {c: check.inputs[f"{k}/{c}"] for c in ("z", "B", "dB", "K", "dK", "e0", "l0")}
        value, grad, _ = stand_ins.lower_bound_with_stand_ins(ref, ref.vae_lower_bound, gen, rec, data, chosen)
        B, K = chosen["B"], chosen["K"]
        return {"main": np.asarray(value, float), "grad": np.asarray(grad, float),
                "sum": np.asarray(np.sum(B - K)), "plus_kl": np.asarray(np.mean(B + K)),
                "no_kl": np.asarray(np.mean(B)), "negated": -np.asarray(value, float)}
    if family == "adam":
        out = adam_sequence(ref.adam_step, check)
        for name in ADAM_MISTAKES:
            out.update({f"{name}/{key}": val for key, val in adam_sequence(adam_variant(name), check).items()})
        out.update({f"moments_not_carried/{key}": val
                    for key, val in adam_sequence(ref.adam_step, check, carry=False).items()})
        return {key: np.asarray(val, float) for key, val in out.items()}
    raise KeyError(f"no expected values for family {family}")
