"""Expected values, computed from the reference. Instructors only: never shipped to students.

For every check, the values a correct answer gives (from solution/vae.py) and the values
that known mistakes give ("mistakes"), so that a failed check can name the mistake. For
the student bundle, `python -m grader release` stores these for the public checks in
grader/fixtures/public.npz; the formulas below stay here.
"""
import importlib.util
import os
import sys

import autograd.numpy as anp
import numpy as np
from autograd import make_vjp

from . import stand_ins
from .checks import adam_keywords
from .flow_checks import CONSTRAIN, FLOW_FUNCTIONS
from .registry import convention_key
from .paths import SOLUTION
from .variants import DATASET_SIZE, ORIGINAL

_references = {}


def reference(variant=ORIGINAL):
    """The reference of ``variant``, imported once into the grader's own process: solution/vae.py
    for the original, its rendering by solution/variants.py for any other."""
    if variant.canonical not in _references:
        folder = os.path.dirname(SOLUTION)
        sys.path.insert(0, folder)  # as `python solution/vae.py` has it: its training_tools.py beside it
        try:
            if variant.is_original:
                spec = importlib.util.spec_from_file_location("vae_reference", SOLUTION)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            else:
                module = variant_module(variant)
        finally:
            sys.path.remove(folder)
        _references[variant.canonical] = module
    return _references[variant.canonical]


def render(variant):
    """The text of ``variant``'s complete reference: solution/vae.py for the original, else its
    rendering by solution/variants.py."""
    if variant.is_original:
        with open(SOLUTION) as f:
            return f.read()
    spec = importlib.util.spec_from_file_location("solution_variants", os.path.join(os.path.dirname(SOLUTION),
                                                                                    "variants.py"))
    renderer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(renderer)
    return renderer.render(variant)


def variant_module(variant, name=None):
    """A fresh module of ``variant``'s reference."""
    import types
    module = types.ModuleType(name or f"vae_reference_{variant.canonical}")
    module.__file__ = SOLUTION  # it lives where the reference does (its training_tools beside it)
    folder = os.path.dirname(SOLUTION)
    sys.path.insert(0, folder)
    try:
        exec(compile(render(variant), f"<solution/vae.py as variant {variant.canonical}>", "exec"), module.__dict__)
    finally:
        sys.path.remove(folder)
    return module


_flows_reference = None


def flows_reference():
    """solution/flows.py, importing the reference vae; sys.path and sys.modules are left as they were."""
    global _flows_reference
    if _flows_reference is None:
        saved_path, saved_vae = list(sys.path), sys.modules.get("vae")
        sys.modules["vae"] = reference(ORIGINAL)
        try:
            spec = importlib.util.spec_from_file_location("flows_reference",
                                                          os.path.join(os.path.dirname(SOLUTION), "flows.py"))
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        finally:
            sys.path[:] = saved_path
            if saved_vae is None:
                sys.modules.pop("vae", None)
            else:
                sys.modules["vae"] = saved_vae
        _flows_reference = module
    return _flows_reference


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


def bernoulli_mistakes(ref, targets, logits, value):
    return {"negated": -value, "swapped": ref.bernoulli_log_prob(logits, targets),
            "mean": value / targets.shape[-1], "sigmoid_twice": ref.bernoulli_log_prob(targets, sigmoid(logits))}


def kl_mistakes(variant, x, value):
    """The KL's known mistakes, each where its message holds for the variant's conventions."""
    latent = x.shape[-1] // 2
    out = {"negated": -value, "mean": value / latent}
    out["no_constant" if variant.prior_std == 1.0 else "no_constant_prior"] = value + latent / 2.0
    if variant.encoder == "log_std":
        out["half_log"] = value + 0.5 * np.sum(x[:, latent:], axis=-1)
        if variant.prior_std == 1.0:
            out["logvar"] = kl_logvar(x)
    return out


def adam_with_mistake(name, direction=1.0):
    """An Adam step with one known mistake; ``direction``: +1 when the right step ascends, -1 when
    it descends ("descent" steps the other way)."""
    def step(params, g, m, v, t, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * (np.abs(g) if name == "abs_not_square" else g ** 2)
        t = {"bias_t_minus_1": t - 1, "bias_t_plus_1": t + 1}.get(name, t)
        with np.errstate(divide="ignore", invalid="ignore"):
            m_hat = m if name == "no_bias_correction" else m / (1 - beta1 ** t)
            v_hat = v if name == "no_bias_correction" else v / (1 - beta2 ** t)
            denominator = {"no_sqrt": v_hat + epsilon, "eps_inside": np.sqrt(v_hat + epsilon)}.get(
                name, np.sqrt(v_hat) + epsilon)
            sign = -direction if name == "descent" else direction
            return params + sign * learning_rate * m_hat / denominator, m, v
    return step


ADAM_MISTAKES = ("descent", "no_bias_correction", "bias_t_minus_1", "bias_t_plus_1", "no_sqrt",
                 "abs_not_square", "eps_inside")


def adam_sequence(step, check, carry=True, default=None):
    """The check's steps taken with ``step``; ``default``: arguments left at their defaults, as a
    step that ignores what it is given would."""
    k = check.key
    params, m, v = (check.inputs[f"{k}/{n}"].copy() for n in ("params", "m", "v"))
    kwargs = {k: v for k, v in adam_keywords(check.params).items() if k not in (default or ())}
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
    if check.function in FLOW_FUNCTIONS:
        return {key: np.asarray(value, float) for key, value in flow_expected_values(check).items()}
    variant = check.variant
    ref = reference(variant)
    # what each neighbouring variant's reference answers: an answer right for one of them is named so
    neighbours = [(convention_key(other), reference(other)) for other, _ in variant.neighbours(check.function)]
    family, out = check.family, {}
    if family.startswith("sample_"):
        return out  # judged by identities and statistics, no reference needed
    if family in ("bernoulli_values", "bernoulli_stability", "kl_values"):
        name = "bernoulli_log_prob" if family.startswith("bernoulli") else "compute_KL"
        fn = getattr(ref, name)
        for i in range(sum(call["id"].rsplit("/", 1)[1].startswith("case") for call in check.calls)):
            args = case_arrays(check, i)
            value = np.asarray(fn(*args), float)
            out[f"case{i}"] = value
            mistakes = bernoulli_mistakes(ref, *args, value) if name == "bernoulli_log_prob" \
                else kl_mistakes(variant, args[0], value)
            mistakes.update({key: getattr(other, name)(*args) for key, other in neighbours})
            out.update({f"case{i}/{mistake}": np.asarray(v, float) for mistake, v in mistakes.items()})
        return out
    if family in ("bernoulli_gradient", "kl_gradient"):
        name, wrt = ("bernoulli_log_prob", 1) if family.startswith("bernoulli") else ("compute_KL", 0)
        for i, _ in enumerate(check.params["cases"]):
            args, weights = case_arrays(check, i), check.inputs[f"{check.key}/w{i}"]
            out[f"grad{i}"] = np.asarray(vjp_of(getattr(ref, name), args, wrt, weights), float)
            if name == "compute_KL" and variant.encoder == "log_std" and variant.prior_std == 1.0:
                out[f"grad{i}/logvar"] = np.asarray(vjp_of(kl_logvar, args, 0, weights), float)
            out.update({f"grad{i}/{key}": np.asarray(vjp_of(getattr(other, name), args, wrt, weights), float)
                        for key, other in neighbours})
        return out
    if family.startswith("lower_bound"):
        k = check.key
        net = lambda names: [(check.inputs[names[i]], check.inputs[names[i + 1]]) for i in range(0, len(names), 2)]
        gen, rec, data = net(check.nets["gen"]), net(check.nets["rec"]), check.inputs[f"{k}/data"]
        chosen = {c: check.inputs[f"{k}/{c}"] for c in ("z", "B", "dB", "K", "dK", "e0", "l0")}
        bound = lambda module: stand_ins.lower_bound_with_stand_ins(module, module.vae_lower_bound, (gen, rec), data,
                                                                    chosen)[:2]
        value, grad = bound(ref)
        B, K = chosen["B"], chosen["K"]
        reduce = np.mean if variant.bound == "mean" else lambda x: DATASET_SIZE / len(x) * np.sum(x)
        out = {"main": np.asarray(value, float), "grad": np.asarray(grad, float),
               "sum": np.asarray(np.sum(B - K)), "plus_kl": np.asarray(reduce(B + K)),
               "no_kl": np.asarray(reduce(B)), "negated": -np.asarray(value, float)}
        for key, other in neighbours:
            other_value, other_grad = bound(other)
            out.update({key: np.asarray(other_value, float), f"{key}/grad": np.asarray(other_grad, float)})
        return out
    if family == "adam":
        out = adam_sequence(ref.adam_step, check)
        for name in ADAM_MISTAKES:
            out.update({f"{name}/{key}": val
                        for key, val in adam_sequence(adam_with_mistake(name, variant.sign()), check).items()})
        for key, other in neighbours:
            out.update({f"{key}/{k}": val for k, val in adam_sequence(other.adam_step, check).items()})
        out.update({f"moments_not_carried/{key}": val
                    for key, val in adam_sequence(ref.adam_step, check, carry=False).items()})
        given = adam_keywords(check.params)  # the arguments this check gives
        ignored = {f"default_{name}": (name,) for name in given}
        ignored["default_betas_epsilon"] = ("beta1", "beta2", "epsilon")
        for mistake, names in ignored.items():
            if set(names) <= set(given):
                out.update({f"{mistake}/{key}": val
                            for key, val in adam_sequence(ref.adam_step, check, default=names).items()})
        return {key: np.asarray(val, float) for key, val in out.items()}
    raise KeyError(f"no expected values for family {family}")


# ------------------------------------------------------------------ flows.py
HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)


def constrain_mistakes(u, w):
    wu = w @ u
    return {"unchanged": u, "no_minus_one": u + (np.logaddexp(0, wu) - wu) * w / (w @ w),
            "norm_not_squared": u + (-1 + np.logaddexp(0, wu) - wu) * w / np.sqrt(w @ w)}


def planar_mistakes(z, u, w, b):
    """Each output of planar_flow under a known mistake (with the stand-in constrain_u)."""
    u_hat = stand_ins.constrain_stand_in(u, w)
    h = np.tanh(z @ w + b)
    log_det = lambda factor, wu: np.log(np.abs(1 + factor * wu)) * np.ones_like(h)
    return {"0/u_not_hat": z + h[:, None] * u,
            "1/u_in_log_det": log_det(1 - h ** 2, w @ u),
            "1/no_derivative": log_det(1.0, w @ u_hat), "1/tanh_not_derivative": log_det(h, w @ u_hat),
            "1/no_log": np.abs(1 + (1 - h ** 2) * (w @ u_hat))}


def patched(module, name, replacement):
    """A context that puts ``replacement`` in place of module.name."""
    import contextlib

    @contextlib.contextmanager
    def context():
        saved = module.__dict__[name]
        module.__dict__[name] = replacement
        try:
            yield
        finally:
            module.__dict__[name] = saved
    return context()


def flow_bound_from_parts(check):
    """The bound with flows and its known mistakes, from the stand-ins' values and the formulas."""
    k, inputs = check.key, check.inputs
    z0, e0, B = inputs[f"{k}/z"], inputs[f"{k}/e0"], inputs[f"{k}/B"]
    mean, log_std = np.split(e0, 2, axis=-1)
    z, log_dets = z0, np.zeros(len(z0))
    names = check.nets["flows"]
    for i in range(0, len(names), 3):
        z, log_det = stand_ins.flow_stand_in(z, *(inputs[n] for n in names[i:i + 3]))
        log_dets = log_dets + log_det
    latent = z0.shape[1]
    log_q = lambda x, s2: np.sum(-0.5 * (x - mean) ** 2 / s2 - log_std - HALF_LOG_2PI, axis=-1)
    prior = lambda x: np.sum(-0.5 * x ** 2 - HALF_LOG_2PI, axis=-1)
    q0, s2 = log_q(z0, np.exp(2 * log_std)), np.exp(2 * log_std)
    bound = B + prior(z) - q0 + log_dets
    constant = latent * HALF_LOG_2PI
    return {"from_parts": np.mean(bound), "sum": np.sum(bound), "no_log_det": np.mean(bound - log_dets),
            "minus_log_det": np.mean(bound - 2 * log_dets), "prior_at_z0": np.mean(bound - prior(z) + prior(z0)),
            "q0_at_zK": np.mean(bound + q0 - log_q(z, s2)), "no_prior": np.mean(bound - prior(z)),
            "plus_q0": np.mean(bound + 2 * q0), "q0_no_constant": np.mean(bound) - constant,
            "prior_no_constant": np.mean(bound) + constant,
            "q0_variance": np.mean(bound + q0 - log_q(z0, np.exp(log_std)))}


def flow_expected_values(check):
    ref, family, out = flows_reference(), check.family, {}
    if family.startswith("constrain_"):
        for i, _ in enumerate(check.params["cases"]):
            u, w = case_arrays(check, i)
            if family == "constrain_gradient":
                for a in check.params["wrt"]:
                    out[f"grad{i}_{a}"] = vjp_of(ref.constrain_u, [u, w], a, check.inputs[f"{check.key}/w{i}_0"])
            else:
                out[f"case{i}"] = ref.constrain_u(u, w)
                out.update({f"case{i}/{name}": v for name, v in constrain_mistakes(u, w).items()})
        return out
    if family.startswith("planar_"):
        with patched(ref, CONSTRAIN, stand_ins.constrain_stand_in):
            for i, _ in enumerate(check.params["cases"]):
                args = case_arrays(check, i)
                if family == "planar_gradient":
                    weights = [check.inputs[f"{check.key}/w{i}_{j}"] for j in range(2)]
                    weighted = lambda *a: sum(anp.sum(o * w) for o, w in zip(ref.planar_flow(*a), weights))
                    for a in check.params["wrt"]:
                        out[f"grad{i}_{a}"] = vjp_of(weighted, args, a, 1.0)
                else:
                    out.update({f"case{i}/{j}": o for j, o in enumerate(ref.planar_flow(*args))})
                    out.update({f"case{i}/{name}": v for name, v in planar_mistakes(*args).items()})
        return out
    if family.startswith("flow_bound_"):
        k = check.key
        group = lambda names, size: [tuple(check.inputs[n] for n in names[i:i + size]) for i in range(0, len(names), size)]
        params = (group(check.nets["gen"], 2), group(check.nets["rec"], 2), group(check.nets["flows"], 3))
        chosen = {c: check.inputs[f"{k}/{c}"] for c in ("z", "B", "dB", "K", "dK", "e0", "l0")}
        value, grad, _ = stand_ins.lower_bound_with_stand_ins(ref, ref.flow_lower_bound, params, check.inputs[f"{k}/data"],
                                                              chosen, helpers=stand_ins.FLOW_BOUND_HELPERS)
        mistakes = flow_bound_from_parts(check)
        if not np.isclose(mistakes.pop("from_parts"), value, rtol=1e-10):
            raise AssertionError(f"{check.key}: the bound from its parts disagrees with the reference")
        return {"main": value, "grad": grad, **mistakes}
    raise KeyError(f"no expected values for family {family}")
