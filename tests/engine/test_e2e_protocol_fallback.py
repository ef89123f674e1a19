"""A remote-write 2.0 endpoint pointed at Prometheus 2.42, which speaks only 1.0.

Prometheus 2.42 ignores the 2.0 content type: it reads a 2.0 body as a 1.0
``WriteRequest``, finds no series in it (2.0 keeps its series in other
protobuf fields) and answers 204 without any Written header, having written
nothing. rwconsole takes that answer as "2.0 not spoken" and resends the
batch as 1.0: every sample arrives.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from conftest import ProcessManager, wait_until
from peers import PrometheusReceiver
from test_e2e_receivers import append_rounds, series_set

from rwconsole.config import schema
from rwconsole.engine import Engine
from rwconsole.labels import make_labels
from rwconsole.protocol import encode

pytestmark = pytest.mark.peer


def test_prometheus_2_42_answers_a_2_0_body_with_204_and_writes_nothing(
    tmp_path: Path, processes: ProcessManager
) -> None:
    prom = PrometheusReceiver(processes, tmp_path / "prom").start()
    now = int(time.time() * 1000) - 10_000
    labels = make_labels({"__name__": "rw_v2_probe", "job": "probe"})
    body = encode.compress(encode.encode_write_request_v2([labels], [now], [1.0]))
    response = httpx.post(
        prom.write_url,
        content=body,
        headers={
            "Content-Type": encode.CONTENT_TYPE_V2,
            "Content-Encoding": "snappy",
            "X-Prometheus-Remote-Write-Version": encode.VERSION_V2,
        },
        timeout=10,
    )
    assert response.status_code == 204
    assert not [h for h in response.headers if h.lower().endswith("-written")]
    # The same series as 1.0 is stored: the 2.0 one was not, only because it was 2.0.
    series = [encode.encode_series_v1(labels)]
    body_v1 = encode.compress(encode.encode_write_request_v1(series, [now + 1], [2.0]))
    httpx.post(
        prom.write_url,
        content=body_v1,
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"},
        timeout=10,
    ).raise_for_status()
    got = wait_until(lambda: prom.raw_samples('rw_v2_probe{job="probe"}'))
    assert list(got.values()) == [[(now + 1, "2")]]


def test_every_sample_arrives_through_the_fallback(
    tmp_path: Path, processes: ProcessManager
) -> None:
    prom = PrometheusReceiver(processes, tmp_path / "prom").start()
    queue_config = schema.QueueConfig(
        batch_send_deadline=0.1, min_backoff=0.05, max_backoff=0.5, max_samples_per_send=100
    )
    config = schema.Config(
        endpoint=[
            schema.EndpointConfig(
                url=prom.write_url,
                name="v2-to-prom",
                protobuf_message=schema.PROTOBUF_V2,
                queue_config=queue_config,
            )
        ],
        storage=schema.StorageConfig(path=str(tmp_path / "rw")),
    )
    engine = Engine(config, serve_metrics=False, flush_deadline=2.0)
    engine.start()
    try:
        labels = series_set("fallback-e2e", 50)
        now = int(time.time() * 1000) - 60_000
        timestamps = [now + k * 1000 for k in range(20)]
        append_rounds(engine, labels, timestamps)
        got = wait_until(
            lambda: (lambda e: e if sum(map(len, e.values())) >= 1000 else None)(
                prom.raw_samples('rw_e2e_value{job="fallback-e2e"}')
            )
        )
        assert len(got) == 50
        for i, series in enumerate(labels):
            values = got[tuple(sorted(series))]
            assert values == [(t, f"{r * 10.0 + i:g}") for r, t in enumerate(timestamps)]
        snap = wait_until(
            lambda: (lambda e: e if e.samples_total >= 1000 else None)(
                engine.snapshot().endpoint("v2-to-prom")
            )
        )
        assert snap.samples_failed == 0
        assert snap.protocol == 2
        assert snap.protocol_state.startswith("1.0 (receiver refused 2.0")
    finally:
        engine.stop()
