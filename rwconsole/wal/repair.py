"""Repairing a WAL directory: filling numbering gaps and cutting at a corruption.

Shared by ``WalStorage.open`` (damage found on open) and ``rwconsole wal
repair`` (``rwconsole.wal.tools.repair``). A cut mirrors Prometheus' repair:
the damaged segment keeps the records before the first bad fragment, later
segments go.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from rwconsole.wal import records as rec
from rwconsole.wal.segment import (
    CorruptionError,
    WalWriter,
    checkpoint_name,
    find_gaps,
    fsync_dir,
    iter_segment,
    last_checkpoint,
    list_segments,
    salvage_records,
    segment_name,
)


@dataclass(slots=True)
class CorruptionInfo:
    """A corruption and what cutting the WAL there costs."""

    segment: int
    offset: int
    reason: str
    checkpoint: int | None = None
    records_lost: int = 0
    samples_lost: int = 0
    segments_lost: list[int] = field(default_factory=list)

    def location(self) -> str:
        """``segment 00000003``, or ``checkpoint.00000002/00000000`` inside a checkpoint."""
        if self.checkpoint is not None:
            return f"{checkpoint_name(self.checkpoint)}/{segment_name(self.segment)}"
        return f"segment {segment_name(self.segment)}"

    def describe(self) -> str:
        where = self.location()
        later = (
            f", and later segments {', '.join(segment_name(s) for s in self.segments_lost)}"
            if self.segments_lost
            else ""
        )
        return (
            f"{where} at offset {self.offset}: {self.reason}; cutting here drops at least "
            f"{self.records_lost} records ({self.samples_lost} samples){later}"
        )


@dataclass(slots=True)
class RepairReport:
    """What a repair changed (or, with ``dry_run``, would change)."""

    dry_run: bool
    gaps_filled: list[int] = field(default_factory=list)
    checkpoint_gaps_filled: list[int] = field(default_factory=list)
    """Segments created inside the newest checkpoint (numbered within it)."""
    corruption: CorruptionInfo | None = None
    segments_deleted: list[int] = field(default_factory=list)
    records_kept: int = 0
    backup_dir: str | None = None
    changed: bool = False


def fill_gaps(directory: str | os.PathLike[str], *, dry_run: bool = False) -> list[int]:
    """Create empty segment files for missing indexes; return the indexes.

    Covers gaps between segments and the first segment after the newest
    checkpoint. An empty segment reads as no records, so nothing is lost and
    the numbering becomes contiguous again.
    """
    directory = Path(directory)
    cp = last_checkpoint(directory)
    first = cp[0] + 1 if cp else None
    segments = [s for s in list_segments(directory) if first is None or s.index >= first]
    missing = find_gaps(segments)
    if first is not None and segments and segments[0].index > first:
        missing = list(range(first, segments[0].index)) + missing
    if not dry_run and missing:
        for index in missing:
            (directory / segment_name(index)).touch()
        fsync_dir(directory)
    return missing


def fill_checkpoint_gaps(directory: str | os.PathLike[str], *, dry_run: bool = False) -> list[int]:
    """Create empty segments for numbering gaps inside the newest checkpoint.

    A checkpoint with a gap cannot be replayed as a whole; with the gap filled
    every segment it still has is read.
    """
    cp = last_checkpoint(directory)
    if cp is None:
        return []
    missing = find_gaps(list_segments(cp[1]))
    if not dry_run and missing:
        for index in missing:
            (cp[1] / segment_name(index)).touch()
        fsync_dir(cp[1])
    return missing


def loss_after(
    directory: str | os.PathLike[str], segment: int, offset: int, path: Path | None = None
) -> tuple[int, int, list[int]]:
    """(records, samples, later segment indexes) a cut at ``segment``/``offset`` drops.

    Counts what is still decodable after the corruption (best effort) plus
    every later segment of ``directory``.
    """
    directory = Path(directory)
    records = samples = 0
    seg_path = path or directory / segment_name(segment)
    for item in salvage_records(seg_path, segment, offset):
        records += 1
        samples += _samples_in(item.data)
    later = [s for s in list_segments(directory) if s.index > segment]
    for seg in later:
        for item in salvage_records(seg.path, seg.index, 0):
            records += 1
            samples += _samples_in(item.data)
    return records, samples, [s.index for s in later]


def describe_corruption(
    directory: str | os.PathLike[str],
    exc: CorruptionError,
    *,
    checkpoint: int | None = None,
    path: Path | None = None,
) -> CorruptionInfo:
    """``exc`` with what a cut there drops (``path``: the segment file, if not in ``directory``)."""
    records, samples, later = loss_after(directory, exc.segment, exc.offset, path)
    return CorruptionInfo(exc.segment, exc.offset, exc.reason, checkpoint, records, samples, later)


def _samples_in(data: bytes) -> int:
    try:
        return rec.count_samples(data)
    except rec.RecordDecodeError:
        return 0


def cut_at(
    directory: str | os.PathLike[str],
    segment: int,
    offset: int,
    *,
    compress: bool | None = None,
    backup_dir: Path | None = None,
) -> tuple[int, list[int]]:
    """Rewrite ``segment`` with the records that end before ``offset``; delete later ones.

    Mirrors Prometheus' ``WL.Repair``: later segments are deleted, the damaged
    file is renamed ``N.repair``, its good prefix is re-logged into a fresh
    segment N whose last page is padded, then ``N.repair`` is removed (moved
    into ``backup_dir`` with the deleted segments, when one is given).
    ``compress`` None keeps snappy on if any kept record was compressed.
    Returns (records kept, segments deleted).
    """
    directory = Path(directory)
    if backup_dir is not None:
        backup_dir.mkdir(parents=True, exist_ok=True)
    deleted = []
    for seg in list_segments(directory):
        if seg.index > segment:
            if backup_dir is not None:
                shutil.move(str(seg.path), str(backup_dir / seg.path.name))
            else:
                seg.path.unlink()
            deleted.append(seg.index)
    path = directory / segment_name(segment)
    repair_path = path.with_name(path.name + ".repair")
    os.replace(path, repair_path)
    kept: list[bytes] = []
    any_compressed = False
    try:
        for item in iter_segment(repair_path, segment):
            if item.end >= offset:
                break
            kept.append(item.data)
            any_compressed = any_compressed or item.compressed
    except CorruptionError:
        pass
    if compress is None:
        compress = any_compressed
    writer = WalWriter(directory, compress=compress, first_segment=segment)
    for data in kept:
        writer.log([data])
    if writer.offset == 0:
        writer.write_zero_page()  # as Prometheus: a repaired empty segment is one zero page
    writer.close()
    if backup_dir is not None:
        shutil.move(str(repair_path), str(backup_dir / (path.name + ".damaged")))
    else:
        repair_path.unlink()
    fsync_dir(directory)
    return len(kept), deleted
