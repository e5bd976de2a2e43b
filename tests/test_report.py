"""The report: the log-likelihood estimator against exact integration, and the quick run end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from conftest import OFFLINE, REPO, SHARED_MNIST, needs_full_mnist, write_raw_tiny_mnist

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
    assert "Data: MNIST, 3,000 training and 500 test images (md5 train-images f68b3c2d" in text
    assert "| 50 |" in text and "Time per part" in text
    numbers = [[{k: v for k, v in row.items() if k != "s_per_epoch"}  # timings differ, estimates must not
                for row in json.load(open(tmp_path / d / "report" / "numbers.json"))["loglik"]] for d in ("a", "b")]
    assert numbers[0] == numbers[1] and len(numbers[0]) == 4


def test_unknown_part_is_refused():
    result = subprocess.run([sys.executable, os.path.join(REPO, "solution", "report.py"), "--parts", "planes,tsne"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown part(s) planes" in result.stderr


def run_report(*args, cwd=REPO):
    env = {k: v for k, v in os.environ.items() if k != "MNIST_DIR"}
    env.update(OFFLINE)
    return subprocess.run([sys.executable, os.path.join(REPO, "solution", "report.py"), "--quick", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_coursework_figures_come_first_and_the_cache_is_keyed_by_the_data(tmp_path):
    """The same cache, two data sets: the second trains its own model and says which data it used."""
    a, b = write_raw_tiny_mnist(tmp_path / "a", seed=0), write_raw_tiny_mnist(tmp_path / "b", seed=1)
    cache = str(tmp_path / "cache")
    runs = [run_report("--parts", "coursework", "--data-dir", d, "--out", str(tmp_path / out), "--cache", cache)
            for d, out in ((a, "first"), (a, "again"), (b, "other"))]
    assert all(r.returncode == 0 for r in runs), [r.stderr[-1500:] for r in runs]
    assert "--latent-dim 50: training 2 epochs" in runs[0].stdout
    assert "--latent-dim 50: cached" in runs[1].stdout
    assert "--latent-dim 50: training 2 epochs" in runs[2].stdout  # not the first data's model
    texts = [(tmp_path / out / "report.md").read_text() for out in ("first", "other")]
    data_lines = [next(line for line in t.splitlines() if line.startswith("Data: ")) for t in texts]
    assert data_lines[0] != data_lines[1] and all("400 training and 100 test images" in d for d in data_lines)
    sections = [line for line in texts[0].splitlines() if line.startswith("## ")]
    assert sections[0] == "## The coursework's figures"
    for name in ("lower_bound.png", "samples.png", "reconstructions.png", "interpolations.png"):
        assert f"(report/{name})" in texts[0] and (tmp_path / "first" / "report" / name).exists()


def test_quick_report_never_writes_into_docs_unless_told(tmp_path):
    data = write_raw_tiny_mnist(tmp_path / "mnist")
    result = run_report("--parts", "coursework", "--data-dir", data, "--cache", str(tmp_path / "cache"),
                        cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-1500:]
    assert (tmp_path / "results" / "quick-report" / "report.md").exists() and not (tmp_path / "docs").exists()


def test_report_errors_are_one_message(tmp_path):
    result = run_report("--data-dir", str(tmp_path / "no-such-folder"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no-such-folder (named by --data-dir) does not exist" in result.stderr


def test_the_report_of_a_variant_uses_its_reference_and_refuses_the_original_only_parts(tmp_path):
    data = write_raw_tiny_mnist(tmp_path / "mnist")
    result = run_report("--variant", "prior2+pm1+descend", "--parts", "coursework,sweep,latent2d,curves", "--data-dir", data,
                        "--cache", str(tmp_path / "cache"), cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-1500:]
    out = tmp_path / "results" / "quick-report-prior2+pm1+descend"
    text = (out / "report.md").read_text()
    assert "--variant prior2+pm1+descend" in text and "the prior is N(0, 2^2 I)" in text and "the pixels are -1 or +1" in text
    assert (out / "report" / "samples.png").exists() and (out / "report" / "latent2d_manifold.png").exists()
    assert os.listdir(tmp_path / "cache" / "variant-prior2+pm1+descend" / "quick")
    history = json.load(open(out / "report" / "numbers.json"))["histories"]["50"]
    assert all(np.isfinite(h["test"]) and h["test"] < 0 for h in history)
    refused = run_report("--variant", "fall2027", "--parts", "coursework,loglik", "--data-dir", data, cwd=str(tmp_path))
    assert refused.returncode == 2 and "loglik: written for the original variant only" in refused.stderr
