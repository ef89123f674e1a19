"""SyntheticSource: shapes, determinism, churn and run-time knobs."""

from __future__ import annotations

import asyncio
import math

import pytest
from src_helpers import RecordingAppender, same_float

from rwconsole.model import MetricType, is_stale_nan
from rwconsole.sources.synthetic import BUCKETS, SyntheticSource

pytestmark = pytest.mark.timeout(60)


def run_ticks(source: SyntheticSource, count: int, start: int = 0) -> None:
    for tick in range(count):
        source.tick(start + tick * 1000)


def test_shapes_labels_and_metadata() -> None:
    app = RecordingAppender()
    source = SyntheticSource(
        app, series=300, metrics=6, histograms=True, labels={"cluster": "c1"}, seed=1
    )
    run_ticks(source, 3)
    series = app.series()
    assert abs(len(series) - 300) <= 2 * (len(BUCKETS) + 2)
    for labels, points in series.items():
        names = dict(labels)
        assert names["job"] == "synthetic" and names["cluster"] == "c1"
        assert {"instance", "pod", "region", "__name__"} <= names.keys()
        assert [t for t, _ in points] == [0, 1000, 2000]
    meta = app.metadata_by_labels()
    assert set(meta) == set(series)  # every series got metadata, once
    assert len(app.metadata) == len(series)
    counters = [k for k in series if meta[k].type == MetricType.COUNTER]
    assert counters and all(dict(k)["__name__"].endswith("_total") for k in counters)
    for labels in counters:
        values = [v for _, v in series[labels]]
        assert values == sorted(values) and values[-1] > 0
    # classic histograms: cumulative buckets, +Inf == _count
    hist = [k for k in series if dict(k)["__name__"].endswith("_bucket")]
    assert hist
    by_group: dict[tuple, dict[str, float]] = {}
    for labels in hist:
        key = tuple((n, v) for n, v in labels if n != "le")
        by_group.setdefault(key, {})[dict(labels)["le"]] = series[labels][-1][1]
    for key, buckets in by_group.items():
        assert len(buckets) == len(BUCKETS)
        ordered = [buckets["+Inf" if math.isinf(b) else repr(b)] for b in BUCKETS]
        assert ordered == sorted(ordered)
        name = dict(key)["__name__"].removesuffix("_bucket")
        count_labels = tuple(sorted({**dict(key), "__name__": name + "_count"}.items()))
        assert series[count_labels][-1][1] == ordered[-1]


def test_deterministic_with_a_seed() -> None:
    runs = []
    for _ in range(2):
        app = RecordingAppender()
        run_ticks(
            SyntheticSource(app, series=200, metrics=4, churn=0.1, seed=42, exemplars=True), 4
        )
        runs.append(app)
    first, second = runs
    assert list(first.series()) == list(second.series())
    for (la, pa), (lb, pb) in zip(first.series().items(), second.series().items(), strict=True):
        assert la == lb
        assert all(same_float(a[1], b[1]) and a[0] == b[0] for a, b in zip(pa, pb, strict=True))
    assert first.exemplars == second.exemplars
    other = RecordingAppender()
    run_ticks(SyntheticSource(other, series=200, metrics=4, seed=43), 1)
    assert [v for _, _, v in other.samples] != [v for _, _, v in first.samples][:200]


def test_churn_replaces_series_with_staleness() -> None:
    app = RecordingAppender()
    source = SyntheticSource(app, series=400, metrics=4, churn=0.1, seed=5)
    run_ticks(source, 5)
    stale = app.stale_series()
    stats = source.stats()
    assert stats.churned_total > 0
    assert len(stale) == stats.stale_markers_total == stats.churned_total
    assert 100 <= len(stale) <= 200  # ~10% of 400 per interval over 4 churning ticks
    series = app.series()
    for labels in stale:
        points = series[labels]
        assert is_stale_nan(points[-1][1])
        assert not any(is_stale_nan(v) for _, v in points[:-1])
    live = [labels for labels, pts in series.items() if not is_stale_nan(pts[-1][1])]
    assert len(live) == 400
    # replacement series are new series with new pods, and got metadata
    meta = app.metadata_by_labels()
    assert all(labels in meta for labels in series)


def test_set_series_grows_and_shrinks_with_staleness() -> None:
    app = RecordingAppender()
    source = SyntheticSource(app, series=100, metrics=2, seed=2)
    source.tick(0)
    source.set_series(150)
    source.tick(1000)
    assert len(app.series()) == 150
    source.set_series(60)
    source.tick(2000)
    assert len(app.stale_series()) == 90
    assert source.stats().series == 60
    first_tick = {labels for labels, pts in app.series().items() if pts[0][0] == 0}
    assert len(first_tick) == 100  # the original series kept their identity when growing


def test_rate_and_interval_knobs() -> None:
    app = RecordingAppender()
    source = SyntheticSource(app, series=1000, metrics=5, interval=10.0, seed=1)
    source.tick(0)
    assert source.stats().rate == pytest.approx(100.0)
    source.set_rate(5000)
    assert source.stats().interval == pytest.approx(0.2)
    with pytest.raises(ValueError):
        source.set_interval(0)
    with pytest.raises(ValueError):
        source.set_churn(1.5)


def test_exemplars_on_counters_and_buckets() -> None:
    app = RecordingAppender()
    source = SyntheticSource(app, series=400, metrics=3, histograms=True, exemplars=True, seed=9)
    run_ticks(source, 2)
    assert app.exemplars
    for ex in app.exemplars:
        name = dict(app.labels_by_ref[ex.ref])["__name__"]
        assert name.endswith(("_total", "_bucket"))
        assert dict(ex.labels)["trace_id"]


def test_run_loop_ticks_on_the_interval_and_stop_marks_stale() -> None:
    app = RecordingAppender()
    source = SyntheticSource(app, series=20, metrics=2, interval=0.05, seed=1)

    async def main() -> None:
        source.start()
        for _ in range(100):
            if source.stats().ticks >= 3:
                break
            await asyncio.sleep(0.02)
        source.set_interval(0.02)
        await asyncio.sleep(0.1)
        await source.stop(stale=True)

    asyncio.run(main())
    assert source.stats().ticks >= 5
    assert len(app.stale_series()) == 20
