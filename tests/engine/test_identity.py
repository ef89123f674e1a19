"""Endpoint identity: tuning keeps an endpoint's progress, old progress files are adopted,
a new endpoint starts at the WAL end (or the oldest record with ``backfill``)."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ProcessManager, free_port, wait_for_port, wait_until
from peers import VictoriaMetrics, push_v1

from rwconsole.config import schema
from rwconsole.engine import Engine
from rwconsole.labels import make_labels
from rwconsole.remote.progress import FILE_NAME, ProgressStore

URL = "http://127.0.0.1:{port}/api/v1/write"


def _endpoint(url: str, **kwargs: object) -> schema.EndpointConfig:
    kwargs.setdefault("queue_config", schema.QueueConfig(min_backoff=0.05, max_backoff=0.2))
    return schema.EndpointConfig(url=url, **kwargs)  # type: ignore[arg-type]


def _engine(data: Path, *endpoints: schema.EndpointConfig) -> Engine:
    config = schema.Config(endpoint=list(endpoints), storage=schema.StorageConfig(path=str(data)))
    return Engine(config, serve_metrics=False, flush_deadline=0.5)


def _append(engine: Engine, rounds: int) -> None:
    labels = [make_labels({"__name__": "m", "i": str(i)}) for i in range(100)]

    async def write() -> None:
        appender = engine.appender
        assert appender is not None
        refs = appender.series_refs(labels)
        for r in range(rounds):
            appender.append_samples(refs, 1_000 * (r + 1), [float(r)] * len(refs))
            appender.commit()

    engine.submit(write).result(timeout=30)


def _positions(engine: Engine) -> dict[str, tuple[int, int]]:
    return {e.queue.name: e.queue.delivered_position for e in engine.endpoints}


def _undelivered_wal(data: Path, endpoint: schema.EndpointConfig) -> tuple[int, int]:
    """A WAL with 20 rounds that ``endpoint`` (its receiver down) never delivered."""
    engine = _engine(data, endpoint)
    engine.start()
    try:
        start = _positions(engine)[endpoint.queue_name()]
        _append(engine, 20)
        assert engine.submit(_async(engine.wal.position)).result(10) > start
    finally:
        engine.stop()
    return start


def _async(fn):  # type: ignore[no-untyped-def]
    async def call():  # type: ignore[no-untyped-def]
        return fn()

    return call


def test_progress_store_adopts_by_url_and_legacy_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / FILE_NAME).write_text(
        json.dumps(
            {
                "queues": {
                    "abc123": {"segment": 0, "offset": 10},  # an old file: no url
                    "named": {
                        "segment": 0,
                        "offset": 20,
                        "url": "http://a/w",
                        "protobuf_message": schema.PROTOBUF_V1,
                    },
                }
            }
        )
    )
    store = ProgressStore(tmp_path)
    v1 = schema.PROTOBUF_V1
    with caplog.at_level(logging.INFO, logger="rwconsole.progress"):
        # a configured endpoint keeps its own entry; not taken by anybody else
        assert (
            store.resolve("x", url="http://a/w", message=v1, legacy_name="-", taken={"x", "named"})
            is None
        )
        # same url, other name: adopted
        assert store.resolve("y", url="http://a/w", message=v1, legacy_name="-", taken={"y"}) == (
            0,
            20,
        )
        # an old entry without url: adopted by the legacy name only
        assert (
            store.resolve("z", url="http://b/w", message=v1, legacy_name="nope", taken={"z"})
            is None
        )
        assert store.resolve(
            "z", url="http://b/w", message=v1, legacy_name="abc123", taken={"z"}
        ) == (0, 10)
    assert caplog.text.count("adopted") == 2
    store.save()
    again = ProgressStore(tmp_path)
    assert again.positions() == {"y": (0, 20), "z": (0, 10)}


def test_tuning_an_unnamed_endpoint_keeps_its_backlog(tmp_path: Path) -> None:
    url = URL.format(port=free_port())  # nothing listens: everything stays undelivered
    before = _endpoint(url)
    start = _undelivered_wal(tmp_path, before)
    tuned = _endpoint(
        url,
        remote_timeout=5.0,
        headers={"X-Team": schema.Secret("a")},
        queue_config=schema.QueueConfig(max_shards=3, capacity=500),
        metadata_config=schema.MetadataConfig(send=False),
        write_relabel_config=[schema.RelabelConfig(action="labeldrop", regex="x")],
    )
    assert tuned.queue_name() == before.queue_name()
    engine = _engine(tmp_path, tuned)
    engine.start()
    try:
        assert _positions(engine) == {before.queue_name(): start}
    finally:
        engine.stop()


def test_old_progress_file_is_adopted_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = _endpoint(URL.format(port=free_port()))
    start = _undelivered_wal(tmp_path, endpoint)
    # the file as earlier versions wrote it: keyed by a hash of the whole config
    legacy = endpoint.legacy_queue_name()
    (tmp_path / FILE_NAME).write_text(
        json.dumps({"queues": {legacy: {"segment": start[0], "offset": start[1]}}})
    )
    for run in range(2):
        engine = _engine(tmp_path, endpoint)
        with caplog.at_level(logging.INFO, logger="rwconsole"):
            engine.start()
        try:
            assert _positions(engine) == {endpoint.queue_name(): start}
        finally:
            engine.stop()
        assert caplog.text.count(f"adopted the delivery progress saved as {legacy!r}") == 1, run
    saved = json.loads((tmp_path / FILE_NAME).read_text())["queues"]
    assert set(saved) == {endpoint.queue_name()}


def test_new_endpoint_starts_at_the_wal_end_or_backfills(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = _endpoint(URL.format(port=free_port()))
    _undelivered_wal(tmp_path, old)
    moved = _endpoint(URL.format(port=free_port()))  # a new url: a new endpoint
    backfill = _endpoint(URL.format(port=free_port()), name="history", backfill=True)
    engine = _engine(tmp_path, moved, backfill)
    with caplog.at_level(logging.INFO, logger="rwconsole"):
        engine.start()
    try:
        wal_end = engine.submit(_async(engine.wal.position)).result(10)
        positions = _positions(engine)
    finally:
        engine.stop()
    assert positions[moved.queue_name()] == wal_end
    assert positions["history"] == (0, 0)
    assert f"new endpoint {moved.queue_name()} starts at the WAL end" in caplog.text
    assert "skipping 1 retained WAL segment(s)" in caplog.text
    assert "set backfill = true to send them" in caplog.text
    assert (
        "new endpoint history: backfill from the oldest retained WAL record (0, 0)" in caplog.text
    )


def _run_config(receiver_port: int, data: Path, url: str, queue: str) -> str:
    return f"""
[storage]
path = "{data}"

[http]
listen_address = "127.0.0.1:{free_port()}"

[receiver]
listen_address = "127.0.0.1:{receiver_port}"

[[endpoint]]
url = "{url}"

[endpoint.queue_config]
min_backoff = "50ms"
max_backoff = "500ms"
{queue}
"""


@pytest.mark.peer
def test_retune_during_an_outage_loses_nothing(tmp_path: Path, processes: ProcessManager) -> None:
    """Receiver down; queue_config changed + SIGHUP (applied in place); changed again +
    restart; receiver back: every sample pushed arrives (an unnamed endpoint keeps its
    identity and backlog)."""
    vm = VictoriaMetrics(processes, tmp_path / "vm", port=free_port())
    receiver_port = free_port()
    config = tmp_path / "rw.toml"
    data = tmp_path / "data"
    config.write_text(_run_config(receiver_port, data, vm.write_url, "max_shards = 2"))
    log_path = tmp_path / "rw.log"
    labels = [make_labels({"__name__": "retune", "job": "retune", "i": str(i)}) for i in range(40)]
    now = int(time.time() * 1000) - 300_000
    pushed: dict[tuple[tuple[str, str], ...], list[tuple[int, float]]] = {}

    def push(rounds: range) -> None:
        for r in rounds:
            t = now + r * 1000
            values = [float(r * 100 + i) for i in range(len(labels))]
            push_v1(receiver_port, labels, t, values)
            for s, v in zip(labels, values, strict=True):
                pushed.setdefault(tuple(sorted(s)), []).append((t, v))

    def started_count() -> int:
        return log_path.read_text().count("engine started")

    def start() -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            proc = processes.start(
                [sys.executable, "-m", "rwconsole", "run", "--config", str(config)], stderr=log
            )
        wait_for_port(receiver_port, timeout=60)
        return proc

    proc = start()
    push(range(0, 10))
    config.write_text(
        _run_config(receiver_port, data, vm.write_url, "max_shards = 7\ncapacity = 500")
    )
    proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "config reloaded" in log_path.read_text(), timeout=60)
    assert started_count() == 1  # the reload kept the engine, its queue and backlog
    push(range(10, 20))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0

    config.write_text(
        _run_config(receiver_port, data, vm.write_url, 'max_shards = 3\nbatch_send_deadline = "1s"')
    )
    proc = start()
    push(range(20, 30))
    vm.start()
    got = wait_until(
        lambda: (lambda e: e if sum(map(len, e.values())) >= 30 * len(labels) else None)(
            vm.export('{job="retune"}')
        ),
        timeout=90,
    )
    assert got == pushed
    text = log_path.read_text()
    assert text.count("resumes from WAL position (0, 0)") == 1  # after the restart
    assert "starts at the WAL end" not in text
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
