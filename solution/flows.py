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
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vae import (as_networks, bernoulli_log_prob, init_model, init_net_params, model_config,  # noqa: E402
                 neural_net_predict, np, npr, sample_latent_variables_from_posterior, sigmoid, train)
from training_tools import kit_errors, load_data, parse_args, saved_run, stop_if_unfinished  # noqa: E402

HALF_LOG_2PI = float(0.5 * np.log(2 * np.pi))  # a Python float: float32 stays float32


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


def train_flows(args, train_images, test_images, data):
    """Train a VAE with args.flows planar flows, with vae.py's training loop: checkpoints every
    epoch, --resume from OUT. Returns (gen, rec, flows, history)."""
    config = model_config(args, data)
    arrays = init_model(config)  # seeds the generator, then the flows are drawn
    arrays += [a.astype(args.dtype) for flow in init_flow_params(args.flows, args.latent_dim) for a in flow]
    lower_bound = lambda arrays, batch: flow_lower_bound(*split_model(arrays, args.flows), batch)
    arrays, history = train(args, train_images, test_images, data, lower_bound=lower_bound, params=arrays)
    return (*split_model(arrays, args.flows), history)


def reconstructions(gen, rec, flows, images):
    """Decoder at the flowed posterior mean: z_0 = mean, pushed through the flows."""
    z = np.split(neural_net_predict(rec, images), 2, axis=-1)[0]
    for u, w, b in flows:
        z, _ = planar_flow(z, u, w, b)
    return sigmoid(neural_net_predict(gen, z))


def main(argv=None):
    args = parse_args("Train a VAE with planar flows on MNIST.", argv, flows=True)
    stop_if_unfinished(sys.modules["vae"], sys.modules[__name__])
    with kit_errors("flows.py", args):
        mnist = load_data(args)
        _, train_images, _, test_images, _ = mnist
        if args.figures_only:
            arrays, history = saved_run(args, mnist.source)
            gen, rec, flows = split_model(arrays, args.flows)
        else:
            gen, rec, flows, history = train_flows(args, train_images, test_images, mnist.source)
    from data import save_images
    save_images(np.concatenate([test_images[:10], reconstructions(gen, rec, flows, test_images[:10])]),
                os.path.join(args.out, "reconstructions.png"), ims_per_row=10,
                row_labels=["test image", "reconstruction"], title=f"Reconstructions with {args.flows} planar flows")
    if history:
        print(f"test lower bound {history[-1]['test']:.2f} nats; figures in {os.path.join(args.out, '')}")


if __name__ == "__main__":
    main()
