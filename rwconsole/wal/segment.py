"""WAL segment files: naming, pages, fragments, checksums and compression.

This module owns the byte format of Prometheus' write-ahead log (the layer
Prometheus calls ``tsdb/wlog``) and knows nothing about what a record means.

* Segments are files named by a decimal integer (written ``%08d``) holding
  32 KiB pages; checkpoints are ``checkpoint.NNNNNNNN`` directories holding an
  ordinary segment sequence.
* A record is written as one or more fragments (full / first / middle / last),
  each with a 7-byte header: type byte, big-endian uint16 length, big-endian
  CRC32-Castagnoli of the payload. Fragments never cross a page; records never
  cross a segment. Snappy (block format) is used only when strictly shorter.
* ``WalWriter`` appends records. One ``FragmentParser`` reads them back with
  the 2.42 reader's validation rules, raising ``CorruptionError`` with the
  segment and the offset Prometheus would report: ``iter_segment`` and
  ``iter_wal`` read finished files with it, ``TailReader`` follows a segment
  while it is being written (an incomplete tail is then not an error).

Positions are ``(segment_index, end_offset)`` pairs: the end of a record.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import crc32c
import snappy

PAGE_SIZE = 32 * 1024
HEADER_SIZE = 7
MAX_FRAGMENT = PAGE_SIZE - HEADER_SIZE
DEFAULT_SEGMENT_SIZE = 128 * 1024 * 1024

FRAG_PAD = 0
FRAG_FULL = 1
FRAG_FIRST = 2
FRAG_MIDDLE = 3
FRAG_LAST = 4
SNAPPY_FLAG = 0x08
_TYPE_MASK = 0x07

_HEADER = struct.Struct(">BHI")
_CHECKPOINT_RE = re.compile(r"^checkpoint\.(\d+)$")
_READ_CHUNK = 32 * PAGE_SIZE
_ZERO_PAGE = bytes(PAGE_SIZE)

Position = tuple[int, int]
"""(segment index, byte offset just after a record)."""


class CorruptionError(Exception):
    """A segment violates the format; ``offset`` is where a 2.42 reader stops."""

    def __init__(self, segment: int, offset: int, reason: str, directory: str = "") -> None:
        self.segment = segment
        self.offset = offset
        self.reason = reason
        self.directory = directory
        super().__init__(f"corruption in segment {segment} at {offset}: {reason}")


class SegmentListError(Exception):
    """The segment files cannot be used as a sequence (gap, unreadable directory)."""


class WalRecord(NamedTuple):
    """One complete record and where it lies.

    ``checkpoint`` is the checkpoint index when the record came from
    ``checkpoint.N`` (then ``segment`` numbers a segment inside it).
    """

    data: bytes
    segment: int
    start: int
    end: int
    compressed: bool
    checkpoint: int | None = None


@dataclass(frozen=True, slots=True)
class SegmentFile:
    index: int
    path: Path
    size: int


def segment_name(index: int) -> str:
    return f"{index:08d}"


def list_segments(directory: str | os.PathLike[str]) -> list[SegmentFile]:
    """Segment files of ``directory`` sorted by index (any all-digit file name)."""
    result = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.isdigit() and entry.name.isascii() and entry.is_file():
                result.append(SegmentFile(int(entry.name), Path(entry.path), entry.stat().st_size))
    result.sort(key=lambda seg: seg.index)
    return result


def find_gaps(segments: Sequence[SegmentFile | WalFile]) -> list[int]:
    """Indexes missing between the first and the last segment."""
    missing: list[int] = []
    for prev, cur in itertools.pairwise(segments):
        missing.extend(range(prev.index + 1, cur.index))
    return missing


def check_contiguous(segments: Sequence[SegmentFile]) -> None:
    """Raise ``SegmentListError`` when segment numbers have gaps (as Prometheus does)."""
    missing = find_gaps(segments)
    if missing:
        raise SegmentListError(
            "segments are not sequential: missing " + ", ".join(segment_name(i) for i in missing)
        )


def last_checkpoint(directory: str | os.PathLike[str]) -> tuple[int, Path] | None:
    """The checkpoint with the highest index, or None. ``.tmp`` directories never count."""
    best: tuple[int, Path] | None = None
    with os.scandir(directory) as entries:
        for entry in entries:
            match = _CHECKPOINT_RE.match(entry.name)
            if match and entry.is_dir():
                index = int(match.group(1))
                if best is None or index > best[0]:
                    best = (index, Path(entry.path))
    return best


def list_checkpoints(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    found = []
    with os.scandir(directory) as entries:
        for entry in entries:
            match = _CHECKPOINT_RE.match(entry.name)
            if match and entry.is_dir():
                found.append((int(match.group(1)), Path(entry.path)))
    return sorted(found)


def checkpoint_name(index: int) -> str:
    return f"checkpoint.{index:08d}"


def file_name(index: int, checkpoint: int | None) -> str:
    """A segment's name in messages: ``checkpoint.N/0000000M`` inside a checkpoint."""
    name = segment_name(index)
    return f"{checkpoint_name(checkpoint)}/{name}" if checkpoint is not None else name


@dataclass(frozen=True, slots=True)
class WalFile:
    """One segment file of a WAL in replay order (``checkpoint``: the checkpoint it is in)."""

    path: Path
    index: int
    size: int
    checkpoint: int | None

    @property
    def name(self) -> str:
        return file_name(self.index, self.checkpoint)


def wal_files(directory: str | os.PathLike[str]) -> list[WalFile]:
    """The newest checkpoint's segments, then the segments after it, in order (gaps allowed)."""
    out: list[WalFile] = []
    first = 0
    cp = last_checkpoint(directory)
    if cp is not None:
        out.extend(WalFile(s.path, s.index, s.size, cp[0]) for s in list_segments(cp[1]))
        first = cp[0] + 1
    out.extend(
        WalFile(s.path, s.index, s.size, None) for s in list_segments(directory) if s.index >= first
    )
    return out


def missing_files(files: Sequence[WalFile]) -> list[str]:
    """Names of the files ``wal_files`` order needs but lacks: numbering gaps inside the
    checkpoint, between the checkpoint and the first segment after it, and between segments."""
    missing: list[str] = []
    for prev, cur in itertools.pairwise(files):
        if prev.checkpoint == cur.checkpoint:
            missing.extend(file_name(i, cur.checkpoint) for i in range(prev.index + 1, cur.index))
        elif prev.checkpoint is not None and cur.checkpoint is None:
            missing.extend(file_name(i, None) for i in range(prev.checkpoint + 1, cur.index))
    return missing


# ---------------------------------------------------------------------------
# reading


class FragmentParser:
    """Turns the bytes of one segment into records, a chunk at a time, with 2.42's rules.

    ``parse`` takes the bytes from ``offset`` on and returns the records they
    complete. A record whose fragments span chunks is kept until its last
    fragment arrives; a fragment cut off at the end of a chunk is not
    consumed (``offset`` stays at its header), so the caller hands those bytes
    over again with the next chunk. ``record_end`` is where a reader can
    restart: the end of the last record, or of the padding after it.

    At the end of a finished file (``eof``) the bytes read as 2.42 reads them:
    a short final page is zero-padded and a stream that ends after a FIRST or
    MIDDLE fragment is a torn record. With ``tail_ok`` the file is still being
    written: whatever is incomplete at its end is left for later instead.
    Errors are ``CorruptionError`` with the offset a 2.42 reader reports (the
    bytes of the segment consumed when it noticed).
    """

    __slots__ = (
        "_compressed",
        "_last_type",
        "_parts",
        "_rec_start",
        "checkpoint",
        "offset",
        "record_end",
        "segment",
        "where",
    )

    def __init__(
        self, segment: int, offset: int = 0, *, checkpoint: int | None = None, where: str = ""
    ) -> None:
        self.segment = segment
        self.checkpoint = checkpoint
        self.where = where
        self.offset = offset
        self.record_end = offset
        self._parts: list[bytes] = []
        self._rec_start = offset
        self._compressed = False
        self._last_type = FRAG_PAD

    def _corrupt(self, at: int, reason: str) -> CorruptionError:
        return CorruptionError(self.segment, at, reason, self.where)

    def parse(
        self,
        data: bytes,
        out: list[WalRecord],
        *,
        eof: bool,
        tail_ok: bool = False,
        limit: int = -1,
    ) -> None:
        """Append to ``out`` the records ``data`` (the bytes at ``offset`` on) completes.

        Stops when ``out`` holds ``limit`` records (if >= 0). On corruption the
        records before it are in ``out`` when ``CorruptionError`` is raised.
        """
        base = self.offset
        strict = eof and not tail_ok
        if strict:
            short = (base + len(data)) % PAGE_SIZE
            if short:
                data += _ZERO_PAGE[: PAGE_SIZE - short]
        end = len(data)
        add = out.append
        stop = limit if limit >= 0 else len(out) + end  # at most one record per byte
        parts = self._parts
        rec_start = self._rec_start
        compressed = self._compressed
        last_type = self._last_type
        record_end = self.record_end
        segment = self.segment
        checkpoint = self.checkpoint
        crc = crc32c.crc32c
        unpack_header = _HEADER.unpack_from
        corrupt = self._corrupt
        pos = 0
        while pos < end and len(out) < stop:
            at = base + pos
            type_byte = data[pos]
            ftype = type_byte & _TYPE_MASK
            if ftype == FRAG_PAD:
                page_end = pos + PAGE_SIZE - at % PAGE_SIZE
                if page_end > end:
                    break  # the rest of the page is not written yet
                if data.count(0, pos + 1, page_end) != page_end - pos - 1:
                    raise corrupt(base + page_end, "unexpected non-zero byte in padded page")
                pos = page_end
                last_type = FRAG_PAD
                if not parts:
                    record_end = base + pos
                continue
            if end - pos < HEADER_SIZE:
                if not strict:
                    break
                # 2.42 reads a header with none of its remaining bytes as the end of
                # the data, a partial one as an error.
                if end - pos > 1:
                    raise corrupt(base + end, "read remaining header: unexpected EOF")
                last_type = ftype
                pos = end
                break
            _, length, want = unpack_header(data, pos)
            if length > MAX_FRAGMENT:
                raise corrupt(at + HEADER_SIZE, f"invalid record size {length}")
            payload_end = pos + HEADER_SIZE + length
            if payload_end > end:
                if not strict:
                    break
                if pos + HEADER_SIZE < end:
                    raise corrupt(base + end, "unexpected EOF")
                last_type = ftype  # as above: no payload byte at all is the end of the data
                pos = end
                break
            payload = data[pos + HEADER_SIZE : payload_end]
            pos = payload_end
            last_type = ftype
            got = crc(payload)
            if got != want:
                raise corrupt(base + pos, f"unexpected checksum {got:x}, expected {want:x}")
            if ftype == FRAG_FULL:
                if parts:
                    raise corrupt(base + pos, "unexpected full record")
                rec_start = at
                compressed = bool(type_byte & SNAPPY_FLAG)
                record = payload
            elif ftype == FRAG_FIRST:
                if parts:
                    raise corrupt(base + pos, "unexpected first record, dropping buffer")
                rec_start = at
                compressed = bool(type_byte & SNAPPY_FLAG)
                parts = [payload]
                continue
            elif ftype == FRAG_MIDDLE:
                if not parts:
                    raise corrupt(base + pos, "unexpected middle record, dropping buffer")
                parts.append(payload)
                continue
            elif ftype == FRAG_LAST:
                if not parts:
                    raise corrupt(base + pos, "unexpected last record, dropping buffer")
                parts.append(payload)
                record = b"".join(parts)
                parts = []
            else:
                raise corrupt(base + pos, f"unexpected record type {ftype}")
            if compressed and record:
                try:
                    record = snappy.uncompress(record)
                except Exception as exc:
                    raise corrupt(base + pos, f"snappy decode: {exc}") from None
            record_end = base + pos
            add(WalRecord(record, segment, rec_start, record_end, compressed, checkpoint))
        if strict and pos >= end and last_type in (FRAG_FIRST, FRAG_MIDDLE):
            raise corrupt(base + end, "last record is torn")
        self.offset = base + pos
        self.record_end = record_end
        self._parts = parts
        self._rec_start = rec_start
        self._compressed = compressed
        self._last_type = last_type


def iter_segment(
    path: str | os.PathLike[str],
    index: int,
    *,
    checkpoint: int | None = None,
    start_offset: int = 0,
) -> Iterator[WalRecord]:
    """Yield the records of one segment; raise ``CorruptionError`` like 2.42's reader.

    The file is read in chunks (constant memory). A short final page reads as
    zero-padded. A record still open at the end of the file is "torn".
    ``start_offset`` must be a record boundary (the end of an earlier record).
    """
    parser = FragmentParser(index, start_offset, checkpoint=checkpoint, where=str(path))
    with open(path, "rb") as fh:
        if start_offset:
            fh.seek(start_offset)
        rest = b""
        for _ in iter(int, 1):  # one pass per chunk, until the end of the file
            chunk = fh.read(_READ_CHUNK)
            eof = len(chunk) < _READ_CHUNK
            data = rest + chunk if rest else chunk
            base = parser.offset
            records: list[WalRecord] = []
            try:
                parser.parse(data, records, eof=eof)
            except CorruptionError:
                yield from records  # the records before the damage come first
                raise
            yield from records
            if eof:
                return
            rest = data[parser.offset - base :]


def iter_checkpoint(path: str | os.PathLike[str], index: int) -> Iterator[WalRecord]:
    """Records of every segment in checkpoint directory ``path`` (raises on gaps)."""
    segments = list_segments(path)
    check_contiguous(segments)
    for seg in segments:
        yield from iter_segment(seg.path, seg.index, checkpoint=index)


def iter_wal(directory: str | os.PathLike[str]) -> Iterator[WalRecord]:
    """Checkpoint (highest) records first, then segments after it, in order.

    Strict like Prometheus: a gap in numbering or a missing first segment after
    the checkpoint raises ``SegmentListError``; corruption raises
    ``CorruptionError``. ``rwconsole.wal.repair`` (used by the storage and
    ``tools``) layers the forgiving behaviour on top.
    """
    cp = last_checkpoint(directory)
    first = 0
    if cp is not None:
        yield from iter_checkpoint(cp[1], cp[0])
        first = cp[0] + 1
    segments = [s for s in list_segments(directory) if s.index >= first]
    check_contiguous(segments)
    if cp is not None and segments and segments[0].index != first:
        raise SegmentListError(f"open WAL segment: {segment_name(first)}: no such file")
    for seg in segments:
        yield from iter_segment(seg.path, seg.index)


# ---------------------------------------------------------------------------
# reading a segment while it is written, and past damage


class TailReader:
    """Follows the segments of a WAL directory while they are written.

    ``read()`` returns the complete records available after the current
    position and never blocks; a fragment that is not fully on disk yet is left
    for the next call. When a segment with a higher index exists, the current
    one is finished and the reader moves on. ``position`` is the end of the
    last record returned (or the start of the segment reached), so a reader can
    be restarted from a saved position. Definite corruption (bad checksum of a
    complete fragment, bad sequence, torn record in a finished segment) raises
    ``CorruptionError``; ``skip_segment()`` then moves past it. ``skipped``
    lists segment indexes that were gone (truncated) before they were read.

    ``limit`` (called on every ``read``) is the end of the last commit the
    writer reported done: nothing after it is read, in its segment or a later
    one. Without it the reader takes every complete record in the files, also
    those of a commit the writer is about to cut back after a failed write.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        position: Position | None = None,
        *,
        limit: Callable[[], Position] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.skipped: list[int] = []
        if position is None:
            segs = list_segments(self.directory)
            position = (segs[0].index, 0) if segs else (0, 0)
        self._segment, self._offset = position
        self._limit = limit
        self._chunk = 4 * 1024 * 1024

    @property
    def position(self) -> Position:
        return (self._segment, self._offset)

    def skip_segment(self) -> None:
        self._segment += 1
        self._offset = 0

    def read(self, max_records: int = 100_000) -> list[WalRecord]:
        """Complete records available now (at most about ``max_records``)."""
        out: list[WalRecord] = []
        limit = self._limit() if self._limit is not None else None
        for _ in range(100_000):  # bounded: one pass per segment or chunk
            segs = list_segments(self.directory)
            if not segs:
                return out
            indexes = [s.index for s in segs]
            if limit is not None:
                indexes = [i for i in indexes if i <= limit[0]]
                if not indexes:
                    return out
            if self._segment not in indexes:
                later = [i for i in indexes if i > self._segment]
                if not later:
                    return out
                self.skipped.extend(range(self._segment, later[0]))
                self._segment, self._offset = later[0], 0
            has_next = self._segment < indexes[-1]
            stop_at = limit[1] if limit is not None and self._segment == limit[0] else None
            if stop_at is not None and self._offset >= stop_at:
                return out
            path = self.directory / segment_name(self._segment)
            before = len(out)
            at_eof = self._read_chunk(path, out, max_records, finished=has_next, stop_at=stop_at)
            if len(out) >= max_records:
                return out
            if not at_eof:
                if len(out) == before:
                    self._chunk *= 2  # one record larger than the chunk
                continue
            if not has_next:
                return out
            self._segment += 1
            self._offset = 0
        return out

    def _read_chunk(
        self,
        path: Path,
        out: list[WalRecord],
        max_records: int,
        *,
        finished: bool,
        stop_at: int | None = None,
    ) -> bool:
        """Parse records from one chunk; return True when the chunk reached EOF (or
        ``stop_at``, the committed end in this segment)."""
        size = self._chunk
        if stop_at is not None:
            size = min(size, stop_at - self._offset)
        try:
            with open(path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read(size)
        except FileNotFoundError:
            return True
        at_eof = len(data) < self._chunk
        parser = FragmentParser(self._segment, self._offset)
        parser.parse(data, out, eof=at_eof, tail_ok=not finished, limit=max_records)
        self._offset = parser.record_end
        if len(out) >= max_records:
            return False
        return at_eof


def salvage_records(path: str | os.PathLike[str], index: int, offset: int) -> Iterator[WalRecord]:
    """Records still decodable after a corruption at ``offset`` (best effort).

    Resynchronises at each following page boundary; used to say what a repair
    would drop, never to keep data past a corruption. Each step advances at
    least one page, so the scan is bounded by the file size.
    """
    size = os.path.getsize(path)
    page = offset
    while page < size:
        last_end = page
        try:
            for rec in iter_segment(path, index, start_offset=page):
                last_end = rec.end
                yield rec
            return
        except CorruptionError as exc:
            last_end = max(last_end, exc.offset)
        page = max(page // PAGE_SIZE * PAGE_SIZE + PAGE_SIZE, -(-last_end // PAGE_SIZE) * PAGE_SIZE)


# ---------------------------------------------------------------------------
# writing


def fsync_dir(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _WriterState(NamedTuple):
    segment: int
    offset: int
    pending: int
    page_used: int
    done_pages: int
    pages_completed: int
    bytes_saved: int


class _RotateFirst(Exception):
    """A commit does not fit in the rest of the segment: start a new one before writing it."""


class WalWriter:
    """Appends records to a directory of segments, as Prometheus' ``wlog.WL.Log``.

    Opening always starts a new segment numbered after the last one present.
    ``log`` writes the records' fragments to the segment file with ``os.write``
    before it returns (the partial last page too), so they survive a process
    kill; they reach the disk itself on ``fsync`` (also done when a segment is
    closed, on rotation and on ``close``).

    A ``log`` call is all or nothing. Its records go into one segment (a new
    one is started first when they do not fit in the rest of the current one;
    only a batch larger than a whole segment spans segments), and when a write
    fails part-way (``ENOSPC``, ``EDQUOT``, ``EIO``) the file is truncated back
    to where the call started and the page state restored before the
    ``OSError`` is raised, so the segment never holds a torn record and the
    writer can go on once the cause is gone. ``write`` is the write function
    (``os.write`` unless a test injects failures).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        compress: bool = False,
        first_segment: int | None = None,
        write: Callable[[int, memoryview], int] = os.write,
    ) -> None:
        if segment_size < PAGE_SIZE or segment_size % PAGE_SIZE:
            raise ValueError("segment_size must be a positive multiple of 32768")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_size = segment_size
        self.compress = compress
        self._write = write
        self._pages_per_segment = segment_size // PAGE_SIZE
        self._fd = -1
        self._dirty_tail = False
        self._spanning = False
        self._rotated = False
        self.bytes_saved = 0
        self.pages_completed = 0
        if first_segment is None:
            existing = list_segments(self.directory)
            first_segment = existing[-1].index + 1 if existing else 0
        self.segment = first_segment - 1
        self._pending = bytearray()
        self._switch_to(self._create(first_segment), first_segment)

    # -- state ---------------------------------------------------------------
    def _create(self, index: int) -> int:
        path = self.directory / segment_name(index)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _switch_to(self, fd: int, index: int) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self.segment = index
        self._offset = os.fstat(fd).st_size  # bytes in the file
        self._page_used = self._offset % PAGE_SIZE
        self._done_pages = self._offset // PAGE_SIZE
        self._pending = bytearray()
        fsync_dir(self.directory)

    def _state(self) -> _WriterState:
        return _WriterState(
            self.segment,
            self._offset,
            len(self._pending),
            self._page_used,
            self._done_pages,
            self.pages_completed,
            self.bytes_saved,
        )

    def _restore(self, state: _WriterState) -> None:
        """Forget what was encoded or written since ``state``; cut the file back to it."""
        if state.segment != self.segment:
            # A batch larger than a segment moved on: what it left in the earlier
            # segment is complete; this segment holds only its rest.
            state = _WriterState(self.segment, 0, 0, 0, 0, self.pages_completed, self.bytes_saved)
        self._pending = self._pending[: state.pending]  # a copy: views of it may live on
        self._page_used = state.page_used
        self._done_pages = state.done_pages
        self.pages_completed = state.pages_completed
        self.bytes_saved = state.bytes_saved
        self._dirty_tail = True  # until the truncation succeeds, nothing is appended
        os.ftruncate(self._fd, state.offset)
        self._offset = state.offset
        self._dirty_tail = False

    def _undo(self, state: _WriterState) -> None:
        # On failure _dirty_tail stays set: the next log retries the truncation first.
        with contextlib.suppress(OSError):
            self._restore(state)

    @property
    def offset(self) -> int:
        """End offset of the last record logged into the current segment."""
        return self._offset + len(self._pending)

    def position(self) -> Position:
        return (self.segment, self.offset)

    # -- writing -------------------------------------------------------------
    def log(self, records: Sequence[bytes]) -> Position:
        """Append ``records`` and write them to the file; return the end position.

        On ``OSError`` nothing of ``records`` is left in the segment.
        """
        if self._dirty_tail:
            self._restore(self._state())  # a truncation that failed before: retry it
        state = self._state()
        # A batch that starts a segment and still does not fit has to span segments.
        self._spanning = self.offset == 0
        try:
            try:
                for rec in records:
                    self._log_one(rec)
            except _RotateFirst:
                self._restore(state)
                self.rotate()
                state = self._state()
                self._spanning = self._rotated = True
                for rec in records:
                    self._log_one(rec)
            self.flush()
        except OSError:
            self._undo(state)
            raise
        finally:
            self._spanning = self._rotated = False
        return (self.segment, self._offset)

    def _log_one(self, rec: bytes) -> None:
        flag = 0
        if self.compress and rec:
            packed = snappy.compress(rec)
            if len(packed) < len(rec):
                self.bytes_saved += len(rec) - len(packed)
                rec = packed
                flag = SNAPPY_FLAG
        remaining = PAGE_SIZE - self._page_used
        left = remaining - HEADER_SIZE
        left += MAX_FRAGMENT * (self._pages_per_segment - self._done_pages - 1)
        if len(rec) > left:
            if self._page_used or self._done_pages:
                if not self._spanning:
                    raise _RotateFirst
                self.rotate()
            elif not self._rotated:
                raise ValueError(f"record of {len(rec)} bytes does not fit in one segment")
            # else: a record larger than a segment right after a rotation overflows it
        pending = self._pending
        view = memoryview(rec)
        first = True
        while first or view:
            room = PAGE_SIZE - self._page_used - HEADER_SIZE
            part = view[:room]
            view = view[room:]
            if first:
                ftype = FRAG_FULL if not view else FRAG_FIRST
            else:
                ftype = FRAG_LAST if not view else FRAG_MIDDLE
            first = False
            pending += _HEADER.pack(ftype | flag, len(part), crc32c.crc32c(part))
            pending += part
            self._page_used += HEADER_SIZE + len(part)
            if PAGE_SIZE - self._page_used < HEADER_SIZE:
                self._pad_page()

    def _pad_page(self) -> None:
        if self._page_used:
            self._pending += _ZERO_PAGE[: PAGE_SIZE - self._page_used]
            self._page_used = 0
            self._done_pages += 1
            self.pages_completed += 1

    def write_zero_page(self) -> None:
        """Fill the current page with zeros even when it is empty (a repaired empty segment)."""
        if self._page_used == 0:
            self._pending += _ZERO_PAGE
            self._done_pages += 1
            self.pages_completed += 1
        else:
            self._pad_page()

    def flush(self) -> None:
        """Write buffered bytes to the segment file (``os.write``; no fsync).

        On a failed or short write ``_offset`` stays where the buffer starts
        (bytes of it may be in the file: the caller cuts them off).
        """
        data = self._pending
        if not data:
            return
        view = memoryview(data)
        write = self._write
        fd = self._fd
        while view:
            written = write(fd, view)
            if written <= 0:
                raise OSError(errno.ENOSPC, "short write", str(self.path))
            view = view[written:]
        self._offset += len(data)
        self._pending = bytearray()

    @property
    def path(self) -> Path:
        return self.directory / segment_name(self.segment)

    def fsync(self) -> None:
        self.flush()
        os.fsync(self._fd)

    def rotate(self) -> int:
        """Pad and close the current segment (fsynced), start the next; return its index.

        A failure leaves the writer on the current segment, usable: padding
        that could not be written is cut off again.
        """
        state = self._state()
        try:
            self._pad_page()
            self.flush()
        except OSError:
            self._undo(state)
            raise
        os.fsync(self._fd)
        fd = self._create(self.segment + 1)
        self._switch_to(fd, self.segment + 1)
        return self.segment

    def close(self) -> None:
        """Pad the last page, fsync and close. Idempotent."""
        if self._fd < 0:
            return
        state = self._state()
        try:
            self._pad_page()
            self.fsync()
        except OSError:
            self._undo(state)  # a short last page reads as padded: the segment stays valid
            raise
        finally:
            os.close(self._fd)
            self._fd = -1

    @property
    def closed(self) -> bool:
        return self._fd < 0
