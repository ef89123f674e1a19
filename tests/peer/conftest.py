"""Peers to attach to on loopback: a scriptable metrics page, a real Prometheus agent
remote-writing to the demo receiver."""

from __future__ import annotations

import contextlib
import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from rwconsole.peer import PeerEngine
from tests.conftest import ProcessManager, free_port, peer_binary, wait_for_port, wait_until
from tests.peer.exposition import Queue, page

AGENT_CONFIG = """\
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: self
    static_configs:
      - targets: ['127.0.0.1:{port}']
remote_write:
  - url: http://127.0.0.1:{receiver}/api/v1/write
    name: recv
    queue_config:
      min_shards: 2
      max_shards: 7
      batch_send_deadline: 1s
"""


@dataclass
class Agent:
    metrics_url: str
    storage: Path
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def running_agent(
    processes: ProcessManager, directory: Path, *receiver_options: str
) -> Iterator[Agent]:
    """A Prometheus agent scraping itself into the demo receiver (started with the options)."""
    binary = peer_binary("prometheus")
    receiver = free_port()
    processes.start(
        [
            sys.executable,
            "-m",
            "rwconsole.demo.receiver",
            "--listen",
            f"127.0.0.1:{receiver}",
            *receiver_options,
        ]
    )
    wait_for_port(receiver)
    port = free_port()
    config = directory / "agent.yml"
    config.write_text(AGENT_CONFIG.format(port=port, receiver=receiver))
    storage = directory / "agent"
    process = processes.start(
        [
            binary,
            "--enable-feature=agent",
            f"--config.file={config}",
            f"--storage.agent.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
    )
    wait_for_port(port)
    url = f"http://127.0.0.1:{port}/metrics"
    wait_until(lambda: 'remote_name="recv"' in httpx.get(url, timeout=5).text, timeout=30)
    try:
        yield Agent(url, storage, process)
    finally:
        # Before the receiver, and not gracefully: with unsent samples the agent would
        # wait out its flush deadline (1m).
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def prometheus_agent(processes: ProcessManager, tmp_path: Path) -> Iterator[Agent]:
    with running_agent(processes, tmp_path) as agent:
        yield agent


@dataclass
class Page:
    body: bytes = b""
    status: int = 200
    url: str = ""


@pytest.fixture
def metrics_page() -> Iterator[Page]:
    served = Page(page(Queue("recv", shards=4, desired=3.5)))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(served.status)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(served.body)))
            self.end_headers()
            self.wfile.write(served.body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def engine(metrics_page: Page) -> Iterator[PeerEngine]:
    peer = PeerEngine(metrics_page.url, interval=0.05)
    peer.start()
    try:
        yield peer
    finally:
        peer.stop()
    assert not peer.running
