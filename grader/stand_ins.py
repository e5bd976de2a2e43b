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


# Every stand-in has exactly the signature of the function it replaces, so that a student's
# keyword call (compute_KL(q_means_and_log_stds=q), planar_flow(z, u=u, w=w, b=b)) works as it
# does with their own function; tests/test_grader.py compares them with the assignment's.
def recording_constrain_u(record):
    def constrain_u(u, w):
        record.append((_plain(u), _plain(w)))
        return constrain_stand_in(u, w)
    return constrain_u


def recording_planar_flow(record):
    def planar_flow(z, u, w, b):
        record.append(tuple(_plain(a) for a in (z, u, w, b)))
        return flow_stand_in(z, u, w, b)
    return planar_flow


# name -> (record -> the stand-in), for calls that replace one helper of the graded function
STAND_INS = {"constrain_u": recording_constrain_u, "planar_flow": recording_planar_flow}


def next_rows(cursors, helper, batch, x):
    """Which images of the batch ``x`` stands for: all of them when it has a row for each; otherwise
    the next ones in order, which is how a lower bound that loops over the images one (or a few)
    at a time is followed."""
    n = np.atleast_2d(_plain(x)).shape[0]
    if n == batch:
        return slice(None)
    start = cursors.get(helper, 0)
    cursors[helper] = start + n
    return np.arange(start, start + n) % batch


def _like(result, given):
    """One row back as a vector (or a number) when the function was given a vector."""
    return result[0] if anp.ndim(given) == 1 else result


def make_stand_ins(chosen, record):
    """The replacements (network, sampler, Bernoulli term, KL, planar flow), and ``record``
    collecting what each was given.

    Each stand-in is linear in its input around a base point the grader chose: at the base
    it returns the chosen value, and its gradient is the chosen one (for the sampler, the
    reparameterization identity dz/dmean = 1, dz/dlog_std = z - mean). Being linear, it
    also has the finite differences that gradient predicts. Each works on the whole batch
    or on its rows in turn (see next_rows).
    """
    z0, e0, l0 = chosen["z"], chosen["e0"], chosen["l0"]
    batch, latent = z0.shape
    cursors = {}

    def neural_net_predict(params, inputs):
        first_layer = np.shape(params[0][0])
        record.setdefault("network", []).append((first_layer, _plain(inputs)))
        return provided_network(params, inputs)

    def sample_latent_variables_from_posterior(encoder_output):
        record.setdefault("sampler", []).append(_plain(encoder_output))
        rows = next_rows(cursors, "sampler", batch, encoder_output)
        shift = encoder_output - e0[rows]
        z = z0[rows] + shift[..., :latent] + (z0[rows] - e0[rows, :latent]) * shift[..., latent:]
        return _like(z, encoder_output)

    def bernoulli_log_prob(targets, logits):
        record.setdefault("bernoulli", []).append((_plain(targets), _plain(logits)))
        rows = next_rows(cursors, "bernoulli", batch, logits)
        return _like(chosen["B"][rows] + anp.sum(chosen["dB"][rows] * (logits - l0[rows]), axis=-1), logits)

    def compute_KL(q_means_and_log_stds):
        record.setdefault("kl", []).append(_plain(q_means_and_log_stds))
        rows = next_rows(cursors, "kl", batch, q_means_and_log_stds)
        return _like(chosen["K"][rows] + anp.sum(chosen["dK"][rows] * (q_means_and_log_stds - e0[rows]), axis=-1),
                     q_means_and_log_stds)

    stand_ins = {f.__name__: f for f in (neural_net_predict, sample_latent_variables_from_posterior,
                                         bernoulli_log_prob, compute_KL)}
    stand_ins["planar_flow"] = recording_planar_flow(record.setdefault("planar_flow", []))
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


def _stacked(arrays):
    """The rows of several calls' arguments, one after another (one call's when they do not stack)."""
    rows = [np.atleast_2d(a) for a in arrays]
    try:
        return np.concatenate(rows)
    except ValueError:
        return rows[0]


def summarize(value, flat_grad, record, to_float_array):
    """What the parent receives: plain arrays only. Each helper's inputs are stacked over its
    calls, so a lower bound that works one image at a time reads like one that works on the batch."""
    out = {"out": to_float_array(value, "what the lower bound returned")}
    if flat_grad is not None:
        out["grad"] = to_float_array(flat_grad, "the gradient")
    out["counts"] = np.array([len(record.get(part, [])) for part in ("network", "sampler", "bernoulli", "kl",
                                                                     "planar_flow")], float)
    by_first_layer = {}
    for first_layer, inputs in record.get("network", []):
        by_first_layer.setdefault(first_layer[:1], []).append(inputs)
    for i, (rows, inputs) in enumerate(list(by_first_layer.items())[:4]):
        out[f"network{i}_shape"] = np.array(rows, float)
        out[f"network{i}_input"] = _stacked(inputs)
    if record.get("sampler"):
        out["sampler_input"] = _stacked(record["sampler"])
    if record.get("bernoulli"):
        out["bernoulli_targets"] = _stacked([t for t, _ in record["bernoulli"]])
        out["bernoulli_logits"] = _stacked([l for _, l in record["bernoulli"]])
    if record.get("kl"):
        out["kl_input"] = _stacked(record["kl"])
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
