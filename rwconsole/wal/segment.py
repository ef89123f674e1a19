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
* ``WalWriter`` appends records; ``iter_segment`` and ``iter_wal`` read them
  back with the 2.42 reader's validation rules, raising ``CorruptionError``
  with the segment and the offset Prometheus would report; ``TailReader``
  follows a segment while it is being written.

Positions are ``(segment_index, end_offset)`` pairs: the end of a record.
"""

from __future__ import annotations

import itertools
import os
import re
import struct
from collections.abc import Iterator, Sequence
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


def find_gaps(segments: Sequence[SegmentFile]) -> list[int]:
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


# ---------------------------------------------------------------------------
# reading


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
    with open(path, "rb") as fh:
        if start_offset:
            fh.seek(start_offset)
        yield from _iter_stream(fh, index, start_offset, checkpoint, str(path))


def _iter_stream(
    fh: object, index: int, base: int, checkpoint: int | None, where: str
) -> Iterator[WalRecord]:
    read = fh.read  # type: ignore[attr-defined]
    buf = b""
    buf_off = base  # segment offset of buf[0]
    pos = 0  # index into buf
    parts: list[bytes] = []
    rec_start = -1
    rec_compressed = False
    frag_count = 0
    eof = False
    crc = crc32c.crc32c
    unpack_header = _HEADER.unpack_from

    def corrupt(at: int, reason: str) -> CorruptionError:
        return CorruptionError(index, at, reason, where)

    while True:
        # Ensure at least one page of look-ahead (or everything up to EOF).
        if len(buf) - pos < PAGE_SIZE and not eof:
            chunk = read(_READ_CHUNK)
            if len(chunk) < _READ_CHUNK:
                eof = True
            buf = buf[pos:] + chunk
            buf_off += pos
            pos = 0
            if eof:
                short = (buf_off + len(buf)) % PAGE_SIZE
                if short:
                    buf += _ZERO_PAGE[: PAGE_SIZE - short]
        avail = len(buf) - pos
        if avail == 0:
            if frag_count:
                raise corrupt(buf_off + pos, "last record is torn")
            return
        at = buf_off + pos
        type_byte = buf[pos]
        ftype = type_byte & _TYPE_MASK
        if ftype == FRAG_PAD:
            page_end = (at // PAGE_SIZE + 1) * PAGE_SIZE
            end = pos + (page_end - at)
            if buf.count(0, pos, end) != end - pos:
                raise corrupt(buf_off + end, "unexpected non-zero byte in padded page")
            pos = end
            continue
        if avail < HEADER_SIZE:
            # Only possible at the very end: 2.42 treats a header with none of
            # its remaining bytes as the end of data, a partial one as an error.
            if avail == 1:
                pos += 1
                frag_count += ftype in (FRAG_FIRST, FRAG_MIDDLE)
                continue
            raise corrupt(at + 1, "read remaining header: unexpected EOF")
        _, length, want = unpack_header(buf, pos)
        if length > MAX_FRAGMENT:
            raise corrupt(at + HEADER_SIZE, f"invalid record size {length}")
        payload_end = pos + HEADER_SIZE + length
        if payload_end > len(buf):
            if pos + HEADER_SIZE == len(buf):
                pos = len(buf)
                frag_count += ftype in (FRAG_FIRST, FRAG_MIDDLE)
                continue
            raise corrupt(at + HEADER_SIZE, "unexpected EOF")
        payload = buf[pos + HEADER_SIZE : payload_end]
        pos = payload_end
        got = crc(payload)
        if got != want:
            raise corrupt(buf_off + pos, f"unexpected checksum {got:x}, expected {want:x}")
        if ftype == FRAG_FULL:
            if frag_count:
                raise corrupt(buf_off + pos, "unexpected full record")
            rec_start = at
            rec_compressed = bool(type_byte & SNAPPY_FLAG)
            data = payload
        elif ftype == FRAG_FIRST:
            if frag_count:
                raise corrupt(buf_off + pos, "unexpected first record, dropping buffer")
            rec_start = at
            rec_compressed = bool(type_byte & SNAPPY_FLAG)
            parts = [payload]
            frag_count = 1
            continue
        elif ftype == FRAG_MIDDLE:
            if not frag_count:
                raise corrupt(buf_off + pos, "unexpected middle record, dropping buffer")
            parts.append(payload)
            frag_count += 1
            continue
        elif ftype == FRAG_LAST:
            if not frag_count:
                raise corrupt(buf_off + pos, "unexpected last record, dropping buffer")
            parts.append(payload)
            data = b"".join(parts)
            parts = []
            frag_count = 0
        else:
            raise corrupt(buf_off + pos, f"unexpected record type {ftype}")
        if rec_compressed and data:
            try:
                data = snappy.uncompress(data)
            except Exception as exc:
                raise corrupt(buf_off + pos, f"snappy decode: {exc}") from None
        yield WalRecord(data, index, rec_start, buf_off + pos, rec_compressed, checkpoint)


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
    ``CorruptionError``. ``rwconsole.wal.storage`` and ``tools`` layer the
    forgiving behaviour on top.
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
# writing


def fsync_dir(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WalWriter:
    """Appends records to a directory of segments, as Prometheus' ``wlog.WL.Log``.

    Opening always starts a new segment numbered after the last one present.
    ``log`` writes the records' fragments to the segment file with ``os.write``
    before it returns (the partial last page too), so they survive a process
    kill; they reach the disk itself on ``fsync`` (also done when a segment is
    closed, on rotation and on ``close``).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        compress: bool = False,
        first_segment: int | None = None,
    ) -> None:
        if segment_size < PAGE_SIZE or segment_size % PAGE_SIZE:
            raise ValueError("segment_size must be a positive multiple of 32768")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_size = segment_size
        self.compress = compress
        self._pages_per_segment = segment_size // PAGE_SIZE
        self._fd = -1
        self.bytes_saved = 0
        self.pages_completed = 0
        if first_segment is None:
            existing = list_segments(self.directory)
            first_segment = existing[-1].index + 1 if existing else 0
        self.segment = first_segment - 1
        self._open_segment(first_segment)

    # -- state ---------------------------------------------------------------
    def _open_segment(self, index: int) -> None:
        path = self.directory / segment_name(index)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.segment = index
        self._offset = os.fstat(self._fd).st_size  # bytes in the file
        self._page_used = self._offset % PAGE_SIZE
        self._done_pages = self._offset // PAGE_SIZE
        self._pending = bytearray()
        fsync_dir(self.directory)

    @property
    def offset(self) -> int:
        """End offset of the last record logged into the current segment."""
        return self._offset + len(self._pending)

    def position(self) -> Position:
        return (self.segment, self.offset)

    # -- writing -------------------------------------------------------------
    def log(self, records: Sequence[bytes]) -> Position:
        """Append ``records`` and write them to the file; return the end position."""
        for rec in records:
            self._log_one(rec)
        self.flush()
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
            if self._page_used == 0 and self._done_pages == 0:
                raise ValueError(f"record of {len(rec)} bytes does not fit in one segment")
            self.rotate()
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
        """Write buffered bytes to the segment file (``os.write``; no fsync)."""
        data = self._pending
        if not data:
            return
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._offset += len(data)
        self._pending = bytearray()

    def fsync(self) -> None:
        self.flush()
        os.fsync(self._fd)

    def rotate(self) -> int:
        """Pad and close the current segment (fsynced), start the next; return its index."""
        self._pad_page()
        self.fsync()
        os.close(self._fd)
        self._open_segment(self.segment + 1)
        return self.segment

    def close(self) -> None:
        """Pad the last page, fsync and close. Idempotent."""
        if self._fd < 0:
            return
        self._pad_page()
        self.fsync()
        os.close(self._fd)
        self._fd = -1

    @property
    def closed(self) -> bool:
        return self._fd < 0


# ---------------------------------------------------------------------------
# live tailing


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
    """

    def __init__(self, directory: str | os.PathLike[str], position: Position | None = None) -> None:
        self.directory = Path(directory)
        self.skipped: list[int] = []
        if position is None:
            segs = list_segments(self.directory)
            position = (segs[0].index, 0) if segs else (0, 0)
        self._segment, self._offset = position
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
        for _ in range(100_000):  # bounded: one pass per segment or chunk
            segs = list_segments(self.directory)
            if not segs:
                return out
            indexes = [s.index for s in segs]
            if self._segment not in indexes:
                later = [i for i in indexes if i > self._segment]
                if not later:
                    return out
                self.skipped.extend(range(self._segment, later[0]))
                self._segment, self._offset = later[0], 0
            has_next = self._segment < indexes[-1]
            path = self.directory / segment_name(self._segment)
            before = len(out)
            at_eof = self._read_chunk(path, out, max_records, finished=has_next)
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
        self, path: Path, out: list[WalRecord], max_records: int, *, finished: bool
    ) -> bool:
        """Parse records from one chunk; return True when the chunk reached EOF."""
        try:
            with open(path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read(self._chunk)
        except FileNotFoundError:
            return True
        at_eof = len(data) < self._chunk
        finished = finished and at_eof
        base = self._offset
        pos = 0
        end = len(data)
        parts: list[bytes] = []
        rec_start = -1
        flag = False
        seg = self._segment
        incomplete = False
        while pos < end and len(out) < max_records:
            at = base + pos
            in_page = at % PAGE_SIZE
            if PAGE_SIZE - in_page < HEADER_SIZE or data[pos] & _TYPE_MASK == FRAG_PAD:
                stop = min(end, pos + PAGE_SIZE - in_page)
                if data.count(0, pos, stop) != stop - pos:
                    raise CorruptionError(
                        seg, base + stop, "unexpected non-zero byte in padded page"
                    )
                pos = stop
                if not parts:
                    self._offset = base + pos
                continue
            if end - pos < HEADER_SIZE:
                incomplete = True
                break
            type_byte, length, want = _HEADER.unpack_from(data, pos)
            ftype = type_byte & _TYPE_MASK
            if length > MAX_FRAGMENT:
                raise CorruptionError(seg, at + HEADER_SIZE, f"invalid record size {length}")
            if pos + HEADER_SIZE + length > end:
                incomplete = True
                break
            payload = data[pos + HEADER_SIZE : pos + HEADER_SIZE + length]
            pos += HEADER_SIZE + length
            got = crc32c.crc32c(payload)
            if got != want:
                raise CorruptionError(
                    seg, base + pos, f"unexpected checksum {got:x}, expected {want:x}"
                )
            if ftype in (FRAG_FULL, FRAG_FIRST):
                if parts:
                    raise CorruptionError(seg, base + pos, "unexpected full or first record")
                rec_start = at
                flag = bool(type_byte & SNAPPY_FLAG)
                parts = [payload]
            elif ftype in (FRAG_MIDDLE, FRAG_LAST):
                if not parts:
                    raise CorruptionError(seg, base + pos, "unexpected middle or last record")
                parts.append(payload)
            else:
                raise CorruptionError(seg, base + pos, f"unexpected record type {ftype}")
            if ftype in (FRAG_FULL, FRAG_LAST):
                rec = parts[0] if len(parts) == 1 else b"".join(parts)
                parts = []
                if flag and rec:
                    try:
                        rec = snappy.uncompress(rec)
                    except Exception as exc:
                        raise CorruptionError(seg, base + pos, f"snappy decode: {exc}") from None
                out.append(WalRecord(rec, seg, rec_start, base + pos, flag))
                self._offset = base + pos
        if len(out) >= max_records:
            return False
        if finished:
            if parts or incomplete:
                raise CorruptionError(seg, base + end, "last record is torn")
            return True
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
