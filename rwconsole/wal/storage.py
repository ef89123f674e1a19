"""The WAL lifecycle: series table, append API, replay and truncation.

``WalStorage`` plays the part of Alloy's WAL storage (Prometheus' agent DB):
sources append through the ``rwconsole.model.Appender`` protocol, endpoint
queues tail the segments (``rwconsole.wal.segment.TailReader``) and the engine
truncates what every endpoint has delivered. A source that appends the same
series again and again (a steady scrape) can check them once with
``prepare_samples`` and then ``append_prepared`` only values and a timestamp;
the records are the same as ``append_samples`` writes.

Durability:

* ``append_*`` only encode records into memory.
* When ``commit()`` returns, its records have been written to the active
  segment file with ``os.write`` (Series, Metadata, Samples, Histograms,
  Exemplars, in that order). They are in the kernel's page cache: a process
  crash or ``kill -9`` loses nothing; a power loss can lose what was not
  fsynced yet.
* ``fsync`` happens when a segment is closed (on rotation and ``close()``),
  when a checkpoint is written (files and directory, before the rename), and
  whenever the owner calls ``sync()`` (the engine does so on a timer).

Damage found on open never stops the storage from starting. Corruption is
repaired the way Prometheus does it (the damaged segment is cut at the first
bad fragment, later segments are deleted) and reported with what was dropped.
A gap in segment numbering, or a missing first segment after the checkpoint,
is bridged with empty segment files, so no readable data is given up and
Prometheus can read the directory again. How a directory is repaired lives in
``rwconsole.wal.repair``, how segments fold into a checkpoint in
``rwconsole.wal.checkpoint``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import operator
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path

from rwconsole.labels import METRIC_NAME, Labels, metric_name
from rwconsole.model import (
    Exemplar,
    HistogramSample,
    MetricMetadata,
    StalePreparedError,
    UnknownSeriesError,
    WalAppendError,
)
from rwconsole.wal import records as rec
from rwconsole.wal.checkpoint import remove_checkpoints_before, write_checkpoint
from rwconsole.wal.families import MetadataTable
from rwconsole.wal.repair import (
    RepairReport,
    cut_at,
    describe_corruption,
    fill_checkpoint_gaps,
    fill_gaps,
)
from rwconsole.wal.segment import (
    DEFAULT_SEGMENT_SIZE,
    CorruptionError,
    Position,
    SegmentListError,
    WalWriter,
    iter_checkpoint,
    iter_segment,
    last_checkpoint,
    list_segments,
    segment_name,
)

_NEVER = -(1 << 63)
_RESERVE_MIN = 1 << 20
_SERIES_BYTES_ESTIMATE = 128
_FREE_CHECK_INTERVAL = 0.1
_UNUSED_PAIR_REFS = 4

Listener = Callable[[Position], None]


class PreparedSamples:
    """Series refs checked once, for ``WalStorage.append_prepared`` to append again and again.

    Made by ``WalStorage.prepare_samples``. ``refs`` are unique and were live
    when checked; the WAL re-checks them (once per truncation that collected
    series, not per append) before it writes them again.
    """

    __slots__ = ("_encoder", "_generation", "_storage", "refs")

    def __init__(self, storage: WalStorage, refs: tuple[int, ...], generation: int) -> None:
        self.refs = refs
        self._storage = storage
        self._generation = generation
        self._encoder = rec.FixedRefsSamples(refs) if refs else None
        if self._encoder is not None:
            storage.sample_layouts.add(self._encoder)

    def __len__(self) -> int:
        return len(self.refs)


@dataclass(slots=True)
class TruncateReport:
    checkpoint: int | None = None
    folded_segments: list[int] = field(default_factory=list)
    samples_dropped: int = 0
    collected_refs: list[int] = field(default_factory=list)
    """Refs of the series collected now (no sample since mint): appending to them fails,
    so sources must forget them and ask ``series_refs`` again."""
    removed_refs: list[int] = field(default_factory=list)
    """Refs forgotten for good (their last segment was folded): caches may drop them."""
    error: str | None = None

    @property
    def series_collected(self) -> int:
        return len(self.collected_refs)


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    index: int
    size: int
    min_time_ms: int | None
    max_time_ms: int | None


# ---------------------------------------------------------------------------
# the storage


class WalStorage:
    """An open WAL directory: replayed state plus a writer on a fresh segment."""

    def __init__(
        self, directory: Path, *, segment_size: int, compress: bool, logger: logging.Logger
    ):
        self.directory = directory
        self.compress = compress
        self.segment_size = segment_size
        self.log = logger
        self._lock = threading.RLock()
        self._labels: dict[int, Labels] = {}
        self._refs: dict[Labels, int] = {}
        self._last_ts: dict[int, int] = {}
        self._alias: dict[int, int] = {}
        self._deleted: dict[int, int] = {}
        self._metadata = MetadataTable()
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}
        """Canonical (name, value) pairs: series that share a label share one tuple."""
        self._next_ref = 0
        self._seg_times: dict[int, list[int]] = {}
        self._listeners: list[Listener] = []
        self._pending_series: list[tuple[int, Labels]] = []
        self._pending_meta: list[MetricMetadata] = []
        self._pending_samples: list[bytes] = []
        self._pending_hist: list[bytes] = []
        self._pending_exemplars: list[bytes] = []
        self._pending_ts: list[tuple[Sequence[int], Sequence[int] | int, int]] = []
        """(refs, timestamps, generation at the append) of the samples and histograms to commit."""
        self._pending_counts: dict[str, int] = {}
        """Counter increments of the pending appends: they count once the commit is written."""
        self._generation = 0
        """Bumped whenever series are collected: refs checked before may be gone."""
        self._high_t = _NEVER
        """At least every value of ``_last_ts``: a batch at or after it is in order."""
        self.open_report = RepairReport(dry_run=False)
        self.replay_errors: list[str] = []
        self.counters: dict[str, float] = dict.fromkeys(_COUNTER_NAMES, 0.0)
        self._writer: WalWriter | None = None
        self._last_truncate_mint: int | None = None
        self.sample_layouts = rec.SampleLayouts()
        """Layouts of the live prepared batches: readers of this WAL decode their records faster."""
        self.max_size = 0
        """Disk budget in bytes (segments and checkpoint); 0 = unlimited."""
        self.reject_when_full = False
        """At ``max_size``, refuse commits (``size_limit``) instead of letting the owner drop."""
        self.append_error: WalAppendError | None = None
        """The failure of the last commit, None once a commit succeeds again."""
        self.append_failures: Counter[str] = Counter()
        self._closed_bytes = 0
        self._checkpoint_bytes = 0
        self._closed_for = -1
        self._free_checked_at = -_FREE_CHECK_INTERVAL
        self._room_ok = True

    # -- opening -------------------------------------------------------------
    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        compress: bool = True,
        logger: logging.Logger | None = None,
        max_size: int = 0,
        reject_when_full: bool = False,
    ) -> WalStorage:
        """Open (creating if needed) and replay a WAL directory, repairing damage.

        ``max_size`` is the disk budget (0 = none); with ``reject_when_full``
        a commit at the budget raises ``WalAppendError("size_limit")``.
        """
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self = cls(
            path,
            segment_size=segment_size,
            compress=compress,
            logger=logger or logging.getLogger("rwconsole.wal"),
        )
        started = time.monotonic()
        self._replay()
        self._high_t = max(self._last_ts.values(), default=_NEVER)
        self._writer = WalWriter(path, segment_size=segment_size, compress=compress)
        self.max_size = max_size
        self.reject_when_full = reject_when_full
        self.counters["prometheus_remote_write_data_replay_duration_seconds"] = (
            time.monotonic() - started
        )
        return self

    def _replay(self) -> None:
        report = self.open_report
        gaps = fill_gaps(self.directory)
        if gaps:
            report.gaps_filled = gaps
            report.changed = True
            self.counters["rwconsole_wal_segment_gaps_filled_total"] += len(gaps)
            self.log.warning(
                "WAL %s: missing segments %s replaced by empty ones",
                self.directory,
                ", ".join(segment_name(i) for i in gaps),
            )
        cp_gaps = fill_checkpoint_gaps(self.directory)
        if cp_gaps:
            report.checkpoint_gaps_filled = cp_gaps
            report.changed = True
            self.counters["rwconsole_wal_segment_gaps_filled_total"] += len(cp_gaps)
            self.log.warning(
                "WAL %s: missing checkpoint segments %s replaced by empty ones",
                self.directory,
                ", ".join(segment_name(i) for i in cp_gaps),
            )
        cp = last_checkpoint(self.directory)
        first = 0
        if cp is not None:
            first = cp[0] + 1
            try:
                for item in iter_checkpoint(cp[1], cp[0]):
                    self._apply(item.data, None)
            except (CorruptionError, SegmentListError) as exc:
                self.counters["prometheus_remote_write_wal_corruptions_total"] += 1
                message = f"checkpoint {cp[1].name} is damaged, kept what precedes it: {exc}"
                self.replay_errors.append(message)
                self.log.error("WAL %s: %s", self.directory, message)
        for seg in list_segments(self.directory):
            if seg.index < first:
                continue
            try:
                for item in iter_segment(seg.path, seg.index):
                    self._apply(item.data, seg.index)
            except CorruptionError as exc:
                self._repair_on_open(exc)
                break

    def _repair_on_open(self, exc: CorruptionError) -> None:
        info = describe_corruption(self.directory, exc)
        records, samples = info.records_lost, info.samples_lost
        self.log.error("WAL %s: corruption in %s; repairing", self.directory, info.describe())
        self.counters["prometheus_remote_write_wal_corruptions_total"] += 1
        self.counters["rwconsole_wal_repair_records_dropped_total"] += records
        self.counters["rwconsole_wal_repair_samples_dropped_total"] += samples
        kept, deleted = cut_at(self.directory, exc.segment, exc.offset, compress=self.compress)
        self.open_report.corruption = info
        self.open_report.segments_deleted = deleted
        self.open_report.records_kept = kept
        self.open_report.changed = True
        for index in deleted:
            self._seg_times.pop(index, None)

    def _apply(self, data: bytes, segment: int | None) -> None:
        try:
            decoded = rec.decode(data)
        except rec.RecordDecodeError as exc:
            self.counters["rwconsole_wal_undecodable_records_total"] += 1
            self.replay_errors.append(str(exc))
            self.log.warning("WAL %s: skipped a record: %s", self.directory, exc)
            return
        if isinstance(decoded, rec.SeriesRecord):
            for ref, labels in decoded.series:
                self._next_ref = max(self._next_ref, ref)
                existing = self._refs.get(labels)
                if existing is not None and existing != ref:
                    self._alias[ref] = existing
                    self._deleted[ref] = segment if segment is not None else -1
                    continue
                if existing is None:
                    self.counters["prometheus_remote_write_wal_storage_created_series_total"] += 1
                    labels = self._canonical(labels)
                else:
                    labels = self._labels[existing]
                self._refs[labels] = ref
                self._labels[ref] = labels
                self._last_ts.setdefault(ref, 0)
        elif isinstance(decoded, rec.SamplesRecord):
            self._note_times(decoded.refs, decoded.timestamps, segment)
        elif isinstance(decoded, rec.HistogramsRecord):
            hs = decoded.histograms
            self._note_times([h.ref for h in hs], [h.timestamp for h in hs], segment)
        elif isinstance(decoded, rec.MetadataRecord):
            for meta in decoded.entries:
                ref = self._alias.get(meta.ref, meta.ref)
                labels = self._labels.get(ref)
                if labels is not None:
                    self._metadata.set(ref, metric_name(labels), meta)
        elif isinstance(decoded, rec.UnsupportedRecord | rec.UnknownRecord):
            self.counters["rwconsole_wal_unknown_records_total"] += 1

    def _note_times(self, refs: list[int], ts: list[int], segment: int | None) -> None:
        if not refs:
            return
        last = self._last_ts
        alias = self._alias
        known = self._labels
        for ref, t in zip(refs, ts, strict=True):
            ref = alias.get(ref, ref)
            if t > last.get(ref, _NEVER) and ref in known:
                last[ref] = t
        if segment is not None:
            self._widen(segment, min(ts), max(ts))

    def _widen(self, segment: int, lo: int, hi: int) -> None:
        span = self._seg_times.get(segment)
        if span is None:
            self._seg_times[segment] = [lo, hi]
        else:
            span[0] = min(span[0], lo)
            span[1] = max(span[1], hi)

    # -- Appender protocol ---------------------------------------------------
    def series_refs(self, labels: Sequence[Labels]) -> list[int]:
        """Refs for label sets, creating series (and Series records) for new ones."""
        with self._lock:
            get = self._refs.get
            out = list(map(get, labels))
            if None in out:
                for i, ref in enumerate(out):
                    if ref is None:
                        out[i] = self._create(labels[i])
            return out  # type: ignore[return-value]

    def _create(self, labels: Labels) -> int:
        ref = self._refs.get(labels)
        if ref is not None:
            return ref
        if not labels:
            raise ValueError("empty label set")
        labels = self._canonical(labels)
        self._next_ref += 1
        ref = self._next_ref
        self._refs[labels] = ref
        self._labels[ref] = labels
        self._last_ts[ref] = _NEVER
        self._pending_series.append((ref, labels))
        self.counters["prometheus_remote_write_wal_storage_created_series_total"] += 1
        return ref

    def append_samples(
        self,
        refs: Sequence[int],
        timestamps: Sequence[int] | int,
        values: Sequence[float],
        start_timestamps: Sequence[int] | None = None,
    ) -> None:
        """Append samples; with any start timestamp (0 = none) the record is a
        SamplesV2 (type 11, as Prometheus 3.11+ writes), otherwise a 2.42 type 2."""
        if not refs:
            return
        if start_timestamps is not None and len(start_timestamps) != len(refs):
            raise ValueError(f"{len(start_timestamps)} start timestamps for {len(refs)} samples")
        with self._lock:
            if None in map(self._labels.get, refs):
                missing = [r for r in refs if r not in self._labels][:5]
                raise UnknownSeriesError(f"unknown series refs {missing}")
            if start_timestamps is not None and any(start_timestamps):
                ts = [timestamps] * len(refs) if isinstance(timestamps, int) else timestamps
                record = rec.encode_samples_v2(refs, ts, values, start_timestamps)
            else:
                record = rec.encode_samples(refs, timestamps, values)
            self._pending_samples.append(record)
            self._pending_ts.append((refs, timestamps, self._generation))
            self._pending_count(_SAMPLES_APPENDED, len(refs))

    def prepare_samples(self, refs: Sequence[int]) -> PreparedSamples:
        """Check ``refs`` once for repeated ``append_prepared`` calls.

        The refs must be unique (``ValueError`` names a repeated one) and live
        (``UnknownSeriesError`` otherwise). The batch precomputes its samples
        record layout, so an append only packs the timestamp and the values.
        """
        batch = tuple(refs)
        if len(set(batch)) != len(batch):
            repeated = next(r for r, n in Counter(batch).items() if n > 1)
            raise ValueError(f"a prepared batch names series ref {repeated} twice")
        with self._lock:
            if None in map(self._labels.get, batch):
                missing = [r for r in batch if r not in self._labels][:5]
                raise UnknownSeriesError(f"unknown series refs {missing}")
            return PreparedSamples(self, batch, self._generation)

    def append_prepared(
        self, batch: PreparedSamples, timestamp: int, values: Sequence[float]
    ) -> None:
        """Append one sample per ref of ``batch``, all at ``timestamp``, in the batch's order.

        Writes the same record as ``append_samples(batch.refs, timestamp,
        values)``. A batch whose series were collected since it was prepared
        raises ``StalePreparedError`` and writes nothing.
        """
        if batch._storage is not self:
            raise ValueError("the batch was prepared by another WAL")
        if not isinstance(timestamp, int):
            kind = type(timestamp).__name__
            raise TypeError(f"a prepared batch takes one int timestamp, not a {kind}")
        encoder = batch._encoder
        if encoder is None:
            if values:
                raise ValueError(f"{len(values)} values for an empty batch")
            return
        record = encoder.encode(timestamp, values)
        with self._lock:
            if batch._generation != self._generation:
                gone = [r for r in batch.refs if r not in self._labels]
                if gone:
                    raise StalePreparedError(gone)
                batch._generation = self._generation
            self._pending_samples.append(record)
            self._pending_ts.append((batch.refs, timestamp, self._generation))
            self._pending_count(_SAMPLES_APPENDED, encoder.count)

    def append_exemplars(self, exemplars: Sequence[Exemplar]) -> None:
        if not exemplars:
            return
        with self._lock:
            for ex in exemplars:
                if ex.ref not in self._labels:
                    raise UnknownSeriesError(f"unknown series ref {ex.ref} for an exemplar")
            self._pending_exemplars.append(rec.encode_exemplars(exemplars))
            self._pending_count(_EXEMPLARS_APPENDED, len(exemplars))

    def append_histograms(self, histograms: Sequence[HistogramSample]) -> None:
        if not histograms:
            return
        with self._lock:
            for h in histograms:
                if h.ref not in self._labels:
                    raise UnknownSeriesError(f"unknown series ref {h.ref} for a histogram")
            self._pending_hist.extend(rec.encode_histograms(histograms))
            self._pending_ts.append(
                ([h.ref for h in histograms], [h.timestamp for h in histograms], self._generation)
            )
            self._pending_count(_SAMPLES_APPENDED, len(histograms))

    def append_metadata(self, entries: Sequence[MetricMetadata]) -> None:
        with self._lock:
            for meta in entries:
                if meta.ref not in self._labels:
                    raise UnknownSeriesError(f"unknown series ref {meta.ref} for metadata")
                if not self._metadata.same(meta.ref, meta):
                    self._pending_meta.append(meta)
                    self._pending_count(_METADATA_UPDATES, 1)

    def commit(self) -> None:
        """Write the appended records to the segment file and notify listeners.

        All or nothing: when the records cannot be written (disk full, quota,
        I/O error, or the budget with ``reject_when_full``) nothing of them
        stays in the WAL, the commit's samples, histograms, exemplars and
        metadata are discarded and ``WalAppendError`` is raised. Series
        records of new series are kept for the next commit (their refs are
        handed out already).
        """
        with self._lock:
            writer = self._require_writer()
            records: list[bytes] = []
            if self._pending_series:
                if self.append_error is not None:
                    alive = self._labels
                    self._pending_series = [p for p in self._pending_series if p[0] in alive]
                records.append(rec.encode_series(self._pending_series))
            if self._pending_meta:
                records.append(rec.encode_metadata(self._pending_meta))
            records.extend(self._pending_samples)
            records.extend(self._pending_hist)
            records.extend(self._pending_exemplars)
            if not records:
                return
            seg_before = writer.segment
            try:
                if self.reject_when_full and self.max_size and self.size_bytes() >= self.max_size:
                    raise WalAppendError("size_limit", str(self.directory))
                if not self._room_left():
                    raise WalAppendError("disk_full", str(self.directory))
                position = writer.log(records)
            except OSError as exc:
                raise self._failed(_append_error(exc, writer), records) from exc
            except WalAppendError as exc:
                raise self._failed(exc, records) from None
            if self.append_error is not None:
                self.log.warning("WAL %s: appends work again", self.directory)
                self.append_error = None
            for meta in self._pending_meta:
                labels = self._labels.get(meta.ref)
                if labels is not None:
                    self._metadata.set(meta.ref, metric_name(labels), meta)
            self._apply_pending_times(seg_before, writer.segment)
            counters = self.counters
            for name, n in self._pending_counts.items():
                counters[name] += n
            self._pending_counts = {}
            self._pending_series = []
            self._pending_meta = []
            self._pending_samples = []
            self._pending_hist = []
            self._pending_exemplars = []
            listeners = list(self._listeners)
        for callback in listeners:
            callback(position)

    def _failed(self, error: WalAppendError, records: list[bytes]) -> WalAppendError:
        """Drop what the failed commit appended; log once per incident."""
        self._pending_meta = []
        self._pending_samples = []
        self._pending_hist = []
        self._pending_exemplars = []
        self._pending_ts = []
        self._pending_counts = {}
        self.append_failures[error.reason] += 1
        if self.append_error is None or self.append_error.reason != error.reason:
            self.log.error(
                "%s; appends are refused until it is resolved (%d records dropped)",
                error,
                len(records),
            )
        self.append_error = error
        return error

    def _pending_count(self, name: str, n: int) -> None:
        counts = self._pending_counts
        counts[name] = counts.get(name, 0) + n

    def _room_left(self) -> bool:
        """Whether the filesystem keeps ``reserve_bytes`` free (checked every 0.1 s at most).

        Appends stop short of a full disk so that a truncation still has room
        to write its checkpoint and free the delivered segments.
        """
        now = time.monotonic()
        if now - self._free_checked_at >= _FREE_CHECK_INTERVAL:
            free = self.free_bytes()
            self._room_ok = free is None or free >= self.reserve_bytes()
            self._free_checked_at = now
        return self._room_ok

    def reserve_bytes(self) -> int:
        """Free space appends leave on the filesystem: room for the next checkpoint."""
        estimate = max(self._checkpoint_bytes, _SERIES_BYTES_ESTIMATE * len(self._labels))
        return _RESERVE_MIN + 2 * min(estimate, self.segment_size * 4)

    def size_bytes(self) -> int:
        """Bytes the WAL takes on disk: segments and checkpoint (the budget counts both)."""
        with self._lock:
            writer = self._require_writer()
            if self._closed_for != writer.segment:
                segments, self._checkpoint_bytes = _disk_usage(self.directory, writer.segment)
                self._closed_bytes = segments + self._checkpoint_bytes
                self._closed_for = writer.segment
            return self._closed_bytes + writer.offset

    def free_bytes(self) -> int | None:
        """Bytes free for unprivileged writers on the WAL's filesystem (None if unknown)."""
        try:
            st = os.statvfs(self.directory)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    def _apply_pending_times(self, seg_before: int, seg_after: int) -> None:
        """Move each appended series' last timestamp forward; count out-of-order samples.

        The common batch (one timestamp for every ref, as a scrape appends)
        costs one C-level pass to store when its timestamp is at or after every
        series' last one (``_high_t``) and no series were collected since the
        append, one more to check order otherwise; other batches fall back to
        a per-sample loop only when something is out of order, repeated or
        collected meanwhile.
        """
        last = self._last_ts
        current = last.__getitem__
        generation = self._generation
        high = self._high_t
        out_of_order = 0
        lo = hi = None
        for refs, ts, appended_in in self._pending_ts:
            if isinstance(ts, int):
                t_lo = t_hi = ts
                if ts >= high and appended_in == generation:
                    in_order = True
                else:
                    try:
                        in_order = max(map(current, refs)) <= ts
                    except KeyError:  # collected by a truncation since it was appended
                        in_order = False
                if in_order:
                    last.update(zip(refs, repeat(ts)))
                else:
                    out_of_order += self._slow_times(refs, repeat(ts))
            else:
                t_lo, t_hi = min(ts), max(ts)
                try:
                    in_order = not any(map(operator.gt, map(current, refs), ts))
                except KeyError:
                    in_order = False
                if in_order and len(set(refs)) == len(refs):
                    last.update(zip(refs, ts, strict=True))
                else:
                    out_of_order += self._slow_times(refs, ts)
            lo = t_lo if lo is None else min(lo, t_lo)
            hi = t_hi if hi is None else max(hi, t_hi)
            high = max(high, t_hi)
        self._pending_ts = []
        self._high_t = high
        if lo is not None and hi is not None:
            for segment in range(seg_before, seg_after + 1):
                self._widen(segment, lo, hi)
        self.counters["prometheus_remote_write_wal_out_of_order_samples_total"] += out_of_order

    def _slow_times(self, refs: Iterable[int], ts: Iterable[int]) -> int:
        last = self._last_ts
        out_of_order = 0
        for ref, t in zip(refs, ts, strict=False):
            if ref not in last:
                continue  # collected by a truncation since it was appended
            if t < last[ref]:
                out_of_order += 1
            else:
                last[ref] = t
        return out_of_order

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(position)`` after every commit that wrote records."""
        with self._lock:
            self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        with self._lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    # -- queries -------------------------------------------------------------
    def lookup(self, ref: int) -> Labels | None:
        """Labels of a series ref (aliases left by duplicate Series records resolve too)."""
        labels = self._labels.get(ref)
        if labels is None and ref in self._alias:
            labels = self._labels.get(self._alias[ref])
        return labels

    def series_count(self) -> int:
        return len(self._labels)

    def metadata(self, ref: int) -> MetricMetadata | None:
        """The latest metadata appended for a series ref, if any.

        The value is shared by the series of its family that carry the same
        metadata, so its ``ref`` is 0.
        """
        return self._metadata.get(self._alias.get(ref, ref))

    def metadata_changes(self, since: int) -> tuple[int, list[int] | None]:
        """(current version, refs whose metadata changed after version ``since``).

        The refs are None when too many changed since to list them (look all up
        again). Version 0 is before any metadata, so ``metadata_changes(0)``
        gives the version to start from.
        """
        with self._lock:
            table = self._metadata
            return table.version, table.changed_since(since)

    def metadata_families(self) -> list[tuple[str, MetricMetadata]]:
        """(metric family, metadata) of every family a live series has metadata for, sorted.

        When series of one family disagree, the value appended last wins. The
        cost follows the number of families, not of series.
        """
        with self._lock:
            return [(family, meta) for family, _, meta in self._metadata.families()]

    def metadata_entries(self) -> list[tuple[Labels, MetricMetadata]]:
        """One (labels, metadata) per metric family with metadata, sorted by family.

        The labels are just the ``__name__`` of a series of the family (such as
        ``x_bucket`` for histogram ``x``), which is what deduplicating by family
        needs; ``metadata_families`` gives the family names directly.
        """
        with self._lock:
            families = self._metadata.families()
        return [(((METRIC_NAME, name),), meta) for _, name, meta in families]

    def position(self) -> Position:
        with self._lock:
            return self._require_writer().position()

    def segments_info(self) -> list[SegmentInfo]:
        out = []
        for seg in list_segments(self.directory):
            span = self._seg_times.get(seg.index)
            out.append(
                SegmentInfo(
                    seg.index, seg.size, span[0] if span else None, span[1] if span else None
                )
            )
        return out

    def samples_per_segment(self, start: Position, before_segment: int) -> dict[int, int]:
        """Samples (and histograms) per segment from ``start`` up to ``before_segment``.

        What a reader at ``start`` has yet to take from each segment before
        ``before_segment`` (exclusive). A segment that cannot be read counts
        what was read before the damage.
        """
        counts: dict[int, int] = {}
        for seg in list_segments(self.directory):
            if not start[0] <= seg.index < before_segment:
                continue
            offset = start[1] if seg.index == start[0] else 0
            total = 0
            with contextlib.suppress(CorruptionError, OSError):
                for record in iter_segment(seg.path, seg.index, start_offset=offset):
                    total += rec.count_samples(record.data)
            counts[seg.index] = total
        return counts

    def samples_per_record(self, start: Position, end: Position) -> list[tuple[Position, int]]:
        """(end position, samples) of each record after ``start`` and up to ``end``.

        Records without samples (series, metadata) are left out. A segment that
        cannot be read contributes what was read before the damage.
        """
        out: list[tuple[Position, int]] = []
        for seg in list_segments(self.directory):
            if not start[0] <= seg.index <= end[0]:
                continue
            offset = start[1] if seg.index == start[0] else 0
            with contextlib.suppress(CorruptionError, OSError):
                for record in iter_segment(seg.path, seg.index, start_offset=offset):
                    if (seg.index, record.end) > end:
                        break
                    n = rec.count_samples(record.data)
                    if n:
                        out.append(((seg.index, record.end), n))
        return out

    def metrics(self) -> dict[str, float]:
        """Self-metrics with Alloy's names (plus a few ``rwconsole_wal_*`` extras)."""
        with self._lock:
            out = dict(self.counters)
            out["prometheus_remote_write_wal_storage_active_series"] = len(self._labels)
            out["prometheus_remote_write_wal_storage_deleted_series"] = len(self._deleted)
            writer = self._writer
            if writer is not None:
                out["prometheus_tsdb_wal_segment_current"] = writer.segment
                out["prometheus_tsdb_wal_completed_pages_total"] = writer.pages_completed
                out["prometheus_tsdb_wal_record_bytes_saved_total"] = writer.bytes_saved
            out["prometheus_tsdb_wal_storage_size_bytes"] = sum(
                s.size for s in list_segments(self.directory)
            )
            if writer is not None and not writer.closed:
                out["rwconsole_wal_size_bytes"] = self.size_bytes()
            out["rwconsole_wal_size_limit_bytes"] = self.max_size
        free = self.free_bytes()
        if free is not None:
            out["rwconsole_filesystem_free_bytes"] = free
        return out

    # -- durability ----------------------------------------------------------
    def sync(self) -> None:
        """fsync the active segment."""
        with self._lock:
            if self._writer is not None and not self._writer.closed:
                started = time.monotonic()
                self._writer.fsync()
                self.counters["prometheus_tsdb_wal_fsync_duration_seconds"] = (
                    time.monotonic() - started
                )

    def close(self) -> None:
        """Pad the last page, fsync and close the active segment.

        On a full disk the padding may not fit: the segment is closed with a
        short last page, which reads as padded, and the failure is logged.
        """
        with self._lock:
            if self._writer is not None:
                try:
                    self._writer.close()
                except OSError as exc:
                    self.log.error("WAL %s: closing the active segment: %s", self.directory, exc)

    def _require_writer(self) -> WalWriter:
        if self._writer is None or self._writer.closed:
            raise RuntimeError("the WAL is closed")
        return self._writer

    # -- truncation ----------------------------------------------------------
    def truncate(
        self,
        *,
        before_segment: int,
        mint_ms: int,
        all_before: bool = False,
        samples_mint_ms: int | None = None,
    ) -> TruncateReport:
        """Collect old series, fold old segments into a checkpoint, delete them.

        Series with no sample at or after ``mint_ms`` are forgotten. Segments
        from the first up to ``min(before_segment - 1, first + (last - first) * 2 // 3)``
        (``last`` = the newest finished segment) are folded into
        ``checkpoint.N`` together with the previous checkpoint, keeping live
        series, their latest metadata and samples with ``t >= mint_ms``. At
        least two segments must qualify, as in Prometheus. With ``all_before``
        every finished segment before ``before_segment`` is folded (to free
        space: a full disk, the size budget); ``samples_mint_ms`` then keeps
        fewer samples in the checkpoint than ``mint_ms`` keeps series.
        """
        started = time.monotonic()
        report = TruncateReport()
        with self._lock:
            writer = self._require_writer()
            report.collected_refs = self._collect(mint_ms, writer.segment)
            if report.collected_refs:
                self._prune_pairs()
            if writer.offset > 0:
                try:
                    writer.rotate()
                except OSError as exc:  # a full disk: fold what is finished already
                    self.log.debug("WAL %s: cannot start a new segment: %s", self.directory, exc)
            segments = list_segments(self.directory)
            cp = last_checkpoint(self.directory)
            lowest = cp[0] + 1 if cp else 0
            candidates = [s.index for s in segments if lowest <= s.index < writer.segment]
            if not candidates:
                return report
            first, last = candidates[0], candidates[-1]
            if all_before:
                upto = min(before_segment - 1, last)
                if upto < first:
                    return report
            else:
                upto = min(before_segment - 1, first + (last - first) * 2 // 3)
                if upto <= first:
                    return report
            alive = dict(self._labels)
            deleted = dict(self._deleted)
        # Building the checkpoint reads finished segments only: no lock needed.
        try:
            self.counters["prometheus_remote_write_wal_checkpoint_creations_total"] += 1
            dropped = write_checkpoint(
                self.directory,
                cp,
                first,
                upto,
                mint_ms=max(mint_ms, samples_mint_ms or mint_ms),
                keep=lambda ref: ref in alive or deleted.get(ref, -1) > upto,
                segment_size=self.segment_size,
                compress=self.compress,
            )
        except (CorruptionError, SegmentListError, OSError) as exc:
            self.counters["prometheus_remote_write_wal_checkpoint_creations_failed_total"] += 1
            if isinstance(exc, CorruptionError):
                self.counters["prometheus_remote_write_wal_corruptions_total"] += 1
            report.error = f"checkpoint failed: {exc}"
            self.log.error("WAL %s: %s", self.directory, report.error)
            return report
        report.checkpoint = upto
        report.samples_dropped = dropped
        with self._lock:
            for seg in list_segments(self.directory):
                if seg.index <= upto:
                    seg.path.unlink()
                    report.folded_segments.append(seg.index)
                    self._seg_times.pop(seg.index, None)
            for ref, seg_index in list(self._deleted.items()):
                if seg_index <= upto:
                    del self._deleted[ref]
                    self._alias.pop(ref, None)
                    report.removed_refs.append(ref)
                    self.counters["prometheus_remote_write_wal_storage_removed_series_total"] += 1
        removed, failed = remove_checkpoints_before(self.directory, upto)
        self._closed_for = -1
        self.counters["prometheus_remote_write_wal_checkpoint_deletions_total"] += removed
        self.counters["prometheus_remote_write_wal_checkpoint_deletions_failed_total"] += failed
        self.counters["prometheus_remote_write_wal_truncate_duration_seconds"] = (
            time.monotonic() - started
        )
        return report

    def _collect(self, mint_ms: int, current_segment: int) -> list[int]:
        stale = [ref for ref, t in self._last_ts.items() if t < mint_ms]
        if stale:
            self._generation += 1
        for ref in stale:
            labels = self._labels.pop(ref, None)
            self._last_ts.pop(ref, None)
            if labels is not None:
                self._metadata.remove(ref, metric_name(labels))
                if self._refs.get(labels) == ref:
                    del self._refs[labels]
            self._deleted[ref] = current_segment
        return stale

    def _canonical(self, labels: Labels) -> Labels:
        """``labels`` rebuilt from the shared pairs (new pairs join the table).

        Label names are interned; a pair seen before is the same tuple object,
        so a million series that differ in one label share every other pair
        and their strings instead of holding copies.
        """
        pairs = self._pairs
        out = []
        for pair in labels:
            shared = pairs.get(pair)
            if shared is None:
                shared = (sys.intern(pair[0]), pair[1])
                pairs[shared] = shared
            out.append(shared)
        return tuple(out)

    def _prune_pairs(self) -> None:
        """Drop pairs no series holds any more (after series were collected)."""
        pairs = self._pairs
        getrefcount = sys.getrefcount
        # References of an unused pair: the table's key and value, the loop
        # variable and getrefcount's argument. A pair still held elsewhere (a
        # cache outside the WAL) stays; it is only dropped later.
        unused = [pair for pair in pairs if getrefcount(pair) <= _UNUSED_PAIR_REFS]
        for pair in unused:
            del pairs[pair]

    # -- context manager -----------------------------------------------------
    def __enter__(self) -> WalStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _append_error(exc: OSError, writer: WalWriter) -> WalAppendError:
    reason = {
        errno.ENOSPC: "disk_full",
        errno.EDQUOT: "quota",
        errno.EIO: "io_error",
    }.get(exc.errno or 0, "write_error")
    return WalAppendError(reason, str(writer.path))


def _disk_usage(directory: Path, active_segment: int) -> tuple[int, int]:
    """Bytes of the segments (but the active one) and of the checkpoints in ``directory``."""
    segments = sum(s.size for s in list_segments(directory) if s.index != active_segment)
    checkpoints = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith("checkpoint.") and entry.is_dir():
                with contextlib.suppress(OSError):
                    checkpoints += sum(s.size for s in list_segments(entry.path))
    return segments, checkpoints


_SAMPLES_APPENDED = "prometheus_remote_write_wal_samples_appended_total"
_EXEMPLARS_APPENDED = "prometheus_remote_write_wal_exemplars_appended_total"
_METADATA_UPDATES = "prometheus_remote_write_wal_metadata_updates_total"
_COUNTER_NAMES = (
    "prometheus_remote_write_wal_storage_created_series_total",
    "prometheus_remote_write_wal_storage_removed_series_total",
    "prometheus_remote_write_wal_samples_appended_total",
    "prometheus_remote_write_wal_exemplars_appended_total",
    "prometheus_remote_write_wal_metadata_updates_total",
    "prometheus_remote_write_wal_out_of_order_samples_total",
    "prometheus_remote_write_data_replay_duration_seconds",
    "prometheus_remote_write_wal_truncate_duration_seconds",
    "prometheus_remote_write_wal_corruptions_total",
    "prometheus_remote_write_wal_checkpoint_creations_total",
    "prometheus_remote_write_wal_checkpoint_creations_failed_total",
    "prometheus_remote_write_wal_checkpoint_deletions_total",
    "prometheus_remote_write_wal_checkpoint_deletions_failed_total",
    "prometheus_tsdb_wal_fsync_duration_seconds",
    "rwconsole_wal_segment_gaps_filled_total",
    "rwconsole_wal_repair_records_dropped_total",
    "rwconsole_wal_repair_samples_dropped_total",
    "rwconsole_wal_undecodable_records_total",
    "rwconsole_wal_unknown_records_total",
)
