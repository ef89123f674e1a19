"""What the engine tells the console: accepted vs sent, the rate window, shard history on disk."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from conftest import free_port, wait_until

from rwconsole.config import schema
from rwconsole.engine import Engine, rate_window
from rwconsole.pipelines import DEMO_INTERVAL, demo_config
from rwconsole.remote.resharding import SHARD_UPDATE_INTERVAL
from rwconsole.shardhistory import FILE_NAME


def test_rejected_samples_are_sent_but_never_accepted_and_shard_history_is_saved(
    tmp_path: Path,
) -> None:
    metrics = schema.HTTPServerConfig(listen_address=f"127.0.0.1:{free_port()}")
    engine = Engine(dataclasses.replace(demo_config(tmp_path), http=metrics), flush_deadline=5.0)
    engine.start()
    try:
        wait_until(lambda: all(e.samples_accepted > 0 for e in engine.snapshot().endpoints))
        engine.set_fault("bad_request", reason="out of bounds").result(5)
        first = engine.snapshot()
        wait_until(lambda: all(e.samples_failed > 0 for e in engine.snapshot().endpoints))
        before = engine.snapshot()
        wait_until(
            lambda: all(
                e.samples_failed > b.samples_failed and len(e.history) > len(b.history) + 1
                for e, b in zip(engine.snapshot().endpoints, before.endpoints, strict=True)
            )
        )
        after = engine.snapshot()
        assert after.rate_window_seconds == max(10.0, 2 * DEMO_INTERVAL)
        for b, a in zip(before.endpoints, after.endpoints, strict=True):
            assert a.status == "failing", a.name
            # Sent again and again (Prometheus' samples_total), accepted not once more.
            assert a.samples_total > b.samples_total
            assert a.samples_accepted == b.samples_accepted, a.name
            assert all(p.accepted_per_second == 0 for p in a.history[len(b.history) :])
            assert any(p.failed_per_second > 0 for p in a.history[len(b.history) :])
            assert a.shard_hours and a.shard_hours[-1].seconds >= 1
        assert first.endpoints[0].samples_accepted > 0
        # One error line per endpoint per 10 s, however many batches were rejected.
        lines = [e.message for e in after.logs if e.endpoint == "demo-v1"]
        rejected = [m for m in lines if "non-recoverable" in m and "(repeated" not in m]
        assert 1 <= len(rejected) <= 1 + (after.time - first.time) // 10, lines
    finally:
        engine.stop()
    saved = json.loads((tmp_path / FILE_NAME).read_text())
    assert set(saved["endpoints"]) == {"demo-v1", "demo-v2"}
    assert all(rows and rows[-1][1] >= 2 for rows in saved["endpoints"].values())


def test_rate_window_spans_two_intervals_of_the_slowest_source() -> None:
    assert rate_window(schema.Config()) == 10.0
    job = schema.ScrapeConfig(job_name="slow", scrape_interval=15.0, scrape_timeout=10.0)
    fast = schema.SyntheticConfig(interval=1.0)
    assert rate_window(schema.Config(scrape=[job], synthetic=fast)) == 30.0


def test_first_desired_shards_calculation_sees_the_input_rate(tmp_path: Path) -> None:
    engine = Engine(demo_config(tmp_path), flush_deadline=5.0)
    engine.start()
    try:
        # One history point a second; the first calculation is SHARD_UPDATE_INTERVAL in.
        points = int(SHARD_UPDATE_INTERVAL) + 3
        snapshot = wait_until(
            lambda: (
                (s := engine.snapshot())
                and all(len(e.history) >= points for e in s.endpoints)
                and s
            ),
            timeout=4 * points,
        )
        for endpoint in snapshot.endpoints:
            assert endpoint.samples_accepted > 0, endpoint.name
            assert 0 < endpoint.shards_desired < 1, (endpoint.name, endpoint.shards_desired)
    finally:
        engine.stop()
