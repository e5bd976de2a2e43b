"""Seconds per training epoch of the reference VAE, beside its peers, in one sitting.

    python bench/train_speed.py --data-dir ../shared/mnist [--epochs 2] [--elbo-epochs 30]
        [--torch-python /tmp/torch-venv/bin/python] [--peers ../shared/bench]

Times the reference (solution/vae.py) in float64 and float32 on full-size data; with
--peers, runs the comparison scripts there in the same sitting (PyTorch on the CPU
through --torch-python, the coursework's naive autograd loop, the matrix-multiply floor)
and prints ratios, which travel between machines better than seconds. With
--elbo-epochs N, also trains N epochs in float64 and prints the test lower bound.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "solution"))
sys.path.insert(0, ROOT)


def kit_epoch_seconds(data_dir, dtype, epochs):
    """Median training seconds per epoch, from the script's own per-epoch history."""
    import vae
    from data import load_mnist

    _, train_images, _, test_images, _ = load_mnist(data_dir)
    with tempfile.TemporaryDirectory() as out:
        args = vae.parse_args(["--epochs", str(epochs), "--dtype", dtype, "--out", out, "--quiet"])
        _, history = vae.train(args, train_images, test_images)
    seconds = sorted(h["seconds"] for h in history)
    return seconds[len(seconds) // 2], history


def peer_seconds(command):
    """Run a peer script; return the median of its 'epoch k: S s' lines, and its output."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        return None, result.stderr.strip().splitlines()[-1:] or ["failed"]
    seconds = sorted(float(s) for s in re.findall(r"epoch \d+: ([\d.]+) s", result.stdout))
    return (seconds[len(seconds) // 2] if seconds else None), result.stdout.strip().splitlines()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="the MNIST files (default: the loader's)")
    p.add_argument("--epochs", type=int, default=2, help="epochs timed per configuration")
    p.add_argument("--elbo-epochs", type=int, default=0, help="also train this long and report the test ELBO")
    p.add_argument("--peers", default=None, help="folder of the comparison scripts (../shared/bench)")
    p.add_argument("--torch-python", default=None, help="a python with torch installed, for torch_vae.py")
    a = p.parse_args()

    rows = {}
    for dtype in ("float64", "float32"):
        rows[f"kit {dtype}"], _ = kit_epoch_seconds(a.data_dir, dtype, a.epochs)
        print(f"kit (solution/vae.py) {dtype}: {rows[f'kit {dtype}']:.2f} s/epoch", flush=True)

    if a.peers:
        data = ["--data", a.data_dir] if a.data_dir else []
        if a.torch_python:
            for dtype in ("float64", "float32"):
                rows[f"torch {dtype}"], out = peer_seconds(
                    [a.torch_python, os.path.join(a.peers, "torch_vae.py"), *data, "--epochs", str(a.epochs),
                     "--dtype", dtype])
                print(f"PyTorch CPU {dtype}: {rows[f'torch {dtype}']} s/epoch", flush=True)
        rows["naive float64"], out = peer_seconds(
            [sys.executable, os.path.join(a.peers, "naive_autograd_vae.py"), *data, "--epochs", "1"])
        print(f"coursework-style autograd float64: {rows['naive float64']} s/epoch", flush=True)
        _, out = peer_seconds([sys.executable, os.path.join(a.peers, "gemm_peak.py")])
        for line in out:
            match = re.match(r"(float\d+):.*epoch floor ([\d.]+) s", line)
            if match:
                rows[f"floor {match.group(1)}"] = float(match.group(2))
        print("\n".join(out), flush=True)
        print("\nratios (kit / peer; below 1 means the kit is faster):")
        for dtype in ("float64", "float32"):
            kit = rows[f"kit {dtype}"]
            for peer in ("torch", "naive", "floor"):
                other = rows.get(f"{peer} {dtype}")
                if other:
                    print(f"  {dtype}: kit / {peer:5s} = {kit / other:.2f}   ({kit:.2f} s vs {other:.2f} s)")

    if a.elbo_epochs:
        _, history = kit_epoch_seconds(a.data_dir, "float64", a.elbo_epochs)
        print(f"\ntest lower bound after {a.elbo_epochs} epochs (float64): {history[-1]['test']:.2f} nats")


if __name__ == "__main__":
    main()
