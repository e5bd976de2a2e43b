"""Where a training epoch of the reference VAE spends its time, and whether threads would help.

    python bench/profile_step.py --data-dir ../shared/mnist [--steps 40] [--rounds 7]

Splits the reference's training step (solution/vae.py, batch 200) into its parts, in
float64 and float32, each the median of ROUNDS interleaved measurements of STEPS steps:

  binarization        drawing the batch's pixels
  matrix products     the step's matrix products, replayed with plain NumPy at the model's shapes
  elementwise, fwd    the forward pass's other work (activations, the sampler, the bound's terms):
                      the lower bound called on plain arrays, less the products and the overhead
  elementwise, bwd    the backward pass's other work (the gradients of those terms): the value
                      and gradient less the forward pass, the products and the overhead
  bookkeeping         autograd's tracing and NumPy's per-call dispatch: the value and gradient
                      of a tiny model with the same operations
  Adam                the per-array adam_step calls
  test evaluation     once per epoch (outside the timed training seconds)
  checkpoint          once per epoch (likewise)
  allocation          the loop with glibc's malloc defaults (in a second process), before and
                      after loading MNIST, beside the loop with reuse_freed_memory

Then two facts behind the kit's design on this machine: elementwise work (np.exp) and Adam's
independent per-array updates, each run on one thread and split over two, once with the BLAS
worker idle and once just after a matrix product (when OpenBLAS's worker thread still spins).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from statistics import median_high

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "solution"))
sys.path.insert(0, ROOT)

import numpy  # noqa: E402
import autograd.numpy as np  # noqa: E402
import autograd.numpy.random as npr  # noqa: E402

import vae  # noqa: E402
import training_tools  # noqa: E402

BATCH = 200


def model(dtype, latent=50, hidden=(200, 200), pixels=784, batch=BATCH):
    """Initial arrays, a lower bound of them, and a binarized batch, for a model of these sizes."""
    npr.seed(0)
    layers = vae.init_net_params([latent, *hidden, pixels]) + vae.init_net_params([pixels, *hidden, 2 * latent])
    arrays = [a.astype(dtype) for layer in layers for a in layer]
    batch_images = (npr.rand(batch, pixels) < 0.3).astype(dtype)
    return arrays, (lambda arrays, x: vae.vae_lower_bound(*vae.as_networks(arrays), x)), batch_images


def matmul_replay(dtype, latent=50, hidden=(200, 200), pixels=784):
    """Seconds of the step's matrix products, forward and backward, at the model's shapes."""
    rs = numpy.random.RandomState(0)
    decoder = list(zip([latent, *hidden], [*hidden, pixels]))
    encoder = list(zip([pixels, *hidden], [*hidden, 2 * latent]))
    forward, backward = [], []
    for net in (decoder, encoder):
        for i, (fan_in, fan_out) in enumerate(net):
            x, W = rs.rand(BATCH, fan_in).astype(dtype), rs.rand(fan_in, fan_out).astype(dtype)
            g = rs.rand(BATCH, fan_out).astype(dtype)
            forward.append((x, W))
            backward.append((x.T, g))  # the weights' gradient
            if not (net is encoder and i == 0):  # the data needs no gradient
                backward.append((g, W.T))  # the layer input's gradient
    times = []
    for products in (forward, backward):
        for a, b in products:
            a @ b
        t0 = time.perf_counter()
        for _ in range(20):
            for a, b in products:
                a @ b
        times.append((time.perf_counter() - t0) / 20)
    return times


class Loop:
    """vae.train's loop, a step at a time, on a fresh model: shuffled batches, binarized, one value
    and gradient, one adam_step per array."""

    def __init__(self, dtype, pixels):
        self.dtype, self.pixels = dtype, pixels
        self.arrays, self.lower_bound, _ = model(dtype)
        self.m, self.v = [np.zeros_like(a) for a in self.arrays], [np.zeros_like(a) for a in self.arrays]
        self.order, self.t = npr.permutation(len(pixels)), 0

    def batch(self):
        self.t += 1
        i = self.t % (len(self.pixels) // BATCH)
        return vae.binarize(self.pixels[self.order[i * BATCH:][:BATCH]], self.dtype)

    def adam(self, gradients):
        for k in range(len(self.arrays)):
            self.arrays[k], self.m[k], self.v[k] = vae.adam_step(self.arrays[k], gradients[k], self.m[k], self.v[k],
                                                                 self.t)

    def step(self):
        self.adam(training_tools.value_and_grads(self.lower_bound, self.arrays, self.batch())[1])


def step_parts(dtype, pixels, steps, rounds):
    """Median seconds per step of the loop as it runs, and of its parts: binarization, the value
    and gradient, the forward pass alone (no tracing), Adam; and the value and gradient and the
    forward pass of a tiny model, whose time is all per-call overhead."""
    loop = Loop(dtype, pixels)
    tiny, tiny_bound, tiny_batch = model(dtype, latent=1, hidden=(2, 2), pixels=2, batch=2)
    parts = {key: [] for key in ("step", "binarization", "value and gradient", "forward", "Adam",
                                 "tiny value and gradient", "tiny forward")}

    def timed(key, work, *args):
        t0 = time.perf_counter()
        result = work(*args)
        sums[key] += time.perf_counter() - t0
        return result

    for _ in range(rounds):
        sums = dict.fromkeys(parts, 0.0)
        t0 = time.perf_counter()
        for _ in range(steps):  # the loop as vae.train runs it
            loop.step()
        sums["step"] = time.perf_counter() - t0
        for _ in range(steps):  # the same, in parts
            batch = timed("binarization", loop.batch)
            _, gradients = timed("value and gradient", training_tools.value_and_grads, loop.lower_bound,
                                 loop.arrays, batch)
            timed("forward", loop.lower_bound, loop.arrays, batch)
            timed("Adam", loop.adam, gradients)
            timed("tiny value and gradient", training_tools.value_and_grads, tiny_bound, tiny, tiny_batch)
            timed("tiny forward", tiny_bound, tiny, tiny_batch)
        for key in parts:
            parts[key].append(sums[key] / steps)
    return {key: median_high(values) for key, values in parts.items()}, loop.arrays, loop.lower_bound


def page_faults(dtype, pixels, steps):
    """(seconds, minor page faults) per step of the loop, the better of two slices after a warm-up one."""
    loop, slices = Loop(dtype, pixels), []
    for _ in range(3):
        faults, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        for _ in range(steps):
            loop.step()
        slices.append(((time.perf_counter() - t0) / steps,
                       (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps))
    return min(slices[1:])


def threads_probe(dtype, arrays):
    """Milliseconds of np.exp on a (200, 784) array and of one Adam step over the model's arrays, on one
    thread and split over two, with the BLAS worker idle and right after a matrix product."""
    x = numpy.random.RandomState(0).rand(BATCH, 784).astype(dtype)
    a, b = numpy.ones((BATCH, 784), dtype), numpy.ones((784, 200), dtype)
    grads = [numpy.ones_like(w) * 1e-3 for w in arrays]
    m, v = [numpy.zeros_like(w) for w in arrays], [numpy.zeros_like(w) for w in arrays]
    halves, load = ([], []), [0, 0]
    for k in sorted(range(len(arrays)), key=lambda k: -arrays[k].size):  # two groups of equal size
        j = load.index(min(load))
        halves[j].append(k)
        load[j] += arrays[k].size

    def exp_into(rows, out):
        numpy.exp(x[rows], out=out[rows])

    def adam(ks):
        for k in ks:
            vae.adam_step(arrays[k], grads[k], m[k], v[k], 10)

    def one_thread_exp():
        exp_into(slice(None), numpy.empty_like(x))

    def two_threads_exp():
        out = numpy.empty_like(x)
        future = pool.submit(exp_into, slice(BATCH // 2, None), out)
        exp_into(slice(0, BATCH // 2), out)
        future.result()

    def one_thread_adam():
        adam(range(len(arrays)))

    def two_threads_adam():
        future = pool.submit(adam, halves[1])
        adam(halves[0])
        future.result()

    def ms(work, after_matmul, repeats=30):
        samples = []
        for _ in range(5):
            total = 0.0
            for _ in range(repeats):
                if after_matmul:
                    a @ b  # wakes OpenBLAS's worker, which then spins for a while
                t0 = time.perf_counter()
                work()
                total += time.perf_counter() - t0
            samples.append(total / repeats * 1000)
        return median_high(samples)

    with ThreadPoolExecutor(1) as pool:
        return {(what, after): (ms(one, after), ms(two, after))
                for what, one, two in (("np.exp, (200, 784)", one_thread_exp, two_threads_exp),
                                       ("Adam, all arrays", one_thread_adam, two_threads_adam))
                for after in (False, True)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="the MNIST files (default: the loader's)")
    p.add_argument("--steps", type=int, default=40, help="steps per measurement")
    p.add_argument("--rounds", type=int, default=7, help="interleaved measurements; the median is shown")
    p.add_argument("--dtype", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    p.add_argument("--untuned", action="store_true", help=argparse.SUPPRESS)  # the allocation subprocess
    a = p.parse_args()
    from data import load_mnist

    if a.untuned:  # glibc's default malloc, before and after loading MNIST frees its big arrays
        synthetic = numpy.random.RandomState(0).randint(0, 256, (10 * BATCH, 784), dtype=numpy.uint8)
        fresh = {dtype: page_faults(dtype, synthetic, a.steps) for dtype in a.dtype}
        pixels = vae.as_pixels(load_mnist(a.data_dir)[1])
        print(json.dumps({"fresh": fresh, "loaded": {dtype: page_faults(dtype, pixels, a.steps) for dtype in a.dtype}}))
        return
    mnist = load_mnist(a.data_dir)
    pixels = vae.as_pixels(mnist[1])
    if len(pixels) < BATCH:
        p.error(f"the data has {len(pixels)} training images, fewer than a batch of {BATCH}")
    steps_per_epoch = -(-len(pixels) // BATCH)
    untuned = json.loads(subprocess.run([sys.executable, __file__, "--untuned", "--steps", str(a.steps),
                                         "--dtype", *a.dtype] + (["--data-dir", a.data_dir] if a.data_dir else []),
                                        capture_output=True, text=True, check=True).stdout)
    training_tools.reuse_freed_memory()
    print(f"data: {len(pixels)} training images; the median of {a.rounds} measurement{'s' * (a.rounds != 1)} "
          f"of {a.steps} steps each\n")
    for dtype in a.dtype:
        parts, arrays, lower_bound = step_parts(dtype, pixels, a.steps, a.rounds)
        matmul_forward, matmul_backward = matmul_replay(dtype)
        tuned = page_faults(dtype, pixels, a.steps)
        test_images = vae.binarize(vae.as_pixels(mnist[3]), numpy.dtype(dtype), npr.RandomState(0))
        t0 = time.perf_counter()
        vae.test_lower_bound(lower_bound, arrays, test_images)
        test_seconds = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            zeros = [numpy.zeros_like(w) for w in arrays]
            training_tools.save_checkpoint(os.path.join(out, "checkpoint.npz"), arrays, zeros, zeros, 1, [], {})
            checkpoint_seconds = time.perf_counter() - t0
        rows = [("binarization", parts["binarization"]),
                ("matrix products, forward", matmul_forward),
                ("matrix products, backward", matmul_backward),
                ("elementwise, forward", parts["forward"] - parts["tiny forward"] - matmul_forward),
                ("elementwise, backward", parts["value and gradient"] - parts["forward"]
                 - (parts["tiny value and gradient"] - parts["tiny forward"]) - matmul_backward),
                ("bookkeeping (autograd, dispatch)", parts["tiny value and gradient"]),
                ("Adam", parts["Adam"])]
        step = sum(seconds for _, seconds in rows)
        print(f"{dtype}: the loop as it runs: {parts['step'] * 1000:.2f} ms per step, "
              f"{parts['step'] * steps_per_epoch:.2f} s per epoch of {steps_per_epoch} steps. Its parts "
              f"({step * 1000:.2f} ms together):")
        for name, seconds in rows:
            print(f"  {name:34s} {seconds * 1000:6.2f} ms  {seconds * steps_per_epoch:5.2f} s/epoch  "
                  f"{100 * seconds / step:4.0f}%")
        print(f"  once per epoch: test evaluation {test_seconds:.2f} s, checkpoint {checkpoint_seconds:.2f} s")
        print("  allocation (ms per step, page faults per step):")
        for name, (seconds, faults) in (("glibc's defaults, fresh process", untuned["fresh"][dtype]),
                                        ("glibc's defaults, MNIST loaded", untuned["loaded"][dtype]),
                                        ("reuse_freed_memory", tuned)):
            print(f"    {name:32s} {seconds * 1000:6.2f} ms  {faults:6.0f} faults")
        print("  threads (ms; the kit uses one):")
        for (what, after), (one, two) in threads_probe(dtype, arrays).items():
            print(f"    {what:20s} {'after a matrix product' if after else 'BLAS worker idle':23s} "
                  f"one thread {one:6.2f}, two threads {two:6.2f} ({one / two:.2f}x)")
        print()


if __name__ == "__main__":
    main()
