"""Open a zip or tar that a student (or an LMS's "download all") handed over, safely.

Nothing in an archive decides where it lands: every member is written below the folder it is
unpacked into, or the whole archive is refused, saying why. Refused: a member whose path is
absolute or climbs out (``..``), a symbolic or hard link, a device or pipe, an encrypted member,
more members or more bytes than ``Limits`` allows (counted as they are written, not as the
archive claims). Members that zips and Macs add beside the work (``__MACOSX/``, ``._*``) are
left out. An archive inside an archive stays a file: it is not opened in turn.
"""
import errno
import os
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass

from .intake import IGNORED, Refused


@dataclass(frozen=True)
class Limits:
    members: int = 2000
    total_bytes: int = 200 << 20  # a student's work is a few files of code; a notebook with figures, a few MB


WRITING_FAILED = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}  # where it is unpacked to

STUDENT = Limits()
DOWNLOAD = Limits(members=200_000, total_bytes=20 << 30)  # a class's LMS download: hundreds of students


def opener(scratch, limits=STUDENT):
    """For grader/intake.locate: a function that unpacks an archive into a folder of its own in
    ``scratch`` and returns [(name inside, path)]."""
    count = [0]

    def open_archive(path):
        count[0] += 1
        into = os.path.join(scratch, f"{count[0]}-{os.path.basename(path)}")
        return [(inner, os.path.join(into, inner)) for inner in unpack(path, into, limits)]
    return open_archive


def unpack(archive, into, limits=STUDENT):
    """Unpack ``archive`` into the folder ``into`` (made if missing); the relative paths written.
    Refused (the message names the archive and the member) when it cannot be done safely; what was
    written before the refusal is removed."""
    name = os.path.basename(archive)
    os.makedirs(into, exist_ok=True)
    written = []
    try:
        if zipfile.is_zipfile(archive):
            _unzip(archive, into, limits, written)
        elif tarfile.is_tarfile(archive):
            _untar(archive, into, limits, written)
        else:
            raise Refused(f"{name} is not a zip or tar archive that can be opened")
    except Refused:
        shutil.rmtree(into, ignore_errors=True)
        raise
    except OSError as e:
        shutil.rmtree(into, ignore_errors=True)
        if e.errno in WRITING_FAILED:
            raise  # the grader's disk, not the student's archive: never their 0
        raise Refused(f"{name} is a damaged archive ({type(e).__name__}: {e})") from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, RuntimeError) as e:
        shutil.rmtree(into, ignore_errors=True)
        raise Refused(f"{name} is a damaged archive ({type(e).__name__}: {e})") from None
    return written


def _member_path(archive, member, into):
    """The relative path a member is written to, or None for a member left out; Refused when its
    path would leave ``into``."""
    parts = [p for p in member.replace("\\", "/").split("/") if p not in ("", ".")]
    if member.startswith(("/", "\\")) or (parts and len(parts[0]) == 2 and parts[0][1] == ":") or ".." in parts:
        raise Refused(f"{os.path.basename(archive)} holds {member!r}, a path outside the archive: it was not opened")
    if not parts or any(p in IGNORED or p.startswith("._") or p == ".DS_Store" for p in parts):
        return None
    return os.path.join(*parts)


def _copy(source, target, budget, archive, member, limits):
    """Copy the open file ``source`` to ``target``, counting bytes against ``budget`` (a one-item list)."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "xb") as out:
        while True:
            chunk = source.read(1 << 20)
            if not chunk:
                return
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise Refused(f"{os.path.basename(archive)} unpacks to more than {limits.total_bytes >> 20} MB "
                              f"(at {member}): it was not opened")
            out.write(chunk)


def _check_count(archive, count, limits):
    if count > limits.members:
        raise Refused(f"{os.path.basename(archive)} holds more than {limits.members} files: it was not opened")


def _unzip(archive, into, limits, written):
    budget = [limits.total_bytes]
    with zipfile.ZipFile(archive) as z:
        members = z.infolist()
        _check_count(archive, len(members), limits)
        for info in members:
            relative = _member_path(archive, info.filename, into)
            if relative is None or info.is_dir():
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise Refused(f"{os.path.basename(archive)} holds a symbolic link ({info.filename}): hand in files, "
                              f"not links")
            if info.flag_bits & 0x1:
                raise Refused(f"{os.path.basename(archive)} is encrypted ({info.filename}): hand in an archive "
                              f"without a password")
            target = os.path.join(into, relative)
            if os.path.exists(target):
                continue  # the same name twice in one zip: the first is kept
            with z.open(info) as source:
                _copy(source, target, budget, archive, info.filename, limits)
            written.append(relative)


def _untar(archive, into, limits, written):
    budget = [limits.total_bytes]
    with tarfile.open(archive) as t:
        count = 0
        for member in t:
            count += 1
            _check_count(archive, count, limits)
            relative = _member_path(archive, member.name, into)
            if relative is None or member.isdir():
                continue
            if member.issym() or member.islnk():
                raise Refused(f"{os.path.basename(archive)} holds a link ({member.name}): hand in files, not links")
            if not member.isfile():
                raise Refused(f"{os.path.basename(archive)} holds {member.name}, which is not a file: it was not opened")
            target = os.path.join(into, relative)
            if os.path.exists(target):
                continue
            source = t.extractfile(member)
            _copy(source, target, budget, archive, member.name, limits)
            written.append(relative)
