"""Checkpoints: folding finished segments into ``checkpoint.N``, and removing old ones.

A checkpoint keeps the series still wanted, their latest metadata, and the
samples, histograms, exemplars and tombstones at or after ``mint_ms``, as
Prometheus' ``wlog.Checkpoint`` does. It is written into ``checkpoint.N.tmp``
(files and directory fsynced) and renamed into place, so a crash leaves either
the old checkpoint or the new one. It reads finished segments only.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from rwconsole.model import MetricMetadata
from rwconsole.wal import records as rec
from rwconsole.wal.segment import (
    WalWriter,
    checkpoint_name,
    fsync_dir,
    iter_checkpoint,
    iter_segment,
    list_checkpoints,
    list_segments,
)

_BATCH_BYTES = 1024 * 1024


def write_checkpoint(
    directory: Path,
    previous: tuple[int, Path] | None,
    first: int,
    upto: int,
    *,
    mint_ms: int,
    keep: Callable[[int], bool],
    segment_size: int,
    compress: bool,
) -> int:
    """Fold ``previous`` and segments ``first..upto`` into ``checkpoint.upto``.

    ``keep(ref)`` says which series stay. Returns the number of samples and
    histograms dropped for being older than ``mint_ms``. Raises
    ``CorruptionError``, ``SegmentListError`` or ``OSError``, leaving no
    ``.tmp`` directory behind.
    """
    final = directory / checkpoint_name(upto)
    tmp = final.with_name(final.name + ".tmp")
    for stale in directory.glob("checkpoint.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir()
    writer = WalWriter(tmp, segment_size=segment_size, compress=compress)
    batch: list[bytes] = []
    size = 0
    metadata: dict[int, MetricMetadata] = {}
    dropped = 0

    def emit(data: bytes) -> None:
        nonlocal size, batch
        batch.append(data)
        size += len(data)
        if size >= _BATCH_BYTES:
            writer.log(batch)
            batch, size = [], 0

    sources = []
    if previous is not None:
        sources.append(iter_checkpoint(previous[1], previous[0]))
    for seg in list_segments(directory):
        if first <= seg.index <= upto:
            sources.append(iter_segment(seg.path, seg.index))
    try:
        for source in sources:
            for item in source:
                dropped += _filter_record(item.data, mint_ms, keep, emit, metadata)
        if metadata:
            emit(rec.encode_metadata(list(metadata.values())))
        if batch:
            writer.log(batch)
        writer.close()
        fsync_dir(tmp)
        os.replace(tmp, final)
        fsync_dir(directory)
    except BaseException:
        writer.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dropped


def remove_checkpoints_before(directory: Path, index: int) -> tuple[int, int]:
    """Delete checkpoints older than ``index``; return (deleted, failed)."""
    deleted = failed = 0
    for found, path in list_checkpoints(directory):
        if found < index:
            try:
                shutil.rmtree(path)
                deleted += 1
            except OSError:
                failed += 1
    return deleted, failed


def _filter_record(
    data: bytes,
    mint_ms: int,
    keep: Callable[[int], bool],
    emit: Callable[[bytes], None],
    metadata: dict[int, MetricMetadata],
) -> int:
    try:
        decoded = rec.decode(data)
    except rec.RecordDecodeError:
        return 0
    if isinstance(decoded, rec.SeriesRecord):
        kept = [(ref, labels) for ref, labels in decoded.series if keep(ref)]
        if kept:
            emit(rec.encode_series(kept))
    elif isinstance(decoded, rec.SamplesRecord):
        idx = [i for i, t in enumerate(decoded.timestamps) if t >= mint_ms]
        starts = decoded.start_timestamps
        if idx:
            refs = [decoded.refs[i] for i in idx]
            ts = [decoded.timestamps[i] for i in idx]
            values = [decoded.values[i] for i in idx]
            kept_starts = [starts[i] for i in idx] if starts else None
            if kept_starts and any(kept_starts):
                emit(rec.encode_samples_v2(refs, ts, values, kept_starts))
            else:
                emit(rec.encode_samples(refs, ts, values))
        return len(decoded.refs) - len(idx)
    elif isinstance(decoded, rec.HistogramsRecord):
        hs = [h for h in decoded.histograms if h.timestamp >= mint_ms]
        for data_out in rec.encode_histograms(hs) if hs else []:
            emit(data_out)
        return len(decoded.histograms) - len(hs)
    elif isinstance(decoded, rec.ExemplarsRecord):
        exs = [e for e in decoded.exemplars if e.timestamp >= mint_ms]
        if exs:
            emit(rec.encode_exemplars(exs))
    elif isinstance(decoded, rec.TombstonesRecord):
        ivs = [iv for iv in decoded.intervals if iv[2] >= mint_ms]
        if ivs:
            emit(rec.encode_tombstones(ivs))
    elif isinstance(decoded, rec.MetadataRecord):
        for meta in decoded.entries:
            if keep(meta.ref):
                metadata[meta.ref] = meta
    return 0
