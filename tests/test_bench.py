"""The speed scripts in bench/ run and say what they measured (they print figures; nothing here times anything)."""
import os
import re
import subprocess
import sys

from conftest import REPO, write_raw_tiny_mnist


def run(*args):
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_profile_step_names_every_part_of_a_step(tmp_path):
    out = run("bench/profile_step.py", "--data-dir", write_raw_tiny_mnist(tmp_path / "mnist"),
              "--steps", "2", "--rounds", "1", "--dtype", "float32")
    assert "data: 400 training images" in out
    assert re.search(r"float32: the loop as it runs: [\d.]+ ms per step, [\d.]+ s per epoch of 2 steps", out)
    for part in ("binarization", "matrix products, forward", "matrix products, backward", "elementwise, forward",
                 "elementwise, backward", "bookkeeping (autograd, dispatch)", "Adam"):
        assert re.search(rf"\n  {re.escape(part)} +-?[\d.]+ ms +-?[\d.]+ s/epoch", out), part
    assert re.search(r"once per epoch: test evaluation [\d.]+ s, checkpoint [\d.]+ s", out)
    for setting in ("glibc's defaults, fresh process", "glibc's defaults, MNIST loaded", "reuse_freed_memory"):
        assert re.search(rf"{re.escape(setting)} +[\d.]+ ms +\d+ faults", out), setting
    assert len(re.findall(r"one thread +[\d.]+, two threads +[\d.]+ \([\d.]+x\)", out)) == 4


def test_profile_step_refuses_data_smaller_than_a_batch(tmp_path):
    directory = write_raw_tiny_mnist(tmp_path / "mnist", n_train=150)
    result = subprocess.run([sys.executable, "bench/profile_step.py", "--data-dir", directory],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2 and "150 training images, fewer than a batch of 200" in result.stderr


def test_train_speed_takes_each_ratio_within_its_round(tmp_path):
    """With peers that always report the same times, each round's kit/PyTorch ratio is that round's kit
    time over PyTorch's, and the medians are taken over the rounds."""
    peers = tmp_path / "peers"
    os.makedirs(peers)
    (peers / "torch_vae.py").write_text("import sys\nprint('epoch 0: 2.00 s\\nepoch 1: 2.00 s\\nepoch 2: 2.00 s')\n")
    (peers / "naive_autograd_vae.py").write_text("print('epoch 0: 8.00 s  train ELBO -150')\n")
    (peers / "gemm_peak.py").write_text("print('float64: 50 GFLOP/s; 150 GFLOP/epoch; epoch floor 1.00 s')\n"
                                        "print('float32: 99 GFLOP/s; 150 GFLOP/epoch; epoch floor 0.50 s')\n")
    out = run("bench/train_speed.py", "--data-dir", write_raw_tiny_mnist(tmp_path / "mnist"), "--epochs", "1",
              "--rounds", "2", "--peers", str(peers), "--torch-python", sys.executable)
    kit = {dtype: [float(s) for s in re.findall(rf"kit {dtype} ([\d.]+) s", out)] for dtype in ("float64", "float32")}
    assert all(len(times) == 2 for times in kit.values()), out
    for dtype, floor in (("float64", 1.0), ("float32", 0.5)):
        for peer, seconds in (("torch", 2.0), ("floor", floor)):
            line = re.search(rf"{dtype}: kit / {peer} += ([\d.]+) +\(rounds: ([\d., ]+)\)", out)
            assert line, (dtype, peer, out)
            # the printed kit times are rounded to 0.01 s, the ratios to 0.01
            ratios = [float(r) for r in line.group(2).split(", ")]
            assert all(abs(r - k / seconds) <= 0.01 + 0.005 / seconds for r, k in zip(ratios, kit[dtype])), line.group(0)
            assert float(line.group(1)) == max(ratios)  # the median of two: the upper one
    assert re.search(r"float64: kit / naive += [\d.]+", out)
