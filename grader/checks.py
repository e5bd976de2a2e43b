"""The checks: one set behind the self-check, batch grading, pytest, nbgrader and Gradescope.

A check builds its inputs from a fixed seed, asks the student's process for numbers
(``calls``), and judges those numbers against ``expected`` values that the grader computed
itself: from the reference when it is present (grader/expected.py), or from the fixtures
precomputed at release when it is not (a student's machine). Known mistakes are named by
comparing the answer with precomputed values of each mistake (the "mistakes" of a check).
Nothing in this file computes any of the five functions.
"""
import numpy as np

from .registry import (FD_RTOL, FD_STEP, HIDDEN_FROM_AUTOGRAD, Check, Failed, Named, OtherConvention, _fmt, answer,
                       call_failed, close, differs, directional_fd, name_mistake, other_convention,
                       register, shape_of, value_call, with_mistakes)
from .variants import ENCODER_EXPONENT, ORIGINAL, variant as variant_named
from .stand_ins import FLOW_BOUND_HELPERS, VAE_BOUND_HELPERS, flow_stand_in, provided_network

FUNCTIONS = ["sample_latent_variables_from_posterior", "bernoulli_log_prob", "compute_KL",
             "vae_lower_bound", "adam_step"]
# ------------------------------------------------------------------ the sampler
# The encoder's second half, as the student file of each variant names it, and the sample it gives.
SAMPLE_FORMULA = {"log_std": "mean + exp(log_std) * eps", "log_var": "mean + exp(0.5 * log_var) * eps"}
NOISE_SCALE = {"log_std": "exp(log_std)", "log_var": "exp(0.5 * log_var)"}


def scale_mistakes(variant):
    """[(a, (other variant, message) or None, hint in the gradient check, hint in the moments check)]: samplers
    whose noise is scaled by exp(a * second half) for a wrong a. In a variant other than the original,
    the scale of another encoder's convention comes first, as that variant's answer."""
    if variant.is_original:
        return [(0.5, None, "looks like exp(log_std / 2): log_std is already the log of the standard deviation",
                 "you used exp(log_std / 2): log_std is the log of the standard deviation"),
                (2.0, None, "looks like exp(2 * log_std), the variance: scale the noise by the standard deviation",
                 "you used exp(2 * log_std), the variance, where the standard deviation belongs")]
    out = [(ENCODER_EXPONENT[other.encoder], (other, message), None, None)
           for other, message in variant.neighbours("sample_latent_variables_from_posterior")]
    if variant.encoder == "log_std":
        out += [(2.0, None, "looks like exp(2 * log_std), the variance: scale the noise by the standard deviation",
                 "you used exp(2 * log_std), the variance, where the standard deviation belongs")]
    return out


def build_sample_reparam(check, rs, shapes):
    inputs, calls = {}, []
    for i, (batch, latent) in enumerate(shapes):
        mean, log_std = rs.randn(batch, latent), rs.uniform(-2, 1, (batch, latent))
        inputs[f"{check.key}/x{i}"] = np.hstack([mean, check.variant.log_scale(log_std)])
        inputs[f"{check.key}/w{i}"] = np.ones((batch, latent))
        calls.append({"id": check.call_id(f"case{i}"), "function": check.function, "kind": "value_and_vjp",
                      "wrt": 0, "args": [{"array": f"{check.key}/x{i}"}], "weights": f"{check.key}/w{i}",
                      "seed": check.seed + i})
    return inputs, calls


def judge_sample_reparam(check, results, expected):
    h, own = check.variant.second_half, check.variant.std_exponent()
    for i, (batch, latent) in enumerate(check.params["shapes"]):
        z = answer(check, results, f"case{i}", "out")
        shape_of(z, (batch, latent), f"the sample for a ({batch}, {2 * latent}) encoder output",
                 [((batch, 2 * latent), "return only z, one value per latent dimension (the first half is the mean)"),
                  ((latent,), "return one sample per row of the batch")])
        grad = answer(check, results, f"case{i}", "grad")
        mean = check.inputs[f"{check.key}/x{i}"][:, :latent]
        d_mean, d_log_std = grad[:, :latent], grad[:, latent:]
        if np.allclose(d_mean, 0) and np.allclose(d_log_std, 0):
            raise Named("the gradient of the sample is zero: autograd cannot see how z depends on the encoder "
                         f"output (was z drawn with np.random.normal(mean, std)? use {SAMPLE_FORMULA[h]})")
        if not np.allclose(d_mean, 1.0):
            raise Failed(differs(d_mean, np.ones_like(d_mean), "d sum(z) / d mean (should be 1 everywhere)"))
        if np.allclose(d_log_std, 0):
            raise Named(f"gradient with respect to {h} is zero: the sample is not reparameterized "
                        f"(the noise must be scaled by {NOISE_SCALE[h]} inside the autograd computation)")
        if not np.allclose(d_log_std, own * (z - mean), rtol=1e-6, atol=1e-9):
            for factor, other, hint, _ in scale_mistakes(check.variant):
                if np.allclose(d_log_std, factor * (z - mean), rtol=1e-6, atol=1e-9):
                    if other:
                        raise OtherConvention(other[1], other[0])
                    raise Named(f"d sum(z) / d {h} {hint}")
            raise Failed(differs(d_log_std, own * (z - mean), f"d sum(z) / d {h} (should equal "
                                                                f"{'z - mean' if own == 1 else '(z - mean) / 2'})"))
    return True, ""


def build_sample_stats(check, rs, mean, log_std, rows):
    x = np.tile(np.concatenate([mean, check.variant.log_scale(np.asarray(log_std, float))]), (rows, 1))
    inputs = {f"{check.key}/x": x}
    calls = [value_call(check, "draw", check.function, [{"array": f"{check.key}/x"}], seed=check.seed)]
    if check.family == "sample_independence":  # a second draw that continues the random stream
        calls.append(value_call(check, "again", check.function, [{"array": f"{check.key}/x"}], seed=None))
    return inputs, calls


def _noise(check, results):
    mean, log_std = (np.asarray(check.params[k], float) for k in ("mean", "log_std"))
    z = answer(check, results, "draw", "out")
    shape_of(z, (check.params["rows"], len(mean)), "the sample")
    return z, mean, log_std


def judge_sample_moments(check, results, expected):
    z, mean, log_std = _noise(check, results)
    std = np.exp(log_std)
    got_mean, got_std = z.mean(0), z.std(0)
    second_half = check.variant.log_scale(log_std)
    for factor, other, _, hint in scale_mistakes(check.variant):
        scale = np.exp(factor * second_half)
        if np.allclose(got_std, scale, rtol=0.03) and not np.allclose(scale, std, rtol=0.03):
            if other:
                raise OtherConvention(other[1], other[0])
            raise Failed(f"the spread of your samples is {_fmt(got_std[1])} where it should be {_fmt(std[1])}: {hint}",
                         mistake=hint)
    tolerance = 5 * std / np.sqrt(len(z))
    eps = (z - mean) / std
    if np.all(eps >= -1e-9) and np.all(eps.mean(0) > 0.3):
        raise Named("all your noise is non-negative: it looks uniform on [0, 1); draw eps from the standard normal (npr.randn)")
    if not np.all(np.abs(got_mean - mean) <= tolerance):
        raise Failed(differs(got_mean, mean, "the mean of many samples"))
    if not np.allclose(got_std, std, rtol=0.03):
        raise Failed(differs(got_std, std, "the standard deviation of many samples"))
    tails = np.mean(np.abs(eps) > 2)
    if not 0.035 < tails < 0.057:  # 4.55% of a standard normal lies beyond 2
        raise Failed(f"{tails:.1%} of your noise lies beyond 2 standard deviations, a normal gives 4.6%: "
                     f"draw eps from the standard normal (npr.randn)",
                     mistake="the noise is not normal: draw eps from the standard normal (npr.randn)")
    return True, ""


def judge_sample_independence(check, results, expected):
    z, mean, log_std = _noise(check, results)
    eps = (z - mean) / np.exp(log_std)
    if np.allclose(eps, eps[:1]):
        raise Named("every row got the same noise: one noise vector is shared by the whole batch; "
                     "draw eps with the shape of the mean, (batch, L)")
    if eps.shape[1] > 1 and np.allclose(eps, eps[:, :1]):
        raise Named("every latent dimension of a row got the same noise; draw eps with shape (batch, L)")
    again = answer(check, results, "again", "out")
    if again.shape == z.shape and np.allclose(again, z):
        raise Named("a second call returned exactly the same noise: your sampler reseeds the random generator "
                    "(npr.seed(...) or a generator with a fixed seed inside the function). Seed once, at the start "
                    "of training: a reseed here also restarts the training's shuffling and binarization")
    correlation = np.mean(eps[:-1] * eps[1:]) / np.mean(eps ** 2)  # of the noise however it was scaled
    if abs(correlation) > 5 / np.sqrt(eps.size):
        raise Failed(f"the noise of neighbouring rows is correlated ({correlation:.3f}); draw fresh noise for every row",
                     mistake="the noise of neighbouring rows is correlated")
    return True, ""


# ------------------------------------------------------------------ values and gradients of deterministic functions
def build_values(check, rs, cases, make, first=0):
    """cases: list of shape tuples; make(rs, *shape) -> list of argument arrays. The calls are
    case{first}, case{first + 1}, ..."""
    inputs, calls = {}, []
    for i, shape in enumerate(cases, start=first):
        names = []
        for j, array in enumerate(make(rs, *shape)):
            names.append(f"{check.key}/a{i}_{j}")
            inputs[names[-1]] = array
        calls.append(value_call(check, f"case{i}", check.function, [{"array": n} for n in names]))
    return inputs, calls


def build_gradient(check, rs, cases, make, wrt):
    """Autograd gradient of sum(w * f) with respect to argument ``wrt``, and f at x ± h d."""
    inputs, calls = {}, []
    for i, shape in enumerate(cases):
        arrays = make(rs, *shape)
        names = [f"{check.key}/a{i}_{j}" for j in range(len(arrays))]
        inputs.update(zip(names, arrays))
        out_shape = arrays[0].shape[:-1]
        inputs[f"{check.key}/w{i}"] = rs.randn(*out_shape)
        direction = rs.randn(*arrays[wrt].shape)
        inputs[f"{check.key}/d{i}"] = direction
        calls.append({"id": check.call_id(f"grad{i}"), "function": check.function, "kind": "value_and_vjp",
                      "wrt": wrt, "args": [{"array": n} for n in names], "weights": f"{check.key}/w{i}"})
        for sign, label in ((1, "plus"), (-1, "minus")):
            moved = list(names)
            moved[wrt] = f"{check.key}/a{i}_{wrt}_{label}"
            inputs[moved[wrt]] = arrays[wrt] + sign * FD_STEP * direction
            calls.append(value_call(check, f"{label}{i}", check.function, [{"array": n} for n in moved]))
    return inputs, calls


def judge_values(check, results, expected, shape_hints, mistakes, what):
    for i, _ in enumerate(check.params["cases"]):
        got = answer(check, results, f"case{i}", "out")
        want = expected[f"case{i}"]
        shape_of(got, want.shape, what, shape_hints(want.shape, check.inputs[f"{check.key}/a{i}_0"].shape))
        if not close(got, want):
            name_mistake(got, with_mistakes(expected, f"case{i}"), mistakes, what, check)
    return True, ""


def gradient_answer(check, results, suffix, what):
    """The gradient a value_and_vjp call returned, or Failed saying why there is none."""
    header, arrays = results[check.call_id(suffix)]
    if header.get("status") != "ok":
        raise call_failed(header)
    if "grad" not in arrays:
        raise Failed(f"{what}: your function's output has the wrong shape, so its gradient was not checked")
    return arrays["grad"]


def judge_gradient(check, results, expected, mistakes, what):
    for i, _ in enumerate(check.params["cases"]):
        grad, want = gradient_answer(check, results, f"grad{i}", what), expected[f"grad{i}"]
        shape_of(grad, want.shape, f"the gradient of {what}")
        directional_fd(check, results, (f"plus{i}", f"minus{i}"), check.inputs[f"{check.key}/w{i}"],
                       check.inputs[f"{check.key}/d{i}"], grad)
        if not close(grad, want, rtol=1e-5, atol=1e-7):
            name_mistake(grad, with_mistakes(expected, f"grad{i}"), mistakes, f"the gradient of {what}", check)
    return True, ""


def bernoulli_inputs(variant):
    """make(rs, batch, pixels): targets in the variant's pixels, and logits."""
    def make(rs, batch, pixels, scale=3.0):
        return [variant.pixels_from_bits((rs.rand(batch, pixels) < 0.5).astype(float)), scale * rs.randn(batch, pixels)]
    return make


def extreme_logits(variant):
    def make(rs, batch, pixels):
        targets = variant.pixels_from_bits((rs.rand(batch, pixels) < 0.5).astype(float))
        logits = rs.choice([-1000.0, -100.0, -40.0, 40.0, 100.0, 1000.0], size=(batch, pixels))
        return [targets, logits]
    return make


def kl_inputs(variant, extreme=False):
    """make(rs, batch, latent): an encoder output, its second half in the variant's convention for
    the same standard deviations."""
    def make(rs, batch, latent):
        if extreme:
            return [np.hstack([rs.uniform(-10, 10, (batch, latent)), variant.log_scale(rs.uniform(-5, 3, (batch, latent)))])]
        return [np.hstack([rs.randn(batch, latent), variant.log_scale(rs.uniform(-1.5, 1, (batch, latent)))])]
    return make


PER_ROW_HINTS = lambda want, given: [(given, "you return one value per element; sum over the last axis"),
                                     ((), "you return a single number; return one value per row of the batch")]
KL_SHAPE_HINTS = lambda want, given: [((want[0], given[1] // 2), "you return one value per latent dimension; "
                                                                  "sum over the last axis"),
                                      ((), "you return a single number; return one value per row of the batch")]
BERNOULLI_MISTAKES = [("negated", "your log-probability has the wrong sign: it must be at most 0"),
                      ("swapped", "you swapped targets and logits"),
                      ("mean", "you averaged over the pixels; sum over them"),
                      ("sigmoid_twice", "you applied the sigmoid to the logits and then treated them as logits again")]
KL_MISTAKES = [("logvar", "your KL treats log_std as a log-variance: log_std is the log of the standard deviation, "
                          "so the variance is exp(2 * log_std)"),
               ("negated", "your KL has the wrong sign: a KL divergence is never negative"),
               ("mean", "you averaged over the latent dimensions; sum over them"),
               ("no_constant", "your KL is off by L/2: the -1 inside 0.5 * (s^2 + mean^2 - 1) is missing"),
               ("no_constant_prior", "your KL is off by L/2: the -1 (one for each latent dimension, inside the "
                                     "0.5 * (...)) is missing"),
               ("half_log", "your KL has -0.5 * log_std where -log_std belongs")]
KL_GRADIENT_MISTAKES = KL_MISTAKES[:1]  # the same mistake, named the same way (summaries count it once)


def judge_bernoulli_values(check, results, expected):
    return judge_values(check, results, expected, PER_ROW_HINTS, BERNOULLI_MISTAKES, "bernoulli_log_prob")


def build_stability(check, rs, cases):
    """Extreme logits (case0...), then the same shapes at ordinary logits: advice about stability
    is given only to a function whose values are right where stability is not at stake."""
    inputs, calls = build_values(check, rs, cases, extreme_logits(check.variant))
    more_inputs, more_calls = build_values(check, rs, cases, bernoulli_inputs(check.variant), first=len(cases))
    return {**inputs, **more_inputs}, calls + more_calls


def judge_bernoulli_stability(check, results, expected):
    extreme = len(check.params["cases"])
    for i in range(extreme, 2 * extreme):  # ordinary logits first: the real mistake comes before any advice
        got, want = answer(check, results, f"case{i}", "out"), expected[f"case{i}"]
        if not close(got, want):
            raise Named("not judged: bernoulli_log_prob is wrong at ordinary logits already (see its values "
                        "check); stability is judged once the values are right")
    for i in range(extreme):
        got, want = answer(check, results, f"case{i}", "out"), expected[f"case{i}"]
        if got.shape == want.shape and not np.all(np.isfinite(got)):
            raise Named("not finite when |logits| is large (40 to 1000): log(sigmoid(l)) rounds to log(0) = -inf; "
                        "write log(1 + exp(l)) in a form that never overflows (the docstring shows one)")
        shape_of(got, want.shape, "bernoulli_log_prob at large |logits|")
        if not close(got, want, rtol=1e-6, atol=1e-6):
            raise Failed(differs(got, want, "bernoulli_log_prob at large |logits|") +
                         ": clipping the probabilities loses accuracy; use the exact stable form",
                         mistake="clipping the probabilities loses accuracy at large |logits|")
    return True, ""


def judge_bernoulli_gradient(check, results, expected):
    return judge_gradient(check, results, expected, [], "bernoulli_log_prob")


def judge_kl_values(check, results, expected):
    return judge_values(check, results, expected, KL_SHAPE_HINTS, KL_MISTAKES, "compute_KL")


def judge_kl_gradient(check, results, expected):
    return judge_gradient(check, results, expected, KL_GRADIENT_MISTAKES, "compute_KL")


# ------------------------------------------------------------------ the lower bound, with stand-ins
def encoder_input(variant, data):
    """What the encoder reads: the data, or (data + 1) / 2 where the pixels are -1 and +1."""
    return (data + 1) / 2 if variant.pixels == "pm1" else data


ENCODER_CALL = {"01": "neural_net_predict(rec_params, data)", "pm1": "neural_net_predict(rec_params, (data + 1) / 2)"}


def build_lower_bound(check, rs, batch, latent, width, flows=None):
    """vae_lower_bound's inputs (or, with ``flows`` = K, flow_lower_bound's) and the stand-ins'
    chosen values: the sample z, the Bernoulli and KL terms, and their gradients."""
    k = check.key
    inputs = {f"{k}/data": check.variant.pixels_from_bits((rs.rand(batch, 784) < 0.3).astype(float)),
              f"{k}/z": rs.randn(batch, latent), f"{k}/B": -rs.uniform(50, 200, batch),
              f"{k}/dB": rs.randn(batch, 784), f"{k}/K": rs.uniform(1, 20, batch), f"{k}/dK": rs.randn(batch, 2 * latent)}
    nets = {}
    for net, sizes in (("gen", [latent, width, 784]), ("rec", [784, width, 2 * latent])):
        names = []
        for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
            for part, shape in (("W", (m, n)), ("b", (n,))):
                names.append(f"{k}/{net}{part}{i}")
                inputs[names[-1]] = rs.randn(*shape) / np.sqrt(m if part == "W" else 1) * (1 if part == "W" else 0.1)
        nets[net] = names
    net = lambda names: [(inputs[names[i]], inputs[names[i + 1]]) for i in range(0, len(names), 2)]
    inputs[f"{k}/e0"] = provided_network(net(nets["rec"]), encoder_input(check.variant, inputs[f"{k}/data"]))  # the
    # base point of the stand-ins
    z_decoded = inputs[f"{k}/z"]
    args = [{"net": nets["gen"]}, {"net": nets["rec"]}]
    if flows is not None:  # flows (u, w, b), and where the stand-in flows take z
        nets["flows"] = []
        for i in range(flows):
            for part, value in (("u", rs.randn(latent) / np.sqrt(latent)), ("w", rs.randn(latent) / np.sqrt(latent)),
                                ("b", 0.5 * rs.randn(1))):
                nets["flows"].append(f"{k}/flow{part}{i}")
                inputs[nets["flows"][-1]] = value
            z_decoded = flow_stand_in(z_decoded, *(inputs[n] for n in nets["flows"][-3:]))[0]
        args.append({"net": nets["flows"], "size": 3})
    inputs[f"{k}/l0"] = provided_network(net(nets["gen"]), z_decoded)
    chosen = {c: f"{k}/{c}" for c in ("z", "B", "dB", "K", "dK", "e0", "l0")}
    call = {"function": check.function, "kind": "lower_bound", "chosen": chosen,
            "helpers": list(VAE_BOUND_HELPERS if flows is None else FLOW_BOUND_HELPERS),
            "args": args + [{"array": f"{k}/data"}]}
    calls = [dict(call, id=check.call_id("main"))]
    if check.family.endswith("_gradient"):  # finite differences along one direction in parameter space
        names = [name for group in nets.values() for name in group]
        direction = {name: rs.randn(*inputs[name].shape) for name in names}
        inputs.update({f"{name}/d": d for name, d in direction.items()})
        for sign, label in ((1, "plus"), (-1, "minus")):
            for name in names:
                inputs[f"{name}/{label}"] = inputs[name] + sign * FD_STEP * direction[name]
            moved = [dict(a, net=[f"{name}/{label}" for name in a["net"]]) for a in args]
            calls.append(dict(call, id=check.call_id(label), gradient=False, args=moved + [{"array": f"{k}/data"}]))
    check.nets = nets
    return inputs, calls


def lower_bound_mistakes(variant):
    """The named mistakes of vae_lower_bound, said in the variant's terms (the original's as always)."""
    mean = variant.bound == "mean"
    return [
        ("sum", "you summed over the batch; return the mean over the rows of data" if mean else
                "you summed over the batch without the factor N / batch size (N = DATASET_SIZE)"),
        ("plus_kl", "you added the KL; the lower bound is log p(x|z) - KL"),
        ("no_kl", "the KL term is missing; the lower bound is log p(x|z) - KL"),
        ("negated", "you returned the negated lower bound; return the bound itself " +
                    ("(training ascends it)" if variant.direction == "ascend" else
                     "(the training loop turns it into the loss -L)"))]


def judge_lower_bound_value(check, results, expected, mistakes=None):
    mistakes = lower_bound_mistakes(check.variant) if mistakes is None else mistakes
    got = answer(check, results, "main", "out")
    if got.shape != ():
        if got.shape == (check.params["batch"],):
            raise Named("you return one value per image; return their mean over the batch, a scalar"
                        if check.variant.bound == "mean" else
                        "you return one value per image; return N / batch size times their sum, a scalar")
        raise Failed(f"{check.function} returned shape {got.shape}, expected a scalar")
    want = expected["main"]
    if not close(got, want):
        ratio = float(got / want) if want else 0.0
        other_convention(check, lambda key: key in expected and close(got, expected[key], rtol=1e-6, atol=1e-6))
        for name, message in mistakes:
            if name in expected and close(got, expected[name], rtol=1e-6, atol=1e-6):
                raise Named(message)
        if check.variant.bound == "mean" and ratio > 1.5 and abs(ratio - round(ratio)) < 1e-6:
            raise Failed(f"your bound is {ratio:.0f} times the batch mean: it is scaled (by N / batch size?); "
                         f"return the plain mean over the batch",
                         mistake="the bound is scaled (by N / batch size?); return the plain mean over the batch")
        raise Failed(differs(got, want, "the lower bound") + " (with your helpers replaced by the grader's)")
    return True, ""


def decoder_input(arrays, latent):
    """What the decoder (the network whose first layer takes ``latent`` inputs) was given, over all
    its calls, or None when it never ran."""
    for i in range(4):
        if f"network{i}_shape" in arrays and int(arrays[f"network{i}_shape"][0]) == latent:
            return arrays[f"network{i}_input"]
    return None


def one_sample_per_image(arrays, batch, function):
    """Failed unless the sampler drew exactly one sample per image, in one call or one per image."""
    if int(arrays["counts"][1]) == 0:
        return False
    rows = arrays["sampler_input"].shape[0]
    if rows > batch:
        per_image = f"{rows // batch} samples per image" if rows % batch == 0 else f"{rows} samples for {batch} images"
        raise Named(f"{function} draws {per_image} with sample_latent_variables_from_posterior; "
                    f"the assignment asks for one per image")
    if rows < batch:
        raise Named(f"{function} draws samples for only {rows} of the {batch} images; draw one for each image")
    return True


def judge_lower_bound_parts(check, results, expected):
    header, arrays = results[check.call_id("main")]
    if header.get("status") != "ok":
        raise call_failed(header)
    batch, latent = check.params["batch"], check.params["latent"]
    encoder_output, logits0 = check.inputs[f"{check.key}/e0"], check.inputs[f"{check.key}/l0"]
    decoded = decoder_input(arrays, latent)
    at_mean = decoded is not None and close(decoded, encoder_output[:, :latent])
    if not one_sample_per_image(arrays, batch, check.function):
        raise Named("the decoder gets the posterior mean, not a sample: draw z with your sampler and decode it"
                    if at_mean else
                    "vae_lower_bound never calls sample_latent_variables_from_posterior: draw z with your sampler")
    if not close(arrays["sampler_input"], encoder_output):
        raise Named(f"the sampler does not get the encoder's output, {ENCODER_CALL[check.variant.pixels]}")
    if decoded is None:
        raise Named("vae_lower_bound never runs the decoder, neural_net_predict(gen_params, z)")
    if not close(decoded, check.inputs[f"{check.key}/z"]):
        if at_mean:
            raise Named("the decoder gets the posterior mean, not the sample z: decode the sample")
        raise Named("the decoder does not get the sample z drawn by your sampler")
    if "bernoulli_targets" not in arrays:
        raise Named("vae_lower_bound never calls bernoulli_log_prob: call it with the data and the decoder's logits")
    targets, logits = arrays["bernoulli_targets"], arrays["bernoulli_logits"]
    data = check.inputs[f"{check.key}/data"]
    if targets.shape[0] != batch:
        raise Named(f"vae_lower_bound gives bernoulli_log_prob {targets.shape[0]} rows for {batch} images; "
                    f"call it once for the batch (or once per image), with the data and the decoder's logits")
    if close(targets, logits0) and close(logits, data):
        raise Named("the arguments of bernoulli_log_prob are swapped: it takes (targets, logits)")
    if close(targets, data) and close(logits, 0.5 * (np.tanh(logits0 / 2) + 1)):
        raise Named("you pass sigmoid(logits) to bernoulli_log_prob, which applies the sigmoid itself "
                    "(the sigmoid is applied twice): pass the decoder's output directly")
    if not (close(targets, data) and close(logits, logits0)):
        raise Named("bernoulli_log_prob should get (data, the decoder's output for z)")
    if "kl_input" not in arrays or not close(arrays["kl_input"], encoder_output):
        raise Named("compute_KL should get the encoder's output, once for the batch (or once per image)")
    return True, ""


def judge_lower_bound_gradient(check, results, expected):
    grad = answer(check, results, "main", "grad")
    want = expected["grad"]
    shape_of(grad, want.shape, "the gradient of the lower bound")
    direction = np.concatenate([check.inputs[f"{name}/d"].ravel() for group in check.nets.values() for name in group])
    plus, minus = (answer(check, results, s, "out") for s in ("plus", "minus"))
    fd = float(plus - minus) / (2 * FD_STEP)
    analytic = float(grad @ direction)
    if not abs(fd - analytic) <= FD_RTOL * (1 + abs(fd)):
        raise Failed(f"autograd's gradient of your lower bound ({analytic:.6g} along a random direction) does not "
                     f"match its finite differences ({fd:.6g}): part of the computation is hidden from autograd",
                     mistake=HIDDEN_FROM_AUTOGRAD)
    if not close(grad, want, rtol=1e-5, atol=1e-7):
        other_convention(check, lambda key: f"{key}/grad" in expected and close(grad, expected[f"{key}/grad"], 1e-5, 1e-7))
        raise Failed(differs(grad, want, "the gradient of the lower bound with respect to the parameters",
                             1e-5, 1e-7))
    return True, ""


# ------------------------------------------------------------------ Adam
ADAM_HYPERPARAMETERS = ("learning_rate", "beta1", "beta2", "epsilon")


def adam_keywords(params):
    """The keyword arguments a check passes to adam_step: those it sets (None: the default)."""
    return {name: params[name] for name in ADAM_HYPERPARAMETERS if params.get(name) is not None}


def build_adam(check, rs, size, scales, learning_rate=None, beta1=None, beta2=None, epsilon=None):
    k = check.key
    inputs = {f"{k}/params": rs.randn(size), f"{k}/m": np.zeros(size), f"{k}/v": np.zeros(size)}
    gradients = []
    for step, scale in enumerate(scales):
        inputs[f"{k}/g{step}"] = scale * rs.randn(size) * np.logspace(-3, 3, size)
        gradients.append(f"{k}/g{step}")
    kwargs = {name: {"number": value} for name, value in adam_keywords(check.params).items()}
    call = {"id": check.call_id("steps"), "function": check.function, "kind": "adam_steps", "t0": 1,
            "gradients": gradients, "kwargs": kwargs,
            "args": [{"array": f"{k}/params"}, {"array": f"{k}/g0"}, {"array": f"{k}/m"}, {"array": f"{k}/v"}]}
    return inputs, [call]


ADAM_MISTAKE_MESSAGES = [
    ("descent", "your step goes downhill; this Adam must ascend the lower bound (params + step)"),
    ("no_bias_correction", "the bias correction is missing: divide m by 1 - beta1^t and v by 1 - beta2^t"),
    ("bias_t_minus_1", "the bias correction uses t - 1 (or t counted from 0): t counts steps from 1"),
    ("bias_t_plus_1", "the bias correction uses t + 1: t counts steps from 1, use it as given"),
    ("no_sqrt", "the square root of v_hat is missing in the denominator"),
    ("abs_not_square", "v must average the squared gradient, gradient ** 2"),
    ("eps_inside", "epsilon belongs outside the square root: sqrt(v_hat) + epsilon"),
    ("moments_not_carried", "m and v are not carried from step to step: update the m and v passed in and return them"),
    # a step that ignores an argument it was given, using the default instead
    ("default_betas_epsilon", "your step uses 0.9, 0.999 and 1e-8 whatever beta1, beta2 and epsilon it is given: "
                              "use the arguments beta1, beta2 and epsilon"),
    ("default_beta1", "your step uses beta1 = 0.9 whatever beta1 it is given: use the argument beta1"),
    ("default_beta2", "your step uses beta2 = 0.999 whatever beta2 it is given: use the argument beta2"),
    ("default_epsilon", "your step uses epsilon = 1e-8 whatever epsilon it is given: use the argument epsilon"),
    ("default_learning_rate", "your step uses learning_rate = 0.001 whatever learning_rate it is given: use the "
                              "argument learning_rate")]


def judge_adam(check, results, expected):
    header, arrays = results[check.call_id("steps")]
    if header.get("status") != "ok":
        raise call_failed(header)
    for step in range(len(check.params["scales"])):
        for label, what in (("params", "params"), ("m", "m"), ("v", "v")):
            got, want = arrays.get(f"{label}{step}"), expected[f"{label}{step}"]
            if got is None:
                raise Failed(f"no {what} came back at step {step + 1}")
            shape_of(got, want.shape, f"{what} after step {step + 1}")
            if not close(got, want, rtol=1e-7, atol=1e-12):
                def explains(name):  # a known mistake explains params, m and v alike
                    keys = [f"{name}/{n}{step}" for n in ("params", "m", "v")]
                    return all(k in expected for k in keys) and all(
                        arrays.get(f"{n}{step}") is not None and np.shape(arrays[f"{n}{step}"]) == expected[k].shape
                        and close(arrays[f"{n}{step}"], expected[k], rtol=1e-7, atol=1e-12)
                        for n, k in zip(("params", "m", "v"), keys))
                other_convention(check, explains)
                for name, message in ADAM_MISTAKE_MESSAGES:
                    if explains(name):
                        raise Failed(f"step {step + 1}: {message}", mistake=message)
                raise Failed(differs(got, want, f"{what} after step {step + 1} (t = {step + 1})", 1e-7, 1e-12))
    return True, ""


# ------------------------------------------------------------------ this part's entry in the registry
VAE_BUILDERS = {
    "sample_reparam": build_sample_reparam,
    "sample_moments": build_sample_stats, "sample_independence": build_sample_stats,
    "bernoulli_values": lambda c, rs, cases: build_values(c, rs, cases, bernoulli_inputs(c.variant)),
    "bernoulli_stability": build_stability,
    "bernoulli_gradient": lambda c, rs, cases: build_gradient(c, rs, cases, bernoulli_inputs(c.variant), wrt=1),
    "kl_values": lambda c, rs, cases, extreme=False: build_values(c, rs, cases, kl_inputs(c.variant, extreme)),
    "kl_gradient": lambda c, rs, cases: build_gradient(c, rs, cases, kl_inputs(c.variant), wrt=0),
    "lower_bound_value": build_lower_bound, "lower_bound_parts": build_lower_bound,
    "lower_bound_gradient": build_lower_bound,
    "adam": build_adam,
}
VAE_JUDGES = {
    "sample_reparam": judge_sample_reparam, "sample_moments": judge_sample_moments,
    "sample_independence": judge_sample_independence,
    "bernoulli_values": judge_bernoulli_values, "bernoulli_stability": judge_bernoulli_stability,
    "bernoulli_gradient": judge_bernoulli_gradient,
    "kl_values": judge_kl_values, "kl_gradient": judge_kl_gradient,
    "lower_bound_value": judge_lower_bound_value, "lower_bound_parts": judge_lower_bound_parts,
    "lower_bound_gradient": judge_lower_bound_gradient,
    "adam": judge_adam,
}

S, B, K, LB, A = FUNCTIONS


def in_variant(variant):
    """Check, making the checks of ``variant`` (a name or a Variant; None: the original); its
    ``variant`` attribute says which."""
    chosen = variant_named(variant) if variant is not None else ORIGINAL

    def make(*args, **kwargs):
        return Check(*args, variant=chosen, **kwargs)
    make.variant = chosen
    return make


def public_vae_checks(variant=None):
    """The checks students can run on vae.py (of ``variant``, by default the original): their inputs and
    expected values ship with the assignment."""
    stats = dict(mean=[1.0, -2.0, 0.0, 0.5], log_std=[0.0, -1.0, 1.0, -0.5], rows=20000)
    Check = in_variant(variant)
    bound = ("mean over the batch" if Check.variant.bound == "mean" else "N / batch size times the sum over the batch")
    return [
        Check("shape and reparameterization gradient", S, "sample_reparam", 8, seed=1, shapes=[(1, 3), (7, 50)]),
        Check("sample mean and standard deviation", S, "sample_moments", 8, seed=2, **stats),
        Check("fresh noise for every row and every call", S, "sample_independence", 4, seed=3, **stats),
        Check("values", B, "bernoulli_values", 10, seed=4, cases=[(1, 784), (5, 10)]),
        Check("gradient", B, "bernoulli_gradient", 10, seed=5, cases=[(3, 784)]),
        Check("stable at large |logits|", B, "bernoulli_stability", 0, seed=6, advice=True, cases=[(4, 50)]),
        Check("values", K, "kl_values", 7, seed=7, cases=[(1, 3), (6, 50)]),
        Check("values at extreme but legal inputs", K, "kl_values", 5, seed=8, cases=[(4, 10)], extreme=True),
        Check("gradient", K, "kl_gradient", 8, seed=9, cases=[(5, 4)]),
        Check(f"value: {bound} of log p(x|z) - KL", LB, "lower_bound_value", 9, seed=10,
              batch=4, latent=3, width=5),
        Check("uses the encoder, one sample, the decoder and both terms", LB, "lower_bound_parts", 8, seed=11,
              batch=4, latent=3, width=5),
        Check("gradient with respect to the parameters", LB, "lower_bound_gradient", 8, seed=12,
              batch=3, latent=2, width=4),
        Check("first step", A, "adam", 5, seed=13, size=12, scales=[1.0], learning_rate=None),
        Check("six steps, gradients of very different scales", A, "adam", 10, seed=14, size=12,
              scales=[1.0, 1e3, 1e-3, 1.0, 1e2, 1e-2], learning_rate=0.01),
        Check("three steps with beta1, beta2 and epsilon given", A, "adam", 10, seed=15, size=12,
              scales=[1.0, 1e-2, 1e2], learning_rate=0.02, beta1=0.5, beta2=0.9, epsilon=1e-3),
    ]


register("vae", FUNCTIONS, VAE_BUILDERS, VAE_JUDGES, public_vae_checks)
