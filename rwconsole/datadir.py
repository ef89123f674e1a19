"""One process per data directory: an exclusive ``flock`` on ``<data dir>/lock``.

The engine takes the lock before it writes anything and keeps the file open
for its lifetime; the kernel releases it when the process ends, however it
ends, so a crash never leaves a stale lock behind. The holder's PID is written
into the file for the message a second process prints. Tools that modify a
WAL (repair) only probe the lock: they refuse while it is held and never keep
it. Read-only tools do not look at it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "lock"


class DataDirLocked(Exception):
    """Another process holds the data directory's lock (message names the path and PID)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(f"data directory {path.parent} is in use by {holder} (lock {path})")
        self.path = path
        self.pid = pid


class DataDirLock:
    """The held lock of one data directory; ``release()`` (or process exit) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: str | os.PathLike[str]) -> DataDirLock:
        """Create the directory if needed and lock it; raises ``DataDirLocked`` or ``OSError``."""
        path = Path(data_dir) / LOCK_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _try_lock(path, create=True)
        if fd is None:
            raise DataDirLocked(path, _read_pid(path))
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            os.close(fd)
            raise
        return cls(path, fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            # The file stays: removing it would let a process that opened it just
            # before lock an inode nobody else looks at.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)


def check_unlocked(data_dir: str | os.PathLike[str]) -> None:
    """Raise ``DataDirLocked`` if a process holds ``data_dir``'s lock; takes nothing."""
    path = Path(data_dir) / LOCK_NAME
    try:
        fd = _try_lock(path, create=False)
    except FileNotFoundError:
        return
    if fd is None:
        raise DataDirLocked(path, _read_pid(path))
    os.close(fd)


def _try_lock(path: Path, *, create: bool) -> int | None:
    """An fd holding an exclusive lock on ``path``, or None if another holds it."""
    flags = os.O_CLOEXEC | (os.O_RDWR | os.O_CREAT if create else os.O_RDONLY)
    fd = os.open(path, flags, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        os.close(fd)
        raise
    return fd


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
