"""Restarts resume exactly where delivery stopped: a clean stop re-sends nothing, a kill -9
re-sends at most what was in flight plus one progress interval.

A demo receiver (its own loop in its own thread) counts every sample it is sent,
duplicates included; the WAL on disk says how many samples there were.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import ProcessManager, free_port, wait_for_port, wait_until
from peers import VictoriaMetrics

from rwconsole.config import schema
from rwconsole.demo.receiver import DemoReceiver
from rwconsole.engine import PROGRESS_INTERVAL, Engine
from rwconsole.remote.ahead import DeliveredAhead
from rwconsole.wal.records import count_samples
from rwconsole.wal.segment import iter_segment, list_segments


class ThreadReceiver:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.receiver = DemoReceiver("127.0.0.1:0", track_series=False)
        asyncio.run_coroutine_threadsafe(self.receiver.start(), self.loop).result(10)

    @property
    def samples(self) -> int:
        return self.receiver.stats().samples

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def wal_samples(wal_dir: Path) -> int:
    return sum(
        count_samples(record.data)
        for segment in list_segments(wal_dir)
        for record in iter_segment(segment.path, segment.index)
    )


def settled(count: callable, at_least: int, quiet: float = 1.0) -> int:  # type: ignore[valid-type]
    """Wait until ``count()`` reached ``at_least`` and then did not change for ``quiet`` s."""
    wait_until(lambda: count() >= at_least, timeout=60)
    last, since = count(), time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    raise AssertionError("the receiver kept receiving")


def _config(
    data: Path,
    url: str,
    *,
    synthetic: bool,
    series: int = 2000,
    queue: schema.QueueConfig | None = None,
) -> schema.Config:
    return schema.Config(
        # unnamed: the identity comes from url and protobuf_message
        endpoint=[
            schema.EndpointConfig(
                url=url,
                queue_config=queue or schema.QueueConfig(batch_send_deadline=0.2, max_shards=4),
            )
        ],
        storage=schema.StorageConfig(path=str(data)),
        synthetic=schema.SyntheticConfig(series=series, metrics=10, interval=0.1)
        if synthetic
        else None,
    )


def test_clean_restart_resends_nothing(tmp_path: Path) -> None:
    receiver = ThreadReceiver()
    url = receiver.receiver.url
    data = tmp_path / "data"
    try:
        for _ in range(3):
            engine = Engine(_config(data, url, synthetic=True, series=10000), serve_metrics=False)
            engine.start()
            target = receiver.samples + 20_000
            wait_until(lambda target=target: receiver.samples > target, timeout=60)
            engine.stop()
        engine = Engine(_config(data, url, synthetic=False), serve_metrics=False)
        engine.start()
        try:
            in_wal = wal_samples(data / "wal")
            received = settled(lambda: receiver.samples, in_wal)
        finally:
            engine.stop()
        assert received == in_wal, f"{received - in_wal} samples re-sent"
    finally:
        receiver.close()


def _samples_before(wal_dir: Path, position: tuple[int, int]) -> int:
    return sum(
        count_samples(record.data)
        for segment in list_segments(wal_dir)
        for record in iter_segment(segment.path, segment.index)
        if (record.segment, record.end) <= position
    )


def test_a_restart_while_the_receiver_refuses_resends_nothing(tmp_path: Path) -> None:
    """One shard sends 333 samples at a time from records of 2,000: when the receiver
    starts refusing, the last batch it took ended inside a record. The stop saves
    what was delivered beyond the position, and the next start skips it."""
    receiver = ThreadReceiver()
    url = receiver.receiver.url
    data = tmp_path / "data"
    queue = schema.QueueConfig(
        min_shards=1,
        max_shards=1,
        max_samples_per_send=333,
        batch_send_deadline=0.2,
        min_backoff=0.05,
        max_backoff=0.2,
    )

    try:
        engine = Engine(_config(data, url, synthetic=True, queue=queue), serve_metrics=False)
        engine.start()
        try:
            wait_until(lambda: receiver.samples > 20_000, timeout=60)
            receiver.receiver.set_fault("error_5xx", status=503)
            retried = engine.registry.total("prometheus_remote_storage_samples_retried_total")
            wait_until(
                lambda: (
                    engine.registry.total("prometheus_remote_storage_samples_retried_total")
                    > retried
                    and engine.registry.total("rwconsole_remote_requests_in_flight") == 0
                ),
                timeout=60,
            )
        finally:
            engine.stop()
        received = receiver.samples
        (entry,) = json.loads((data / "remote-progress.json").read_text())["queues"].values()
        before = _samples_before(data / "wal", (entry["segment"], entry["offset"]))
        ahead = entry.get("delivered_ahead", {}).get("items", 0)
        # Kept whole until the position passes the batch's newest record: the batch
        # that straddles the position hands on also what lies before it.
        assert received - before <= ahead < received - before + 333
        receiver.receiver.set_fault("ok")
        engine = Engine(_config(data, url, synthetic=False, queue=queue), serve_metrics=False)
        engine.start()
        try:
            in_wal = wal_samples(data / "wal")
            again = settled(lambda: receiver.samples, in_wal)
        finally:
            engine.stop()
        assert again == in_wal, f"{again - in_wal} samples sent twice (or lost if < 0)"
        saved = json.loads((data / "remote-progress.json").read_text())["queues"]
        assert "delivered_ahead" not in next(iter(saved.values()))
    finally:
        receiver.close()


def test_items_saved_beyond_a_wal_end_that_is_gone_are_not_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A saved set of items delivered ahead names the WAL end it lay before; when the
    WAL no longer reaches there (its tail was lost), other records would be read
    in its place, so the set is dropped and says why."""
    receiver = ThreadReceiver()
    data = tmp_path / "data"
    try:
        engine = Engine(_config(data, receiver.receiver.url, synthetic=True), serve_metrics=False)
        engine.start()
        try:
            wait_until(lambda: receiver.samples > 2_000, timeout=60)
        finally:
            engine.stop()
        path = data / "remote-progress.json"
        saved = json.loads(path.read_text())
        (entry,) = saved["queues"].values()
        entry["delivered_ahead"] = DeliveredAhead.of(
            (entry["segment"] + 5, 0), [(([1], [1]), ([], []), ([], []))]
        ).to_json()
        path.write_text(json.dumps(saved))
        engine = Engine(_config(data, receiver.receiver.url, synthetic=False), serve_metrics=False)
        with caplog.at_level(logging.WARNING, logger="rwconsole.engine"):
            engine.start()
            engine.stop()
        assert "the WAL no longer holds the records up to" in caplog.text
        (entry,) = json.loads(path.read_text())["queues"].values()
        assert "delivered_ahead" not in entry
    finally:
        receiver.close()


def _write_config(path: Path, data: Path, url: str, *, series: int) -> int:
    """Write a ``run`` config; returns its metrics port (open once the engine runs)."""
    port = free_port()
    synthetic = f'[synthetic]\nseries = {series}\nmetrics = 10\ninterval = "100ms"\n'
    path.write_text(
        f"""
[storage]
path = "{data}"

[http]
listen_address = "127.0.0.1:{port}"

{synthetic if series else ""}
[[endpoint]]
url = "{url}"

[endpoint.queue_config]
batch_send_deadline = "200ms"
max_shards = 4
"""
    )
    return port


def _vm_rows(vm: VictoriaMetrics) -> int:
    """Rows VictoriaMetrics took in by remote write, duplicates included (it counts them all)."""
    text = httpx.get(f"http://127.0.0.1:{vm.port}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith('vm_rows_inserted_total{type="promremotewrite"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    raise AssertionError("vm_rows_inserted_total not found")


@pytest.mark.peer
def test_kill_9_resends_under_one_percent_of_a_minute_at_100k_per_second(
    tmp_path: Path, processes: ProcessManager
) -> None:
    """Duplicates after kill -9 are what was in flight plus at most one progress interval.

    1 % of a minute at 100k samples/s is 60,000 samples (0.6 s of traffic); with
    progress written every ``PROGRESS_INTERVAL`` the re-sent share stays well below.
    """
    rate = 100_000
    vm = VictoriaMetrics(processes, tmp_path / "vm").start()
    data = tmp_path / "data"
    feeding, draining = tmp_path / "feed.toml", tmp_path / "drain.toml"
    _write_config(feeding, data, vm.write_url, series=rate // 10)
    drain_port = _write_config(draining, data, vm.write_url, series=0)
    run = [sys.executable, "-m", "rwconsole", "run", "--config"]
    with open(tmp_path / "feed.log", "wb") as log:
        proc = processes.start([*run, str(feeding)], stderr=log)
    wait_until(lambda: _vm_rows(vm) > 5 * rate, timeout=90)
    started, at_start = time.monotonic(), _vm_rows(vm)
    time.sleep(2.0)
    delivery_rate = (_vm_rows(vm) - at_start) / (time.monotonic() - started)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    in_wal = wal_samples(data / "wal")

    with open(tmp_path / "drain.log", "wb") as log:
        proc = processes.start([*run, str(draining)], stderr=log)
    wait_for_port(drain_port, timeout=60)
    received = settled(lambda: _vm_rows(vm), in_wal, quiet=2.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    resent = received - in_wal
    print(
        f"kill -9 while delivering {delivery_rate:,.0f} samples/s: {resent:,} re-sent = "
        f"{resent / delivery_rate:.2f} s of traffic = "
        f"{100 * resent / (60 * delivery_rate):.2f} % of a minute "
        f"(progress interval {PROGRESS_INTERVAL} s)"
    )
    assert resent >= 0, f"{-resent} samples lost"
    assert resent < 0.01 * 60 * rate
    assert resent < 0.01 * 60 * delivery_rate
