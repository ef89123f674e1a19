"""Request bodies encoded ahead while an endpoint is behind, parked in a file.

While a queue cannot send as fast as it reads (the receiver is down or slow),
its shards fill up and would stop the reader; the backlog would then wait in
the WAL and be read, decoded, placed, encoded and compressed during the drain,
while the receiver could take more. With a spool, a full shard parks its next
batches instead: the queue encodes and compresses each once, when it is built,
and the body waits here; the drain only reads and sends it.

A spool is a cache of WAL data, never the only copy: a queue's delivered
position stays before a parked batch until it is delivered, so a restart (the
engine empties the spool directory at start) reads those records from the WAL
again, as without a spool.

One append-only file per queue. A frame is a header (the body's length and
CRC32C, then an extra part's) followed by the body and the extra part: the
queue keeps there which items the body holds (``rwconsole.remote.ahead``),
read back only if a stop comes before the delivered position passes them.
The drain reads a body alone and checks it against the length and CRC its
``SpoolRef`` keeps in memory. The
file is emptied (truncated) when no frame in it is waiting.
``SpoolBudget``, shared by the spools of one engine, bounds their total size
and keeps the filesystem's free space above a reserve and above what the
spools use: encoding ahead must never take the room the WAL needs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
from pathlib import Path
from typing import NamedTuple

import crc32c

from rwconsole.config.schema import WALConfig

log = logging.getLogger("rwconsole.spool")

_HEADER = struct.Struct("<IIII")
FRAME_HEADER_SIZE = _HEADER.size


class SpoolError(Exception):
    """A parked body could not be read back (file error, short read, CRC mismatch)."""


class SpoolRef(NamedTuple):
    """Where a frame lies; the body's length and CRC are kept here too, so the drain
    reads the body alone, straight into the bytes it sends."""

    offset: int
    length: int
    body_length: int
    body_crc: int


def budget_bytes(wal: WALConfig) -> int:
    """The spools' budget: none under a WAL disk budget (``max_size``), whose bytes are
    better spent on the WAL, which holds several times more samples per byte than
    encoded request bodies do."""
    return 0 if wal.max_size else wal.spool_max_size


class SpoolBudget:
    """Bytes all spools of an engine may use, and the free space they must leave.

    A write is admitted while the spools stay within ``max_bytes`` and the
    filesystem keeps at least ``reserve_bytes`` free and at least as much as the
    spools then use: on a filling disk, the spools never take more than half of
    what was free, and the WAL keeps the rest.
    """

    def __init__(self, max_bytes: int, reserve_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.reserve_bytes = reserve_bytes
        self.used = 0

    def admit(self, fd: int, size: int) -> bool:
        """Whether ``size`` more bytes fit in the budget and above the reserve."""
        if self.used + size > self.max_bytes:
            return False
        try:
            stat = os.fstatvfs(fd)
        except OSError:
            return False
        free_after = stat.f_bavail * stat.f_frsize - size
        return free_after >= max(self.reserve_bytes, self.used + size)


class Spool:
    """One queue's parked request bodies, in one file."""

    def __init__(self, path: str | os.PathLike[str], budget: SpoolBudget) -> None:
        self.path = Path(path)
        self._budget = budget
        self._fd: int | None = None
        self._end = 0
        self.waiting = 0
        """Frames put and not yet done."""
        self.last_error = ""

    @property
    def enabled(self) -> bool:
        """Whether the budget allows any spool at all (``spool_max_size`` > 0)."""
        return self._budget.max_bytes > 0

    @property
    def size(self) -> int:
        """Bytes of the file (what it takes on disk)."""
        return self._end

    def has_room(self, size: int) -> bool:
        """Whether a body of about ``size`` bytes would be taken now."""
        if self._budget.used + size > self._budget.max_bytes:
            return False
        try:
            return self._budget.admit(self._open(), size + _HEADER.size)
        except OSError:
            return False

    def put(self, body: bytes, extra: bytes = b"") -> SpoolRef | None:
        """Append ``body`` and ``extra``; None when the budget, the reserve or the disk
        refuse them."""
        body_crc = crc32c.crc32c(body)
        header = _HEADER.pack(len(body), body_crc, len(extra), crc32c.crc32c(extra))
        length = len(header) + len(body) + len(extra)
        if self._budget.used + length > self._budget.max_bytes:
            return None
        try:
            fd = self._open()
            if not self._budget.admit(fd, length):
                return None
            written = os.pwritev(fd, (header, body, extra), self._end)
        except OSError as err:
            self._note_error(f"cannot write to {self.path}: {err}")
            return None
        if written != length:
            # A short write leaves nothing usable; the next frame overwrites it.
            self._note_error(f"short write to {self.path} ({written} of {length} bytes)")
            return None
        ref = SpoolRef(self._end, length, len(body), body_crc)
        self._end += length
        self._budget.used += length
        self.waiting += 1
        return ref

    def get(self, ref: SpoolRef) -> bytes:
        """The body parked at ``ref``; raises ``SpoolError`` when it cannot be read."""
        body = self._pread(ref.offset + _HEADER.size, ref.body_length, ref)
        if crc32c.crc32c(body) != ref.body_crc:
            raise SpoolError(
                f"{self.path}: frame at offset {ref.offset} fails its CRC check (body)"
            )
        return body

    def get_extra(self, ref: SpoolRef) -> bytes:
        """The extra part parked at ``ref``; raises ``SpoolError`` when it cannot be read."""
        frame = self._pread(ref.offset, ref.length, ref)
        body_length, _, extra_length, extra_crc = _HEADER.unpack_from(frame)
        if (body_length, _HEADER.size + body_length + extra_length) != (
            ref.body_length,
            ref.length,
        ):
            raise SpoolError(
                f"{self.path}: frame at offset {ref.offset} says {body_length} + {extra_length} "
                f"bytes, was written with {ref.body_length} + "
                f"{ref.length - _HEADER.size - ref.body_length}"
            )
        extra = frame[_HEADER.size + body_length :]
        if crc32c.crc32c(extra) != extra_crc:
            raise SpoolError(
                f"{self.path}: frame at offset {ref.offset} fails its CRC check (extra part)"
            )
        return extra

    def _pread(self, offset: int, length: int, ref: SpoolRef) -> bytes:
        if self._fd is None:
            raise SpoolError(f"{self.path} is closed")
        try:
            data = os.pread(self._fd, length, offset)
        except OSError as err:
            raise SpoolError(f"cannot read {self.path} at offset {ref.offset}: {err}") from err
        if len(data) != length:
            raise SpoolError(
                f"short read from {self.path} at offset {ref.offset}: {len(data)} of {length} bytes"
            )
        return data

    def done(self, ref: SpoolRef) -> None:
        """The frame at ``ref`` is finished with; the file empties when none waits."""
        self.waiting -= 1
        if self.waiting == 0 and self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            self._budget.used -= self._end
            self._end = 0

    def close(self) -> None:
        """Release the budget and remove the file."""
        self._budget.used -= self._end
        self._end = 0
        self.waiting = 0
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        return self._fd

    def _note_error(self, message: str) -> None:
        if message != self.last_error:
            log.warning("spool: %s; batches wait in memory and the WAL instead", message)
        self.last_error = message


def clear_directory(directory: str | os.PathLike[str]) -> int:
    """Remove spool files left by an earlier run; how many were removed."""
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for path in Path(directory).glob("*.spool"):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed
