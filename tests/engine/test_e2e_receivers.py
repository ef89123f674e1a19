"""End to end through the engine into real receivers: VictoriaMetrics and Prometheus.

Samples are appended through the engine's own appender (what every source
uses), written to the WAL, forwarded by the queues, and read back through the
receivers' query APIs: labels, values, timestamps and order must all match.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ProcessManager, free_port, wait_for_port, wait_until
from peers import PrometheusReceiver, VictoriaMetrics, push_v1

from rwconsole.config import schema
from rwconsole.engine import Engine
from rwconsole.labels import Labels, make_labels
from rwconsole.model import STALE_NAN

pytestmark = pytest.mark.peer


def make_engine(data_dir: Path, url: str, **queue: object) -> Engine:
    queue_config = schema.QueueConfig(
        batch_send_deadline=0.1,
        min_backoff=0.05,
        max_backoff=0.5,
        **queue,  # type: ignore[arg-type]
    )
    config = schema.Config(
        external_labels={"forwarder": "rwconsole"},
        endpoint=[schema.EndpointConfig(url=url, name="peer", queue_config=queue_config)],
        storage=schema.StorageConfig(path=str(data_dir)),
    )
    return Engine(config, serve_metrics=False, flush_deadline=2.0)


def series_set(job: str, n: int) -> list[Labels]:
    return [
        make_labels({"__name__": "rw_e2e_value", "job": job, "idx": str(i), "zone": f"z{i % 3}"})
        for i in range(n)
    ]


def append_rounds(
    engine: Engine, labels: list[Labels], timestamps: list[int], value_of=lambda r, i: r * 10.0 + i
) -> None:
    async def write() -> None:
        appender = engine.appender
        assert appender is not None
        refs = appender.series_refs(labels)
        for r, t in enumerate(timestamps):
            appender.append_samples(refs, t, [value_of(r, i) for i in range(len(refs))])
            appender.commit()

    engine.submit(write).result(timeout=30)


def expected_export(labels: list[Labels], timestamps: list[int], value_of) -> dict:
    out = {}
    for i, series in enumerate(labels):
        key = tuple(sorted((*series, ("forwarder", "rwconsole"))))
        out[key] = [(t, value_of(r, i)) for r, t in enumerate(timestamps)]
    return out


def test_victoria_metrics_receives_every_sample_in_order(
    tmp_path: Path, processes: ProcessManager
) -> None:
    vm = VictoriaMetrics(processes, tmp_path / "vm").start()
    engine = make_engine(tmp_path / "rw", vm.write_url, max_samples_per_send=500, min_shards=3)
    engine.start()
    try:
        labels = series_set("vm-e2e", 200)
        now = int(time.time() * 1000) - 120_000
        timestamps = [now + k * 1000 for k in range(30)]
        value_of = lambda r, i: r * 10.0 + i  # noqa: E731
        append_rounds(engine, labels, timestamps, value_of)
        expected = expected_export(labels, timestamps, value_of)
        got = wait_until(
            lambda: (lambda e: e if sum(map(len, e.values())) >= 6000 else None)(
                vm.export('{job="vm-e2e"}')
            )
        )
        assert got == expected

        def all_sent() -> object:
            endpoint = engine.snapshot().endpoint("peer")
            return endpoint if endpoint is not None and endpoint.samples_total >= 6000 else None

        # The assertion reads the snapshot that showed the count, not an earlier one.
        snap = wait_until(all_sent)
        assert snap.samples_failed == 0
    finally:
        engine.stop()


def test_prometheus_receives_values_timestamps_and_staleness(
    tmp_path: Path, processes: ProcessManager
) -> None:
    prom = PrometheusReceiver(processes, tmp_path / "prom").start()
    engine = make_engine(tmp_path / "rw", prom.write_url)
    engine.start()
    try:
        labels = series_set("prom-e2e", 20)
        now = int(time.time() * 1000) - 60_000
        timestamps = [now + k * 1000 for k in range(10)]
        specials = [1.5, -2.25, math.inf, -math.inf, 0.0, 1e300]

        def value_of(r: int, i: int) -> float:
            return specials[(r + i) % len(specials)]

        append_rounds(engine, labels, timestamps, value_of)
        # A staleness marker ends series 0 after the last round.
        append_rounds(engine, labels[:1], [now + 10_000], lambda r, i: STALE_NAN)
        got = wait_until(
            lambda: (lambda e: e if sum(map(len, e.values())) >= 200 else None)(
                prom.raw_samples('rw_e2e_value{job="prom-e2e"}')
            )
        )
        assert len(got) == 20
        for i, series in enumerate(labels):
            key = tuple(sorted((*series, ("forwarder", "rwconsole"))))
            values = got[key]
            assert [t for t, _ in values] == timestamps, key
            assert [float(v) for _, v in values] == [value_of(r, i) for r in range(10)], key
        # The stale marker made series 0 disappear from an instant query after it.
        instant = prom.api(
            "/api/v1/query",
            query='rw_e2e_value{job="prom-e2e",idx="0"}',
            time=str((now + 11_000) / 1000),
        )
        assert instant["data"]["result"] == []
        instant = prom.api(
            "/api/v1/query",
            query='rw_e2e_value{job="prom-e2e",idx="1"}',
            time=str((now + 11_000) / 1000),
        )
        assert len(instant["data"]["result"]) == 1
    finally:
        engine.stop()


def test_restart_during_an_outage_loses_nothing(tmp_path: Path, processes: ProcessManager) -> None:
    port = free_port()
    vm = VictoriaMetrics(processes, tmp_path / "vm", port=port)
    data_dir = tmp_path / "rw"
    labels = series_set("outage", 50)
    now = int(time.time() * 1000) - 300_000
    first = [now + k * 1000 for k in range(20)]
    second = [now + 20_000 + k * 1000 for k in range(20)]
    value_of = lambda r, i: r * 10.0 + i  # noqa: E731

    engine = make_engine(data_dir, vm.write_url)
    engine.start()
    append_rounds(engine, labels, first, value_of)
    wait_until(
        lambda: (
            engine.snapshot().endpoint("peer")
            and engine.snapshot().endpoint("peer").samples_retried > 0
        )
    )
    engine.stop()

    engine = make_engine(data_dir, vm.write_url)
    engine.start()
    try:
        append_rounds(engine, labels, second, lambda r, i: (r + 20) * 10.0 + i)
        vm.start()
        expected = expected_export(labels, first + second, value_of)
        got = wait_until(
            lambda: (lambda e: e if sum(map(len, e.values())) >= 2000 else None)(
                vm.export('{job="outage"}')
            )
        )
        assert got == expected
    finally:
        engine.stop()


def test_kill_9_during_an_outage_loses_nothing_acknowledged(
    tmp_path: Path, processes: ProcessManager
) -> None:
    """Pushes acknowledged by rwconsole's receiver survive a kill -9 while the backend is down."""
    vm_port = free_port()
    vm = VictoriaMetrics(processes, tmp_path / "vm", port=vm_port)
    receiver_port = free_port()
    config = tmp_path / "rwconsole.toml"
    config.write_text(
        f"""
[storage]
path = "{tmp_path / "rw"}"

[http]
listen_address = "127.0.0.1:{free_port()}"

[receiver]
listen_address = "127.0.0.1:{receiver_port}"

[[endpoint]]
name = "vm"
url = "{vm.write_url}"

[endpoint.queue_config]
batch_send_deadline = "100ms"
min_backoff = "50ms"
max_backoff = "500ms"
"""
    )

    def start_rwconsole() -> subprocess.Popen[bytes]:
        with open(tmp_path / f"rw-{time.monotonic_ns()}.log", "wb") as log_file:
            proc = processes.start(
                [sys.executable, "-m", "rwconsole", "run", "--config", str(config)],
                stderr=log_file,
            )
        wait_for_port(receiver_port)
        return proc

    labels = series_set("kill9", 30)
    now = int(time.time() * 1000) - 300_000
    pushed: dict[Labels, list[tuple[int, float]]] = {s: [] for s in labels}

    def push(round_index: int) -> None:
        t = now + round_index * 1000
        values = [float(round_index * 100 + i) for i in range(len(labels))]
        push_v1(receiver_port, labels, t, values)
        for s, v in zip(labels, values, strict=True):
            pushed[s].append((t, v))

    proc = start_rwconsole()
    for r in range(15):
        push(r)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)

    proc = start_rwconsole()
    for r in range(15, 30):
        push(r)
    vm.start()
    expected = {tuple(sorted(s)): values for s, values in pushed.items()}
    got = wait_until(
        lambda: (lambda e: e if sum(map(len, e.values())) >= 900 else None)(
            vm.export('{job="kill9"}')
        ),
        timeout=90,
    )
    assert got == expected
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_prometheus_receives_exemplars(tmp_path: Path, processes: ProcessManager) -> None:
    from rwconsole.model import Exemplar, MetricMetadata, MetricType

    prom = PrometheusReceiver(processes, tmp_path / "prom").start(
        "--enable-feature=exemplar-storage"
    )
    engine = make_engine(tmp_path / "rw", prom.write_url)
    engine.start()
    try:
        labels = make_labels({"__name__": "rw_e2e_requests_total", "job": "exemplars"})
        now = int(time.time() * 1000) - 30_000

        async def write() -> None:
            appender = engine.appender
            (ref,) = appender.series_refs([labels])
            appender.append_metadata([MetricMetadata(ref, MetricType.COUNTER, "", "Requests.")])
            for k in range(5):
                appender.append_samples([ref], now + k * 1000, [float(k)])
                appender.append_exemplars(
                    [Exemplar(ref, now + k * 1000, 0.5 + k, make_labels({"trace_id": f"t{k}"}))]
                )
                appender.commit()

        engine.submit(write).result(timeout=30)

        def exemplars():
            data = prom.api(
                "/api/v1/query_exemplars",
                query='rw_e2e_requests_total{job="exemplars"}',
                start=str(now / 1000 - 60),
                end=str(now / 1000 + 60),
            )["data"]
            found = [e for series in data for e in series["exemplars"]]
            return found if len(found) >= 5 else None

        found = wait_until(exemplars)
        assert sorted((e["labels"]["trace_id"], float(e["value"])) for e in found) == [
            (f"t{k}", 0.5 + k) for k in range(5)
        ]
        assert sorted(round(float(e["timestamp"]) * 1000) for e in found) == [
            now + k * 1000 for k in range(5)
        ]
    finally:
        engine.stop()
