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


def write_raw_tiny_mnist(directory, **kwargs):
    """The four tiny files, uncompressed: the loader takes such copies as they are (there is no
    published checksum to match), so a script in another process reads them as unpacked MNIST."""
    os.makedirs(directory)
    for name, array in zip(MNIST_NAMES, tiny_arrays(**kwargs)):
        write_idx(os.path.join(directory, name[:-len(".gz")]), array, compress=False)
    return str(directory)


# A process with these in its environment has no network: every download goes to a proxy that refuses it.
OFFLINE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}


def files_table(md5s):
    """A FILES table for data.mnist naming the tiny files' checksums."""
    from data.mnist import FILES
    return {key: (name, md5s[name]) for key, (name, _) in FILES.items()}


@pytest.fixture
def tiny_mnist(tmp_path):
    directory = tmp_path / "mnist"
    md5s = write_tiny_mnist(str(directory))
    return str(directory), md5s


# ------------------------------------------------------------------ isolation, as the field runs it
FAKE_BWRAP = ("#!/bin/sh\n"
              "echo 'bwrap: No permissions to create new namespace, likely because the kernel does not allow "
              "non-privileged user namespaces. See <https://deb.li/bubblewrap> or "
              "<file:///usr/share/doc/bubblewrap/README.Debian.gz>.' >&2\n"
              "exit 1\n")


def open_folder(prefix):
    """A folder under /tmp that every user may enter and read, as a kit, a class folder or
    Gradescope's /autograder are (pytest's own tmp_path is closed to other users)."""
    import tempfile
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(path, 0o755)
    return path


def fake_bwrap_path(folder):
    """A PATH whose first bwrap fails as bubblewrap does in a container without namespaces."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "bwrap"), "w") as f:
        f.write(FAKE_BWRAP)
    os.chmod(os.path.join(folder, "bwrap"), 0o755)
    return folder + os.pathsep + os.environ.get("PATH", "")


def public_python():
    """A Python with the grading requirements that an unprivileged user can run (the user mode needs
    one: Gradescope's /autograder/venv, Docker's /usr/local), or None. VAE_TEST_PUBLIC_PYTHON names
    it; .ci/run makes /opt/vae-grader."""
    import subprocess
    candidates = [os.environ.get("VAE_TEST_PUBLIC_PYTHON"), sys.executable, "/opt/vae-grader/bin/python"]
    for python in filter(None, candidates):
        try:
            ok = subprocess.run([python, "-I", "-c", "import numpy, autograd, tqdm"], user=65534, group=65534,
                                extra_groups=[], cwd="/", capture_output=True, timeout=60).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:
            return python
    return None


def make_venv(folder, python=None):
    """A virtual environment in ``folder`` whose Python has the kit's requirements, whatever
    ``python`` (default: this interpreter) is: the system's, a venv, pyenv's or conda's.

    ``--system-site-packages`` is not enough: a venv made from a venv sees the *base*
    interpreter's packages, not the ones the kit was installed into. So the new venv gets a
    .pth file that adds this interpreter's own site folders (their .pth files included)."""
    import subprocess
    python = python or sys.executable
    subprocess.run([python, "-m", "venv", "--without-pip", folder], check=True, timeout=300,
                   capture_output=True)
    new_python = os.path.join(folder, "bin", "python")
    code = "import site, sys; print('\\n'.join(site.getsitepackages() + ([site.getusersitepackages()] "
    code += "if site.ENABLE_USER_SITE else [])))"
    theirs = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    purelib = subprocess.run([new_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(purelib, "vae-kit-packages.pth"), "w") as f:
        f.write("".join(f"import site; site.addsitedir({path!r})\n" for path in theirs if os.path.isdir(path)))
    return new_python


def tree_digest(folder):
    """{relative path: md5} of every file below ``folder``."""
    import hashlib
    out = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.md5(f.read()).hexdigest()
    return out


def processes_with(text):
    """PIDs whose command line contains ``text``."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except (OSError, ValueError):
            pass
    return found


@pytest.fixture(autouse=True)
def fresh_urllib_opener():
    """Each test starts with no cached urllib opener: urlopen builds one on first use from the proxy
    settings of that moment, so a test that ran offline (proxies pointed at a closed port) would
    otherwise send the next test's downloads to that port."""
    import urllib.request
    urllib.request.install_opener(None)
    yield
    urllib.request.install_opener(None)
