"""``rwconsole wal replay`` of a WAL written by Prometheus in agent mode, with a checkpoint.

The WAL comes from a Prometheus agent scraping a loopback target whose every
series serves the number of requests it has answered. The oracles: the WAL
decoded by the project's reader (``rwconsole.wal.tools.iter_dump``, already
checked against Prometheus' own remote-write stream in tests/wal), and the
target's answers (each series carries one value per scrape, counting up).
``promtool tsdb dump`` reads TSDB blocks only; an agent data directory has
none, so it cannot serve as the oracle here.
"""

from __future__ import annotations

import math
import os
import signal
import struct
import subprocess
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import ProcessManager, free_port, peer_binary, wait_for_port, wait_until
from peers import VictoriaMetrics

from rwconsole.protocol import decode
from rwconsole.wal import tools
from tests.engine.text_targets import text_targets

pytestmark = pytest.mark.timeout(240)

SERIES = 20


class _Answers:
    """The target's body: every series carries the number of requests answered so far."""

    def __init__(self) -> None:
        self.answered = 0
        self.lock = threading.Lock()

    def __call__(self, path: str) -> bytes:
        with self.lock:
            self.answered += 1
            n = self.answered
        return "".join(f'replay_counter{{series="{i}"}} {n}\n' for i in range(SERIES)).encode()


def _checkpoint_with_data(wal: Path) -> bool:
    """A finished checkpoint holding data, and data in a segment after it."""
    try:
        done = [cp for cp in wal.glob("checkpoint.*") if cp.suffix[1:].isdigit()]
        return any(any(f.stat().st_size > 0 for f in cp.iterdir()) for cp in done) and any(
            s.stat().st_size > 0 for s in wal.glob("0*")
        )
    except FileNotFoundError:  # a checkpoint or segment went while we looked
        return False


@pytest.fixture(scope="module")
def agent_wal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stopped agent's data directory whose WAL has a checkpoint holding samples."""
    binary = peer_binary("prometheus")
    base = tmp_path_factory.mktemp("agent")
    with text_targets(1, _Answers()) as (target,):
        port = free_port()
        config = base / "agent.yml"
        # The remote write goes nowhere: nothing is ever sent, so each truncation
        # folds the old segments into a checkpoint that keeps every sample.
        config.write_text(
            "global:\n  scrape_interval: 100ms\n  scrape_timeout: 100ms\n"
            "scrape_configs:\n  - job_name: target\n    static_configs:\n"
            f"      - targets: ['{target}']\n"
            f"remote_write:\n  - url: http://127.0.0.1:{free_port()}/api/v1/write\n"
        )
        processes = ProcessManager()
        data = base / "data"
        try:
            processes.start(
                [
                    binary,
                    "--enable-feature=agent",
                    f"--config.file={config}",
                    f"--storage.agent.path={data}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.agent.wal-truncate-frequency=1s",
                    "--storage.agent.retention.min-time=1s",
                    "--storage.agent.retention.max-time=1h",
                ]
            )
            wait_for_port(port)
            wait_until(lambda: _checkpoint_with_data(data / "wal"), timeout=90, interval=0.2)
        finally:
            processes.stop_all()
    return data


def _wal_samples(data: Path) -> list[tuple[tuple[tuple[str, str], ...], int, int]]:
    """(labels, t, value bits) of every float sample, in WAL order."""
    return [
        (item.labels, item.timestamp, struct.unpack(">Q", struct.pack(">d", item.value))[0])
        for item in tools.iter_dump(tools.resolve_wal_dir(data))
        if item.kind == "sample"
    ]


def _replay(data: Path, url: str, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return subprocess.Popen(
        [sys.executable, "-m", "rwconsole", "wal", "replay", str(data), "--url", url, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def test_agent_wal_has_checkpoint_samples(agent_wal: Path) -> None:
    wal = agent_wal / "wal"
    cps = list(wal.glob("checkpoint.*"))
    assert cps, "the agent wrote no checkpoint"
    samples = _wal_samples(agent_wal)
    counters = [s for s in samples if ("__name__", "replay_counter") in s[0]]
    assert len(counters) >= 3 * SERIES
    # The target's answers: per series one value per scrape, strictly increasing.
    per_series: dict[object, list[float]] = {}
    for labels, _, bits in counters:
        per_series.setdefault(labels, []).append(struct.unpack(">d", struct.pack(">Q", bits))[0])
    assert len(per_series) == SERIES
    for values in per_series.values():
        real = [v for v in values if not math.isnan(v)]
        assert real == sorted(set(real))


def test_replay_into_victoria_metrics(
    agent_wal: Path, processes: ProcessManager, tmp_path: Path
) -> None:
    vm = VictoriaMetrics(processes, tmp_path / "vm").start()
    expected = _wal_samples(agent_wal)
    proc = _replay(agent_wal, vm.write_url, "--progress", str(tmp_path / "progress.json"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out.decode(), err.decode())
    assert f"accepted: {len(expected):,} items" in out.decode()
    exported = vm.export('{__name__=~".+"}')
    got = Counter(
        (labels, t, struct.unpack(">Q", struct.pack(">d", v))[0])
        for labels, rows in exported.items()
        for t, v in rows
        # JSON has no NaN: the export writes a staleness marker's NaN as null.
        if v is not None and not math.isnan(v)
    )
    want = Counter(
        (labels, t, bits)
        for labels, t, bits in expected
        if not math.isnan(struct.unpack(">d", struct.pack(">Q", bits))[0])
    )
    assert got == want


class _CountingReceiver:
    """Records every (labels, t) a remote-write 1.0 request carried, duplicates included."""

    def __init__(self) -> None:
        self.received: list[tuple[object, int]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = decode.decode_write_request(
                    body, self.headers.get("Content-Type"), self.headers.get("Content-Encoding")
                )
                with receiver.lock:
                    for series in request.series:
                        receiver.received.extend((series.labels, t) for t, _ in series.samples)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/write"

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_interrupted_replay_resumes_without_duplicates(agent_wal: Path, tmp_path: Path) -> None:
    expected = _wal_samples(agent_wal)
    receiver = _CountingReceiver()
    progress = tmp_path / "progress.json"
    try:
        rate = str(max(50, len(expected) // 8))
        first = _replay(agent_wal, receiver.url, "--progress", str(progress), "--rate", rate)
        try:
            wait_until(lambda: receiver.count() > 0, timeout=60)
            first.send_signal(signal.SIGINT)
            out, err = first.communicate(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(timeout=10)
        assert first.returncode == 1, (out.decode(), err.decode())
        assert "interrupted" in out.decode()
        sent_first = receiver.count()
        assert 0 < sent_first < len(expected)
        second = _replay(agent_wal, receiver.url, "--progress", str(progress))
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, (out.decode(), err.decode())
        third = _replay(agent_wal, receiver.url, "--progress", str(progress))
        out, _ = third.communicate(timeout=60)
        assert third.returncode == 0 and "already replayed" in out.decode()
    finally:
        receiver.close()
    received = Counter(receiver.received)
    assert max(received.values()) == 1, "a sample was sent twice"
    assert set(received) == {(labels, t) for labels, t, _ in expected}


def test_replay_refuses_a_running_agents_directory(
    processes: ProcessManager, tmp_path: Path
) -> None:
    data = tmp_path / "agent"
    config = tmp_path / "agent.yml"
    config.write_text("global:\n  scrape_interval: 1h\n")
    port = free_port()
    processes.start(
        [
            peer_binary("prometheus"),
            "--enable-feature=agent",
            f"--config.file={config}",
            f"--storage.agent.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.agent.use-lockfile",
        ]
    )
    wait_for_port(port)
    wait_until(lambda: (data / "lock").exists() and any((data / "wal").glob("0*")), timeout=30)
    proc = _replay(data, "http://127.0.0.1:9/api/v1/write")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out.decode(), err.decode())
    assert "in use" in err.decode() and "--force" in err.decode()
