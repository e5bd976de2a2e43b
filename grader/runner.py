"""Run a submission in a separate, limited process and collect the numbers it returns.

The child is a fresh interpreter (python -I) in its own temporary folder, in its own
session, with limits on CPU time, address space, file size and core dumps, a wall-clock
deadline, and its output going to a capped file. At the end every process it started is
killed: its process group, and any process that still carries this run's marker in its
environment (a fork that called setsid). With ``sandbox=True`` and bubblewrap installed it
also runs with no network, its own PID namespace, and the kit, the reference and the other
submissions hidden.

Nothing the child says is believed but the numbers in its result frames; a call it never
answered (it hung, crashed or exited) is reported as such, and the child is restarted for
the calls after it.
"""
import io
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np

from .paths import ASSIGNMENT, ROOT

HERE = os.path.dirname(os.path.abspath(__file__))
FRAME_MAGIC = b"VAEK"
MARKER = "VAE_GRADER_RUN"


class Limits:
    def __init__(self, wall_seconds=60, cpu_seconds=120, memory_mb=4096, file_mb=64, result_mb=256,
                 restarts=6, **_):
        self.wall_seconds, self.cpu_seconds = wall_seconds, cpu_seconds
        self.memory_bytes, self.file_bytes = memory_mb << 20, file_mb << 20
        self.result_bytes, self.restarts = result_mb << 20, restarts


def _limit_child(limits):
    import resource

    def apply():
        for limit, value in ((resource.RLIMIT_CPU, limits.cpu_seconds), (resource.RLIMIT_AS, limits.memory_bytes),
                             (resource.RLIMIT_FSIZE, limits.file_bytes), (resource.RLIMIT_CORE, 0)):
            try:
                resource.setrlimit(limit, (value, value))
            except (ValueError, OSError):
                pass
    return apply


def sandbox_prefix(workdir, hidden_paths):
    """bubblewrap: the whole file system read-only, the kit and the grading folders hidden,
    a private /tmp holding only the work folder, no network, a PID namespace."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return None
    prefix = [bwrap, "--die-with-parent", "--new-session", "--unshare-all", "--ro-bind", "/", "/",
              "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for path in hidden_paths:
        if os.path.isdir(path):
            prefix += ["--tmpfs", path]
    return prefix + ["--bind", workdir, workdir]


def sandbox_available():
    prefix = sandbox_prefix(tempfile.gettempdir(), [])
    if prefix is None:
        return False, "bubblewrap (bwrap) is not installed"
    result = subprocess.run(prefix + ["true"], capture_output=True, text=True)
    if result.returncode != 0:
        return False, f"bubblewrap cannot create namespaces here ({result.stderr.strip()[:200]})"
    return True, ""


def companion_vae():
    """The assignment's own vae.py, which a graded flows.py imports: in the kit, assignment/vae.py;
    in the student bundle, the pristine copy release put in grader/fixtures/."""
    for path in (os.path.join(HERE, "fixtures", "vae_stub.py"), ASSIGNMENT):
        if os.path.exists(path):
            return path
    raise FileNotFoundError("the assignment's vae.py (assignment/vae.py) is missing: run python -m grader release")


def prepare_workdir(submission_path, module="vae"):
    workdir = tempfile.mkdtemp(prefix="vae-grade-")
    shutil.copyfile(submission_path, os.path.join(workdir, f"{module}.py"))
    if module != "vae":
        shutil.copyfile(companion_vae(), os.path.join(workdir, "vae.py"))
    for name in ("child.py", "stand_ins.py"):
        shutil.copyfile(os.path.join(HERE, name), os.path.join(workdir, name))
    shutil.copytree(os.path.join(ROOT, "data"), os.path.join(workdir, "data"),
                    ignore=shutil.ignore_patterns("mnist", "__pycache__", "*.gz"))
    return workdir


def run_submission(submission_path, calls, inputs, limits=None, sandbox=False, hidden_paths=(), module="vae"):
    """Answer ``calls`` with the student's code, imported as ``module`` (vae or flows).
    Returns (import_info, {call id: (header, arrays)}, log)."""
    limits = limits or Limits()
    workdir = prepare_workdir(submission_path, module)
    try:
        with open(os.path.join(workdir, "request.json"), "w") as f:
            json.dump({"calls": calls, "module": module}, f)
        np.savez(os.path.join(workdir, "inputs.npz"), **inputs)
        prefix = None
        if sandbox:
            prefix = sandbox_prefix(workdir, [ROOT, *hidden_paths])
        results, import_info, log, first = {}, None, "", 0
        for _ in range(limits.restarts + 1):
            frames, reason, log = _run_child(workdir, first, limits, prefix)
            for header, arrays in frames:
                if header.get("id") == "__import__":
                    import_info = import_info or header
                elif header.get("id") not in results:
                    results[header["id"]] = (header, arrays)
            if import_info is None:
                import_info = {"status": "raised", "message": f"your file could not be imported: {reason}"}
            if import_info.get("status") != "ok":
                break
            pending = [i for i, call in enumerate(calls) if call["id"] not in results]
            if not pending:
                break
            lost = calls[pending[0]]  # the call during which the child stopped answering
            results[lost["id"]] = ({"id": lost["id"], "status": "raised",
                                    "message": f"{lost['function']} {reason}"}, {})
            first = pending[0] + 1
            if first >= len(calls):
                break
        for call in calls:  # out of restarts: whatever is left was never answered
            results.setdefault(call["id"], ({"id": call["id"], "status": "raised",
                                             "message": f"{call['function']} was not run: the process kept failing"}, {}))
        return import_info, results, log
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run_child(workdir, first_call, limits, sandbox_prefix_args):
    read_end, write_end = os.pipe()
    marker = uuid.uuid4().hex
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": workdir, "LANG": "C.UTF-8",
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", MARKER: marker}
    command = [sys.executable, "-I", os.path.join(workdir, "child.py"), workdir, str(write_end), str(first_call)]
    if sandbox_prefix_args:
        command = sandbox_prefix_args + command
    log_path = os.path.join(workdir, "output.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   pass_fds=(write_end,), start_new_session=True, env=env,
                                   preexec_fn=_limit_child(limits))
    os.close(write_end)
    buffer, reason = bytearray(), None
    deadline = time.monotonic() + limits.wall_seconds
    exited_at = None
    try:
        while True:
            now = time.monotonic()
            if now > deadline:
                reason = f"did not finish within {limits.wall_seconds} s (it was stopped)"
                break
            ready, _, _ = select.select([read_end], [], [], min(0.1, deadline - now))
            if ready:
                chunk = os.read(read_end, 1 << 20)
                if not chunk:
                    break  # every writer is gone
                if len(buffer) + len(chunk) > limits.result_bytes:
                    reason = "sent more data than any answer needs (it was stopped)"
                    break
                buffer += chunk
            elif process.poll() is not None:
                # the child is gone; a process it forked may still hold the pipe open
                exited_at = exited_at or now
                if now - exited_at > 0.5:
                    break
    finally:
        os.close(read_end)
        _kill_everything(process, marker)
    if reason is None:
        code = process.returncode
        reason = ("ended the process" + (f" (exit code {code})" if code and code > 0 else
                                         f" (killed by signal {-code}: {_signal_name(-code)})" if code and code < 0 else ""))
    return parse_frames(bytes(buffer)), reason, _tail(log_path)


def _signal_name(number):
    try:
        name = signal.Signals(number).name
    except ValueError:
        return "unknown"
    return {"SIGXCPU": "CPU time limit", "SIGKILL": "killed, perhaps out of memory",
            "SIGSEGV": "crashed"}.get(name, name)


def _kill_everything(process, marker):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
    needle = f"{MARKER}={marker}".encode()
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def _tail(path, size=2000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def parse_frames(data):
    """Frames in order until the first malformed one; arrays must be plain float64."""
    frames, position = [], 0
    while position + 12 <= len(data):
        if data[position:position + 4] != FRAME_MAGIC:
            break
        (length,) = struct.unpack(">Q", data[position + 4:position + 12])
        payload = data[position + 12:position + 12 + length]
        if len(payload) != length:
            break
        position += 12 + length
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as saved:
                header = json.loads(str(saved["__header__"]))
                arrays = {k: saved[k] for k in saved.files if k != "__header__"}
        except Exception:
            break
        if not isinstance(header, dict) or not all(a.dtype == np.float64 for a in arrays.values()):
            break
        frames.append((header, {k: np.array(a, dtype=np.float64) for k, a in arrays.items()}))
    return frames
