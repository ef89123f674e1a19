"""A full disk under load: back-pressure, no corruption, nothing acknowledged lost or doubled.

The WAL lives on a small tmpfs (mounting needs root: skipped elsewhere, failed
under RWCONSOLE_REQUIRE_PEERS=1), the ``[receiver]`` source takes pushes while
VictoriaMetrics is down, then space is freed and VictoriaMetrics started. The
budget tests use an ordinary directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ProcessManager, free_port, missing_requirement, wait_for_port, wait_until
from peers import VictoriaMetrics

from rwconsole.config import schema
from rwconsole.engine import Engine
from rwconsole.labels import Labels, make_labels
from rwconsole.protocol import encode
from rwconsole.wal import tools

pytestmark = pytest.mark.peer

SEGMENT = 64 * 1024
SERIES = 100


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        missing_requirement("mounting a size-limited tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        missing_requirement(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)
        if os.path.ismount(mount_point):
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def make_engine(data_dir: Path, url: str, port: int, **wal: object) -> Engine:
    wal.setdefault("segment_size", SEGMENT)
    config = schema.Config(
        endpoint=[
            schema.EndpointConfig(
                url=url,
                name="vm",
                queue_config=schema.QueueConfig(
                    batch_send_deadline=0.1, min_backoff=0.05, max_backoff=0.3
                ),
            )
        ],
        storage=schema.StorageConfig(path=str(data_dir)),
        receiver=schema.ReceiverConfig(listen_address=f"127.0.0.1:{port}"),
        wal=schema.WALConfig(**wal),  # type: ignore[arg-type]
    )
    return Engine(config, serve_metrics=False, flush_deadline=2.0)


class Pusher:
    """Pushes one sample per series per request, with a new timestamp each time."""

    def __init__(self, port: int, job: str) -> None:
        self.url = f"http://127.0.0.1:{port}/api/v1/write"
        self.labels: list[Labels] = [
            make_labels({"__name__": "disk_test", "job": job, "i": str(i), "pad": "x" * 40})
            for i in range(SERIES)
        ]
        self.series = [encode.encode_series_v1(s) for s in self.labels]
        self.t0 = int(time.time() * 1000) - 600_000
        self.count = 0
        self.acked: list[int] = []
        self.refused: list[int] = []
        self.client = httpx.Client(timeout=10)

    def push(self) -> httpx.Response:
        t = self.t0 + self.count
        self.count += 1
        values = [float(self.count * 1000 + i) for i in range(SERIES)]
        body = encode.compress(encode.encode_write_request_v1(self.series, [t] * SERIES, values))
        response = self.client.post(
            self.url,
            content=body,
            headers={
                "Content-Type": "application/x-protobuf",
                "Content-Encoding": "snappy",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            },
        )
        if response.status_code in (200, 204):
            self.acked.append(t)
        else:
            assert response.status_code == 503, (response.status_code, response.text)
            assert response.headers.get("Retry-After")
            text = response.text.strip()
            assert text.startswith("WAL ") and "\n" not in text and "Traceback" not in text
            self.refused.append(t)
        return response

    def until_refused(self, refusals: int, limit: int) -> None:
        """Push until ``refusals`` pushes were refused (at most ``limit`` pushes)."""
        for _ in range(limit):
            if self.push().status_code == 503 and len(self.refused) >= refusals:
                return
        raise AssertionError(f"{limit} pushes, {len(self.refused)} refused")


def wait_delivered(vm: VictoriaMetrics, job: str, acked: set[int]) -> dict[int, int]:
    """Wait until every acknowledged push reached VictoriaMetrics; samples per timestamp."""
    return wait_until(
        lambda: (lambda d: d if len(d) >= len(acked) else None)(delivered(vm, job)), timeout=90
    )


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def assert_wal_clean(wal_dir: Path) -> None:
    report = tools.verify(wal_dir)
    assert report.ok, report


def delivered(vm: VictoriaMetrics, job: str) -> dict[int, int]:
    """Samples per timestamp that reached VictoriaMetrics (each push: SERIES samples)."""
    counts: dict[int, int] = {}
    for samples in vm.export(f'{{job="{job}"}}').values():
        for t, _ in samples:
            counts[t] = counts.get(t, 0) + 1
    return counts


def test_full_disk_pushes_back_and_recovers_without_loss(
    tmp_path: Path, small_disk: Path, processes: ProcessManager
) -> None:
    vm = VictoriaMetrics(processes, tmp_path / "vm")
    port = free_port()
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\xff" * (1 << 20))
    engine = make_engine(small_disk / "rw", vm.write_url, port)
    engine.start()
    try:
        wait_for_port(port)
        pusher = Pusher(port, "full")
        # 1. Fill the disk with the receiver down: refusals, not errors.
        pusher.until_refused(5, 20_000)
        assert pusher.refused and pusher.acked
        assert_wal_clean(small_disk / "rw" / "wal")
        rss_full = rss_bytes()
        for _ in range(300):  # failures go on: memory must not grow with them
            pusher.push()
        assert rss_bytes() - rss_full < 32 * 1024 * 1024
        wait_until(lambda: "disk full" in _append_error(engine), timeout=5)
        assert engine.registry.total("rwconsole_wal_append_failures_total") >= 300
        assert_wal_clean(small_disk / "rw" / "wal")
        # 2. Free space: appends resume by themselves.
        ballast.unlink()
        wait_until(lambda: pusher.push().status_code == 204, timeout=20)
        assert_wal_clean(small_disk / "rw" / "wal")
        # 3. The receiver comes back: delivery frees the WAL, every push is taken again.
        vm.start()
        ok_in_a_row = 0
        deadline = time.monotonic() + 90
        while ok_in_a_row < 50 and time.monotonic() < deadline:
            ok_in_a_row = ok_in_a_row + 1 if pusher.push().status_code == 204 else 0
            time.sleep(0.005)
        assert ok_in_a_row >= 50
        assert_wal_clean(small_disk / "rw" / "wal")
        acked = set(pusher.acked)
        got = wait_delivered(vm, "full", acked)
        assert set(got) == acked  # nothing refused was delivered, nothing acked lost
        assert set(got.values()) == {SERIES}  # each sample exactly once
        wait_until(lambda: _append_error(engine) == "", timeout=5)
    finally:
        engine.stop()
    assert_wal_clean(small_disk / "rw" / "wal")


def test_a_disk_smaller_than_a_segment_recovers_once_delivered(
    tmp_path: Path, small_disk: Path, processes: ProcessManager
) -> None:
    """The segment that filled the disk is folded once delivered, though it was the active one."""
    vm = VictoriaMetrics(processes, tmp_path / "vm")
    port = free_port()
    engine = make_engine(small_disk / "rw", vm.write_url, port, segment_size=8 * 1024 * 1024)
    engine.start()
    try:
        wait_for_port(port)
        pusher = Pusher(port, "bigseg")
        pusher.until_refused(3, 20_000)
        assert pusher.refused
        vm.start()
        wait_until(lambda: pusher.push().status_code == 204, timeout=60)
        acked = set(pusher.acked)
        got = wait_delivered(vm, "bigseg", acked)
        assert set(got) == acked and set(got.values()) == {SERIES}
    finally:
        engine.stop()
    assert_wal_clean(small_disk / "rw" / "wal")


def _append_error(engine: Engine) -> str:
    disk = engine.snapshot().disk
    return disk.append_error if disk is not None else "no disk figures"


def _dropped(engine: Engine) -> float:
    return engine.registry.total(
        "prometheus_remote_storage_samples_dropped_total", reason="wal_size_limit"
    )


def _outage_past_the_budget(engine: Engine, port: int, job: str) -> Pusher:
    """Push while the receiver is down until the budget has cut oldest segments."""
    wait_for_port(port)
    pusher = Pusher(port, job)
    for _ in range(1500):  # an outage much longer than the budget holds
        assert pusher.push().status_code == 204
    wait_until(lambda: _dropped(engine) > 0, timeout=20)
    time.sleep(1.5)  # a last budget round
    return pusher


def test_budget_drop_oldest_counts_exactly_what_it_dropped(
    tmp_path: Path, processes: ProcessManager
) -> None:
    vm = VictoriaMetrics(processes, tmp_path / "vm")
    port = free_port()
    budget = 4 * SEGMENT
    engine = make_engine(tmp_path / "rw", vm.write_url, port, max_size=budget)
    engine.start()
    try:
        pusher = _outage_past_the_budget(engine, port, "budget")
        assert engine.wal is not None and engine.wal.size_bytes() <= budget + SEGMENT
        assert_wal_clean(tmp_path / "rw" / "wal")
        snapshot = engine.snapshot()
        assert snapshot.disk is not None and snapshot.disk.limit_bytes == budget
        vm.start()
        sent = len(pusher.acked) * SERIES

        def settled() -> dict[int, int] | None:
            got = delivered(vm, "budget")
            return got if sum(got.values()) + _dropped(engine) >= sent else None

        got = wait_until(settled, timeout=90)
        time.sleep(1.0)
        got = delivered(vm, "budget")
        assert set(got.values()) <= {SERIES}  # nothing twice
        assert sum(got.values()) + _dropped(engine) == sent  # the count is exact
        assert snapshot.disk.samples_dropped > 0
    finally:
        engine.stop()
    assert_wal_clean(tmp_path / "rw" / "wal")


def test_budget_reject_keeps_everything_and_answers_503(
    tmp_path: Path, processes: ProcessManager
) -> None:
    vm = VictoriaMetrics(processes, tmp_path / "vm")
    port = free_port()
    engine = make_engine(
        tmp_path / "rw", vm.write_url, port, max_size=4 * SEGMENT, on_full="reject"
    )
    engine.start()
    try:
        wait_for_port(port)
        pusher = Pusher(port, "reject")
        pusher.until_refused(3, 3000)
        assert pusher.refused and pusher.acked
        assert _dropped(engine) == 0
        wait_until(lambda: "size limit" in _append_error(engine), timeout=5)
        vm.start()
        acked = set(pusher.acked)
        got = wait_delivered(vm, "reject", acked)
        assert set(got) == acked and set(got.values()) == {SERIES}
        # Delivery frees the WAL: pushes are taken again.
        wait_until(lambda: pusher.push().status_code == 204, timeout=30)
    finally:
        engine.stop()
    assert_wal_clean(tmp_path / "rw" / "wal")


def test_budget_cut_then_restart_delivers_or_counts_what_the_queue_held(
    tmp_path: Path, processes: ProcessManager
) -> None:
    """A queue keeps what it took from segments the budget cut and sends it once the
    receiver is back; a restart before that cannot (the WAL no longer holds them), so
    the next start counts them in ``samples_dropped_total{reason="wal_size_limit"}``."""
    vm = VictoriaMetrics(processes, tmp_path / "vm")
    port = free_port()
    budget = 4 * SEGMENT
    engine = make_engine(tmp_path / "rw", vm.write_url, port, max_size=budget)
    engine.start()
    try:
        pusher = _outage_past_the_budget(engine, port, "restart")
        dropped_before = _dropped(engine)
    finally:
        engine.stop()
    progress = json.loads((tmp_path / "rw" / "remote-progress.json").read_text())
    held = progress["queues"]["vm"].get("cut_undelivered", {}).get("wal_size_limit", 0)
    assert held > 0  # the queue had taken samples from cut segments and not sent them
    sent = len(pusher.acked) * SERIES
    restarted = make_engine(tmp_path / "rw", vm.write_url, port, max_size=budget)
    restarted.start()
    try:
        assert _dropped(restarted) == held
        vm.start()

        def settled() -> dict[int, int] | None:
            got = delivered(vm, "restart")
            total = sum(got.values()) + dropped_before + _dropped(restarted)
            return got if total >= sent else None

        wait_until(settled, timeout=90)
        time.sleep(1.0)
        got = delivered(vm, "restart")
        assert set(got.values()) <= {SERIES}  # nothing twice
        assert sum(got.values()) + dropped_before + _dropped(restarted) == sent
    finally:
        restarted.stop()
    progress = json.loads((tmp_path / "rw" / "remote-progress.json").read_text())
    assert "cut_undelivered" not in progress["queues"]["vm"]
    assert_wal_clean(tmp_path / "rw" / "wal")
