"""Planar normalizing flows (Rezende & Mohamed 2015): an optional, advanced part.

The VAE's posterior q(z|x) is a diagonal Gaussian, which cannot bend to the shape of
the true posterior. A normalizing flow moves the Gaussian sample z_0 through K invertible
maps, z_K = f_K(... f_1(z_0)), and the change-of-variables formula gives the density of
what comes out:

    log q_K(z_K|x) = log q_0(z_0|x) - sum_k log |det d f_k / d z_{k-1}|

A planar flow bends space along one direction w:

    f(z) = z + u_hat * tanh(w . z + b),   log |det df/dz| = log |1 + u_hat . psi(z)|,
    psi(z) = (1 - tanh(w . z + b)^2) * w

It is invertible when w . u_hat >= -1, which constrain_u guarantees. The
lower bound keeps the VAE's form, with the KL replaced by its Monte Carlo estimate:

    L(x) = E_q0[ log p(x|z_K) + log p(z_K) - log q_0(z_0|x) + sum_k log |det_k| ]

Your part: the three functions marked YOUR CODE HERE; they use your vae.py for the
networks, the sampler and the Bernoulli term. `python flows.py --flows 5` trains a VAE
with 5 flows and writes its lower bound and reconstructions into results/flows5/.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vae import (_rng_state_from_json, _rng_state_to_json, adam_step, as_networks, as_pixels,  # noqa: E402
                 bernoulli_log_prob, binarize, init_net_params, load_mnist, neural_net_predict, np, npr,
                 reuse_freed_memory, sample_latent_variables_from_posterior, save_images, sigmoid,
                 stop_if_unfinished, value_and_grads)

HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)


def init_flow_params(num_flows, latent_dim, scale=0.01, rs=npr):
    """(u, w, b) per flow: u and w of shape (L,), b of shape (1,); small, so each flow
    starts close to the identity."""
    return [(scale * rs.randn(latent_dim), scale * rs.randn(latent_dim), np.zeros(1)) for _ in range(num_flows)]


def constrain_u(u, w):
    """u_hat, the version of u that keeps the planar flow invertible: w . u_hat >= -1.

    u, w: (L,). Returns u_hat: (L,). With m(a) = -1 + log(1 + e^a) (always > -1),

        u_hat = u + (m(w . u) - w . u) * w / |w|^2

    so that w . u_hat = m(w . u). Compute log(1 + e^a) stably, as in bernoulli_log_prob.
    """
    # TODO: wu = w . u (a number); return u + (m(wu) - wu) * w / (w . w), shape (L,).
    ### BEGIN SOLUTION
    wu = np.dot(w, u)
    m_wu = -1.0 + np.logaddexp(0.0, wu)
    return u + (m_wu - wu) * w / np.dot(w, w)
    ### END SOLUTION


def planar_flow(z, u, w, b):
    """One planar flow applied to every row of z, and its log-determinant.

    z: (batch, L); u, w: (L,); b: (1,). Returns (z_new, log_det): (batch, L) and (batch,).

        u_hat   = constrain_u(u, w)
        a       = z . w + b                       (batch,)
        z_new   = z + u_hat * tanh(a)             (outer product: each row moves along u_hat)
        log_det = log |1 + (1 - tanh(a)^2) * (w . u_hat)|
    """
    # TODO: u_hat from constrain_u; a = z @ w + b; return z + tanh(a)[:, None] * u_hat and
    #       log|1 + (1 - tanh(a)^2) * (w . u_hat)|, shapes (batch, L) and (batch,).
    ### BEGIN SOLUTION
    u_hat = constrain_u(u, w)
    h = np.tanh(np.dot(z, w) + b)
    z_new = z + h[:, None] * u_hat
    log_det = np.log(np.abs(1.0 + (1.0 - h ** 2) * np.dot(w, u_hat)))
    return z_new, log_det
    ### END SOLUTION


def flow_lower_bound(gen_params, rec_params, flow_params, data):
    """The one-sample lower bound with flows, averaged over the batch (a scalar).

    flow_params: list of (u, w, b), applied in order. Steps: encode; draw z_0 with your
    sampler; log q_0(z_0|x) = sum_d [-(z_0 - mean)^2 / (2 s^2) - log_std - log(2 pi)/2]
    with s = exp(log_std); push z_0 through the flows, adding up the log-determinants;
    decode z_K; then the mean over the batch of

        bernoulli_log_prob(data, logits) + log N(z_K; 0, I) - log q_0(z_0|x) + sum of log_det
    """
    # TODO: encoder output -> z_0, log q_0(z_0|x) (batch,); flows -> z_K and the summed
    #       log-determinants (batch,); decoder logits; return the batch mean of the bound.
    ### BEGIN SOLUTION
    encoder_output = neural_net_predict(rec_params, data)
    mean, log_std = np.split(encoder_output, 2, axis=-1)
    z = sample_latent_variables_from_posterior(encoder_output)
    log_q0 = np.sum(-0.5 * ((z - mean) / np.exp(log_std)) ** 2 - log_std - HALF_LOG_2PI, axis=-1)
    sum_log_det = 0.0
    for u, w, b in flow_params:
        z, log_det = planar_flow(z, u, w, b)
        sum_log_det = sum_log_det + log_det
    log_prior = np.sum(-0.5 * z ** 2 - HALF_LOG_2PI, axis=-1)
    logits = neural_net_predict(gen_params, z)
    bound = bernoulli_log_prob(data, logits) + log_prior - log_q0 + sum_log_det
    return np.sum(bound) / data.shape[0]
    ### END SOLUTION


# ----------------------------------------------------------------------------------------
# Training and evaluation (provided).

def split_model(arrays, num_flows):
    """[decoder W, b..., encoder W, b..., flow u, w, b...] -> (gen, rec, flows)."""
    first_flow = len(arrays) - 3 * num_flows
    gen, rec = as_networks(arrays[:first_flow])
    return gen, rec, [tuple(arrays[i:i + 3]) for i in range(first_flow, len(arrays), 3)]


def test_lower_bound(gen, rec, flows, binary_images, chunk=1000):
    """The lower bound per image over a fixed binarized test set, without touching the training RNG."""
    state = npr.get_state()
    npr.seed(1)
    total = sum(flow_lower_bound(gen, rec, flows, binary_images[i:i + chunk]) * len(binary_images[i:i + chunk])
                for i in range(0, len(binary_images), chunk))
    npr.set_state(state)
    return float(total) / len(binary_images)


def train_flows(num_flows, train_images, test_images, out, epochs=30, latent_dim=50, hidden=(200, 200),
                batch_size=200, lr=0.001, seed=0, quiet=False):
    """Train a VAE with ``num_flows`` planar flows; checkpoint every epoch, resume from OUT.

    Returns (gen, rec, flows, history).
    """
    os.makedirs(out, exist_ok=True)
    checkpoint = os.path.join(out, "checkpoint.npz")
    npr.seed(seed)
    hidden = list(hidden)
    arrays = [a for layer in init_net_params([latent_dim] + hidden + [784]) + init_net_params(
        [784] + hidden + [2 * latent_dim]) for a in layer]
    arrays += [a for flow in init_flow_params(num_flows, latent_dim) for a in flow]
    m, v, t, history = [np.zeros_like(a) for a in arrays], [np.zeros_like(a) for a in arrays], 0, []
    if os.path.exists(checkpoint):
        with np.load(checkpoint) as saved:
            arrays = [saved[f"p{i}"] for i in range(len(arrays))]
            m = [saved[f"m{i}"] for i in range(len(arrays))]
            v = [saved[f"v{i}"] for i in range(len(arrays))]
            t, history = int(saved["t"]), json.loads(str(saved["history"]))
            npr.set_state(_rng_state_from_json(json.loads(str(saved["rng"]))))
    reuse_freed_memory()
    pixels = as_pixels(train_images)
    binary_test = binarize(as_pixels(test_images), np.float64, npr.RandomState(0))
    objective = lambda arrays, batch: flow_lower_bound(*split_model(arrays, num_flows), batch)
    batches = int(np.ceil(len(pixels) / batch_size))
    for epoch in range(len(history) + 1, epochs + 1):
        start, total = time.time(), 0.0
        order = npr.permutation(len(pixels))
        for i in range(batches):
            batch = binarize(pixels[order[i * batch_size:(i + 1) * batch_size]], np.float64)
            value, grads = value_and_grads(objective, arrays, batch)
            t += 1
            for j in range(len(arrays)):
                arrays[j], m[j], v[j] = adam_step(arrays[j], grads[j], m[j], v[j], t, learning_rate=lr)
            total += value
        seconds = time.time() - start
        history.append({"epoch": epoch, "train": float(total / batches),
                        "test": test_lower_bound(*split_model(arrays, num_flows), binary_test),
                        "seconds": round(seconds, 2)})
        np.savez(checkpoint + ".part.npz", t=t, history=json.dumps(history),
                 rng=json.dumps(_rng_state_to_json(npr.get_state())),
                 **{f"p{i}": a for i, a in enumerate(arrays)}, **{f"m{i}": a for i, a in enumerate(m)},
                 **{f"v{i}": a for i, a in enumerate(v)})
        os.replace(checkpoint + ".part.npz", checkpoint)
        if not quiet:
            print(f"K={num_flows} epoch {epoch:3d}/{epochs}  train {history[-1]['train']:8.2f}  "
                  f"test {history[-1]['test']:8.2f}  ({seconds:.1f} s)", flush=True)
    return (*split_model(arrays, num_flows), history)


def reconstructions(gen, rec, flows, images):
    """Decoder at the flowed posterior mean: z_0 = mean, pushed through the flows."""
    z = np.split(neural_net_predict(rec, images), 2, axis=-1)[0]
    for u, w, b in flows:
        z, _ = planar_flow(z, u, w, b)
    return sigmoid(neural_net_predict(gen, z))


def stop_if_unfinished_flows():
    """Exit with one line naming the first function still to write (vae.py's first, then these)."""
    stop_if_unfinished()
    z, u, w, b = np.zeros((1, 2)), np.ones(2), np.ones(2), np.zeros(1)
    calls = [("constrain_u", lambda: constrain_u(u, w)), ("planar_flow", lambda: planar_flow(z, u, w, b)),
             ("flow_lower_bound", lambda: flow_lower_bound(init_net_params([1, 4], rs=npr.RandomState(0)),
                                                           init_net_params([4, 2], rs=npr.RandomState(0)),
                                                           [], np.zeros((1, 4))))]
    stop_if_unfinished(calls, "flows.py")


def main(argv=None):
    p = argparse.ArgumentParser(description="Train a VAE with planar flows on MNIST.")
    p.add_argument("--flows", type=int, default=5, help="number of planar flows K (0: the plain VAE's form)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None, help="default: results/flowsK")
    args = p.parse_args(argv)
    if args.flows < 0 or args.epochs < 1:
        p.error("--flows must be 0 or more and --epochs positive")
    out = args.out or os.path.join("results", f"flows{args.flows}")
    stop_if_unfinished_flows()
    _, train_images, _, test_images, _ = load_mnist(args.data_dir)
    gen, rec, flows, history = train_flows(args.flows, train_images, test_images, out, epochs=args.epochs)
    save_images(np.concatenate([test_images[:10], reconstructions(gen, rec, flows, test_images[:10])]),
                os.path.join(out, "reconstructions.png"), ims_per_row=10, row_labels=["test image", "reconstruction"],
                title=f"Reconstructions with {args.flows} planar flows")
    print(f"test lower bound {history[-1]['test']:.2f} nats; figures in {out}/")


if __name__ == "__main__":
    main()
