"""Recording stand-ins that let vae_lower_bound be judged on its own.

While the student's vae_lower_bound runs, the names it looks up in its module are
replaced: neural_net_predict by the kit's provided network (so an edited network does not
leak in), and the sampler, the Bernoulli term and the KL by stand-ins that return numbers
the grader chose, with gradients the grader chose, and record what they were given. The
grader then sees what the lower bound did with its parts (which arguments, how many
samples, how it combined them) without any of the student's other answers mattering and
without any of the reference's formulas being present here.

The same stand-ins run in the grader's own process around the reference, which gives the
expected value and gradient. flows.py is judged the same way: flow_lower_bound with a
stand-in planar_flow, and planar_flow with a stand-in constrain_u (STAND_INS), so that each
function is judged on its own. The stand-ins are deliberately not planar flows: they are
simple smooth maps whose values the grader can follow.
"""
import autograd.numpy as anp
import numpy as np
from autograd import make_vjp

VAE_BOUND_HELPERS = ("neural_net_predict", "sample_latent_variables_from_posterior", "bernoulli_log_prob", "compute_KL")
FLOW_BOUND_HELPERS = VAE_BOUND_HELPERS[:3] + ("planar_flow",)


def provided_network(params, inputs):
    """The kit's neural_net_predict: relu hidden layers, linear output."""
    for W, b in params[:-1]:
        inputs = anp.dot(inputs, W) + b
        inputs = inputs * (inputs > 0)
    W, b = params[-1]
    return anp.dot(inputs, W) + b


def flow_stand_in(z, u, w, b):
    """What planar_flow's stand-in returns: z moved along u by a linear amount, and a log-det."""
    a = anp.dot(z, w) + b
    return z + 0.5 * a[:, None] * u, 0.25 * a + anp.dot(u, w)


def constrain_stand_in(u, w):
    """What constrain_u's stand-in returns (not the real constraint)."""
    return 0.8 * u + 0.3 * w


def recording(fn, record):
    def stand_in(*args):
        record.append(tuple(_plain(a) for a in args))
        return fn(*args)
    return stand_in


# name -> (record -> the stand-in), for calls that replace one helper of the graded function
STAND_INS = {"constrain_u": lambda record: recording(constrain_stand_in, record),
             "planar_flow": lambda record: recording(flow_stand_in, record)}


def make_stand_ins(chosen, record):
    """The replacements (network, sampler, Bernoulli term, KL, planar flow), and ``record``
    collecting what each was given.

    Each stand-in is linear in its input around a base point the grader chose: at the base
    it returns the chosen value, and its gradient is the chosen one (for the sampler, the
    reparameterization identity dz/dmean = 1, dz/dlog_std = z - mean). Being linear, it
    also has the finite differences that gradient predicts.
    """
    z0, e0, l0 = chosen["z"], chosen["e0"], chosen["l0"]
    latent = z0.shape[1]

    def network(params, inputs):
        first_layer = np.shape(params[0][0])
        record.setdefault("network", []).append((first_layer, _plain(inputs)))
        return provided_network(params, inputs)

    def sampler(encoder_output):
        record.setdefault("sampler", []).append(_plain(encoder_output))
        shift = encoder_output - e0
        return z0 + shift[:, :latent] + (z0 - e0[:, :latent]) * shift[:, latent:]

    def bernoulli(targets, logits):
        record.setdefault("bernoulli", []).append((_plain(targets), _plain(logits)))
        return chosen["B"] + anp.sum(chosen["dB"] * (logits - l0), axis=-1)

    def kl(encoder_output):
        record.setdefault("kl", []).append(_plain(encoder_output))
        return chosen["K"] + anp.sum(chosen["dK"] * (encoder_output - e0), axis=-1)

    stand_ins = dict(zip(VAE_BOUND_HELPERS, (network, sampler, bernoulli, kl)))
    stand_ins["planar_flow"] = recording(flow_stand_in, record.setdefault("planar_flow", []))
    return stand_ins


def flatten(nested):
    """The arrays of nested lists and tuples, in order."""
    if isinstance(nested, (list, tuple)):
        return [a for item in nested for a in flatten(item)]
    return [nested]


def _plain(x):
    return np.array(getattr(x, "_value", x), dtype=float)


def lower_bound_with_stand_ins(module, fn, params, data, chosen, gradient=True, helpers=VAE_BOUND_HELPERS):
    """Run fn(*params, data) (a vae_lower_bound or flow_lower_bound) with the stand-ins for
    ``helpers`` in ``module``; restore it after. ``params``: the parameter groups (gen, rec[, flows]).

    Returns (value, flat gradient over the groups in order or None, record).
    """
    record = {}
    saved = {name: module.__dict__.get(name) for name in helpers}
    stand_ins = make_stand_ins(chosen, record)
    module.__dict__.update({name: stand_ins[name] for name in helpers})
    try:
        if gradient:
            vjp, value = make_vjp(lambda p: fn(*p, data))(tuple(params))
            grads = vjp(np.ones_like(np.asarray(getattr(value, "_value", value), float)))
            return value, np.concatenate([np.ravel(a) for a in flatten(grads)]), record
        return fn(*params, data), None, record
    finally:
        for name, original in saved.items():
            if original is None:
                module.__dict__.pop(name, None)
            else:
                module.__dict__[name] = original


def summarize(value, flat_grad, record, to_float_array):
    """What the parent receives: plain arrays only."""
    out = {"out": to_float_array(value, "what the lower bound returned")}
    if flat_grad is not None:
        out["grad"] = to_float_array(flat_grad, "the gradient")
    out["counts"] = np.array([len(record.get(part, [])) for part in ("network", "sampler", "bernoulli", "kl",
                                                                     "planar_flow")], float)
    for i, (first_layer, inputs) in enumerate(record.get("network", [])[:4]):
        out[f"network{i}_shape"] = np.array(first_layer, float)
        out[f"network{i}_input"] = inputs
    if record.get("sampler"):
        out["sampler_input"] = record["sampler"][0]
    if record.get("bernoulli"):
        out["bernoulli_targets"], out["bernoulli_logits"] = record["bernoulli"][0]
    if record.get("kl"):
        out["kl_input"] = record["kl"][0]
    for i, (z, u, _, _) in enumerate(record.get("planar_flow", [])[:16]):
        out[f"flow{i}_z"], out[f"flow{i}_u"] = z, u
    return out


def run_lower_bound(module, fn, args, call, arrays, to_float_array):
    """The child's side of a 'lower_bound' call."""
    chosen = {k: arrays[name] for k, name in call["chosen"].items()}
    value, flat_grad, record = lower_bound_with_stand_ins(module, fn, args[:-1], args[-1], chosen,
                                                          gradient=call.get("gradient", True),
                                                          helpers=tuple(call.get("helpers", VAE_BOUND_HELPERS)))
    return {"status": "ok"}, summarize(value, flat_grad, record, to_float_array)
