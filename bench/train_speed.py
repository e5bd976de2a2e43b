"""Seconds per training epoch of the reference VAE, beside its peers, in one sitting.

    python bench/train_speed.py --data-dir ../shared/mnist [--epochs 3] [--rounds 5] [--elbo-epochs 30]
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
    from training_tools import parse_args

    mnist = load_mnist(data_dir)
    _, train_images, _, test_images, _ = mnist
    with tempfile.TemporaryDirectory() as out:
        args = parse_args("bench", ["--epochs", str(epochs), "--dtype", dtype, "--out", out, "--quiet"])
        _, history = vae.train(args, train_images, test_images, mnist.source)
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
    p.add_argument("--epochs", type=int, default=3, help="epochs timed per run (a run counts its median epoch)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of kit and peer runs")
    p.add_argument("--elbo-epochs", type=int, default=0, help="also train this long and report the test ELBO")
    p.add_argument("--peers", default=None, help="folder of the comparison scripts (../shared/bench)")
    p.add_argument("--torch-python", default=None, help="a python with torch installed, for torch_vae.py")
    a = p.parse_args()
    data = ["--data", a.data_dir] if a.data_dir else []

    # Kit and peers alternate, round after round, so that the machine's drift (it is shared)
    # falls on both alike; ratios are taken within a round, then their median reported. The
    # order within a pair flips every round (kit first, then PyTorch first), so that a drift
    # during a round favours neither.
    times = {}
    for round_number in range(a.rounds):
        for dtype in ("float64", "float32"):
            runs = [("kit", lambda: kit_epoch_seconds(a.data_dir, dtype, a.epochs)[0])]
            if a.peers and a.torch_python:
                runs.append(("torch", lambda: peer_seconds([a.torch_python, os.path.join(a.peers, "torch_vae.py"),
                                                            *data, "--epochs", str(a.epochs), "--dtype", dtype])[0]))
            for name, run in (runs if round_number % 2 == 0 else runs[::-1]):
                times.setdefault(f"{name} {dtype}", []).append(run())
        if a.peers:
            seconds, out = peer_seconds([sys.executable, os.path.join(a.peers, "naive_autograd_vae.py"), *data,
                                         "--epochs", "1"])
            times.setdefault("naive float64", []).append(seconds)
            _, out = peer_seconds([sys.executable, os.path.join(a.peers, "gemm_peak.py")])
            for line in out:
                match = re.match(r"(float\d+):.*epoch floor ([\d.]+) s", line)
                if match:
                    times.setdefault(f"floor {match.group(1)}", []).append(float(match.group(2)))
        print(f"round {round_number + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items() if v[-1]),
              flush=True)

    median = lambda xs: sorted(xs)[len(xs) // 2]
    print("\nseconds per epoch (median over rounds):")
    for key, values in times.items():
        print(f"  {key:15s} {median(values):6.2f}")
    print("ratios, kit / peer, median of the per-round ratios (below 1: the kit is faster):")
    for dtype in ("float64", "float32"):
        for peer in ("torch", "naive", "floor"):
            other = times.get(f"{peer} {dtype}")
            if other and all(other):
                ratios = [k / o for k, o in zip(times[f"kit {dtype}"], other)]
                print(f"  {dtype}: kit / {peer:5s} = {median(ratios):.2f}   (rounds: "
                      + ", ".join(f"{r:.2f}" for r in ratios) + ")")

    if a.elbo_epochs:
        _, history = kit_epoch_seconds(a.data_dir, "float64", a.elbo_epochs)
        print(f"\ntest lower bound after {a.elbo_epochs} epochs (float64): {history[-1]['test']:.2f} nats")


if __name__ == "__main__":
    main()
