"""What the WAL keeps per series: shared label pairs, and the timestamp bookkeeping of commits."""

from __future__ import annotations

import gc
import math
import tracemalloc
from pathlib import Path

from rwconsole.labels import Labels, make_labels
from rwconsole.sources.textparse import parse_series
from rwconsole.wal.storage import WalStorage

T0 = 1_700_000_000_000
OUT_OF_ORDER = "prometheus_remote_write_wal_out_of_order_samples_total"


def _scraped(n: int, target: str = "10.0.0.1:9100") -> list[Labels]:
    """Label sets parsed from exposition text: every series brings its own strings."""
    out = []
    for i in range(n):
        family, member = divmod(i, 100)
        key = (
            f'requests_{family}_total{{handler="/items/{member}",method="{("GET", "PUT")[i % 2]}",'
            f'code="{(200, 404, 500)[i % 3]}"}}'
        )
        out.append(make_labels([*parse_series(key), ("instance", target), ("job", "scrape")]))
    return out


def _pair(labels: Labels | None, name: str) -> tuple[str, str]:
    assert labels is not None
    return next(pair for pair in labels if pair[0] == name)


def _with_samples(tmp_path: Path, n: int) -> tuple[WalStorage, list[int]]:
    """A WAL with ``n`` series that each have one sample at T0."""
    wal = WalStorage.open(tmp_path / "wal")
    refs = wal.series_refs(_scraped(n))
    wal.append_samples(refs, T0, [1.0] * n)
    wal.commit()
    return wal, refs


def test_series_share_label_pairs_and_names(tmp_path: Path) -> None:
    wal = WalStorage.open(tmp_path / "wal")
    first, second = _scraped(2)
    assert first[1] is not second[1] and first[1][0] is not second[1][0]  # fresh copies in
    refs = wal.series_refs([first, second])
    a, b = wal.lookup(refs[0]), wal.lookup(refs[1])
    assert a == first and b == second
    # Equal pairs are one object; names of different pairs are one string.
    assert _pair(a, "instance") is _pair(b, "instance")
    assert _pair(a, "job") is _pair(b, "job")
    assert _pair(a, "handler") != _pair(b, "handler")
    assert _pair(a, "handler")[0] is _pair(b, "handler")[0]
    wal.commit()
    wal.close()

    reopened = WalStorage.open(tmp_path / "wal")
    a, b = reopened.lookup(refs[0]), reopened.lookup(refs[1])
    assert a == first and b == second
    assert _pair(a, "job") is _pair(b, "job")
    assert reopened.series_refs([second, first]) == [refs[1], refs[0]]
    reopened.close()


def test_memory_per_series_is_bounded(tmp_path: Path) -> None:
    """Series from a scrape cost the WAL a few hundred bytes each, not their parsed copies."""
    n = 20_000
    wal = WalStorage.open(tmp_path / "wal")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for target in range(4):
            refs = wal.series_refs(_scraped(n // 4, f"10.0.{target}.1:9100"))
            wal.append_samples(refs, T0, [1.0] * len(refs))
            wal.commit()
        del refs
        gc.collect()
        per_series = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    assert wal.series_count() == n
    # Each series keeps its label tuple and a few table entries; the parsed strings and
    # pairs of its labels are shared (the parsed copies alone are about 900 bytes).
    assert per_series < 450, per_series
    wal.close()


def test_collected_series_release_their_pairs(tmp_path: Path) -> None:
    wal = WalStorage.open(tmp_path / "wal", segment_size=64 * 1024)
    old = wal.series_refs(_scraped(50, "old:1"))
    live = wal.series_refs(_scraped(50, "live:1"))
    wal.append_samples(old, T0, [1.0] * 50)
    wal.append_samples(live, T0, [1.0] * 50)
    wal.commit()
    wal.append_samples(live, T0 + 60_000, [2.0] * 50)
    wal.commit()
    report = wal.truncate(before_segment=0, mint_ms=T0 + 1)
    assert sorted(report.collected_refs) == sorted(old)
    remaining = {pair for labels in map(wal.lookup, live) if labels for pair in labels}
    assert ("instance", "old:1") not in wal._pairs
    assert remaining <= set(wal._pairs)
    # A new series with a pruned pair gets it back, shared again from then on.
    again = wal.series_refs(_scraped(2, "old:1"))
    assert _pair(wal.lookup(again[0]), "instance") is _pair(wal.lookup(again[1]), "instance")
    wal.close()


def test_out_of_order_counting_in_batches(tmp_path: Path) -> None:
    wal, refs = _with_samples(tmp_path, 4)
    assert wal.metrics()[OUT_OF_ORDER] == 0
    # One timestamp for all: older than the last one of every series.
    wal.append_samples(refs, T0 - 1, [1.0] * 4)
    wal.commit()
    assert wal.metrics()[OUT_OF_ORDER] == 4
    # Equal timestamps are not out of order; a ref repeated with one timestamp neither.
    wal.append_samples([refs[0], refs[0], refs[1]], T0, [1.0] * 3)
    wal.commit()
    assert wal.metrics()[OUT_OF_ORDER] == 4
    # Per-sample timestamps: one series goes back within the batch itself.
    wal.append_samples([refs[2], refs[2], refs[3]], [T0 + 10, T0 + 5, T0 + 10], [1.0] * 3)
    wal.commit()
    assert wal.metrics()[OUT_OF_ORDER] == 5
    # Two batches in one commit: the second is judged against the first.
    wal.append_samples(refs, T0 + 100, [1.0] * 4)
    wal.append_samples(refs, [T0 + 99, T0 + 100, T0 + 101, T0 + 50], [1.0] * 4)
    wal.commit()
    assert wal.metrics()[OUT_OF_ORDER] == 7
    # The samples are in the WAL either way, and the segment's time span covers them.
    span = wal.segments_info()[-1]
    assert span.min_time_ms == T0 - 1 and span.max_time_ms == T0 + 101
    wal.close()


def test_a_series_collected_between_append_and_commit(tmp_path: Path) -> None:
    wal, refs = _with_samples(tmp_path, 3)
    wal.append_samples(refs[1:], T0 + 60_000, [1.0] * 2)
    wal.commit()
    wal.append_samples(refs, T0 + 120_000, [math.nan] * 3)  # refs[0] still known here
    report = wal.truncate(before_segment=0, mint_ms=T0 + 1)
    assert report.collected_refs == [refs[0]]
    wal.commit()  # the collected ref is skipped; the others move on
    assert wal.metrics()[OUT_OF_ORDER] == 0
    wal.append_samples(refs[1:], T0 + 119_000, [1.0] * 2)
    wal.commit()
    assert wal.metrics()[OUT_OF_ORDER] == 2
    wal.close()
