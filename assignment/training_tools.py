"""The machinery behind vae.py's and flows.py's training that you need not read.

vae.py holds the model, your five functions and a training loop you can follow. What is
here makes that loop fast, safe to interrupt and easy to look at; none of it is graded:

  value_and_grads     the lower bound and its gradient with respect to each weight array,
                      in one backward pass (faster than autograd.value_and_grad on a list)
  save_checkpoint     everything needed to resume after an interruption, written atomically,
  resume, saved_run   and read back only for the same options and the same data
  reuse_freed_memory  asks glibc to keep freed memory, so each step's temporaries reuse pages
  parse_args          the command line's options, checked
  load_data           MNIST, saying which data it is
  write_figures       the report's four figures
  stop_if_unfinished  one line naming every function that is still a stub
  kit_errors          an error the kit raises on purpose (KitError, a data error): one line,
                      exit status 2
"""
import json
import os
import sys
import traceback

import autograd
import autograd.numpy as np
import autograd.numpy.random as npr

sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # in the kit, data/ is one folder up
try:
    import data  # noqa: F401
except ImportError as e:  # a message, not a traceback: the student's vae.py was moved away from its files
    sys.exit(f"vae.py: {e}. vae.py needs training_tools.py and the data/ folder, which come beside it with the "
             f"assignment: keep the assignment's files together.")


class KitError(Exception):
    """A problem with the options, the data or a checkpoint: the message says what and how to fix it."""


# ------------------------------------------------------------------ the gradient
def value_and_grads(fun, arrays, *args):
    """fun(arrays, *args) and its gradient with respect to each array of the list ``arrays``.

    Uses autograd's internals (_fast_value_and_grads) when they are what this kit was written
    against, and autograd's public value_and_grad otherwise: same numbers, a little slower.
    """
    if _internals_usable():
        return _fast_value_and_grads(fun, arrays, *args)
    value, grads = autograd.value_and_grad(lambda arrays: fun(arrays, *args))(list(arrays))
    return value, list(grads)


def _fast_value_and_grads(fun, arrays, *args):
    """The one function that uses autograd's internals: autograd's own backward pass, with a
    start node per array. grad(fun) of a list would build a zero-filled copy of the whole list
    for every array the backward pass reaches, a fifth of each step here."""
    from autograd.core import VJPNode, add_outgrads
    from autograd.tracer import new_box, toposort, trace_stack
    starts = [VJPNode.new_root() for _ in arrays]
    with trace_stack.new_trace() as trace:
        end = fun([new_box(a, trace, node) for a, node in zip(arrays, starts)], *args)
    outgrads, grads = {end._node: (np.ones_like(end._value), False)}, {node: None for node in starts}
    for node in toposort(end._node):
        outgrad = outgrads.pop(node)[0]
        if node in grads:
            grads[node] = outgrad
        for parent, ingrad in zip(node.parents, node.vjp(outgrad)):
            outgrads[parent] = add_outgrads(outgrads.get(parent), ingrad)
    return end._value, [np.zeros_like(a) if grads[node] is None else grads[node] for node, a in zip(starts, arrays)]


_usable = None


def _internals_usable():
    """Whether _fast_value_and_grads works with the installed autograd: tried once, on a small
    function whose gradient autograd's public API also gives."""
    global _usable
    if _usable is None:
        arrays = [np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0.5, -1.0]), np.array([7.0])]
        fun = lambda a, x: np.sum(np.tanh(np.dot(x, a[0]) + a[1]) ** 2)  # a[2] unused: its gradient is 0
        x = np.array([[0.1, -0.2], [0.3, 0.4]])
        try:
            value, grads = _fast_value_and_grads(fun, arrays, x)
            want_value, want = autograd.value_and_grad(lambda a: fun(a, x))(arrays)
            _usable = bool(np.allclose(value, want_value) and
                           all(np.allclose(g, w) for g, w in zip(grads, want)))
        except Exception:
            _usable = False
    return _usable


# ------------------------------------------------------------------ checkpoints
def save_checkpoint(path, arrays, m, v, t, history, config):
    """Parameters, Adam's moments and step, the history, the options and data (``config``) and
    the random state, in PATH (written to a temporary file, then renamed: an interruption never
    leaves half a checkpoint); history.json beside it."""
    name, keys, position, has_gauss, cached_gauss = npr.get_state()
    tmp = path + ".part.npz"
    np.savez(tmp, t=t, history=json.dumps(history), config=json.dumps(config),
             rng_keys=keys, rng_position=position, rng_has_gauss=has_gauss, rng_cached_gauss=cached_gauss,
             **{f"{kind}{i}": a for kind, group in (("p", arrays), ("m", m), ("v", v)) for i, a in enumerate(group)})
    os.replace(tmp, path)
    history_path = os.path.join(os.path.dirname(path), "history.json")
    with open(history_path + ".part", "w") as f:
        json.dump({"config": config, "history": history}, f, indent=1)
    os.replace(history_path + ".part", history_path)


def load_checkpoint(path):
    """What save_checkpoint wrote: a dict with arrays, m, v, t, history, config and rng."""
    try:
        with np.load(path) as saved:
            count = sum(1 for key in saved.files if key.startswith("p") and key[1:].isdigit())
            return {"arrays": [saved[f"p{i}"] for i in range(count)], "m": [saved[f"m{i}"] for i in range(count)],
                    "v": [saved[f"v{i}"] for i in range(count)], "t": int(saved["t"]),
                    "history": json.loads(str(saved["history"])), "config": json.loads(str(saved["config"])),
                    "rng": ("MT19937", saved["rng_keys"], int(saved["rng_position"]), int(saved["rng_has_gauss"]),
                            float(saved["rng_cached_gauss"]))}
    except (OSError, KeyError, ValueError) as e:
        raise KitError(f"{path} is not a checkpoint this kit can read ({type(e).__name__}: {e}); "
                       f"delete it, or train into another --out") from None


def resume(path, config, quiet=False):
    """The checkpoint at PATH, made with exactly ``config`` (the options and the data), with the
    random state restored; None, after saying so, when there is none. A checkpoint made with
    other options or other data is refused, naming both."""
    if not os.path.exists(path):
        if not quiet:
            print(f"no checkpoint at {path}: starting from scratch", file=sys.stderr)
        return None
    state = load_checkpoint(path)
    if state["config"] != config:
        raise KitError(f"{path} was made with other settings, so --resume would mix two runs:\n"
                       + "\n".join(f"  {key}: the checkpoint has {_said(state['config'].get(key))}, "
                                   f"this run has {_said(config.get(key))}"
                                   for key in sorted(set(config) | set(state["config"]))
                                   if state["config"].get(key) != config.get(key))
                       + "\nUse the same options and data, or another --out.")
    npr.set_state(state["rng"])
    if not quiet:
        print(f"resuming from {path} after epoch {len(state['history'])}", file=sys.stderr)
    return state


def _said(value):
    if isinstance(value, dict) and "source" in value:
        from data import describe
        return describe(value)
    return json.dumps(value)


# ------------------------------------------------------------------ the machine
def reuse_freed_memory():
    """Ask glibc to keep freed memory for reuse instead of returning it to the system.

    Every step makes temporaries of about a MB each. With glibc's defaults, until a process
    has freed some large array (which raises glibc's own threshold), each of them is mapped
    afresh and unmapped when freed: about 1,200 page faults per step in float64
    (bench/profile_step.py measures it).
    """
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    except (OSError, AttributeError):
        pass  # not glibc (macOS, Windows): training is just slower


# ------------------------------------------------------------------ the command line
# What the reference's own copy of this module (solution/training_tools.py) adds to vae.py's
# options, for instructors: nothing here.
EXTRA_OPTIONS = []


def parse_args(description, argv=None, flows=False):
    """The options of vae.py (and, with ``flows``, of flows.py: --flows too, and its own --out)."""
    import argparse
    p = argparse.ArgumentParser(description=description)
    for add_options in EXTRA_OPTIONS:
        add_options(p)
    if flows:
        p.add_argument("--flows", type=int, default=5, help="number of planar flows K (0: the plain VAE's bound)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--latent-dim", type=int, default=50)
    p.add_argument("--hidden", type=int, nargs="+", default=[200, 200],
                   help="hidden layer widths of each network (default: 200 200)")
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--data-dir", default=None,
                   help="folder with the four MNIST files (default: $MNIST_DIR, else data/mnist)")
    p.add_argument("--out", default=None if flows else "results",
                   help="folder for the checkpoint and figures (default: " + ("results/flowsK)" if flows else "results)"))
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--figures-only", action="store_true",
                   help="redraw the figures from OUT/checkpoint.npz without training")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    args = p.parse_args(argv)
    for name in ("epochs", "latent_dim", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.lr <= 0 or any(h < 1 for h in args.hidden):
        p.error("--lr and --hidden must be positive")
    if flows:
        if args.flows < 0:
            p.error(f"--flows must be 0 or more, got {args.flows}")
        args.out = args.out or os.path.join("results", f"flows{args.flows}")
    return args


def checkpoint_of(args):
    return os.path.join(args.out, "checkpoint.npz")


def load_data(args):
    """load_mnist(args.data_dir), after saying what it is; with --figures-only, first make sure
    there is a checkpoint to draw from (before loading any data)."""
    from data import describe, load_mnist
    if args.figures_only and not os.path.exists(checkpoint_of(args)):
        raise KitError(f"no checkpoint at {checkpoint_of(args)}; train first (without --figures-only)")
    mnist = load_mnist(args.data_dir)
    print(f"data: {describe(mnist.source)}", file=sys.stderr)
    return mnist


def saved_run(args, source):
    """(arrays, history) of the checkpoint in OUT, which must come from the same data."""
    from data import describe
    saved = load_checkpoint(checkpoint_of(args))
    if saved["config"].get("data") != source:
        raise KitError(f"{checkpoint_of(args)} was trained on {_said(saved['config'].get('data'))}, but this run "
                       f"loaded {describe(source)}: give the same --data-dir")
    return saved["arrays"], saved["history"]


class kit_errors:
    """``with kit_errors("vae.py", args):`` an error the kit raises on purpose (KitError, a data
    error) becomes one line and exit status 2; Ctrl-C says where the last epoch was saved."""

    def __init__(self, script, args):
        self.script, self.args = script, args

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        from data import MNISTError
        if kind is KeyboardInterrupt:
            sys.exit(f"\ninterrupted: the last finished epoch is saved in {checkpoint_of(self.args)}; "
                     f"run again with --resume to continue")
        if kind is not None and issubclass(kind, (KitError, MNISTError)):
            print(f"{self.script}: {error}", file=sys.stderr)
            sys.exit(2)
        return False


# ------------------------------------------------------------------ what students see
# Each graded function, and a tiny call of it, in the order students meet them.
VAE_CALLS = [
    ("sample_latent_variables_from_posterior", lambda m: m.sample_latent_variables_from_posterior(np.zeros((1, 2)))),
    ("bernoulli_log_prob", lambda m: m.bernoulli_log_prob(np.zeros((1, 4)), np.zeros((1, 4)))),
    ("compute_KL", lambda m: m.compute_KL(np.zeros((1, 2)))),
    ("vae_lower_bound", lambda m: m.vae_lower_bound(m.init_net_params([1, 4], rs=npr.RandomState(0)),
                                                    m.init_net_params([4, 2], rs=npr.RandomState(0)), np.zeros((1, 4)))),
    ("adam_step", lambda m: m.adam_step(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1), 1))]
FLOW_CALLS = [
    ("constrain_u", lambda m: m.constrain_u(np.ones(2), np.ones(2))),
    ("planar_flow", lambda m: m.planar_flow(np.zeros((1, 2)), np.ones(2), np.ones(2), np.zeros(1))),
    ("flow_lower_bound", lambda m: m.flow_lower_bound(m.init_net_params([1, 4], rs=npr.RandomState(0)),
                                                      m.init_net_params([4, 2], rs=npr.RandomState(0)), [],
                                                      np.zeros((1, 4))))]


def stop_if_unfinished(vae, flows=None):
    """Exit with one line naming every graded function of the modules vae (and flows) that is
    still a stub, before any data is loaded or any training starts.

    A call that fails for another reason (a bug) does not stop the search: a stub after it is
    still named. The random state is left as it was.
    """
    state, stubs = npr.get_state(), []
    calls = [(vae, c) for c in VAE_CALLS] + ([(flows, c) for c in FLOW_CALLS] if flows else [])
    for module, (name, call) in calls:
        try:
            call(module)
        except NotImplementedError as e:
            frames = traceback.extract_tb(e.__traceback__)
            if frames and any(f"{os.sep}{package}{os.sep}" in frames[-1].filename for package in ("autograd", "numpy")):
                continue  # raised inside autograd or numpy: a bug, not a stub (grader/child.py decides alike)
            stub = frames[-1].name if frames else name
            if stub not in stubs:
                stubs.append(stub)
        except Exception:
            pass  # a real bug: training will show its traceback once every stub is written
    npr.set_state(state)
    if stubs:
        where = "; ".join(f"{script}: {', '.join(names)}" for script, names in
                          (("vae.py", [s for s in stubs if s not in dict(FLOW_CALLS)]),
                           ("flows.py", [s for s in stubs if s in dict(FLOW_CALLS)])) if names)
        sys.exit(f"{where} {'is' if len(stubs) == 1 else 'are'} not implemented yet. Replace "
                 f"{'its' if len(stubs) == 1 else 'each'} 'raise NotImplementedError()' with your code, "
                 f"then run again.")


def write_figures(decode, encode_mean, history, test_images, args, source=None, prior_std=1.0):
    """The report's four figures, as PNGs in args.out: the lower bound per epoch, samples from
    the prior N(0, prior_std^2 I), reconstructions and interpolations. decode(z) gives Bernoulli
    means, encode_mean(x) posterior means; ``source`` says what data they come from, which is
    written on them when it is not full MNIST. Same seed, same figures."""
    from data import describe, plot_lower_bound, save_images
    out = args.out
    os.makedirs(out, exist_ok=True)
    note = f"\n{describe(source)}" if source and source.get("source") != "MNIST" else ""
    if history:
        plot_lower_bound(history, os.path.join(out, "lower_bound.png"))

    z = prior_std * npr.RandomState(args.seed).randn(25, args.latent_dim)
    save_images(decode(z), os.path.join(out, "samples.png"), ims_per_row=5,
                title="25 samples from the prior (Bernoulli means)" + note, scale=1.2)

    originals = test_images[:10]
    save_images(np.concatenate([originals, decode(encode_mean(originals))]),
                os.path.join(out, "reconstructions.png"), ims_per_row=10,
                row_labels=["test image", "reconstruction"], title="Reconstructions at the posterior mean" + note)

    weights = np.linspace(0.0, 1.0, 25)[:, None]
    means = encode_mean(test_images[:10])
    rows = [decode((1 - weights) * means[i] + weights * means[i + 1]) for i in range(0, 10, 2)]
    save_images(np.concatenate(rows), os.path.join(out, "interpolations.png"), ims_per_row=25,
                row_labels=[f"test {i} to {i + 1}" for i in range(0, 10, 2)],
                title="Interpolating between posterior means, 25 steps" + note, scale=0.6)
    print(f"figures written to {os.path.join(out, '')}: lower_bound.png samples.png reconstructions.png "
          f"interpolations.png")
