"""A recorded engine ``Snapshot`` for deterministic screen tests (no engine, fixed clock)."""

from __future__ import annotations

import math

from rwconsole.config.schema import QueueConfig
from rwconsole.snapshot import DemoStats, EndpointSnapshot, Fault, HistoryPoint, LogEntry, Snapshot

NOW = 1_700_000_000.0
SECONDS = 900


def _history(phase: float, failing: bool) -> tuple[HistoryPoint, ...]:
    points = []
    for i in range(SECONDS):
        t = NOW - (SECONDS - 1 - i)
        wave = math.sin(i / 40 + phase)
        down = failing and i > SECONDS - 200
        failed = 20.0 if i % 97 == 0 else 0.0
        out = 0.0 if down else 2000.0 + 100 * wave
        desired = 2.0 + 1.5 * wave + (3.0 if failing and i > SECONDS - 200 else 0.0)
        points.append(
            HistoryPoint(
                time=t,
                shards=float(round(desired)),
                shards_desired=desired,
                shards_min=1.0,
                shards_max=10.0,
                lag_seconds=1.0
                + (20.0 * (i - (SECONDS - 200)) / 200 if failing and i > SECONDS - 200 else 0.0),
                samples_in_per_second=2000.0 + 100 * wave,
                samples_out_per_second=out,
                retried_per_second=500.0 if failing and i > SECONDS - 200 else 0.0,
                failed_per_second=failed,
                dropped_per_second=0.0,
                pending=4000.0 if failing and i > SECONDS - 200 else 200.0 + 50 * wave,
                send_latency_seconds=0.040 + 0.01 * wave,
                accepted_per_second=max(0.0, out - failed),
                requests_in_flight=0.0 if down else 1.2 + 0.4 * wave,
                batches_per_second=0.0 if down else 4.0,
                send_encode_seconds=0.0031,
                send_loop_wait_seconds=0.0012 + 0.0004 * wave,
                send_network_seconds=0.036 + 0.01 * wave,
                shard_utilisation=1.0 if down else 0.55 + 0.2 * wave,
            )
        )
    return tuple(points)


def _endpoint(
    name: str, protocol: int, failing: bool, phase: float, queue: QueueConfig
) -> EndpointSnapshot:
    history = _history(phase, failing)
    return EndpointSnapshot(
        name=name,
        url="http://127.0.0.1:9090/api/v1/write",
        protocol=protocol,
        status="retrying" if failing else "healthy",
        paused=False,
        last_error="HTTP 503: service unavailable (demo fault)" if failing else "",
        last_error_time=NOW - 2 if failing else 0.0,
        last_status=503 if failing else None,
        shards=int(history[-1].shards),
        shards_desired=history[-1].shards_desired,
        queue_config={
            "capacity": queue.capacity,
            "max_shards": queue.max_shards,
            "min_shards": queue.min_shards,
            "max_samples_per_send": queue.max_samples_per_send,
            "batch_send_deadline": queue.batch_send_deadline,
            "min_backoff": queue.min_backoff,
            "max_backoff": queue.max_backoff,
            "retry_on_http_429": queue.retry_on_http_429,
            "sample_age_limit": queue.sample_age_limit,
        },
        pending_samples=history[-1].pending,
        samples_total=1_234_567.0,
        samples_failed=480.0,
        samples_retried=100_000.0 if failing else 0.0,
        samples_dropped=0.0,
        exemplars_total=1200.0,
        histograms_total=0.0,
        bytes_total=45_000_000.0,
        lag_seconds=history[-1].lag_seconds,
        read_position=(3, 1_200_000),
        delivered_position=(3, 1_100_000) if not failing else (2, 500_000),
        live=not failing,
        history=history,
        samples_accepted=1_234_567.0 - 480.0,
        requests_in_flight=3 if failing else 1,
        shards_reason=(
            "desired 5.60 = 2.8 ms of network and receiver time per sample × 2000 samples/s to "
            "send (incl. 150/s catching up on the backlog) → 5 shards (capped at max_shards 5)"
            if failing
            else "desired 2.00 = 1 ms of network and receiver time per sample × 2000 samples/s "
            "to send → 2 shards"
        ),
    )


def recorded_snapshot(*, demo: bool = True) -> Snapshot:
    endpoints = (
        _endpoint("demo-v1", 1, False, 0.0, QueueConfig()),
        _endpoint("demo-v2", 2, True, 1.0, QueueConfig(max_shards=10, batch_send_deadline=1.0)),
    )
    logs = tuple(
        LogEntry(NOW - 60 + i, level, message, endpoint)
        for i, (level, message, endpoint) in enumerate(
            [
                ("INFO", "engine started: WAL /data/wal, 2 endpoint(s), 1 source(s)", ""),
                ("INFO", "endpoint demo-v2: queue_config changed: max_shards=10", "demo-v2"),
                ("WARNING", "endpoint demo-v2: HTTP 503, retrying in 30ms", "demo-v2"),
                ("ERROR", "endpoint demo-v1: batch rejected with HTTP 400: bad labels", "demo-v1"),
            ]
        )
    )
    stats = DemoStats(
        address="127.0.0.1:9090",
        listening=True,
        fault=Fault(mode="error_5xx", status=503, fraction=0.5),
        requests=5000,
        v1_requests=2500,
        v2_requests=2500,
        by_status={204: 4000, 503: 1000},
        samples=2_000_000,
        exemplars=1000,
        histograms=0,
        metadata=40,
        bytes=90_000_000,
        series=2000,
        out_of_order=0,
        hung=0,
        last_error="503 injected",
    )
    return Snapshot(
        time=NOW,
        running=True,
        wal_dir="",
        wal_position=(3, 1_250_000),
        samples_in_total=5_000_000.0,
        samples_in_per_second=2000.0,
        endpoints=endpoints,
        sources=(),
        demo=stats if demo else None,
        logs=logs,
        metrics_address="127.0.0.1:12345",
        rate_window_seconds=10.0,
    )
