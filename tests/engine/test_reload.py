"""Config reload in place on a running engine: nothing lost, nothing unchanged disturbed.

A capture receiver on loopback records every sample of every series per URL path,
staleness markers included, and serves the scrape targets.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import reload_helpers
from conftest import free_port, wait_until
from reload_helpers import MetricsPoller, metric, running_engine, stale_instances

from rwconsole.http.server import HttpServer, Request, Response
from rwconsole.labels import Labels
from rwconsole.sources.receiver import decode_write, default_decode

Points = list[tuple[int, float]]


class CaptureReceiver:
    """Remote-write receiver (every path) and scrape targets, on a loop in its own thread."""

    def __init__(self, targets: int = 3) -> None:
        self.received: dict[str, dict[Labels, Points]] = defaultdict(lambda: defaultdict(list))
        self.test_headers: dict[str, set[str | None]] = defaultdict(set)
        """Values of X-Test seen per path."""
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._receiver = HttpServer(self._write)
        self._targets = [HttpServer(self._target) for _ in range(targets)]

    def __enter__(self) -> CaptureReceiver:
        self._thread.start()
        for server in (self._receiver, *self._targets):
            asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", 0), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        for server in (self._receiver, *self._targets):
            asyncio.run_coroutine_threadsafe(server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._receiver.port}/{path}"

    def target(self, index: int) -> str:
        return f"127.0.0.1:{self._targets[index].port}"

    async def _write(self, request: Request) -> Response:
        decoded = decode_write(default_decode(), request)
        with self._lock:
            path = request.path.strip("/")
            self.test_headers[path].add(request.headers.get("x-test"))
            table = self.received[path]
            for series in decoded.series:
                table[series.labels].extend(series.samples)
        return Response(204)

    async def _target(self, request: Request) -> Response:
        return Response(200, b"reload_test_value 1\n", {"Content-Type": "text/plain"})

    def series(self, path: str) -> dict[Labels, Points]:
        with self._lock:
            return {labels: list(points) for labels, points in self.received[path].items()}


def write_config(
    path: Path,
    data_dir: Path,
    listen: str,
    capture: CaptureReceiver,
    *,
    endpoints: dict[str, int],
    targets: list[int],
    lifecycle: bool = False,
) -> Path:
    """The shared test config with endpoints (path → max_shards) and targets of ``capture``."""
    return reload_helpers.write_config(
        path,
        data_dir,
        listen,
        {name: (capture.url(name), shards) for name, shards in endpoints.items()},
        [capture.target(i) for i in targets],
        lifecycle=lifecycle,
    )


@pytest.fixture
def capture() -> Iterator[CaptureReceiver]:
    with CaptureReceiver() as receiver:
        yield receiver


def instance_of(labels: Labels) -> str:
    return dict(labels).get("instance", "")


def test_reload_applies_only_the_difference(tmp_path: Path, capture: CaptureReceiver) -> None:
    listen = f"127.0.0.1:{free_port()}"
    data = tmp_path / "data"
    path = tmp_path / "rw.toml"
    write_config(path, data, listen, capture, endpoints={"a": 2}, targets=[0, 1])
    with running_engine(path) as engine, MetricsPoller(listen) as poller:
        wait_until(lambda: len(capture.series("a")) >= 20 + 2 * 6)
        first_queue = engine.endpoints[0].queue

        # Retune a, add b, add target 2, remove target 1.
        write_config(path, data, listen, capture, endpoints={"a": 5, "b": 3}, targets=[0, 2])
        report = engine.reload().result(60)
        assert report.ok, report
        assert "endpoint a: queue_config changed (queue_config applied live)" in report.changes
        assert "endpoint b added" in report.changes
        assert f"scrape target reload/{capture.target(1)} removed" in " ".join(report.changes)
        assert engine.endpoints[0].queue is first_queue  # a kept its queue
        assert first_queue.settings.max_shards == 5
        assert metric(listen, "rwconsole_config_last_reload_successful") == 1
        wait_until(lambda: capture.target(2) in {instance_of(s) for s in capture.series("a")})
        wait_until(lambda: len(capture.series("b")) >= 20)

        # Remove b while it has data; then bring it back: it resumes where it stopped.
        write_config(path, data, listen, capture, endpoints={"a": 5}, targets=[0, 2])
        report = engine.reload().result(60)
        assert report.changes == ("endpoint b removed (its delivery position is kept)",)
        assert engine.progress is not None and "b" in engine.progress.positions()
        time.sleep(0.5)  # b misses these samples while it is away
        write_config(path, data, listen, capture, endpoints={"a": 5, "b": 3}, targets=[0, 2])
        assert engine.reload().result(60).changes == ("endpoint b added",)
        appended = engine.samples_in.value
        wait_until(lambda: engine.snapshot().samples_in_total > appended + 100)
    # (the poller stops before the engine)
    assert not poller.failures, poller.failures[:3]
    assert poller.ok > 10

    snap = engine.snapshot()
    a, b = capture.series("a"), capture.series("b")
    # a ran throughout: every appended sample arrived exactly once.
    assert sum(map(len, a.values())) == snap.samples_in_total
    # Only the removed target's series were ended; nothing at shutdown.
    assert stale_instances(a) == {capture.target(1)}
    assert not stale_instances(b)
    # b has every sample from its first one on, across its removal.
    synthetic = [labels for labels in a if dict(labels).get("job") == "synthetic"]
    assert len(synthetic) == 20
    for labels in synthetic:
        got = [t for t, _ in b[labels]]
        want = [t for t, _ in a[labels] if t >= got[0]]
        assert got == want, labels


def test_failed_reload_keeps_the_pipeline(tmp_path: Path, capture: CaptureReceiver) -> None:
    listen = f"127.0.0.1:{free_port()}"
    path = tmp_path / "rw.toml"
    write_config(path, tmp_path / "data", listen, capture, endpoints={"a": 2}, targets=[0])
    with running_engine(path) as engine:
        queue = engine.endpoints[0].queue
        path.write_text(path.read_text().replace("max_shards = 2", "max_shards = -1"))
        report = engine.reload().result(60)
        assert not report.ok
        assert "endpoint[0].queue_config.max_shards" in report.error
        assert metric(listen, "rwconsole_config_last_reload_successful") == 0

        # A client that cannot be built fails the reload before anything changed.
        write_config(path, tmp_path / "data", listen, capture, endpoints={"a": 4}, targets=[0])
        text = path.read_text().replace(
            "[endpoint.queue_config]",
            '[endpoint.tls_config]\nca_file = "missing.pem"\n\n[endpoint.queue_config]',
        )
        path.write_text(text)
        report = engine.reload().result(60)
        assert not report.ok and "endpoint a" in report.error, report
        assert queue.settings.max_shards == 2  # the retune was not applied either
        assert engine.running and engine.endpoints[0].queue is queue

        # Restart-only keys are reported, not applied; the rest is.
        other = f"127.0.0.1:{free_port()}"
        write_config(path, tmp_path / "elsewhere", other, capture, endpoints={"a": 4}, targets=[0])
        report = engine.reload().result(60)
        assert report.ok and report.restart_needed == ("storage.path", "http.listen_address")
        assert "needs a restart, not applied: storage.path, http.listen_address" in report.summary()
        assert queue.settings.max_shards == 4
        assert metric(listen, "rwconsole_config_last_reload_successful") == 1
        assert metric(listen, "rwconsole_config_last_reload_success_timestamp_seconds") > 0


def test_lifecycle_reload_endpoint(tmp_path: Path, capture: CaptureReceiver) -> None:
    listen = f"127.0.0.1:{free_port()}"
    path = tmp_path / "rw.toml"
    write_config(path, tmp_path / "data", listen, capture, endpoints={"a": 2}, targets=[0])
    with running_engine(path) as engine:
        url = f"http://{listen}/-/reload"
        refused = httpx.post(url, timeout=30)
        assert refused.status_code == 403
        assert refused.text == "Lifecycle API is not enabled.\n"
        # Turning the lifecycle API on is itself a reload (by signal or console).
        enabled = partial(write_config, path, tmp_path / "data", listen, capture, lifecycle=True)
        enabled(endpoints={"a": 2}, targets=[0])
        assert engine.reload().result(60).ok
        enabled(endpoints={"a": 3}, targets=[0])
        done = httpx.post(url, timeout=30)
        assert done.status_code == 200, done.text
        assert "queue_config applied live" in done.text
        assert engine.endpoints[0].queue.settings.max_shards == 3
        assert httpx.put(url, timeout=30).status_code == 200
        assert httpx.get(url, timeout=30).status_code == 405
        path.write_text("[[endpoint]\n")
        failed = httpx.post(url, timeout=30)
        assert failed.status_code == 500
        assert "config reload failed" in failed.text
        assert engine.running


def test_sighup_reloads_in_place_and_never_exits(tmp_path: Path, capture: CaptureReceiver) -> None:
    listen = f"127.0.0.1:{free_port()}"
    path = tmp_path / "rw.toml"
    write_config(path, tmp_path / "data", listen, capture, endpoints={"a": 2}, targets=[0])
    log = tmp_path / "rw.log"
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rwconsole", "run", "--config", str(path)], stderr=stderr
        )
    try:
        wait_until(lambda: len(capture.series("a")) >= 20)
        with MetricsPoller(listen) as poller:
            # A receiver address that cannot be bound fails the apply: reported, kept running.
            with socket.socket() as taken:
                taken.bind(("127.0.0.1", 0))
                taken.listen()
                busy = f"127.0.0.1:{taken.getsockname()[1]}"
                path.write_text(path.read_text() + f'\n[receiver]\nlisten_address = "{busy}"\n')
                proc.send_signal(signal.SIGHUP)
                wait_until(lambda: "config reload failed" in log.read_text())
            assert f"receiver.listen_address: cannot listen on {busy}" in log.read_text()
            assert proc.poll() is None
            assert metric(listen, "rwconsole_config_last_reload_successful") == 0
            write_config(
                path, tmp_path / "data", listen, capture, endpoints={"a": 2, "b": 2}, targets=[0]
            )
            proc.send_signal(signal.SIGHUP)
            wait_until(lambda: len(capture.series("b")) >= 20)
            assert "config reloaded: endpoint b added" in log.read_text()
            assert metric(listen, "rwconsole_config_last_reload_successful") == 1
        assert not poller.failures, poller.failures[:3]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "Traceback" not in log.read_text()
    assert not stale_instances(capture.series("a"))


def test_reload_rebuilds_clients_relabels_and_restarts_one_endpoint(
    tmp_path: Path, capture: CaptureReceiver
) -> None:
    listen = f"127.0.0.1:{free_port()}"
    path = tmp_path / "rw.toml"
    endpoints = {"ref": 2, "a": 2}

    def configure(*, header: str = "", cluster: str = "", a_path: str = "a") -> None:
        write_config(path, tmp_path / "data", listen, capture, endpoints=endpoints, targets=[0])
        text = path.read_text()
        if header:
            text = text.replace(
                'name = "a"\n', f'name = "a"\nheaders = {{ X-Test = "{header}" }}\n'
            )
        if cluster:
            text = f'external_labels = {{ cluster = "{cluster}" }}\n' + text
        text = text.replace(f'url = "{capture.url("a")}"', f'url = "{capture.url(a_path)}"')
        path.write_text(text)

    configure()
    with running_engine(path) as engine:
        wait_until(lambda: len(capture.series("a")) >= 20)
        queue = engine.endpoints[1].queue
        configure(header="two")
        report = engine.reload().result(60)
        assert report.changes == ("endpoint a: headers changed (HTTP client rebuilt)",)
        wait_until(lambda: "two" in capture.test_headers["a"])
        assert engine.endpoints[1].queue is queue
        assert capture.test_headers["ref"] == {None}

        configure(header="two", cluster="x")
        report = engine.reload().result(60)
        assert report.changes == ("external_labels changed (every endpoint relabels its series)",)
        for name in ("ref", "a"):
            wait_until(lambda name=name: any(("cluster", "x") in s for s in capture.series(name)))

        configure(header="two", cluster="x", a_path="a2")
        report = engine.reload().result(60)
        assert report.changes == ("endpoint a: url changed (restarted at its delivered position)",)
        wait_until(lambda: len(capture.series("a2")) >= 20)
        assert engine.endpoints[1].queue is not queue
    got: dict[Labels, list[int]] = defaultdict(list)
    want: dict[Labels, list[int]] = defaultdict(list)
    for name, table in (("a", got), ("a2", got), ("ref", want)):
        for labels, points in capture.series(name).items():
            if dict(labels).get("job") == "synthetic":
                plain = tuple(pair for pair in labels if pair[0] != "cluster")
                table[plain].extend(t for t, _ in points)
    assert len(want) == 20
    # a, then a2, got every sample ref got: none lost, none twice.
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in want.items()}
    assert all(len(set(v)) == len(v) for v in got.values())
