"""A variational autoencoder (VAE) for MNIST digits, in HIPS autograd.

The model. A digit x (784 binary pixels) is generated from a latent code z (L numbers):

    p(z)   = N(z; 0, I)                               the prior
    p(x|z) = prod_d Bernoulli(x_d; sigmoid(f(z)_d))   the decoder f, a neural net

The posterior p(z|x) is intractable, so an encoder network g approximates it with a
diagonal Gaussian whose mean and log standard deviation it outputs:

    q(z|x) = N(z; mean(x), diag(exp(log_std(x))^2)),   g(x) = [mean(x), log_std(x)]

Both networks are trained together by maximizing the evidence lower bound (ELBO), a
lower bound on log p(x):

    log p(x) >= E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))  =: L(x)

The expectation is estimated with one sample of z, drawn with the reparameterization
trick so that its gradient flows back into the encoder; the KL between two Gaussians
has a closed form. Training ascends the average L(x) over minibatches with Adam.

Your part: the five functions marked YOUR CODE HERE. Each docstring gives the math and
the shapes. `python -m grader check vae.py` tells you which are right, with a hint for
each mistake; `python vae.py` trains (30 epochs, a few minutes) and writes the figures
into results/; `python vae.py --help` lists the options.
"""
import os
import sys
import time

import autograd.numpy as np
import autograd.numpy.random as npr

from training_tools import (checkpoint_of, kit_errors, load_data, parse_args, resume, reuse_freed_memory,
                            saved_run, save_checkpoint, stop_if_unfinished, value_and_grads, write_figures)


# ----------------------------------------------------------------------------------------
# Provided helpers: the neural networks.

def sigmoid(x):
    # 1 / (1 + exp(-x)), written with tanh so that it never overflows for large |x|.
    return 0.5 * (np.tanh(x / 2.0) + 1.0)


def relu(x):
    # max(0, x), written as x times a 0/1 mask: same values, and autograd's gradient of
    # np.maximum would build float64 masks that silently turn float32 training into float64.
    return x * (x > 0)


def init_net_params(layer_sizes, scale=None, rs=npr):
    """Weights and biases of a fully connected net, as a list of (W, b) per layer.

    With ``scale=None`` each weight matrix is drawn with standard deviation
    1/sqrt(fan_in) and biases start at zero. The original coursework used a fixed
    ``scale=0.01`` for all weights and biases: every layer then shrinks its input by
    about 0.01 * sqrt(fan_in), so the decoder starts almost deaf to z, the KL term
    pushes the posterior onto the prior before the code is learned, and after 30 epochs
    the test ELBO stalls near -111 nats. Scaling by fan-in keeps the activations of
    order one from the first step and reaches about -100 nats with the same budget.
    Pass ``scale=0.01`` to reproduce the coursework.
    """
    params = []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        if scale is None:
            params.append((rs.randn(fan_in, fan_out) / np.sqrt(fan_in), np.zeros(fan_out)))
        else:
            params.append((scale * rs.randn(fan_in, fan_out), scale * rs.randn(fan_out)))
    return params


def neural_net_predict(params, inputs):
    """A relu network with a linear last layer. inputs: (batch, D_in) -> (batch, D_out)."""
    for W, b in params[:-1]:
        inputs = relu(inputs @ W + b)
    W, b = params[-1]
    return inputs @ W + b


# ----------------------------------------------------------------------------------------
# The parts you write.

def sample_latent_variables_from_posterior(encoder_output):
    """Draw one z ~ q(z|x) per row, with the reparameterization trick.

    encoder_output: (batch, 2L); columns [0, L) hold the mean, columns [L, 2L) the
    log standard deviation log_std (not the variance) of q(z|x).
    Returns z: (batch, L).

    Sampling z directly would block the gradient. Instead draw noise that does not
    depend on the parameters, eps ~ N(0, I) of shape (batch, L), a fresh vector for
    every row, and move it:

        z = mean + exp(log_std) * eps

    Then dz/dmean = 1 and dz/dlog_std = exp(log_std) * eps = z - mean, so autograd can
    differentiate through the sample. Use npr.randn for eps.
    """
    # TODO: split encoder_output into mean and log_std, each (batch, L); draw eps of the
    #       same shape; return mean + exp(log_std) * eps, shape (batch, L).
    ### BEGIN SOLUTION
    mean, log_std = np.split(encoder_output, 2, axis=-1)
    # Draw the noise in the network's precision, so float32 training stays float32.
    eps = npr.randn(*mean.shape).astype(mean.dtype)
    return mean + np.exp(log_std) * eps
    ### END SOLUTION


def bernoulli_log_prob(targets, logits):
    """log p(targets | sigmoid(logits)) for independent Bernoulli pixels.

    targets: (batch, D) of 0s and 1s; logits: (batch, D), any real numbers (the
    decoder's output before the sigmoid). Returns (batch,): one log-probability per
    row, summed over the D pixels.

    For one pixel with probability p = sigmoid(l):

        log p(t) = t log p + (1 - t) log(1 - p)  =  t * l - log(1 + exp(l))

    The right-hand form is exact and stable: log(sigmoid(l)) rounds to log(0) = -inf
    once l < -37 or so in float64, while np.logaddexp(0, l) = log(exp(0) + exp(l))
    never overflows. Your answer must stay finite for |logits| up to 1000.
    """
    # TODO: return the sum over the last axis of targets * logits - log(1 + exp(logits)),
    #       computed stably; shape (batch,).
    ### BEGIN SOLUTION
    # log(1 + e^l) = max(l, 0) + log(1 + e^-|l|), and -|l| = l - 2 max(l, 0): the exponent
    # is never positive, so nothing overflows (np.logaddexp(0, l) is the same, but slower).
    positive_part = relu(logits)
    softplus = positive_part + np.log(1.0 + np.exp(logits - 2.0 * positive_part))
    return np.sum(targets * logits - softplus, axis=-1)
    ### END SOLUTION


def compute_KL(q_means_and_log_stds):
    """KL(q(z|x) || p(z)) for a diagonal Gaussian q and the standard normal prior p.

    q_means_and_log_stds: (batch, 2L), the encoder's output: means then log standard
    deviations, as in sample_latent_variables_from_posterior. Returns (batch,).

    Per latent dimension, with s = exp(log_std),

        KL(N(mean, s^2) || N(0, 1)) = 0.5 * (s^2 + mean^2 - 1) - log_std

    and the KL of the whole diagonal Gaussian is the sum over the L dimensions.
    """
    # TODO: split into mean and log_std, each (batch, L); return the sum over the latent
    #       axis of 0.5 * (exp(2 log_std) + mean^2 - 1) - log_std, shape (batch,).
    ### BEGIN SOLUTION
    mean, log_std = np.split(q_means_and_log_stds, 2, axis=-1)
    return np.sum(0.5 * (np.exp(2.0 * log_std) + mean ** 2 - 1.0) - log_std, axis=-1)
    ### END SOLUTION


def vae_lower_bound(gen_params, rec_params, data):
    """One-sample Monte Carlo estimate of the ELBO, averaged over the batch.

    gen_params: the decoder's (W, b) list, L -> ... -> 784.
    rec_params: the encoder's (W, b) list, 784 -> ... -> 2L.
    data: (batch, 784) binary images. Returns a scalar.

        L(x) ~= log p(x | z) - KL(q(z|x) || p(z)),   z ~ q(z|x) drawn once per image

    Steps: encode the data with neural_net_predict(rec_params, .); draw z with your
    sampler; decode z into logits with neural_net_predict(gen_params, .); combine your
    bernoulli_log_prob and compute_KL; return the mean over the rows (a mean, not a sum,
    so the learning rate does not depend on the batch size).
    """
    # TODO: encoder output (batch, 2L) -> z (batch, L) -> logits (batch, 784);
    #       return mean over the batch of log p(x|z) - KL, a scalar.
    ### BEGIN SOLUTION
    q_means_and_log_stds = neural_net_predict(rec_params, data)
    z = sample_latent_variables_from_posterior(q_means_and_log_stds)
    logits = neural_net_predict(gen_params, z)
    lower_bound_per_image = bernoulli_log_prob(data, logits) - compute_KL(q_means_and_log_stds)
    # The mean over the batch. (np.mean would do; its gradient in autograd divides by a
    # numpy integer, which turns float32 training into float64.)
    return np.sum(lower_bound_per_image) / data.shape[0]
    ### END SOLUTION


def adam_step(params, gradient, m, v, t, learning_rate=0.001, beta1=0.9, beta2=0.999,
              epsilon=1e-8):
    """One Adam update (Kingma & Ba 2015) that ASCENDS the objective.

    params, gradient, m, v: arrays of the same shape (the training loop calls this once
    per weight matrix and bias vector). m and v are running averages of the gradient and
    of its square, both zero before the first step; t counts steps from 1. Every
    operation is elementwise. Returns (params, m, v).

        m     = beta1 * m + (1 - beta1) * gradient
        v     = beta2 * v + (1 - beta2) * gradient^2
        m_hat = m / (1 - beta1^t)          # bias correction: m and v start at 0
        v_hat = v / (1 - beta2^t)
        params = params + learning_rate * m_hat / (sqrt(v_hat) + epsilon)

    The plus sign is deliberate: we maximize the lower bound.
    """
    # TODO: update m and v, bias-correct them with t, step params uphill;
    #       return (params, m, v), each the same shape as params.
    ### BEGIN SOLUTION
    m = beta1 * m + (1.0 - beta1) * gradient
    v = beta2 * v + (1.0 - beta2) * gradient ** 2
    m_hat = m / (1.0 - beta1 ** t)
    v_hat = v / (1.0 - beta2 ** t)
    params = params + learning_rate * m_hat / (np.sqrt(v_hat) + epsilon)
    return params, m, v
    ### END SOLUTION


# ----------------------------------------------------------------------------------------
# Training (provided). training_tools.py holds the machinery: the fast gradient, checkpoints,
# figures; none of it is graded.

def binarize(pixels, dtype, rs=npr):
    """Dynamic binarization: each pixel is on with probability equal to its intensity.

    pixels: uint8 values k, intensity k / 255. For r uniform on {0, ..., 254},
    P(r < k) = k / 255 exactly, and small random integers are cheap to draw.
    """
    return (rs.randint(0, 255, size=pixels.shape, dtype=np.uint8) < pixels).astype(dtype)


def as_pixels(images):
    """Images in [0, 1] (intensities k / 255, as load_mnist returns them) -> uint8 k."""
    return np.round(np.asarray(images) * 255).astype(np.uint8)


def test_lower_bound(lower_bound, params, binary_test_images, chunk=2000):
    """The lower bound per image over a fixed binarized test set, without touching the training RNG."""
    state = npr.get_state()
    npr.seed(1)
    total = sum(lower_bound(params, binary_test_images[i:i + chunk]) * len(binary_test_images[i:i + chunk])
                for i in range(0, len(binary_test_images), chunk))
    npr.set_state(state)
    return float(total) / len(binary_test_images)


def model_config(args, data):
    """What a run is: its options and its data (a checkpoint is resumed only for the same)."""
    config = {"latent_dim": args.latent_dim, "hidden": list(args.hidden), "dtype": args.dtype,
              "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "data": data}
    if hasattr(args, "flows"):  # flows.py's runs
        config["flows"] = args.flows
    return config


def init_model(config):
    """Weights and biases of both networks, decoder first, as a list of arrays in the config's dtype."""
    npr.seed(config["seed"])
    L, hidden = config["latent_dim"], config["hidden"]
    params = init_net_params([L] + hidden + [784]) + init_net_params([784] + hidden + [2 * L])
    return [a.astype(config["dtype"]) for layer in params for a in layer]


def as_networks(arrays):
    """[W1, b1, W2, b2, ...] of both networks -> (gen_params, rec_params), lists of (W, b)."""
    layers = [(arrays[i], arrays[i + 1]) for i in range(0, len(arrays), 2)]
    return layers[:len(layers) // 2], layers[len(layers) // 2:]


def train(args, train_images, test_images, data, lower_bound=None, params=None):
    """Train with Adam, checkpointing after every epoch. Returns (params, history).

    params is the list [W1, b1, W2, b2, ...] of the decoder, then of the encoder; data says
    what train_images and test_images are (load_mnist(...).source). flows.py passes its own
    lower_bound(params, batch) and initial params.
    """
    from tqdm import tqdm

    config = model_config(args, data)
    params = init_model(config) if params is None else params
    lower_bound = lower_bound or (lambda params, batch: vae_lower_bound(*as_networks(params), batch))
    m, v, t, history = [np.zeros_like(a) for a in params], [np.zeros_like(a) for a in params], 0, []
    os.makedirs(args.out, exist_ok=True)
    checkpoint = checkpoint_of(args)  # OUT/checkpoint.npz
    saved = resume(checkpoint, config, args.quiet) if args.resume else None
    if saved:
        params, m, v, t, history = saved["arrays"], saved["m"], saved["v"], saved["t"], saved["history"]

    reuse_freed_memory()
    train_pixels = as_pixels(train_images)
    binary_test_images = binarize(as_pixels(test_images), np.dtype(args.dtype), npr.RandomState(0))
    batches_per_epoch = int(np.ceil(len(train_pixels) / args.batch_size))

    for epoch in range(len(history) + 1, args.epochs + 1):
        start, total = time.time(), 0.0
        order = npr.permutation(len(train_pixels))  # a fresh shuffle every epoch
        bar = tqdm(range(batches_per_epoch), desc=f"epoch {epoch}/{args.epochs}", leave=False,
                   file=sys.stderr, disable=args.quiet)
        for i in bar:
            batch = binarize(train_pixels[order[i * args.batch_size:(i + 1) * args.batch_size]], args.dtype)
            value, gradients = value_and_grads(lower_bound, params, batch)
            t += 1
            for k in range(len(params)):  # one Adam step per weight array
                params[k], m[k], v[k] = adam_step(params[k], gradients[k], m[k], v[k], t,
                                                  learning_rate=args.lr)
            total += value
            bar.set_postfix_str(f"lower bound {total / (i + 1):8.2f}", refresh=False)
        bar.close()
        seconds = time.time() - start  # training only, not the test-set evaluation
        history.append({"epoch": epoch, "train": float(total / batches_per_epoch),
                        "test": test_lower_bound(lower_bound, params, binary_test_images),
                        "seconds": round(seconds, 2)})
        save_checkpoint(checkpoint, params, m, v, t, history, config)
        if not args.quiet:
            h = history[-1]
            print(f"epoch {epoch:3d}/{args.epochs}  train lower bound {h['train']:8.2f}  "
                  f"test lower bound {h['test']:8.2f}  ({h['seconds']:.1f} s)", flush=True)
    return params, history


def main(argv=None):
    args = parse_args("Train a VAE on MNIST and write the report's figures.", argv)
    stop_if_unfinished(sys.modules[__name__])
    with kit_errors("vae.py", args):
        mnist = load_data(args)  # says which data it is
        _, train_images, _, test_images, _ = mnist
        if args.figures_only:
            params, history = saved_run(args, mnist.source)
        else:
            params, history = train(args, train_images, test_images, mnist.source)
    gen_params, rec_params = as_networks(params)
    write_figures(lambda z: sigmoid(neural_net_predict(gen_params, z)),  # Bernoulli means
                  lambda x: np.split(neural_net_predict(rec_params, x), 2, axis=-1)[0],  # posterior means
                  history, test_images, args, mnist.source)


if __name__ == "__main__":
    main()
