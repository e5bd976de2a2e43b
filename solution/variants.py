"""Each variant's complete reference, rendered from solution/vae.py. Instructors only.

solution/vae.py is the original variant and the one source of every variant: ``render`` takes
its text and replaces, for each convention that differs from the original's, the spans that
state or compute it: lines of the module docstring, whole graded functions (docstring, TODO and
solution region), and the provided lines of training that depend on it (binarize, the Adam
call's gradient, the per-image bound, the prior's samples). Every anchor must occur exactly
once in solution/vae.py, or rendering stops naming it; tests render every value of every axis.
The axes themselves are defined in grader/variants.py.

The rendered file has no branch on the variant and no trace of this machinery: it reads as the
original does, with its own conventions' math. Its student file is strip_solutions of it.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SOLUTION = os.path.join(HERE, "vae.py")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from grader.variants import DATASET_SIZE, ORIGINAL, Variant, variant as variant_named  # noqa: E402


class RenderError(ValueError):
    """solution/vae.py no longer holds a span a variant replaces."""


# ------------------------------------------------------------------ the graded functions
def sampler_log_var():
    return '''def sample_latent_variables_from_posterior(encoder_output):
    """Draw one z ~ q(z|x) per row, with the reparameterization trick.

    encoder_output: (batch, 2L); columns [0, L) hold the mean, columns [L, 2L) the
    log-variance log_var = log(s^2) (not the standard deviation s) of q(z|x).
    Returns z: (batch, L).

    Sampling z directly would block the gradient. Instead draw noise that does not
    depend on the parameters, eps ~ N(0, I) of shape (batch, L), a fresh vector for
    every row, and move it by the standard deviation s = exp(log_var / 2):

        z = mean + exp(0.5 * log_var) * eps

    Then dz/dmean = 1 and dz/dlog_var = 0.5 * exp(0.5 * log_var) * eps = (z - mean) / 2,
    so autograd can differentiate through the sample. Use npr.randn for eps.
    """
    # TODO: split encoder_output into mean and log_var, each (batch, L); draw eps of the
    #       same shape; return mean + exp(0.5 * log_var) * eps, shape (batch, L).
    ### BEGIN SOLUTION
    mean, log_var = np.split(encoder_output, 2, axis=-1)
    # Draw the noise in the network's precision, so float32 training stays float32.
    eps = npr.randn(*mean.shape).astype(mean.dtype)
    return mean + np.exp(0.5 * log_var) * eps
    ### END SOLUTION
'''


def bernoulli_pm1():
    return '''def bernoulli_log_prob(targets, logits):
    """log p(targets | logits) for independent Bernoulli pixels that are -1 or +1.

    targets: (batch, D) of -1s and +1s; logits: (batch, D), any real numbers (the
    decoder's output). Returns (batch,): one log-probability per row, summed over the
    D pixels.

    A pixel is +1 with probability sigmoid(l) and -1 with probability
    1 - sigmoid(l) = sigmoid(-l), so for t in {-1, +1} one formula covers both:

        log p(t) = log sigmoid(t * l)  =  -log(1 + exp(-t * l))

    The right-hand form is exact and stable: log(sigmoid(t * l)) rounds to log(0) = -inf
    once t * l < -37 or so in float64, while np.logaddexp(0, -t * l) never overflows.
    Your answer must stay finite for |logits| up to 1000.
    """
    # TODO: return minus the sum over the last axis of log(1 + exp(-targets * logits)),
    #       computed stably; shape (batch,).
    ### BEGIN SOLUTION
    margins = targets * logits
    # log(1 + e^-a) = max(-a, 0) + log(1 + e^-|a|), and -|a| = -a - 2 max(-a, 0): the exponent
    # is never positive, so nothing overflows (np.logaddexp(0, -a) is the same, but slower).
    negative_part = relu(-margins)
    softplus = negative_part + np.log(1.0 + np.exp(-margins - 2.0 * negative_part))
    return -np.sum(softplus, axis=-1)
    ### END SOLUTION
'''


def kl(v):
    """compute_KL for the encoder's output and the prior of ``v`` (not both the original's)."""
    log_var, sigma = v.encoder == "log_var", v.prior_std
    name = "log_var" if log_var else "log_std"
    if log_var:
        half = ("log-variances\n    log_var = log(s^2), as in sample_latent_variables_from_posterior (the second half\n"
                "    holds log-variances, whatever the argument's name says). Returns (batch,).")
    else:
        half = "log standard\n    deviations, as in sample_latent_variables_from_posterior. Returns (batch,)."
    if sigma == 1.0:  # then log_var (the original's KL is not rendered)
        prior, with_s = "the standard normal prior p", "s^2 = exp(log_var)"
        per_dim = "KL(N(mean, s^2) || N(0, 1)) = 0.5 * (s^2 + mean^2 - 1 - log_var)"
        todo = "0.5 * (exp(log_var) + mean^2 - 1 - log_var)"
        code = "return np.sum(0.5 * (np.exp(log_var) + mean ** 2 - 1.0 - log_var), axis=-1)"
    else:
        prior = "the prior p(z) = N(0, PRIOR_STD^2 I)"
        with_s = (f"{'s^2 = exp(log_var)' if log_var else 's = exp(log_std)'}, the prior's standard deviation\n"
                  f"    p = PRIOR_STD (here {sigma:g}) and the ratio of the variances r = s^2 / p^2")
        per_dim = "KL(N(mean, s^2) || N(0, p^2)) = 0.5 * (r + mean^2 / p^2 - 1 - log r)"
        s2, s2_code = ("exp(log_var)", "np.exp(log_var)") if log_var else ("exp(2 log_std)", "np.exp(2.0 * log_std)")
        todo = f"0.5 * (r + mean^2 / PRIOR_STD^2 - 1 - log r)\n    #       with r = {s2} / PRIOR_STD^2"
        code = (f"variance_ratio = {s2_code} / PRIOR_STD ** 2  # r = s^2 / p^2\n"
                f"    return np.sum(0.5 * (variance_ratio + mean ** 2 / PRIOR_STD ** 2 - 1.0 - np.log(variance_ratio)),\n"
                f"                  axis=-1)")
    return f'''def compute_KL(q_means_and_log_stds):
    """KL(q(z|x) || p(z)) for a diagonal Gaussian q and {prior}.

    q_means_and_log_stds: (batch, 2L), the encoder's output: means then {half}

    Per latent dimension, with {with_s},

        {per_dim}

    and the KL of the whole diagonal Gaussian is the sum over the L dimensions.
    """
    # TODO: split into mean and {name}, each (batch, L); return the sum over the latent
    #       axis of {todo}, shape (batch,).
    ### BEGIN SOLUTION
    mean, {name} = np.split(q_means_and_log_stds, 2, axis=-1)
    {code}
    ### END SOLUTION
'''


def lower_bound(v):
    """vae_lower_bound for the pixels and the bound of ``v`` (not both the original's)."""
    pm1, dataset = v.pixels == "pm1", v.bound == "dataset"
    title = "of the whole training set" if dataset else "averaged over the batch"
    data = ("data: (batch, 784) images of -1s and +1s" if pm1 else "data: (batch, 784) binary images")
    data += (", a minibatch B of the N = DATASET_SIZE\n    training images. Returns a scalar." if dataset else
             ". Returns a scalar.")
    sums = "\n        sum of L(x) over the N images  ~=  N / |B| * (sum of L(x) over the batch B)" if dataset else ""
    encode = ("encode the data with\n    neural_net_predict(rec_params, (data + 1) / 2): the encoder reads the pixels as 0s and\n"
              "    1s, while the Bernoulli term takes them as they are, -1 and +1; draw z with your sampler;\n"
              "    decode z" if pm1 else
              "encode the data with neural_net_predict(rec_params, .); draw z with your\n    sampler; decode z")
    if dataset:
        combine = ("bernoulli_log_prob and compute_KL into L(x) per image; return their sum over the rows\n"
                   "    times N / |B| (an unbiased estimate of the data set's bound, as Kingma & Welling\n"
                   "    write it; Adam's steps do not depend on its scale).")
        todo = "return DATASET_SIZE / batch size * the sum over the batch of log p(x|z) - KL."
        ret = "    return DATASET_SIZE / data.shape[0] * np.sum(lower_bound_per_image)\n"
    else:
        combine = ("bernoulli_log_prob and compute_KL; return the mean over the rows (a mean, not a sum,\n"
                   "    so the learning rate does not depend on the batch size).")
        todo = "return mean over the batch of log p(x|z) - KL, a scalar."
        ret = ("    # The mean over the batch. (np.mean would do; its gradient in autograd divides by a\n"
               "    # numpy integer, which turns float32 training into float64.)\n"
               "    return np.sum(lower_bound_per_image) / data.shape[0]\n")
    todo_in = "(data + 1) / 2 -> " if pm1 else ""
    return f'''def vae_lower_bound(gen_params, rec_params, data):
    """One-sample Monte Carlo estimate of the ELBO, {title}.

    gen_params: the decoder's (W, b) list, L -> ... -> 784.
    rec_params: the encoder's (W, b) list, 784 -> ... -> 2L.
    {data}

        L(x) ~= log p(x | z) - KL(q(z|x) || p(z)),   z ~ q(z|x) drawn once per image{sums}

    Steps: {encode} into logits with neural_net_predict(gen_params, .); combine your
    {combine}
    """
    # TODO: {todo_in}encoder output (batch, 2L) -> z (batch, L) -> logits (batch, 784);
    #       {todo}
    ### BEGIN SOLUTION
    q_means_and_log_stds = neural_net_predict(rec_params, {"(data + 1) / 2" if pm1 else "data"})
    z = sample_latent_variables_from_posterior(q_means_and_log_stds)
    logits = neural_net_predict(gen_params, z)
    lower_bound_per_image = bernoulli_log_prob(data, logits) - compute_KL(q_means_and_log_stds)
{ret}    ### END SOLUTION
'''


def adam_descend():
    return '''def adam_step(params, gradient, m, v, t, learning_rate=0.001, beta1=0.9, beta2=0.999,
              epsilon=1e-8):
    """One Adam update (Kingma & Ba 2015) that DESCENDS the objective.

    params, gradient, m, v: arrays of the same shape (the training loop calls this once
    per weight matrix and bias vector, with the gradient of the loss -L, the negative
    lower bound). m and v are running averages of the gradient and of its square, both
    zero before the first step; t counts steps from 1. Every operation is elementwise.
    Returns (params, m, v).

        m     = beta1 * m + (1 - beta1) * gradient
        v     = beta2 * v + (1 - beta2) * gradient^2
        m_hat = m / (1 - beta1^t)          # bias correction: m and v start at 0
        v_hat = v / (1 - beta2^t)
        params = params - learning_rate * m_hat / (sqrt(v_hat) + epsilon)

    The minus sign is deliberate: we minimize the loss -L, which maximizes the bound.
    """
    # TODO: update m and v, bias-correct them with t, step params downhill;
    #       return (params, m, v), each the same shape as params.
    ### BEGIN SOLUTION
    m = beta1 * m + (1.0 - beta1) * gradient
    v = beta2 * v + (1.0 - beta2) * gradient ** 2
    m_hat = m / (1.0 - beta1 ** t)
    v_hat = v / (1.0 - beta2 ** t)
    params = params - learning_rate * m_hat / (np.sqrt(v_hat) + epsilon)
    return params, m, v
    ### END SOLUTION
'''


# ------------------------------------------------------------------ the spans
def function_span(source, name):
    """The text of the graded function ``name``: from its def to the end of its solution region."""
    found = re.findall(rf"^def {name}\(.*?^[ \t]*### END SOLUTION[ \t]*\n", source, flags=re.S | re.M)
    if len(found) != 1:
        raise RenderError(f"solution/vae.py: expected one function {name} ending in ### END SOLUTION, "
                          f"found {len(found)}")
    return found[0]


def constants(v):
    """The model's constants a variant's functions name, placed after the imports."""
    lines = []
    if v.prior_std != 1.0:
        lines.append(f"PRIOR_STD = {v.prior_std!r}  # the prior p(z) = N(0, PRIOR_STD^2 I)")
    if v.bound == "dataset":
        lines.append(f"DATASET_SIZE = {DATASET_SIZE}  # N, MNIST's training images: the bound is that of the whole set")
    if not lines:
        return []
    anchor = "# ----------------------------------------------------------------------------------------\n# Provided helpers"
    text = "# The model's constants.\n" + "\n".join(lines) + "\n\n\n"
    return [(anchor, text + anchor)]


def replacements(source, v):
    """[(old, new)] that turn solution/vae.py into variant v's reference."""
    out = []
    if v.encoder == "log_var":
        out += [("diagonal Gaussian whose mean and log standard deviation it outputs:",
                 "diagonal Gaussian whose mean and log-variance it outputs:"),
                ("    q(z|x) = N(z; mean(x), diag(exp(log_std(x))^2)),   g(x) = [mean(x), log_std(x)]",
                 "    q(z|x) = N(z; mean(x), diag(exp(log_var(x)))),     g(x) = [mean(x), log_var(x)]"),
                (function_span(source, "sample_latent_variables_from_posterior"), sampler_log_var())]
    if v.prior_std != 1.0:
        out += [("    p(z)   = N(z; 0, I)                               the prior",
                 f"    p(z)   = N(z; 0, PRIOR_STD^2 I)                   the prior, PRIOR_STD = {v.prior_std:g}")]
    if v.encoder == "log_var" or v.prior_std != 1.0:
        out += [(function_span(source, "compute_KL"), kl(v))]
    if v.pixels == "pm1":
        out += [("A digit x (784 binary pixels) is generated from a latent code z (L numbers):",
                 "A digit x (784 pixels, each -1 or +1) is generated from a latent code z (L numbers):"),
                ("    p(x|z) = prod_d Bernoulli(x_d; sigmoid(f(z)_d))   the decoder f, a neural net",
                 "    p(x|z) = prod_d sigmoid(x_d * f(z)_d)            the decoder f, a neural net\n\n"
                 "(a pixel is +1 with probability sigmoid(f(z)_d), and -1 otherwise)."),
                (function_span(source, "bernoulli_log_prob"), bernoulli_pm1()),
                ('    """Dynamic binarization: each pixel is on with probability equal to its intensity.',
                 '    """Dynamic binarization: each pixel is +1 with probability equal to its intensity, else -1.'),
                ("    return (rs.randint(0, 255, size=pixels.shape, dtype=np.uint8) < pixels).astype(dtype)",
                 "    return 2 * (rs.randint(0, 255, size=pixels.shape, dtype=np.uint8) < pixels).astype(dtype) - 1"),
]
    ascent = "has a closed form. Training ascends the average L(x) over minibatches with Adam."
    if v.direction == "descend" or v.bound == "dataset":
        how = {("descend", "mean"): "Training descends the loss -L(x),\naveraged over minibatches, with Adam.",
               ("ascend", "dataset"): "Training ascends N / |B| times the\nsum of L(x) over a minibatch B of the "
                                      "N = DATASET_SIZE training images (an\nestimate of the whole set's bound) with Adam.",
               ("descend", "dataset"): "Training descends, with Adam, the\nloss: minus N / |B| times the sum of L(x) "
                                       "over a minibatch B of the N = DATASET_SIZE\ntraining images (an estimate of "
                                       "the whole set's bound)."}[(v.direction, v.bound)]
        out += [(ascent, "has a closed form. " + how)]
    if v.direction == "descend":
        out += [(function_span(source, "adam_step"), adam_descend()),
                ("            for k in range(len(params)):  # one Adam step per weight array\n"
                 "                params[k], m[k], v[k] = adam_step(params[k], gradients[k], m[k], v[k], t,",
                 "            for k in range(len(params)):  # one Adam step per weight array, down the loss -L\n"
                 "                params[k], m[k], v[k] = adam_step(params[k], -gradients[k], m[k], v[k], t,")]
    if v.pixels == "pm1" or v.bound == "dataset":
        out += [(function_span(source, "vae_lower_bound"), lower_bound(v))]
    if v.bound == "dataset":
        out += [
                ("            total += value\n",
                 "            total += value / DATASET_SIZE  # the bound per image, as the history reports it\n"),
                ("    total = sum(lower_bound(params, binary_test_images[i:i + chunk]) * len(binary_test_images[i:i + chunk])",
                 "    total = sum(lower_bound(params, binary_test_images[i:i + chunk]) * len(binary_test_images[i:i + chunk])\n"
                 "                / DATASET_SIZE  # the bound of a chunk is scaled to the data set: back to its sum")]
    if v.prior_std != 1.0:
        out += [("                  history, test_images, args, mnist.source)",
                 "                  history, test_images, args, mnist.source, prior_std=PRIOR_STD)")]
    return constants(v) + out


def render(v=ORIGINAL, source=None):
    """Variant v's complete reference (a Variant or a name), as text."""
    v = variant_named(v) if not isinstance(v, Variant) else v
    if source is None:
        with open(SOLUTION) as f:
            source = f.read()
    for old, new in replacements(source, v):
        count = source.count(old)
        if count != 1:
            raise RenderError(f"solution/vae.py: variant {v.canonical} replaces a span found {count} times, "
                              f"expected once: {old.splitlines()[0].strip()!r}")
        source = source.replace(old, new)
    return source
