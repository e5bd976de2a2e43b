"""The report: the log-likelihood estimator against exact integration, and the quick run end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from conftest import REPO, SHARED_MNIST, needs_full_mnist

sys.path.insert(0, os.path.join(REPO, "solution"))
import report  # noqa: E402
import vae  # noqa: E402


def exact_log_likelihood(gen, x):
    """log p(x) = log ∫ p(x|z) N(z; 0, 1) dz for a 1-D latent, by dense quadrature."""
    z = np.linspace(-10, 10, 20001)[:, None]
    logits = vae.neural_net_predict(gen, z)
    log_px_z = np.sum(x * logits - np.logaddexp(0, logits), axis=-1)
    return logsumexp(log_px_z + stats.norm.logpdf(z[:, 0])) + np.log(z[1, 0] - z[0, 0])


def test_importance_sampling_converges_to_the_exact_log_likelihood():
    rs = np.random.RandomState(0)
    gen = vae.init_net_params([1, 8, 12], rs=rs)
    rec = vae.init_net_params([12, 8, 2], rs=rs)
    x = (rs.rand(3, 12) < 0.5).astype(float)
    exact = np.mean([exact_log_likelihood(gen, row) for row in x])
    one_sample = report.log_likelihood(gen, rec, x, k=1, seed=1)
    many = report.log_likelihood(gen, rec, x, k=20000, seed=1)
    assert many == pytest.approx(exact, abs=0.02)
    assert one_sample < many  # k = 1 is the ELBO's estimate: a lower bound, looser


def test_estimate_does_not_depend_on_the_chunking():
    rs = np.random.RandomState(1)
    gen = vae.init_net_params([2, 8, 20], rs=rs)
    rec = vae.init_net_params([20, 8, 4], rs=rs)
    x = (rs.rand(5, 20) < 0.5).astype(float)
    a = report.log_likelihood(gen, rec, x, k=300, seed=3, rows_per_chunk=1500)
    b = report.log_likelihood(gen, rec, x, k=300, seed=3, rows_per_chunk=1500)
    assert a == b  # same seed, same number


@needs_full_mnist
def test_quick_report_runs_every_part_and_repeats_itself(tmp_path):
    def run(out):
        return subprocess.run([sys.executable, os.path.join(REPO, "solution", "report.py"), "--quick",
                               "--data-dir", SHARED_MNIST, "--out", str(out), "--cache", str(out / "cache")],
                              capture_output=True, text=True, timeout=600)
    first = run(tmp_path / "a")
    run(tmp_path / "b")
    assert first.returncode == 0, first.stderr[-2000:]
    figures = {"latent_sweep.png", "latent2d_scatter.png", "latent2d_manifold.png", "learning_curves.png", "tsne.png"}
    assert figures <= set(os.listdir(tmp_path / "a" / "report"))
    text = (tmp_path / "a" / "report.md").read_text()
    for name in figures:
        assert f"report/{name}" in text
    assert "| 50 |" in text and "Time per part" in text
    numbers = [[{k: v for k, v in row.items() if k != "s_per_epoch"}  # timings differ, estimates must not
                for row in json.load(open(tmp_path / d / "report" / "numbers.json"))["loglik"]] for d in ("a", "b")]
    assert numbers[0] == numbers[1] and len(numbers[0]) == 4


def test_unknown_part_is_refused():
    result = subprocess.run([sys.executable, os.path.join(REPO, "solution", "report.py"), "--parts", "planes,tsne"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown part(s) planes" in result.stderr
