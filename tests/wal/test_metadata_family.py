"""Metadata kept once per metric family: what a 1.0 metadata send lists, and what it costs."""

from __future__ import annotations

import time
from pathlib import Path

from rwconsole.labels import make_labels
from rwconsole.model import MetricMetadata, MetricType
from rwconsole.remote.metadata import families
from rwconsole.wal.storage import WalStorage

T0 = 1_700_000_000_000
LAT = (MetricType.HISTOGRAM, "seconds", "Latency.")


def _meta(ref: int, kind: MetricType, unit: str, help_text: str) -> MetricMetadata:
    return MetricMetadata(ref, kind, unit, help_text)


def _histogram_wal(path: Path, instances: int) -> tuple[WalStorage, dict[str, list[int]]]:
    wal = WalStorage.open(path)
    names = ["lat_bucket", "lat_sum", "lat_count", "reqs_total"]
    refs: dict[str, list[int]] = {}
    for name in names:
        labels = [make_labels({"__name__": name, "instance": f"i{i}"}) for i in range(instances)]
        refs[name] = wal.series_refs(labels)
    entries = [_meta(r, *LAT) for name in names[:3] for r in refs[name]]
    entries += [_meta(r, MetricType.COUNTER, "", "Requests.") for r in refs["reqs_total"]]
    wal.append_metadata(entries)
    wal.append_samples([r for rs in refs.values() for r in rs], T0, [1.0] * (4 * instances))
    wal.commit()
    return wal, refs


def test_one_entry_per_family(tmp_path: Path) -> None:
    wal, refs = _histogram_wal(tmp_path / "wal", 50)
    expected = [
        ("lat", MetricMetadata(0, *LAT)),
        ("reqs_total", MetricMetadata(0, MetricType.COUNTER, "", "Requests.")),
    ]
    assert wal.metadata_families() == expected
    # The listing the sender reads gives the same families through the same dedup.
    assert len(wal.metadata_entries()) == 2
    assert families(wal.metadata_entries()) == expected
    # Per series, the metadata is there too (remote write 2.0 sends it with each series).
    meta = wal.metadata(refs["lat_sum"][7])
    assert meta is not None and (meta.type, meta.unit, meta.help) == LAT
    assert wal.metadata(refs["lat_sum"][7]) is wal.metadata(refs["lat_bucket"][0])  # shared
    wal.close()


def test_latest_value_wins_and_families_follow_live_series(tmp_path: Path) -> None:
    wal = WalStorage.open(tmp_path / "wal", segment_size=64 * 1024)
    a, b, c = wal.series_refs(
        [make_labels({"__name__": "up", "instance": f"i{i}"}) for i in range(3)]
    )
    wal.append_metadata([_meta(a, MetricType.GAUGE, "", "old help")])
    wal.append_metadata([_meta(b, MetricType.GAUGE, "", "new help")])
    wal.append_samples([a, b, c], T0, [1.0] * 3)
    wal.commit()
    assert wal.metadata_families() == [("up", MetricMetadata(0, MetricType.GAUGE, "", "new help"))]
    # The same value again writes nothing; a change for one series is written and wins.
    position = wal.position()
    wal.append_metadata([_meta(b, MetricType.GAUGE, "", "new help")])
    wal.commit()
    assert wal.position() == position
    wal.append_metadata([_meta(c, MetricType.COUNTER, "", "newest")])
    wal.commit()
    assert wal.metadata_families()[0][1].help == "newest"
    assert wal.metrics()["prometheus_remote_write_wal_metadata_updates_total"] == 3
    # The series carrying the latest value goes: a value other live series carry takes over.
    wal.append_samples([a, b], T0 + 60_000, [1.0, 1.0])
    wal.commit()
    report = wal.truncate(before_segment=0, mint_ms=T0 + 1)
    assert report.collected_refs == [c]
    assert wal.metadata(c) is None
    assert wal.metadata_families()[0][1].help in {"old help", "new help"}
    # No live series of the family left: the family is gone from the listing.
    wal.append_samples([b], T0 + 120_000, [1.0])
    wal.commit()
    wal.truncate(before_segment=0, mint_ms=T0 + 60_001)
    assert wal.metadata_families() == [("up", MetricMetadata(0, MetricType.GAUGE, "", "new help"))]
    wal.truncate(before_segment=0, mint_ms=T0 + 120_001)
    assert wal.metadata_families() == []
    assert wal.metadata_entries() == []
    wal.close()


def test_replay_rebuilds_the_families(tmp_path: Path) -> None:
    wal, refs = _histogram_wal(tmp_path / "wal", 20)
    before = wal.metadata_families()
    wal.close()
    reopened = WalStorage.open(tmp_path / "wal")
    assert reopened.metadata_families() == before
    meta = reopened.metadata(refs["reqs_total"][3])
    assert meta is not None and meta.help == "Requests."
    reopened.close()


def test_listing_cost_follows_families_not_series(tmp_path: Path) -> None:
    small, _ = _histogram_wal(tmp_path / "small", 10)
    large, _ = _histogram_wal(tmp_path / "large", 20_000)
    assert large.series_count() == 2_000 * small.series_count()

    def cost(wal: WalStorage) -> float:
        started = time.perf_counter()
        for _ in range(200):
            wal.metadata_entries()
        return time.perf_counter() - started

    small_cost = min(cost(small) for _ in range(3))
    large_cost = min(cost(large) for _ in range(3))
    # 2000 times the series: a listing that walked them would cost about 2000 times as much.
    assert large_cost < 20 * small_cost + 0.01, (small_cost, large_cost)
    small.close()
    large.close()
