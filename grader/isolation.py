"""How a submission's process is kept away from everything but its own folder.

Three modes, chosen once per grading run by ``choose``:

- ``bwrap``: bubblewrap, where it can create namespaces. The whole file system read-only,
  the kit, the submissions and the results hidden under empty folders, a private /tmp,
  no network, its own PID namespace (so it can signal nothing outside, and everything in
  it dies with it). As root, the student's code also runs as a fresh unprivileged user.
- ``user``: running as root where namespaces cannot be created (Gradescope's container,
  Docker). The student's code runs as a fresh unprivileged user id, one per process, so it
  can signal nothing of the grader's and reads only what every user may read; the kit,
  the submissions folder and the results folder are made root-only while grading; every
  process of that user is killed at the end.
- ``none``: process limits only (the quick self-check, or an explicit opt-out). The
  submission can read and write whatever the grading user can.

``auto`` picks bwrap, else user; when neither works the grader stops and says so, unless
the caller opted out with ``none``.
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

from .paths import ROOT

MODES = ("bwrap", "user", "none")
DROP = "import os; os.setgroups([]); os.setresgid({0}, {0}, {0}); os.setresuid({0}, {0}, {0}); "

PROTECTS = {
    "bwrap": "bubblewrap: no network, the kit, the submissions and the results hidden, the file system "
             "read-only, its own process namespace",
    "user": "a separate unprivileged user (no bubblewrap here): the kit, the submissions and the results "
            "unreadable, no signals to the grader, every process it starts killed; the network stays reachable",
    "none": "process limits only: a submission can read and write whatever this user can "
            "(the reference, the other submissions, the results) and use the network",
}


class IsolationError(RuntimeError):
    """Isolation was asked for and cannot be had, or failed to start."""


class Isolation:
    """The mode of a grading run; ``drops_privileges``: the child becomes a fresh user (as root)."""

    def __init__(self, mode):
        if mode not in MODES:
            raise ValueError(f"isolation must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.drops_privileges = mode != "none" and _is_root()

    def __repr__(self):
        return f"Isolation({self.mode!r})"

    @property
    def description(self):
        return PROTECTS[self.mode]


def _is_root():
    return hasattr(os, "geteuid") and os.geteuid() == 0


# ------------------------------------------------------------------ choosing
_probe_lock, _probes = threading.RLock(), {}


def _cached(name, probe):
    with _probe_lock:
        if name not in _probes:
            _probes[name] = probe()
        return _probes[name]


def choose(wanted="auto"):
    """An Isolation for ``wanted`` ("auto", "bwrap", "user" or "none"), or IsolationError saying why not."""
    if wanted == "none":
        return Isolation("none")
    reasons = []
    if wanted in ("auto", "bwrap"):
        ok, why = sandbox_available()
        if ok:
            return Isolation("bwrap")
        reasons.append(why)
    if wanted in ("auto", "user"):
        ok, why = user_isolation_available()
        if ok:
            return Isolation("user")
        reasons.append(why)
    raise IsolationError(
        "cannot isolate the students' code here: " + "; ".join(reasons) + ". Without isolation a submission "
        "could read and change whatever your user can: the reference solution, the other submissions, the "
        "results, and the network. Install bubblewrap (apt-get install bubblewrap), or grade as root, or "
        "pass --no-sandbox to grade anyway with process limits only.")


# ------------------------------------------------------------------ bubblewrap
def interpreter_paths():
    """The folders the grading Python needs: its prefixes and what a fresh ``python -I`` puts on sys.path."""
    def probe():
        code = ("import json, sys; print(json.dumps([sys.prefix, sys.exec_prefix, sys.base_prefix, "
                "sys.base_exec_prefix, *sys.path]))")
        import json
        try:
            out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60,
                                 start_new_session=True)
            paths = json.loads(out.stdout)
        except (OSError, ValueError, subprocess.SubprocessError):
            paths = [sys.prefix, sys.base_prefix]
        paths += [os.path.dirname(os.path.abspath(sys.executable)), os.path.dirname(os.path.realpath(sys.executable))]
        paths += _link_folders(sys.executable)
        found = []
        for path in paths:
            for form in (os.path.abspath(path), os.path.realpath(path)):
                if os.path.isdir(form) and form not in found:
                    found.append(form)
        return found
    return _cached("interpreter", probe)


def _link_folders(path, hops=40):
    """The folders of every link on the way from ``path`` to the file it ends at: a venv made from
    another venv (Python 3.9 and 3.10 link to the venv they were made from) needs each of them."""
    found, hop = [], os.path.abspath(path)
    for _ in range(hops):
        found.append(os.path.dirname(hop))
        if not os.path.islink(hop):
            break
        hop = os.path.normpath(os.path.join(os.path.dirname(hop), os.readlink(hop)))
    return found


def _under(path, folder):
    folder = folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder + "/") or folder == "/"


def sandbox_prefix(workdir, hidden_paths, drop_privileges=None, read_only=()):
    """bubblewrap's command line: the file system read-only, ``hidden_paths`` and /tmp replaced by
    empty folders, the grading Python's own folders bound back where they were hidden,
    ``read_only`` bound back read-only and the work folder writable, no network, a PID
    namespace. None without bubblewrap.

    Wherever TMPDIR points (inside /tmp, outside it, a folder closed to others), the folders
    bound back are reachable: hidden folders are mounted parents first, and every folder that
    bubblewrap would have to make on the way to a bound one is made open (it makes them 0700)."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return None
    drop_privileges = _is_root() if drop_privileges is None else drop_privileges
    temporary = {os.path.realpath(p) for p in (tempfile.gettempdir(), "/tmp")}
    hidden = [os.path.realpath(p) for p in (*temporary, *hidden_paths) if os.path.isdir(p)]
    if drop_privileges:
        # Folders other users may not enter (/root, for a pyenv there; a TMPDIR of mode 0700) are
        # replaced by open empty ones, so that what is bound back inside can be reached by the
        # unprivileged user.
        hidden += closed_ancestors([*interpreter_paths(), workdir, *read_only])
    hidden = sorted(dict.fromkeys(hidden), key=lambda p: (p.count("/"), p))  # a parent before its children
    if drop_privileges:
        # As root, no user namespace: the child starts as real root (it needs to, to become a fresh
        # user) and drops every privilege before the student's code is read.
        namespaces = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    else:
        namespaces = ["--unshare-all"]
    prefix = [bwrap, "--die-with-parent", "--new-session", *namespaces, "--ro-bind", "/", "/",
              "--dev", "/dev", "--proc", "/proc"]
    mounted, made = [], set()

    def open_way_to(path):
        """Open folders from the deepest mounted folder above ``path`` down to its parent."""
        tops = [m for m in mounted if _under(path, m) and m != path]
        if not tops:
            return
        top = max(tops, key=len)
        parts = path[len(top):].strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            folder = top.rstrip("/") + "/" + "/".join(parts[:i])
            if folder not in made:
                prefix.extend(["--perms", "0755", "--dir", folder])
                made.add(folder)

    for path in hidden:
        open_way_to(path)
        prefix += ["--perms", "1777" if path in temporary else "0755", "--tmpfs", path]
        mounted.append(path)
    rebound = []
    for path in sorted(interpreter_paths(), key=len):
        if (any(_under(path, h) for h in hidden) and not any(_under(h, path) for h in hidden)
                and not any(_under(path, r) for r in rebound)):
            open_way_to(path)
            prefix += ["--ro-bind", path, path]
            rebound.append(path)
    for path in read_only:
        open_way_to(os.path.realpath(path))
        prefix += ["--ro-bind", path, path]
    open_way_to(os.path.realpath(workdir))
    return prefix + ["--bind", workdir, workdir, "--chdir", workdir]


def reachable_temporary_folder():
    """The folder for a run's work folder when a fresh user must reach it: the usual temporary
    folder (TMPDIR) when every folder down to it is open to others, else /tmp or /var/tmp.
    IsolationError when none is."""
    tried = []
    for folder in (tempfile.gettempdir(), "/tmp", "/var/tmp"):
        real = os.path.realpath(folder)
        if real in tried:
            continue
        tried.append(real)
        if os.path.isdir(real) and not closed_ancestors([os.path.join(real, "x")]):
            return real
    raise IsolationError(f"no temporary folder that the submission's user can enter ({', '.join(tried)} are closed "
                         f"to other users): set TMPDIR to a folder every user may enter, such as /tmp")


def closed_ancestors(paths):
    """The folders above ``paths`` that users other than their owner cannot enter."""
    closed = []
    for path in paths:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            folder = "/" + "/".join(parts[:i])
            try:
                if not os.stat(folder).st_mode & 0o001 and folder not in closed:
                    closed.append(folder)
            except OSError:
                pass
    return closed


def sandbox_available():
    """(works, why not): whether bubblewrap can start the grading Python, with numpy and autograd,
    with the kit hidden, as the unprivileged user it will run as. Proven by starting it, once per process."""
    def probe():
        if shutil.which("bwrap") is None:
            return False, "bubblewrap (bwrap) is not installed"
        workdir = tempfile.mkdtemp(prefix="vae-grade-probe-")
        try:
            code = (DROP.format(_probe_uid()) if _is_root() else "") + "import numpy, autograd"
            command = sandbox_prefix(workdir, [ROOT]) + [sys.executable, "-I", "-c", code]
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=workdir,
                                        start_new_session=True)  # a Ctrl-C meant for the grader is no "no"
            except (OSError, subprocess.SubprocessError) as e:
                return False, f"bubblewrap could not be run ({e})"
            if result.returncode != 0:
                message = result.stderr.strip().splitlines()
                return False, f"bubblewrap cannot start Python here ({message[-1][:300] if message else 'no message'})"
            return True, ""
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return _cached("bwrap", probe)


# ------------------------------------------------------------------ a fresh unprivileged user
_uids_in_use, _uid_lock = set(), threading.Lock()
UID_RANGE = (40000, 59999)  # below 65536, so that it exists in containers that map only 0-65535


def _uids_running():
    uids = set()
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if pid.isdigit():
            try:
                uids.add(os.stat(f"/proc/{pid}").st_uid)
            except OSError:
                pass
    return uids


def allocate_uid():
    """A user id no account and no running process has, reserved until ``release_uid``."""
    import pwd
    with _uid_lock:
        running = _uids_running()
        for _ in range(1000):
            uid = random.randint(*UID_RANGE)
            if uid in _uids_in_use or uid in running:
                continue
            try:
                pwd.getpwuid(uid)
                continue
            except KeyError:
                pass
            _uids_in_use.add(uid)
            return uid
    raise IsolationError("no free user id to run the submission as")


def release_uid(uid):
    with _uid_lock:
        _uids_in_use.discard(uid)


def _probe_uid():
    return _cached("probe uid", allocate_uid)


def user_isolation_available():
    """(works, why not): whether this process can run the grading Python as a fresh unprivileged user
    that cannot see the kit. Proven by doing it, once per process."""
    def probe():
        if not (_is_root() and hasattr(os, "setresuid")):
            return False, "not running as root, so the code cannot run as another user"
        inside = [p for p in interpreter_paths() if _under(p, os.path.realpath(ROOT))]
        if inside:
            return False, (f"the grading Python ({inside[0]}) is inside the kit, which is closed to other users "
                           f"while grading; use a Python outside it")
        uid = _probe_uid()
        try:
            result = subprocess.run([sys.executable, "-I", "-c", DROP.format(uid)], capture_output=True, text=True,
                                    timeout=60, start_new_session=True)
            if result.returncode != 0:
                last = (result.stderr.strip().splitlines() or ["no message"])[-1]
                return False, f"this system does not let root switch to another user ({last})"
            runs = subprocess.run([sys.executable, "-I", "-c", "import numpy, autograd"], user=uid, group=uid,
                                  extra_groups=[], capture_output=True, text=True, timeout=60, cwd="/",
                                  start_new_session=True)
            if runs.returncode != 0:
                last = (runs.stderr.strip().splitlines() or ["no message"])[-1]
                raise OSError(last)
        except (OSError, subprocess.SubprocessError) as e:
            closed = closed_ancestors(interpreter_paths())
            return False, (f"an unprivileged user cannot run the grading Python {sys.executable} ({e})"
                           + (f": {closed[0]} is closed to other users" if closed else "")
                           + "; install the kit's requirements in a Python other users can read "
                             "(python3 -m venv /opt/vae-grader, say)")
        finally:
            kill_user(uid)
            remove_files_of(uid)
        return True, ""
    return _cached("user", probe)


def kill_user(uid, rounds=50):
    """Kill every process of ``uid``.

    A process of that user sends SIGKILL to every process it may signal, which is every other
    process of that user, atomically in the kernel; then /proc is checked until none is left."""
    kill = shutil.which("kill")
    for _ in range(rounds):
        left = [int(p) for p in os.listdir("/proc") if p.isdigit() and live_owner(p) == uid]
        if not left:
            break
        if kill:
            try:
                subprocess.run([kill, "-s", "KILL", "--", "-1"], user=uid, group=uid, extra_groups=[],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
            except (OSError, subprocess.SubprocessError):
                pass
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def remove_files_of(uid):
    """Remove what ``uid`` left in the shared temporary folders (once its processes are gone)."""
    for folder in {tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"}:
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.stat(follow_symlinks=False).st_uid == uid:
                        if entry.is_dir(follow_symlinks=False):
                            shutil.rmtree(entry.path, ignore_errors=True)
                        else:
                            os.unlink(entry.path)
                except OSError:
                    pass


def live_owner(pid):
    """The user a process runs as, or None when it is gone or a zombie: a zombie runs nothing,
    and where PID 1 does not reap orphans (a container's, this kind of VM's) it stays for good."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        if fields["State"].split()[0] in ("Z", "X"):
            return None
        return int(fields["Uid"].split()[0])
    except (OSError, ValueError, IndexError, KeyError):
        return None


def give_to(path, uid):
    """Make the work folder (and everything in it) the submission user's own."""
    for directory, folders, files in os.walk(path):
        os.chown(directory, uid, uid)
        for name in folders + files:
            os.chown(os.path.join(directory, name), uid, uid, follow_symlinks=False)


# ------------------------------------------------------------------ private folders, for the user mode
_private_lock, _private = threading.Lock(), {}


class private_folders:
    """While in use, ``paths`` are root-only (mode 700), so another user cannot even look inside;
    their modes are restored when the last user of each is done."""

    def __init__(self, paths):
        self.paths = [os.path.realpath(p) for p in dict.fromkeys(paths) if os.path.isdir(p)]

    def __enter__(self):
        with _private_lock:
            for path in self.paths:
                mode, count = _private.get(path, (None, 0))
                if count == 0:
                    mode = os.stat(path).st_mode & 0o7777
                    os.chmod(path, 0o700)
                _private[path] = (mode, count + 1)
        return self

    def __exit__(self, *exc):
        with _private_lock:
            for path in self.paths:
                mode, count = _private[path]
                if count == 1:
                    del _private[path]
                    try:
                        os.chmod(path, mode)
                    except OSError:
                        pass
                else:
                    _private[path] = (mode, count - 1)
