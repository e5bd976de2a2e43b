"""The reference model: each function against independent math, and the training script."""
import json
import os
import subprocess
import sys

import autograd.numpy as anp
import matplotlib.image
import numpy as np
import pytest
from autograd import grad
from scipy import stats

from conftest import REPO, SHARED_MNIST, files_table, needs_full_mnist, write_tiny_mnist

sys.path.insert(0, os.path.join(REPO, "solution"))
import vae  # noqa: E402  (the reference, solution/vae.py)

rs = np.random.RandomState(42)


def test_bernoulli_log_prob_matches_the_bernoulli_pmf():
    logits = rs.randn(6, 30) * 4
    targets = (rs.rand(6, 30) < 0.5).astype(float)
    expected = stats.bernoulli.logpmf(targets, 1 / (1 + np.exp(-logits))).sum(-1)
    np.testing.assert_allclose(vae.bernoulli_log_prob(targets, logits), expected, rtol=1e-12)


def test_bernoulli_log_prob_is_finite_and_exact_at_extreme_logits():
    logits = np.array([[-1000.0, -40.0, 40.0, 1000.0]])
    # log sigmoid(l) = -softplus(-l): -> l for very negative l, -> 0 for very positive l
    assert vae.bernoulli_log_prob(np.ones((1, 4)), logits)[0] == pytest.approx(-1040.0, abs=1e-12)
    assert vae.bernoulli_log_prob(np.zeros((1, 4)), logits)[0] == pytest.approx(-1040.0, abs=1e-12)
    assert np.isfinite(grad(lambda l: anp.sum(vae.bernoulli_log_prob(np.ones((1, 4)), l)))(logits)).all()


def test_kl_matches_a_monte_carlo_estimate():
    mean, log_std = rs.randn(3, 4), rs.randn(3, 4) * 0.5
    z = mean + np.exp(log_std) * np.random.RandomState(0).randn(200000, 3, 4)
    log_q = stats.norm.logpdf(z, mean, np.exp(log_std)).sum(-1)
    log_p = stats.norm.logpdf(z).sum(-1)
    np.testing.assert_allclose(vae.compute_KL(np.hstack([mean, log_std])), (log_q - log_p).mean(0), atol=0.02)
    assert vae.compute_KL(np.zeros((2, 10))) == pytest.approx([0.0, 0.0])


def test_sampler_moments_independence_and_reparameterization():
    mean, log_std = np.array([1.0, -2.0, 0.0]), np.array([0.0, -1.0, 1.0])
    encoder_output = np.tile(np.concatenate([mean, log_std]), (100000, 1))
    z = vae.sample_latent_variables_from_posterior(encoder_output)
    assert z.shape == (100000, 3)
    np.testing.assert_allclose(z.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(z.std(0), np.exp(log_std), rtol=0.02)
    assert abs(np.corrcoef(z[:-1, 0], z[1:, 0])[0, 1]) < 0.02  # fresh noise per row
    out = rs.randn(5, 6)
    np.random.seed(3)
    d = grad(lambda o: anp.sum(vae.sample_latent_variables_from_posterior(o)))(out)
    np.random.seed(3)
    z = vae.sample_latent_variables_from_posterior(out)
    np.testing.assert_allclose(d[:, :3], 1.0)  # d sum z / d mean
    np.testing.assert_allclose(d[:, 3:], z - out[:, :3])  # d sum z / d log_std = z - mean


def test_lower_bound_equals_its_definition_with_the_same_noise():
    gen = vae.init_net_params([3, 8, 784], rs=np.random.RandomState(1))
    rec = vae.init_net_params([784, 8, 6], rs=np.random.RandomState(2))
    data = (rs.rand(4, 784) < 0.3).astype(float)
    np.random.seed(7)
    got = vae.vae_lower_bound(gen, rec, data)
    np.random.seed(7)
    h = vae.neural_net_predict(rec, data)
    z = h[:, :3] + np.exp(h[:, 3:]) * np.random.randn(4, 3)
    p = 1 / (1 + np.exp(-vae.neural_net_predict(gen, z)))
    log_lik = np.sum(data * np.log(p) + (1 - data) * np.log(1 - p), -1)
    kl = np.sum(0.5 * (np.exp(2 * h[:, 3:]) + h[:, :3] ** 2 - 1) - h[:, 3:], -1)
    assert got == pytest.approx(np.mean(log_lik - kl), rel=1e-10)


def test_adam_first_step_moves_each_parameter_by_the_learning_rate_uphill():
    params, gradient = rs.randn(5), np.array([3.0, -0.001, 1e4, -7.0, 0.5])
    new, m, v = vae.adam_step(params, gradient, np.zeros(5), np.zeros(5), 1, learning_rate=0.01)
    np.testing.assert_allclose(new - params, 0.01 * np.sign(gradient), rtol=1e-4)  # bias-corrected
    np.testing.assert_allclose(m, 0.1 * gradient)
    np.testing.assert_allclose(v, 0.001 * gradient ** 2)


def test_adam_reaches_the_top_of_a_concave_function():
    target = np.array([1.0, -3.0, 0.5])
    f = lambda x: -anp.sum((x - target) ** 2 * np.array([1.0, 100.0, 0.01]))
    x, m, v = np.zeros(3), np.zeros(3), np.zeros(3)
    for t in range(1, 5001):
        x, m, v = vae.adam_step(x, grad(f)(x), m, v, t, learning_rate=0.01)
    np.testing.assert_allclose(x, target, atol=0.02)


def test_one_pass_gradient_matches_autograd_grad():
    config = {"latent_dim": 3, "hidden": [7], "dtype": "float64", "batch_size": 4, "lr": 1e-3, "seed": 0}
    arrays = vae.init_model(config)
    data = (rs.rand(4, 784) < 0.3).astype(float)
    objective = lambda arrays, batch: vae.vae_lower_bound(*vae.as_networks(arrays), batch)
    np.random.seed(0)
    value, grads = vae.value_and_grads(objective, arrays, data)
    np.random.seed(0)
    expected = grad(lambda a: objective(list(a), data))(tuple(arrays))
    np.random.seed(0)
    assert value == pytest.approx(objective(arrays, data), rel=1e-12)
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_float32_training_stays_float32():
    config = {"latent_dim": 3, "hidden": [7], "dtype": "float32", "batch_size": 4, "lr": 1e-3, "seed": 0}
    arrays = vae.init_model(config)
    data = (rs.rand(4, 784) < 0.3).astype(np.float32)
    objective = lambda arrays, batch: vae.vae_lower_bound(*vae.as_networks(arrays), batch)
    value, grads = vae.value_and_grads(objective, arrays, data)
    assert value.dtype == np.float32 and {g.dtype for g in grads} == {np.dtype(np.float32)}


# ------------------------------------------------------------------ the script end to end
def run_vae(*args, cwd=REPO, env=None):
    return subprocess.run([sys.executable, os.path.join(REPO, "solution", "vae.py"), *args, "--quiet"],
                          cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def tiny_env(tmp_path_factory):
    """Environment pointing the loader at small IDX files whose checksums it is told to accept."""
    directory = str(tmp_path_factory.mktemp("mnist"))
    md5s = write_tiny_mnist(directory, n_train=400, n_test=100)
    return directory, md5s


def train_tiny(directory, md5s, out, *args):
    """Run main() in-process on the tiny files (checksums patched in), as the CLI would."""
    import data.mnist
    saved = dict(data.mnist.FILES)
    data.mnist.FILES.update(files_table(md5s))
    try:
        vae.main(["--data-dir", directory, "--out", str(out), "--latent-dim", "4", "--hidden", "16",
                  "--batch-size", "50", "--quiet", *args])
    finally:
        data.mnist.FILES.update(saved)


FIGURES = ["lower_bound.png", "samples.png", "reconstructions.png", "interpolations.png"]


def test_training_writes_checkpoint_history_and_figures(tiny_env, tmp_path):
    train_tiny(*tiny_env, tmp_path, "--epochs", "2")
    history = json.load(open(tmp_path / "history.json"))["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[1]["test"] > history[0]["test"]  # it learns
    for name in FIGURES:
        image = matplotlib.image.imread(str(tmp_path / name))
        assert image.shape[0] > 100 and image.shape[1] > 100, name
    assert not [f for f in os.listdir(tmp_path) if ".part" in f]


def test_resume_continues_exactly_and_same_seed_gives_same_figures(tiny_env, tmp_path):
    train_tiny(*tiny_env, tmp_path / "straight", "--epochs", "3")
    train_tiny(*tiny_env, tmp_path / "resumed", "--epochs", "1")
    train_tiny(*tiny_env, tmp_path / "resumed", "--epochs", "3", "--resume")
    a = np.load(tmp_path / "straight" / "checkpoint.npz")
    b = np.load(tmp_path / "resumed" / "checkpoint.npz")
    np.testing.assert_array_equal(a["flat_params"], b["flat_params"])
    for name in FIGURES[1:]:
        np.testing.assert_array_equal(matplotlib.image.imread(str(tmp_path / "straight" / name)),
                                      matplotlib.image.imread(str(tmp_path / "resumed" / name)))


def test_figures_only_redraws_from_checkpoint(tiny_env, tmp_path):
    train_tiny(*tiny_env, tmp_path, "--epochs", "1")
    os.remove(tmp_path / "samples.png")
    train_tiny(*tiny_env, tmp_path, "--figures-only")
    assert (tmp_path / "samples.png").exists()
    with pytest.raises(SystemExit, match="no checkpoint"):
        train_tiny(*tiny_env, tmp_path / "empty", "--figures-only")


def test_resume_with_other_options_is_refused(tiny_env, tmp_path):
    train_tiny(*tiny_env, tmp_path, "--epochs", "1")
    with pytest.raises(SystemExit, match="was trained with"):
        train_tiny(*tiny_env, tmp_path, "--epochs", "2", "--resume", "--lr", "0.01")


def test_bad_options_are_refused():
    result = run_vae("--epochs", "-1")
    assert result.returncode == 2 and "--epochs must be positive" in result.stderr


@needs_full_mnist
def test_one_epoch_on_full_mnist_from_the_command_line(tmp_path):
    result = run_vae("--epochs", "1", "--data-dir", SHARED_MNIST, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    history = json.load(open(tmp_path / "history.json"))["history"]
    assert -175 < history[0]["test"] < -100  # one epoch of a working VAE on MNIST
    assert all((tmp_path / name).exists() for name in FIGURES)


def test_binarization_turns_each_pixel_on_with_probability_equal_to_its_intensity():
    images = np.tile(np.array([0, 1, 64, 128, 254, 255]) / 255.0, (50000, 1))
    binary = vae.binarize(vae.as_pixels(images), np.float32, np.random.RandomState(0))
    assert binary.dtype == np.float32 and set(np.unique(binary)) <= {0.0, 1.0}
    assert binary[:, 0].max() == 0 and binary[:, -1].min() == 1  # black never on, white always on
    np.testing.assert_allclose(binary.mean(0), images[0], atol=4 * np.sqrt(0.25 / 50000))
