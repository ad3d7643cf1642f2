"""Atomic file writes: a reader sees the previous file or the complete new one, never half of one.

Every file fastnn writes where data loss matters goes through :func:`atomic_path` (checkpoints,
through safetensors) or :func:`write_atomic` (bytes or text): the content goes to a temporary file
in the same folder, ``.<name>.tmp-<pid>-<random>``, which is flushed to disk and renamed over the
target with ``os.replace`` (then the folder is flushed too). A writer killed mid-write (SIGKILL,
power loss) leaves the previous file intact and its temporary file behind; the next write to the
same target removes such leftovers, but only those whose writer is certainly gone (see
:func:`remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

try:  # POSIX: the writer holds a lock on its temporary file while it writes
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["write_atomic", "atomic_path", "remove_stale_temps", "fsync_dir"]

_TMP_RE = re.compile(r"(?P<pid>\d+)-[0-9a-f]+")  # what follows ".<name>.tmp-"


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (a rename in it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. a platform without directory file descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    if pid <= 0 or os.name != "posix":  # not a real pid; or Windows, where os.kill(pid, 0) would kill it
        return True  # either way: leave the file alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists, owned by someone else (or cannot tell)
        return True
    return True


def _unlocked(path: Path) -> bool:
    """True when nobody holds the writer's lock on ``path`` (so its writer is gone). A file system
    without locks answers True: the pid check alone decides there."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return True
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return False  # vanished or unreadable: nothing to do
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    finally:
        os.close(fd)  # also releases the lock just taken
    return True


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Delete the temporary files that killed writers of ``path`` left behind.

    A temporary file ``.<name>.tmp-<pid>-<random>`` beside ``path`` is removed only when its
    writer is certainly gone: ``<pid>`` is not a live process on this machine, it is not this
    process (whose other threads may be writing), and nobody holds the lock a writer keeps on its
    temporary file while it writes (which also protects a writer on another machine sharing the
    folder). Anything else is left alone.

    Parameters
    ----------
    path : str or Path
        The target file (its folder is scanned for its temporary files only).

    Returns
    -------
    list of Path
        The files removed.
    """
    path = Path(path)
    prefix = f".{path.name}.tmp-"
    removed: list[Path] = []
    try:
        entries = [e.name for e in os.scandir(path.parent) if e.name.startswith(prefix)]
    except OSError:
        return removed
    me = os.getpid()
    for name in entries:
        m = _TMP_RE.fullmatch(name[len(prefix):])
        if m is None:
            continue  # not one of ours, or another target's (the target "a.tmp-1-x" of "a")
        pid = int(m["pid"])
        if pid == me or _pid_alive(pid):
            continue
        tmp = path.parent / name
        if not _unlocked(tmp):
            continue
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def temp_path(path: str | Path) -> Path:
    """A new temporary file name beside ``path``: ``.<name>.tmp-<pid>-<8 hex digits>``."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_path(path: str | Path, *, fsync: bool = True) -> Iterator[Path]:
    """Write a file atomically through a temporary path: ``with atomic_path(p) as tmp: write(tmp)``.

    The temporary file is created (empty, locked by this process) before the block runs; the block
    writes the complete content to it (by name: it may reopen and truncate it). On success the
    file is flushed to disk (``fsync=True``), renamed over ``path`` and the folder flushed; on an
    exception the temporary file is removed and ``path`` keeps its previous content. Stale
    temporary files of ``path`` left by killed writers are removed first
    (:func:`remove_stale_temps`).

    Parameters
    ----------
    path : str or Path
        The file to (re)write; its folder must exist.
    fsync : bool
        Flush the data and the rename to disk, so the new content also survives a power loss.
        Files rewritten often whose loss costs little (a running training's progress files, a
        report that can be regenerated) may skip it: the rename alone already keeps readers from
        seeing a partial file, and an fsync costs ~7 ms on this machine.

    Yields
    ------
    Path
        The temporary file to write.
    """
    path = Path(path)
    remove_stale_temps(path)
    tmp = temp_path(path)
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if fcntl is not None:
            with contextlib.suppress(OSError):  # a file system without locks: the pid check remains
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield tmp
        if fsync:
            os.fsync(fd)  # the file's data, whichever descriptor wrote it
        os.replace(tmp, path)
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    if fsync:
        fsync_dir(path.parent)


def write_atomic(path: str | Path, data: bytes | str, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`).

    Parameters
    ----------
    path : str or Path
        The file to (re)write; its folder must exist.
    data : bytes or str
        The new content (``str`` is written as UTF-8).
    fsync : bool
        Flush the file and the rename to disk (see :func:`atomic_path`).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    with atomic_path(path, fsync=fsync) as tmp, open(tmp, "wb") as f:
        f.write(raw)
    return path
