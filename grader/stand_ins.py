"""Recording stand-ins that let vae_lower_bound be judged on its own.

While the student's vae_lower_bound runs, the names it looks up in its module are
replaced: neural_net_predict by the kit's provided network (so an edited network does not
leak in), and the sampler, the Bernoulli term and the KL by stand-ins that return numbers
the grader chose, with gradients the grader chose, and record what they were given. The
grader then sees what the lower bound did with its parts (which arguments, how many
samples, how it combined them) without any of the student's other answers mattering and
without any of the reference's formulas being present here.

The same stand-ins run in the grader's own process around the reference, which gives the
expected value and gradient.
"""
import autograd.numpy as anp
import numpy as np
from autograd import make_vjp

PARTS = ("neural_net_predict", "sample_latent_variables_from_posterior", "bernoulli_log_prob", "compute_KL")


def provided_network(params, inputs):
    """The kit's neural_net_predict: relu hidden layers, linear output."""
    for W, b in params[:-1]:
        inputs = anp.dot(inputs, W) + b
        inputs = inputs * (inputs > 0)
    W, b = params[-1]
    return anp.dot(inputs, W) + b


def make_stand_ins(chosen, record):
    """The four replacements, and ``record`` collecting what each was given.

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

    return dict(zip(PARTS, (network, sampler, bernoulli, kl)))


def _plain(x):
    return np.array(getattr(x, "_value", x), dtype=float)


def lower_bound_with_stand_ins(module, fn, gen_params, rec_params, data, chosen, gradient=True):
    """Run fn (a vae_lower_bound) with the stand-ins in ``module``; restore it after.

    Returns (value, flat gradient over gen then rec parameters or None, record).
    """
    record = {}
    saved = {name: module.__dict__.get(name) for name in PARTS}
    module.__dict__.update(make_stand_ins(chosen, record))
    try:
        if gradient:
            vjp, value = make_vjp(lambda p: fn(p[0], p[1], data))((gen_params, rec_params))
            grads = vjp(np.ones_like(np.asarray(getattr(value, "_value", value), float)))
            flat = np.concatenate([np.ravel(a) for net in grads for layer in net for a in layer])
            return value, flat, record
        return fn(gen_params, rec_params, data), None, record
    finally:
        for name, original in saved.items():
            if original is None:
                module.__dict__.pop(name, None)
            else:
                module.__dict__[name] = original


def summarize(value, flat_grad, record, to_float_array):
    """What the parent receives: plain arrays only."""
    out = {"out": to_float_array(value, "what vae_lower_bound returned")}
    if flat_grad is not None:
        out["grad"] = to_float_array(flat_grad, "the gradient")
    counts = {part: len(record.get(part, [])) for part in ("network", "sampler", "bernoulli", "kl")}
    out["counts"] = np.array([counts["network"], counts["sampler"], counts["bernoulli"], counts["kl"]], float)
    for i, (first_layer, inputs) in enumerate(record.get("network", [])[:4]):
        out[f"network{i}_shape"] = np.array(first_layer, float)
        out[f"network{i}_input"] = inputs
    if record.get("sampler"):
        out["sampler_input"] = record["sampler"][0]
    if record.get("bernoulli"):
        out["bernoulli_targets"], out["bernoulli_logits"] = record["bernoulli"][0]
    if record.get("kl"):
        out["kl_input"] = record["kl"][0]
    return out


def run_lower_bound(module, fn, args, call, arrays, to_float_array):
    """The child's side of a 'lower_bound' call."""
    gen_params, rec_params, data = args
    chosen = {k: arrays[name] for k, name in call["chosen"].items()}
    value, flat_grad, record = lower_bound_with_stand_ins(module, fn, gen_params, rec_params, data, chosen,
                                                          gradient=call.get("gradient", True))
    return {"status": "ok"}, summarize(value, flat_grad, record, to_float_array)
