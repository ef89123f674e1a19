"""WAL inspection, dump, verification and offline repair.

Library functions shared by ``rwconsole wal ...`` and the console. They read
any Prometheus-format WAL directory (ours, Prometheus' server or agent, Alloy's)
one segment at a time, so memory stays bounded by a segment's look-ahead and
the series table, never by the number of samples. They never write, except
``repair``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rwconsole.labels import Labels, metric_name
from rwconsole.model import Histogram
from rwconsole.selector import Selector
from rwconsole.wal import records as rec
from rwconsole.wal.repair import (
    CorruptionInfo,
    RepairReport,
    cut_at,
    describe_corruption,
    fill_checkpoint_gaps,
    fill_gaps,
)
from rwconsole.wal.segment import (
    CorruptionError,
    SegmentListError,
    WalFile,
    WalRecord,
    checkpoint_name,
    file_name,
    find_gaps,
    iter_segment,
    last_checkpoint,
    list_segments,
    segment_name,
    wal_files,
)


class NotAWalError(Exception):
    """The directory holds no WAL segments or checkpoints."""


def resolve_wal_dir(path: str | Path) -> Path:
    """The WAL directory for ``path``: itself, or its ``wal/`` subdirectory.

    Raises ``FileNotFoundError``, ``NotADirectoryError``, ``PermissionError``
    or ``NotAWalError`` with a message naming the path.
    """
    base = Path(path)
    if not base.exists():
        raise FileNotFoundError(f"{base}: no such directory")
    if not base.is_dir():
        raise NotADirectoryError(f"{base}: not a directory")
    for candidate in (base, base / "wal"):
        if candidate.is_dir():
            try:
                has_segments = bool(list_segments(candidate))
                has_checkpoint = last_checkpoint(candidate) is not None
            except PermissionError as exc:
                raise PermissionError(f"{candidate}: permission denied") from exc
            if has_segments or has_checkpoint:
                return candidate
    raise NotAWalError(f"{base}: not a WAL directory (no segment files, no wal/ subdirectory)")


# ---------------------------------------------------------------------------
# sources: checkpoint first, then segments


def _sources(wal_dir: Path) -> tuple[list[WalFile], list[int], int | None]:
    """Segments in replay order, the gaps among them, and a missing first index."""
    files = wal_files(wal_dir)
    segments = [f for f in files if f.checkpoint is None]
    cp = last_checkpoint(wal_dir)
    missing_first = None
    if cp is not None and segments and segments[0].index != cp[0] + 1:
        missing_first = cp[0] + 1
    return files, find_gaps(segments), missing_first


def _corruption(src: WalFile, exc: CorruptionError) -> CorruptionInfo:
    return describe_corruption(src.path.parent, exc, checkpoint=src.checkpoint, path=src.path)


# ---------------------------------------------------------------------------
# inspect


@dataclass(slots=True)
class SegmentSummary:
    name: str
    index: int
    checkpoint: int | None
    size: int
    records: int = 0
    first_record_offset: int | None = None
    last_record_offset: int | None = None
    min_time_ms: int | None = None
    max_time_ms: int | None = None


@dataclass(slots=True)
class InspectReport:
    directory: str
    segments: list[SegmentSummary] = field(default_factory=list)
    checkpoint: str | None = None
    records: dict[str, int] = field(default_factory=dict)
    series: int = 0
    samples: int = 0
    exemplars: int = 0
    histograms: int = 0
    min_time_ms: int | None = None
    max_time_ms: int | None = None
    top_metrics: list[tuple[str, int]] = field(default_factory=list)
    top_label_names: list[tuple[str, int]] = field(default_factory=list)
    corruption: CorruptionInfo | None = None
    gaps: list[int] = field(default_factory=list)
    undecodable: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        c = self.corruption
        return {
            "directory": self.directory,
            "segments": [
                {
                    "name": s.name,
                    "size": s.size,
                    "records": s.records,
                    "first_record_offset": s.first_record_offset,
                    "last_record_offset": s.last_record_offset,
                    "min_time_ms": s.min_time_ms,
                    "max_time_ms": s.max_time_ms,
                }
                for s in self.segments
            ],
            "checkpoint": self.checkpoint,
            "records": dict(self.records),
            "series": self.series,
            "samples": self.samples,
            "exemplars": self.exemplars,
            "histograms": self.histograms,
            "min_time_ms": self.min_time_ms,
            "max_time_ms": self.max_time_ms,
            "top_metrics": [{"name": n, "series": k} for n, k in self.top_metrics],
            "top_label_names": [{"name": n, "series": k} for n, k in self.top_label_names],
            "gaps": [segment_name(i) for i in self.gaps],
            "undecodable_records": list(self.undecodable),
            "corruption": None if c is None else _corruption_json(c),
        }


def _corruption_json(c: CorruptionInfo) -> dict[str, object]:
    return {
        "segment": segment_name(c.segment),
        "checkpoint": checkpoint_name(c.checkpoint) if c.checkpoint is not None else None,
        "offset": c.offset,
        "reason": c.reason,
        "records_lost": c.records_lost,
        "samples_lost": c.samples_lost,
        "later_segments_lost": [segment_name(s) for s in c.segments_lost],
        "message": c.describe(),
    }


def inspect(directory: str | Path, *, top: int = 10) -> InspectReport:
    """Summarise a WAL: segments, record counts, series, samples, time range, damage."""
    wal_dir = Path(directory)
    sources, gaps, missing_first = _sources(wal_dir)
    report = InspectReport(str(wal_dir), gaps=gaps)
    if missing_first is not None:
        report.gaps = [missing_first, *gaps]
    cp = last_checkpoint(wal_dir)
    report.checkpoint = cp[1].name if cp else None
    series: dict[int, Labels] = {}
    counts: Counter[str] = Counter()
    lo: int | None = None
    hi: int | None = None
    for src in sources:
        summary = SegmentSummary(src.name, src.index, src.checkpoint, src.size)
        report.segments.append(summary)
        try:
            for item in iter_segment(src.path, src.index, checkpoint=src.checkpoint):
                summary.records += 1
                if summary.first_record_offset is None:
                    summary.first_record_offset = item.start
                summary.last_record_offset = item.start
                times = _account(item, series, counts, report)
                if times is not None:
                    t_lo, t_hi = times
                    summary.min_time_ms = _min(summary.min_time_ms, t_lo)
                    summary.max_time_ms = _max(summary.max_time_ms, t_hi)
                    lo = _min(lo, t_lo)
                    hi = _max(hi, t_hi)
        except CorruptionError as exc:
            if report.corruption is None:
                report.corruption = _corruption(src, exc)
    report.records = dict(counts)
    report.min_time_ms, report.max_time_ms = lo, hi
    report.series = len(set(series.values()))
    by_metric: Counter[str] = Counter()
    by_label: Counter[str] = Counter()
    for labels in set(series.values()):
        by_metric[metric_name(labels)] += 1
        for name, _ in labels:
            by_label[name] += 1
    report.top_metrics = by_metric.most_common(top)
    report.top_label_names = by_label.most_common(top)
    return report


def _min(a: int | None, b: int) -> int:
    return b if a is None or b < a else a


def _max(a: int | None, b: int) -> int:
    return b if a is None or b > a else a


def _account(
    item: WalRecord, series: dict[int, Labels], counts: Counter[str], report: InspectReport
) -> tuple[int, int] | None:
    code = rec.record_type(item.data)
    counts[rec.type_label(code)] += 1
    try:
        if code == rec.RecordType.SAMPLES:
            n, lo, hi = rec.sample_stats(item.data)
            report.samples += n
            return None if lo is None or hi is None else (lo, hi)
        decoded = rec.decode(item.data)
    except rec.RecordDecodeError as exc:
        report.undecodable.append(f"{_where(item)}: {exc}")
        return None
    if isinstance(decoded, rec.SeriesRecord):
        series.update(decoded.series)
    elif isinstance(decoded, rec.SamplesRecord):  # SamplesV2 (type 2 is counted above)
        report.samples += len(decoded)
        if decoded.timestamps:
            return min(decoded.timestamps), max(decoded.timestamps)
    elif isinstance(decoded, rec.ExemplarsRecord):
        report.exemplars += len(decoded.exemplars)
    elif isinstance(decoded, rec.HistogramsRecord):
        report.histograms += len(decoded.histograms)
        if decoded.histograms:
            ts = [h.timestamp for h in decoded.histograms]
            return min(ts), max(ts)
    return None


def _where(item: WalRecord) -> str:
    return f"segment {file_name(item.segment, item.checkpoint)} offset {item.start}"


# ---------------------------------------------------------------------------
# dump


@dataclass(frozen=True, slots=True)
class DumpItem:
    """One sample, exemplar or histogram with its series labels.

    ``kind`` is ``sample``, ``exemplar`` or ``histogram``; ``exemplar_labels``
    only for exemplars, ``histogram`` only for histograms; ``start_timestamp``
    (0 = none) from the record types 11–13 that carry one.
    """

    kind: str
    labels: Labels
    timestamp: int
    value: float = 0.0
    exemplar_labels: Labels = ()
    histogram: Histogram | None = None
    start_timestamp: int = 0


def iter_dump(
    directory: str | Path,
    matchers: Selector | None = None,
    start: int | None = None,
    end: int | None = None,
    *,
    problems: list[str] | None = None,
) -> Iterator[DumpItem]:
    """Yield every sample, exemplar and histogram (filtered), in WAL order.

    Damage ends the reading of that segment; a description is appended to
    ``problems`` when a list is given. Series whose labels are unknown (their
    Series record is gone) are skipped and counted there too.
    """
    wal_dir = Path(directory)
    sources, _, _ = _sources(wal_dir)
    series: dict[int, Labels] = {}
    selected: dict[int, bool] = {}
    lo = start if start is not None else -(1 << 63)
    hi = end if end is not None else (1 << 63) - 1
    unknown = 0

    def wanted(ref: int) -> Labels | None:
        nonlocal unknown
        labels = series.get(ref)
        if labels is None:
            unknown += 1
            return None
        ok = selected.get(ref)
        if ok is None:
            ok = selected[ref] = matchers is None or matchers.matches(labels)
        return labels if ok else None

    for src in sources:
        try:
            for item in iter_segment(src.path, src.index, checkpoint=src.checkpoint):
                try:
                    decoded = rec.decode(item.data)
                except rec.RecordDecodeError as exc:
                    if problems is not None:
                        problems.append(f"{_where(item)}: {exc}")
                    continue
                if isinstance(decoded, rec.SeriesRecord):
                    for ref, labels in decoded.series:
                        series[ref] = labels
                        selected.pop(ref, None)
                elif isinstance(decoded, rec.SamplesRecord):
                    starts = decoded.start_timestamps or [0] * len(decoded.refs)
                    for ref, t, v, st in zip(
                        decoded.refs, decoded.timestamps, decoded.values, starts, strict=True
                    ):
                        if lo <= t <= hi:
                            labels = wanted(ref)
                            if labels is not None:
                                yield DumpItem("sample", labels, t, v, start_timestamp=st)
                elif isinstance(decoded, rec.ExemplarsRecord):
                    for ex in decoded.exemplars:
                        if lo <= ex.timestamp <= hi:
                            labels = wanted(ex.ref)
                            if labels is not None:
                                yield DumpItem(
                                    "exemplar", labels, ex.timestamp, ex.value, ex.labels
                                )
                elif isinstance(decoded, rec.HistogramsRecord):
                    for h in decoded.histograms:
                        if lo <= h.timestamp <= hi:
                            labels = wanted(h.ref)
                            if labels is not None:
                                yield DumpItem(
                                    "histogram",
                                    labels,
                                    h.timestamp,
                                    histogram=h.histogram,
                                    start_timestamp=h.start_timestamp,
                                )
        except CorruptionError as exc:
            if problems is not None:
                problems.append(f"segment {src.name}: {exc.reason} at offset {exc.offset}")
    if unknown and problems is not None:
        problems.append(f"{unknown} entries refer to series with no Series record")


# ---------------------------------------------------------------------------
# verify


@dataclass(slots=True)
class Problem:
    kind: str  # corruption | gap | missing-first-segment | undecodable-record
    segment: str
    offset: int | None
    message: str
    records_lost: int = 0
    samples_lost: int = 0


@dataclass(slots=True)
class VerifyReport:
    directory: str
    segments: int = 0
    records: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def mb_per_second(self) -> float:
        return self.bytes_read / 1e6 / self.seconds if self.seconds > 0 else 0.0


def verify(directory: str | Path) -> VerifyReport:
    """Check every fragment (header, CRC, sequence, padding, snappy) and every record.

    Samples records are checked structurally (header and entry layout) rather
    than decoded into Python objects, which keeps verification at disk speed;
    every other record type is fully decoded.
    """
    started = time.perf_counter()
    wal_dir = Path(directory)
    report = VerifyReport(str(wal_dir))
    sources, gaps, missing_first = _sources(wal_dir)
    if missing_first is not None:
        report.problems.append(
            Problem(
                "missing-first-segment",
                segment_name(missing_first),
                None,
                f"segment {segment_name(missing_first)} (the first after the checkpoint) is "
                "missing; Prometheus will not start. repair creates an empty one, nothing is lost",
            )
        )
    for index in gaps:
        report.problems.append(
            Problem(
                "gap",
                segment_name(index),
                None,
                f"segment {segment_name(index)} is missing (numbering gap); Prometheus will not "
                "start. repair creates an empty one, nothing else is lost",
            )
        )
    cp = last_checkpoint(wal_dir)
    for index in find_gaps(list_segments(cp[1])) if cp is not None else []:
        report.problems.append(
            Problem(
                "gap",
                file_name(index, cp[0]),
                None,
                f"segment {segment_name(index)} of {checkpoint_name(cp[0])} is missing: the "
                "checkpoint cannot be replayed as a whole. repair creates an empty one, "
                "nothing else is lost",
            )
        )
    unknown: Counter[str] = Counter()
    for src in sources:
        report.segments += 1
        report.bytes_read += src.size
        try:
            for item in iter_segment(src.path, src.index, checkpoint=src.checkpoint):
                report.records += 1
                problem = _check_record(item.data)
                if problem is None:
                    continue
                if problem.startswith("unknown:"):
                    unknown[problem[8:]] += 1
                else:
                    report.problems.append(
                        Problem(
                            "undecodable-record",
                            src.name,
                            item.start,
                            f"record at offset {item.start}: {problem} (only this record is "
                            "unreadable; the WAL framing is intact)",
                            records_lost=1,
                            samples_lost=0,
                        )
                    )
        except CorruptionError as exc:
            info = _corruption(src, exc)
            report.problems.append(
                Problem(
                    "corruption",
                    src.name,
                    exc.offset,
                    info.describe(),
                    info.records_lost,
                    info.samples_lost,
                )
            )
    for what, n in unknown.items():
        report.notes.append(f"{n} {what} record(s): not decoded, kept as they are")
    report.seconds = time.perf_counter() - started
    return report


def _check_record(data: bytes) -> str | None:
    """None when fine, ``"unknown:<what>"`` for unknown types, else the decode error."""
    code = rec.record_type(data)
    if code == rec.RecordType.SAMPLES:
        return rec.check_samples(data)
    try:
        decoded = rec.decode(data)
    except rec.RecordDecodeError as exc:
        return str(exc)
    if isinstance(decoded, rec.UnsupportedRecord):
        return f"unknown:newer-format {rec.type_label(code)}"
    if isinstance(decoded, rec.UnknownRecord):
        return f"unknown:{rec.type_label(code)}"
    return None


# ---------------------------------------------------------------------------
# repair


def repair(directory: str | Path, *, dry_run: bool = False, backup: bool = True) -> RepairReport:
    """Make a damaged WAL readable again, keeping everything before the first damage.

    Gaps in numbering (and a missing first segment after the checkpoint) get
    empty segment files. At the first corruption the segment is cut, as
    Prometheus' repair does, and later segments are removed. With ``backup``,
    removed files (and the damaged segment as it was) are moved to a sibling
    directory ``<wal>.repair-backup-<time>`` instead of being deleted. Run it
    only when nothing is writing to the WAL.
    """
    wal_dir = Path(directory)
    report = RepairReport(dry_run=dry_run)
    report.gaps_filled = fill_gaps(wal_dir, dry_run=dry_run)
    report.checkpoint_gaps_filled = fill_checkpoint_gaps(wal_dir, dry_run=dry_run)
    sources, _, _ = _sources(wal_dir)
    for src in sources:
        readable = 0
        try:
            for _ in iter_segment(src.path, src.index, checkpoint=src.checkpoint):
                readable += 1
        except CorruptionError as exc:
            report.corruption = _corruption(src, exc)
            if dry_run:
                report.segments_deleted = report.corruption.segments_lost
                report.records_kept = readable
                break
            backup_dir = None
            if backup:
                stamp = time.strftime("%Y%m%dT%H%M%S")
                backup_dir = wal_dir.parent / f"{wal_dir.name}.repair-backup-{stamp}"
                report.backup_dir = str(backup_dir)
            kept, deleted = cut_at(src.path.parent, src.index, exc.offset, backup_dir=backup_dir)
            report.records_kept = kept
            report.segments_deleted = deleted
            break
        except SegmentListError:
            continue
    report.changed = not dry_run and bool(
        report.gaps_filled or report.checkpoint_gaps_filled or report.corruption
    )
    return report
