import gzip
import os
import struct
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
# The genuine MNIST files, kept beside the repository (never committed); MNIST_SHARED_DIR overrides.
SHARED_MNIST = os.environ.get("MNIST_SHARED_DIR", os.path.join(os.path.dirname(REPO), "shared", "mnist"))
MNIST_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

needs_full_mnist = pytest.mark.skipif(
    not all(os.path.exists(os.path.join(SHARED_MNIST, n)) for n in MNIST_NAMES),
    reason=f"the full MNIST files are not in {SHARED_MNIST} (set MNIST_SHARED_DIR)")


def idx_bytes(array, magic=None):
    """An IDX file's bytes for a uint8 array (magic defaults to unsigned byte, array.ndim)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path, array, magic=None, compress=True):
    data = idx_bytes(array, magic)
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as f:
        f.write(data)
    return path


def tiny_arrays(n_train=400, n_test=100, seed=0):
    """Small digit-like images (a random stroke per image) with labels: for testing the pipeline."""
    rs = np.random.RandomState(seed)
    def images(n):
        out = np.zeros((n, 28, 28), np.uint8)
        for i in range(n):
            r = rs.randint(4, 20)
            out[i, r:r + 6, 6:22] = rs.randint(128, 256)
        return out
    return images(n_train), rs.randint(0, 10, n_train).astype(np.uint8), images(n_test), rs.randint(0, 10, n_test).astype(np.uint8)


def write_tiny_mnist(directory, **kwargs):
    """The four files in a folder; returns {file name: md5} for them."""
    from data.mnist import md5sum
    os.makedirs(directory, exist_ok=True)
    for name, array in zip(MNIST_NAMES, tiny_arrays(**kwargs)):
        write_idx(os.path.join(directory, name), array)
    return {name: md5sum(os.path.join(directory, name)) for name in MNIST_NAMES}


def files_table(md5s):
    """A FILES table for data.mnist naming the tiny files' checksums."""
    from data.mnist import FILES
    return {key: (name, md5s[name]) for key, (name, _) in FILES.items()}


@pytest.fixture
def tiny_mnist(tmp_path):
    directory = tmp_path / "mnist"
    md5s = write_tiny_mnist(str(directory))
    return str(directory), md5s
