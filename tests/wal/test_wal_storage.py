"""WAL lifecycle: replay, repair on open, gaps, checkpoints and truncation, durability."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from wal_helpers import copy_wal, series, write_batches

from rwconsole.labels import Labels
from rwconsole.model import Exemplar, MetricMetadata, MetricType
from rwconsole.wal import records as rec
from rwconsole.wal import tools
from rwconsole.wal.segment import PAGE_SIZE, iter_segment, iter_wal, list_segments, segment_name
from rwconsole.wal.storage import UnknownSeriesError, WalStorage

T0 = 1_700_000_000_000
N = 300  # series in the generated WALs
SEG = 2 * PAGE_SIZE  # small segments so that a few batches rotate


def _samples(wal_dir: Path) -> dict[Labels, list[tuple[int, float]]]:
    out: dict[Labels, list[tuple[int, float]]] = {}
    for item in tools.iter_dump(wal_dir):
        if item.kind == "sample":
            out.setdefault(item.labels, []).append((item.timestamp, item.value))
    return out


def _prefix_of(
    got: dict[Labels, list[tuple[int, float]]], full: dict[Labels, list[tuple[int, float]]]
) -> int:
    """Assert each series' samples are a prefix of the full data; return the total."""
    for labels, samples in got.items():
        assert samples == full[labels][: len(samples)]
    return sum(len(v) for v in got.values())


def test_replay_keeps_refs_and_state(tmp_path: Path) -> None:
    wal = WalStorage.open(tmp_path)
    labels = series(5)
    refs = wal.series_refs(labels)
    assert refs == [1, 2, 3, 4, 5]
    assert wal.series_refs(labels[2:3]) == [3]
    wal.append_samples(refs, T0, [1.0] * 5)
    wal.append_metadata([MetricMetadata(1, MetricType.GAUGE, "", "help")])
    wal.append_exemplars([Exemplar(2, T0, 0.5, (("trace_id", "x"),))])
    positions: list[tuple[int, int]] = []
    wal.add_listener(positions.append)
    wal.commit()
    assert positions == [wal.position()]
    wal.close()

    again = WalStorage.open(tmp_path)
    assert again.series_refs(labels) == refs
    assert again.lookup(3) == labels[3 - 1]
    assert again.series_refs([(("__name__", "new"),)]) == [6]
    assert again.position()[0] == 1  # a new segment on open
    again.commit()
    again.close()
    types = [item.data[0] for item in iter_wal(tmp_path)]
    # Commit order: Series, Metadata, Samples, Exemplars; then the new series.
    assert types == [1, 6, 2, 4, 1]


def test_unknown_refs_are_rejected(tmp_path: Path) -> None:
    with WalStorage.open(tmp_path) as wal, pytest.raises(UnknownSeriesError):
        wal.append_samples([42], T0, [1.0])


def test_duplicate_series_records_map_to_one_ref(tmp_path: Path) -> None:
    from rwconsole.wal.segment import WalWriter

    labels = (("__name__", "dup"),)
    w = WalWriter(tmp_path)
    w.log([rec.encode_series([(1, labels)]), rec.encode_samples([1], T0, [1.0])])
    w.log([rec.encode_series([(2, labels)]), rec.encode_samples([2], T0 + 1000, [2.0])])
    w.close()
    wal = WalStorage.open(tmp_path)
    assert wal.series_refs([labels]) == [1]
    assert wal.lookup(2) == labels
    assert wal.series_count() == 1
    assert wal.series_refs([(("__name__", "next"),)]) == [3]
    wal.close()


def test_commit_survives_kill_9(tmp_path: Path) -> None:
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from rwconsole.wal.storage import WalStorage
wal = WalStorage.open({str(tmp_path)!r})
refs = wal.series_refs([(("__name__", "k"), ("i", str(i))) for i in range(100)])
for b in range(50):
    wal.append_samples(refs, {T0} + b, [float(b)] * 100)
    wal.commit()
print("committed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert b"committed" in proc.stdout
    got = _samples(tmp_path)
    assert len(got) == 100
    assert all(len(v) == 50 for v in got.values())


def _wal_with_segments(tmp_path: Path) -> tuple[Path, dict[Labels, list[tuple[int, float]]]]:
    wal_dir = tmp_path / "wal"
    full = write_batches(wal_dir, batches=80, n_series=N, t0=T0, segment_size=SEG, compress=False)
    assert len(list_segments(wal_dir)) >= 5
    return wal_dir, full


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    ["flipped-byte", "torn-last-page", "zero-filled-tail", "garbage-middle-segment"],
)
def test_corruption_is_detected_located_and_repaired(tmp_path: Path, damage: str) -> None:
    wal_dir, full = _wal_with_segments(tmp_path)
    segs = list_segments(wal_dir)
    target = segs[2]
    if damage == "flipped-byte":
        _flip(target.path, 5000)
    elif damage == "torn-last-page":
        # A crash while writing: the file ends in the middle of the last record.
        target = segs[-1]
        *_, last = iter_segment(target.path, target.index)
        data = target.path.read_bytes()
        target.path.write_bytes(data[: (last.start + last.end) // 2])
    elif damage == "zero-filled-tail":
        data = bytearray(target.path.read_bytes())
        data[3000:] = bytes(len(data) - 3000)  # zeros start inside a fragment
        target.path.write_bytes(bytes(data))
    else:
        target.path.write_bytes(os.urandom(target.size))

    report = tools.verify(wal_dir)
    assert not report.ok
    (problem,) = report.problems
    assert problem.kind == "corruption"
    assert problem.segment == segment_name(target.index)
    assert problem.offset is not None and problem.offset <= target.size
    later = [s for s in segs if s.index > target.index]
    if later:
        assert problem.samples_lost >= N * len(later)

    before = _samples(wal_dir)  # what precedes the damage (dump stops there per segment)
    wal = WalStorage.open(wal_dir)
    info = wal.open_report.corruption
    assert info is not None and info.segment == target.index
    assert info.offset == problem.offset
    assert wal.open_report.segments_deleted == [s.index for s in later]
    wal.close()
    assert tools.verify(wal_dir).ok
    survivors = _samples(wal_dir)
    kept = _prefix_of(survivors, full)
    # Survivors are exactly what precedes the damage: every record before it.
    expected_kept = sum(len(v) for v in _prefix_samples(before, target.index, wal_dir).values())
    assert kept == expected_kept
    assert kept < sum(len(v) for v in full.values())


def _prefix_samples(
    before: dict[Labels, list[tuple[int, float]]], segment: int, wal_dir: Path
) -> dict[Labels, list[tuple[int, float]]]:
    # Samples are one batch per timestamp; the survivors are all batches fully readable
    # before the damaged point, i.e. all timestamps present in segments <= segment.
    times = set()
    for item in iter_wal(wal_dir):
        if item.segment <= segment and item.data[0] == 2:
            times.update(rec.decode_samples(item.data).timestamps)
    return {k: [s for s in v if s[0] in times] for k, v in before.items()}


def test_gap_in_numbering_is_bridged_without_loss(tmp_path: Path) -> None:
    wal_dir, full = _wal_with_segments(tmp_path)
    segs = list_segments(wal_dir)
    removed = segs[2]
    lost = _count_samples(removed.path)
    removed.path.unlink()
    report = tools.verify(wal_dir)
    assert [p.kind for p in report.problems] == ["gap"]
    with pytest.raises(Exception, match="not sequential"):
        list(iter_wal(wal_dir))
    wal = WalStorage.open(wal_dir)
    assert wal.open_report.gaps_filled == [removed.index]
    assert wal.metrics()["rwconsole_wal_segment_gaps_filled_total"] == 1
    wal.close()
    got = _samples(wal_dir)
    assert sum(len(v) for v in got.values()) == sum(len(v) for v in full.values()) - lost
    assert tools.verify(wal_dir).ok


def _count_samples(path: Path) -> int:
    return sum(rec.count_samples(r.data) for r in iter_segment(path, 0))


def test_missing_first_segment_after_checkpoint(tmp_path: Path) -> None:
    wal_dir, _ = _wal_with_segments(tmp_path)
    wal = WalStorage.open(wal_dir, segment_size=SEG, compress=False)
    report = wal.truncate(before_segment=100, mint_ms=0)
    assert report.checkpoint is not None
    wal.close()
    first_after = report.checkpoint + 1
    (wal_dir / segment_name(first_after)).unlink()
    problems = tools.verify(wal_dir).problems
    assert [p.kind for p in problems] == ["missing-first-segment"]
    reopened = WalStorage.open(wal_dir)
    assert reopened.open_report.gaps_filled == [first_after]
    assert reopened.series_count() == N
    reopened.close()
    assert tools.verify(wal_dir).ok


def test_gap_inside_the_checkpoint_is_found_and_bridged(tmp_path: Path) -> None:
    wal_dir, _ = _wal_with_segments(tmp_path)
    wal = WalStorage.open(wal_dir, segment_size=SEG, compress=False)
    # mint 0 keeps every sample, so the checkpoint spans several segments.
    report = wal.truncate(before_segment=100, mint_ms=0)
    wal.close()
    cp_dir = wal_dir / f"checkpoint.{report.checkpoint:08d}"
    cp_segments = list_segments(cp_dir)
    assert len(cp_segments) >= 3
    missing = cp_segments[1].index
    cp_segments[1].path.unlink()
    problems = tools.verify(wal_dir).problems
    assert [(p.kind, p.segment) for p in problems] == [
        ("gap", f"{cp_dir.name}/{segment_name(missing)}")
    ]
    preview = tools.repair(wal_dir, dry_run=True)
    assert preview.checkpoint_gaps_filled == [missing] and not preview.changed
    reopened = WalStorage.open(wal_dir)
    assert reopened.open_report.checkpoint_gaps_filled == [missing]
    # The series record is in the checkpoint's first segment: the series survive.
    assert reopened.series_count() == N
    reopened.close()
    assert tools.verify(wal_dir).ok


def test_truncate_checkpoints_and_keeps_live_data(tmp_path: Path) -> None:
    wal_dir = tmp_path / "wal"
    wal = WalStorage.open(wal_dir, segment_size=PAGE_SIZE, compress=False)
    live = series(300, "live")
    dead = series(100, "dead")
    live_refs = wal.series_refs(live)
    dead_refs = wal.series_refs(dead)
    wal.append_metadata([MetricMetadata(live_refs[0], MetricType.COUNTER, "", "old")])
    wal.append_metadata([MetricMetadata(dead_refs[0], MetricType.GAUGE, "", "dead")])
    wal.commit()
    wal.append_metadata([MetricMetadata(live_refs[0], MetricType.COUNTER, "", "new")])
    for b in range(60):
        t = T0 + b * 1000
        wal.append_samples(live_refs, t, [float(b)] * 300)
        if b < 10:
            wal.append_samples(dead_refs, t, [float(b)] * 100)
        wal.commit()
    n_segments = len(list_segments(wal_dir))
    mint = T0 + 20_000
    expected_dropped = sum(t < mint for i in range(4) for t in _times(wal_dir, i))
    report = wal.truncate(before_segment=4, mint_ms=mint)
    assert report.series_collected == 100
    assert report.removed_refs == []  # still referenced by segments not folded yet
    assert report.checkpoint == 3
    assert report.folded_segments == [0, 1, 2, 3]
    assert report.samples_dropped == expected_dropped > 0
    assert not (wal_dir / segment_name(0)).exists()
    assert (wal_dir / "checkpoint.00000003").is_dir()
    assert wal.lookup(dead_refs[0]) is None
    assert wal.metrics()["prometheus_remote_write_wal_checkpoint_creations_total"] == 1

    # The checkpoint holds live series, latest metadata, and only samples >= mint.
    cp_records = [rec.decode(i.data) for i in iter_wal(wal_dir) if i.checkpoint is not None]
    cp_series = {r for x in cp_records if isinstance(x, rec.SeriesRecord) for r, _ in x.series}
    # Collected series stay until a checkpoint passes the segment they died in.
    assert cp_series == set(live_refs) | set(dead_refs)
    cp_meta = [m for x in cp_records if isinstance(x, rec.MetadataRecord) for m in x.entries]
    assert sorted(m.help for m in cp_meta) == ["dead", "new"]  # latest per kept series
    cp_times = [t for x in cp_records if isinstance(x, rec.SamplesRecord) for t in x.timestamps]
    assert cp_times and min(cp_times) >= mint

    # A second truncation folds further and removes the older checkpoint.
    wal.append_samples(live_refs, T0 + 100_000, [1.0] * 300)
    wal.commit()
    second = wal.truncate(before_segment=n_segments + 5, mint_ms=mint)
    assert second.checkpoint is not None and second.checkpoint > 3
    assert sorted(second.removed_refs) == sorted(dead_refs)
    assert not (wal_dir / "checkpoint.00000003").exists()
    wal.close()

    # Replay from checkpoint + segments gives back the live series with the same refs.
    again = WalStorage.open(wal_dir)
    assert again.series_refs(live) == live_refs
    assert again.series_count() == 300
    again.close()
    got = _samples(wal_dir)
    assert set(got) == set(live)
    assert all(t >= mint for v in got.values() for t, _ in v)


def _times(wal_dir: Path, index: int) -> list[int]:
    path = wal_dir / segment_name(index)
    return [
        t
        for item in iter_segment(path, index)
        if item.data[0] == 2
        for t in rec.decode_samples(item.data).timestamps
    ]


def test_truncate_respects_before_segment(tmp_path: Path) -> None:
    wal_dir, _ = _wal_with_segments(tmp_path)
    wal = WalStorage.open(wal_dir, segment_size=SEG)
    report = wal.truncate(before_segment=1, mint_ms=0)
    assert report.checkpoint is None and report.folded_segments == []
    assert (wal_dir / segment_name(0)).exists()
    wal.close()


def test_segments_info_and_metrics(tmp_path: Path) -> None:
    wal_dir, _ = _wal_with_segments(tmp_path)
    wal = WalStorage.open(wal_dir)
    infos = wal.segments_info()
    assert infos[0].min_time_ms == T0
    assert max(i.max_time_ms or 0 for i in infos) == T0 + 79_000
    refs = wal.series_refs(series(N))
    wal.append_samples(refs, T0 - 5, [0.0] * N)  # older than last: out of order
    wal.commit()
    metrics = wal.metrics()
    assert metrics["prometheus_remote_write_wal_out_of_order_samples_total"] == N
    assert metrics["prometheus_remote_write_wal_storage_active_series"] == N
    assert metrics["prometheus_remote_write_wal_samples_appended_total"] == N
    wal.sync()
    wal.close()


def test_open_on_prometheus_fixture_and_append(tmp_path: Path, fixtures_dir: Path) -> None:
    wal_dir = copy_wal(fixtures_dir / "agent-snappy" / "wal", tmp_path / "wal")
    wal = WalStorage.open(wal_dir)
    assert wal.series_count() == 352
    assert wal.series_refs([(("__name__", "brand_new"),)]) == [353]
    wal.append_samples([353], int(time.time() * 1000), [1.0])
    wal.commit()
    wal.close()
    assert tools.verify(wal_dir).ok
    assert tools.inspect(wal_dir).samples == 11693


def test_samples_per_segment_counts_what_a_reader_has_left(tmp_path: Path) -> None:
    with WalStorage.open(tmp_path / "wal", compress=False) as wal:
        refs = wal.series_refs(series(10))
        wal.commit()
        ends = []
        for segment in range(3):
            for i in range(segment + 1):  # 10, 20, 30 samples in segments 0, 1, 2
                wal.append_samples(refs, T0 + 1000 * (10 * segment + i), [1.0] * 10)
                wal.commit()
                ends.append(wal.position())
            wal._require_writer().rotate()
        assert wal.samples_per_segment((0, 0), 3) == {0: 10, 1: 20, 2: 30}
        assert wal.samples_per_segment(ends[1], 3) == {1: 10, 2: 30}
        assert wal.samples_per_segment(ends[0], 2) == {0: 0, 1: 20}
