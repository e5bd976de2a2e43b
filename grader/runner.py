"""Run a submission in a separate, limited process and collect the numbers it returns.

The child is a fresh interpreter (python -I) with the submission in its own temporary
folder, in its own session, with limits on CPU time, address space, file size and core
dumps, a wall-clock deadline, and its output going to a capped log it cannot reach. How
far it is isolated beyond that is grader/isolation.py's choice: bubblewrap, a fresh
unprivileged user, or process limits only. At the end every process it started is killed:
its process group, every process of its user, and any process that still carries this
run's marker in its environment (looked for again until none is left).

Nothing the child says is believed but the numbers in its result frames; a call it never
answered (it hung, crashed or exited) is reported as such, and the child is restarted for
the calls after it. A child that never reports it started (bubblewrap failed, the switch
to another user failed) is the grader's failure, raised as IsolationError, never the
student's.
"""
import contextlib
import io
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import numpy as np

from .isolation import (Isolation, IsolationError, allocate_uid, give_to, kill_user, live_owner, private_folders,
                        reachable_temporary_folder, release_uid, remove_files_of, sandbox_prefix)
from .paths import ASSIGNMENT, ROOT

HERE = os.path.dirname(os.path.abspath(__file__))
FRAME_MAGIC = b"VAEK"
MARKER = "VAE_GRADER_RUN"


class GradingInterrupted(Exception):
    """Grading was stopped (Ctrl-C, SIGTERM): the run in flight was killed and nothing of it counts."""


_stop = threading.Event()
_running = set()  # the children running now, so that a stop can kill them


def stop_all_runs():
    """Stop grading: no child starts from now on, and every child running is killed (its run then
    raises GradingInterrupted, and its folders are removed as usual). Safe in a signal handler."""
    _stop.set()
    for process in list(_running):
        _kill_group(process)


def stopping():
    return _stop.is_set()


def _kill_group(process):
    """SIGKILL to the child's process group when it has one of its own (the Linux runner's), else
    to the child alone (the portable runner's, which shares the grader's group)."""
    try:
        if getattr(process, "own_group", False):
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except OSError:
        pass


def _start_child(command, **options):
    """Popen, registered so that a stop kills it; GradingInterrupted once a stop was asked for."""
    if _stop.is_set():
        raise GradingInterrupted()
    process = subprocess.Popen(command, **options)
    process.own_group = bool(options.get("start_new_session"))
    _running.add(process)
    if _stop.is_set():  # a stop that came while it started: it may not have seen this child
        _kill_group(process)
    return process


@contextlib.contextmanager
def stop_cleanly_on(*signals):
    """While in effect, each of ``signals`` (SIGINT: Ctrl-C; SIGTERM: a timeout) stops grading
    cleanly (stop_all_runs) instead of raising KeyboardInterrupt wherever the main thread is;
    yields the list of signals received. Only in the main thread (elsewhere it changes nothing)."""
    received, previous = [], {}
    _stop.clear()

    def handler(number, frame):
        received.append(number)
        stop_all_runs()
    if threading.current_thread() is threading.main_thread():
        for number in signals:
            previous[number] = signal.signal(number, handler)
    try:
        yield received
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
        _stop.clear()


class Limits:
    """The limits of a submission's processes (grader/config.json's "limits").

    ``function_seconds``: the wall-clock time each graded function may take over all its checks;
    a function that uses it up is stopped, and its remaining checks are not run, so a hang costs
    that function only and a student at most about (number of functions) x this. ``wall_seconds``:
    for starting and importing the file. ``failures_per_function``: how often one function may end
    the process (crash, exit) before its remaining checks are given up."""

    def __init__(self, wall_seconds=60, cpu_seconds=120, memory_mb=4096, file_mb=64, result_mb=256,
                 function_seconds=20, failures_per_function=2, **_):
        self.wall_seconds, self.cpu_seconds = wall_seconds, cpu_seconds
        self.memory_bytes, self.file_bytes = memory_mb << 20, file_mb << 20
        self.result_bytes = result_mb << 20
        self.function_seconds, self.failures_per_function = function_seconds, failures_per_function


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


def _first_existing(paths, missing):
    for path in paths:
        if os.path.exists(path):
            return path
    raise FileNotFoundError(missing)


def companion_vae():
    """The assignment's own vae.py, which a graded flows.py imports: in the kit, assignment/vae.py;
    in the student bundle, the pristine copy release put in grader/fixtures/."""
    return _first_existing((os.path.join(HERE, "fixtures", "vae_stub.py"), ASSIGNMENT),
                           "the assignment's vae.py (assignment/vae.py) is missing: run python -m grader release")


def provided_module():
    """training_tools.py, which vae.py imports: in the kit, assignment/training_tools.py; in the
    student bundle, beside vae.py."""
    return _first_existing((os.path.join(ROOT, "training_tools.py"),
                            os.path.join(os.path.dirname(ASSIGNMENT), "training_tools.py")),
                           "training_tools.py (assignment/training_tools.py) is missing")


def prepare_folders(submission_path, module="vae", base=None, source=None):
    """(work folder, control folder).

    The work folder holds what the student's code may touch: the submission (as vae.py or
    flows.py), the assignment's vae.py beside a flows.py, training_tools.py and data/. The
    control folder holds what the child runs and reads before any student code does: child.py, stand_ins.py, the
    request and its inputs. A child that drops root can neither read nor change it, so a
    restarted child never runs anything the student's code wrote. ``base``: the folder to make
    them in (default: the temporary folder)."""
    remove_stale_folders([base or tempfile.gettempdir()])
    # the grader's pid in the names: a later run knows them as its own, and whether their run is gone
    workdir = tempfile.mkdtemp(prefix=f"vae-grade-{os.getpid()}-", dir=base)
    control = tempfile.mkdtemp(prefix=f"vae-grade-control-{os.getpid()}-", dir=base)
    with open(os.path.join(workdir, f"{module}.py"), "wb") as f:  # ``source``: a notebook's code, already read
        f.write(source.encode("utf-8") if source is not None else _read_no_link(submission_path))
    if module != "vae":
        shutil.copyfile(companion_vae(), os.path.join(workdir, "vae.py"))
    shutil.copyfile(provided_module(), os.path.join(workdir, "training_tools.py"))
    for name in ("child.py", "stand_ins.py"):
        shutil.copyfile(os.path.join(HERE, name), os.path.join(control, name))
    shutil.copytree(os.path.join(ROOT, "data"), os.path.join(workdir, "data"),
                    ignore=shutil.ignore_patterns("mnist", "__pycache__", "*.gz"))
    return workdir, control


STALE_FOLDER = re.compile(r"vae-grade-(?:control-)?(\d+)-")
_swept = set()


def remove_stale_folders(bases):
    """Remove what runs that were killed (SIGKILL, a power cut) left in ``bases``: only the
    grader's own folders (vae-grade-PID-...), only when the run PID is gone. Once per folder and process."""
    for base in bases:
        if base in _swept or os.name != "posix":
            continue
        _swept.add(base)
        try:
            entries = list(os.scandir(base))
        except OSError:
            continue
        for entry in entries:
            match = STALE_FOLDER.match(entry.name)
            try:
                mine = os.geteuid() == 0 or entry.stat(follow_symlinks=False).st_uid == os.geteuid()
                if match and mine and entry.is_dir(follow_symlinks=False) and not _alive(int(match.group(1))):
                    shutil.rmtree(entry.path, ignore_errors=True)
            except OSError:
                pass


def _alive(pid):
    if pid == os.getpid():
        return True
    if os.path.isdir("/proc"):
        return live_owner(pid) is not None  # a zombie runs nothing
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass
    return True


def _read_no_link(path):
    """The file's bytes; OSError when it is a symbolic link (never followed, whatever it points at)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        return f.read()


def run_submission(submission_path, calls, inputs, limits=None, isolation=None, hidden_paths=(), module="vae",
                   source=None, display_name=None):
    """Answer ``calls`` with the student's code, imported as ``module`` (vae or flows), isolated as
    ``isolation`` (an isolation.Isolation) says: process limits only by default. ``hidden_paths``
    (the submissions folder, the results folder) are hidden as the kit is.
    Returns (import_info, {call id: (header, arrays)}, log)."""
    limits = limits or Limits()
    isolation = isolation or Isolation("none")
    # a fresh user outside bubblewrap must reach the work folder where it really is
    base = reachable_temporary_folder() if isolation.mode == "user" else None
    workdir, control = prepare_folders(submission_path, module, base, source)
    uid = allocate_uid() if isolation.drops_privileges else None
    try:
        with open(os.path.join(control, "request.json"), "w") as f:
            json.dump({"calls": calls, "module": module, "drop_to": uid, "display_name": display_name}, f)
        np.savez(os.path.join(control, "inputs.npz"), **inputs)
        prefix = None
        if isolation.mode == "bwrap":
            prefix = sandbox_prefix(workdir, [ROOT, *hidden_paths], drop_privileges=uid is not None,
                                    read_only=[control])
        if uid is not None:
            give_to(workdir, uid)
        with private_folders([ROOT, *hidden_paths] if isolation.mode == "user" else []):
            return _answer_calls(calls, workdir, control, limits, prefix, uid, isolation)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(control, ignore_errors=True)
        if uid is not None:
            remove_files_of(uid)
            release_uid(uid)


def portable():
    """Whether to run the child the portable way (grader/runner.py's _run_child_portable): where the
    Linux hardening is unavailable (Windows, macOS), or when VAE_GRADER_PORTABLE=1 asks for it."""
    return os.environ.get("VAE_GRADER_PORTABLE", "") == "1" or not sys.platform.startswith("linux")


def _answer_calls(calls, workdir, control, limits, prefix, uid, isolation):
    """Run the child until every call is answered or given up on. Each function is judged on its
    own: a call that ends the process (a crash, an exit, a hang past its function's time) is blamed
    on that call alone, and a fresh child answers the calls after it. A function that has used its
    time, or ended the process ``failures_per_function`` times, has its remaining calls marked as
    not run: one function's fault costs that function only, in bounded time."""
    results, import_info, log = {}, None, ""
    used, failures, given_up = {}, {}, {}  # per function: seconds taken, processes ended, why not run
    # isolated runs need the Linux runner (a process group to kill, the limits, the fd it writes to)
    run_child = _run_child_portable if isolation.mode == "none" and portable() else _run_child
    for _ in range(len(calls) + 1):  # every round answers or gives up at least one call
        todo = [i for i, call in enumerate(calls) if call["id"] not in results and call["function"] not in given_up]
        if not todo:
            break
        watch, log = run_child(workdir, control, todo, calls, used, limits, prefix, uid)
        if _stop.is_set():
            raise GradingInterrupted()
        frames = watch.frames
        if not frames or frames[0][0].get("id") != "__started__":
            raise IsolationError(f"the submission's process did not start ({isolation.mode} isolation): "
                                 + (log.strip()[-600:] or watch.reason))
        for header, arrays in frames[1:]:
            if header.get("id") == "__import__":
                import_info = import_info or header
            elif header.get("id") not in results:
                results[header["id"]] = (header, arrays)
        if import_info is None:
            import_info = {"status": "raised", "message": f"your file could not be imported: {watch.reason}"}
        if import_info.get("status") != "ok":
            break
        pending = [i for i in todo if calls[i]["id"] not in results]
        if not pending or watch.restart:  # all answered, or the child ended itself after an answer
            continue
        lost = calls[pending[0]]  # the call during which the child stopped answering
        function = lost["function"]
        results[lost["id"]] = ({"id": lost["id"], "status": "raised", "message": f"{function} {watch.reason}"}, {})
        failures[function] = failures.get(function, 0) + 1
        if used.get(function, 0.0) >= limits.function_seconds:
            given_up[function] = (f"{function} was not run on this check: it had already used all of its "
                                  f"{limits.function_seconds:g} s")
        elif failures[function] >= limits.failures_per_function:
            given_up[function] = (f"{function} was not run on this check: it had already ended the process "
                                  f"{failures[function]} times")
    for call in calls:
        why = given_up.get(call["function"], f"{call['function']} was not run: the process kept failing")
        results.setdefault(call["id"], ({"id": call["id"], "status": "raised", "message": why}, {}))
    return import_info, results, log


STOPPED = "was stopped: grading was interrupted"


class _Watch:
    """What the parent sees of one child run, as it happens: the frames so far, which call is in
    flight and since when, and why the run ended (None: it answered everything it was given)."""

    def __init__(self, todo, calls, used, limits):
        self.todo, self.calls, self.used, self.limits = todo, calls, used, limits
        self.frames, self.buffer, self.position, self.answered = [], bytearray(), 0, 0
        self.started, self.call_started = time.monotonic(), None
        self.reason, self.restart = None, False

    def deadline(self):
        """When the call in flight (or the start and import) must have answered."""
        if self.call_started is None or self.answered >= len(self.todo):
            return (self.call_started or self.started) + self.limits.wall_seconds
        function = self.calls[self.todo[self.answered]]["function"]
        return self.call_started + max(0.0, self.limits.function_seconds - self.used.get(function, 0.0))

    def expired(self, now):
        """Past the deadline: charge the call in flight its function's whole time, and say so."""
        if self.call_started is not None and self.answered < len(self.todo):
            function = self.calls[self.todo[self.answered]]["function"]
            self.used[function] = self.limits.function_seconds
            self.reason = f"did not finish within {self.limits.function_seconds:g} s (it was stopped)"
        else:
            self.reason = f"did not finish within {self.limits.wall_seconds:g} s (it was stopped)"

    def take(self, chunk, now):
        """Add bytes read from the child; False once it sent more than any answer needs."""
        if len(self.buffer) + len(chunk) > self.limits.result_bytes:
            self.reason = "sent more data than any answer needs (it was stopped)"
            return False
        self.buffer += chunk
        frames, self.position = take_frames(self.buffer, self.position)
        for header, arrays in frames:
            self.frames.append((header, arrays))
            if header.get("id") == "__import__":
                self.call_started = now
            elif self.answered < len(self.todo) and header.get("id") == self.calls[self.todo[self.answered]]["id"]:
                function = self.calls[self.todo[self.answered]]["function"]
                self.used[function] = self.used.get(function, 0.0) + now - self.call_started
                self.call_started, self.answered = now, self.answered + 1
                self.restart = bool(header.get("restart"))  # it left threads or processes: it ends itself
        return True


def _child_env(workdir, **extra):
    """The child's whole environment: nothing of the grader's but PATH (and, for the portable
    runner, what Windows needs to start Python)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": workdir, "LANG": "C.UTF-8",
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "MPLBACKEND": "Agg", "MPLCONFIGDIR": workdir, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
            **extra}


def _run_child(workdir, control, todo, calls, used, limits, sandbox_prefix_args, uid):
    """One child answering ``todo`` (indices into ``calls``); returns (its _Watch, the log's tail)."""
    read_end, write_end = os.pipe()
    marker = uuid.uuid4().hex
    env = _child_env(workdir, **{MARKER: marker})
    command = [sys.executable, "-I", os.path.join(control, "child.py"), workdir, control, str(write_end),
               ",".join(map(str, todo))]
    if sandbox_prefix_args:
        command = sandbox_prefix_args + command
    watch = _Watch(todo, calls, used, limits)
    # The log is an unnamed file outside the work folder: the student's code cannot swap it for a link.
    with tempfile.TemporaryFile() as log:
        try:
            process = _start_child(command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   pass_fds=(write_end,), start_new_session=True, env=env,
                                   preexec_fn=_limit_child(limits))
        finally:
            os.close(write_end)
        exited_at = None
        try:
            while True:
                now = time.monotonic()
                if _stop.is_set():
                    watch.reason = STOPPED
                    break
                if now > watch.deadline():
                    watch.expired(now)
                    break
                ready, _, _ = select.select([read_end], [], [], max(0.0, min(0.1, watch.deadline() - now)))
                if ready:
                    chunk = os.read(read_end, 1 << 20)
                    if not chunk:  # every writer is gone: let the child's own ending be known
                        _wait(process, 1.0)
                        break
                    if not watch.take(chunk, time.monotonic()):
                        break
                elif process.poll() is not None:
                    # the child is gone; a process it forked may still hold the pipe open
                    exited_at = exited_at or now
                    if now - exited_at > 0.5:
                        break
        finally:
            os.close(read_end)
            code = process.poll()
            _kill_everything(process, marker, uid)
        watch.reason = watch.reason or _ending(code, sandboxed=bool(sandbox_prefix_args))
        return watch, _tail(log)


def _wait(process, seconds):
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass


def _run_child_portable(workdir, control, todo, calls, used, limits, sandbox_prefix_args=None, uid=None):
    """The child run with only what Python offers on Windows, macOS and Linux alike: a subprocess,
    a results file it writes frames to (its stdout stays free for the student's prints), the
    deadlines polled from here, and a plain kill. No CPU, memory or file-size limits, and a
    process the child starts on its own may outlive it: this path is for a student's self-check on
    their own laptop, where the only code run is their own."""
    results_path = os.path.join(control, f"results-{todo[0]}.bin")
    open(results_path, "wb").close()
    windows = {k: v for k, v in os.environ.items()
               if k.upper() in ("SYSTEMROOT", "WINDIR", "TEMP", "TMP", "PATHEXT", "COMSPEC", "USERPROFILE")}
    env = _child_env(workdir, PYTHONIOENCODING="utf-8", **windows)
    command = [sys.executable, "-I", os.path.join(control, "child.py"), workdir, control, results_path,
               ",".join(map(str, todo))]
    watch = _Watch(todo, calls, used, limits)
    with tempfile.TemporaryFile() as log, open(results_path, "rb") as results:
        process = _start_child(command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        try:
            while not _stop.is_set():
                ended = process.poll() is not None
                chunk = results.read()
                if chunk and not watch.take(chunk, time.monotonic()):
                    break
                if ended:
                    break
                if time.monotonic() > watch.deadline():
                    watch.expired(time.monotonic())
                    break
                time.sleep(0.02)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            _running.discard(process)
        if _stop.is_set():
            watch.reason = STOPPED
        watch.reason = watch.reason or _ending(process.returncode)
        tail = _tail(log)
    try:
        os.remove(results_path)
    except OSError:
        pass
    return watch, tail


def _ending(code, sandboxed=False):
    """How a child that stopped answering ended, in words. bubblewrap reports a child killed by a
    signal as 128 + its number."""
    if code is None:
        return "ended the process"
    number = -code if code < 0 else code - 128 if sandboxed and code > 128 else None
    if number is None:
        return f"ended the process (it exited with status {code})"
    return f"ended the process (killed by {_signal_name(number)})"


def _signal_name(number):
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
    return {"SIGXCPU": "SIGXCPU: it used its CPU time", "SIGSEGV": "SIGSEGV: a crash, such as a recursion "
            "too deep for the C stack", "SIGXFSZ": "SIGXFSZ: it wrote past the file-size limit"}.get(name, name)


def _kill_everything(process, marker, uid=None):
    """The child's process group, every process of its user when it ran as one of its own, and
    any process that still carries this run's marker in its environment."""
    _kill_group(process)
    process.wait()
    _running.discard(process)
    if uid is not None:
        kill_user(uid)
    _kill_marked(f"{MARKER}={marker}".encode())


def _kill_marked(needle, seconds=5.0):
    """Kill every process whose environment holds ``needle``, and return once all are dead.

    /proc is scanned again until a scan finds none: a process caught in the middle of a fork
    when it was killed leaves a child the earlier scan could not see, and that child carries the
    marker too. A killed process still runs until the kernel has torn it down (its memory freed),
    so each is waited for until it is a zombie or gone. Bounded by ``seconds``."""
    killed, deadline = set(), time.monotonic() + seconds
    while True:
        found = set()
        for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        os.kill(int(pid), signal.SIGKILL)
                        found.add(int(pid))
            except (OSError, ValueError):
                pass
        killed |= found
        killed = {pid for pid in killed if live_owner(pid) is not None}
        if (not found and not killed) or time.monotonic() > deadline:
            return
        time.sleep(0.005)


def _tail(log, size=2000):
    log.seek(0, os.SEEK_END)
    log.seek(max(0, log.tell() - size))
    return log.read().decode("utf-8", "replace")


MALFORMED = 1 << 62  # a position past any data: after a malformed frame nothing more is read


def take_frames(data, position=0):
    """(the whole frames in ``data`` from ``position`` on, the position after them); it stops at
    the first malformed frame for good. Arrays must be plain float64."""
    frames = []
    while position + 12 <= len(data):
        if data[position:position + 4] != FRAME_MAGIC:
            return frames, MALFORMED
        (length,) = struct.unpack(">Q", bytes(data[position + 4:position + 12]))
        if position + 12 + length > len(data):
            break  # not all here yet
        payload = bytes(data[position + 12:position + 12 + length])
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as saved:
                header = json.loads(str(saved["__header__"]))
                arrays = {k: saved[k] for k in saved.files if k != "__header__"}
        except Exception:
            return frames, MALFORMED
        if not isinstance(header, dict) or not all(a.dtype == np.float64 for a in arrays.values()):
            return frames, MALFORMED
        frames.append((header, {k: np.array(a, dtype=np.float64) for k, a in arrays.items()}))
        position += 12 + length
    return frames, position
