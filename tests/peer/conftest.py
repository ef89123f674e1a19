"""A real Prometheus agent remote-writing to the demo receiver, both on loopback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ProcessManager, free_port, peer_binary, wait_for_port, wait_until

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


@pytest.fixture
def prometheus_agent(processes: ProcessManager, tmp_path: Path) -> Iterator[Agent]:
    binary = peer_binary("prometheus")
    receiver = free_port()
    processes.start(
        [sys.executable, "-m", "rwconsole.demo.receiver", "--listen", f"127.0.0.1:{receiver}"]
    )
    wait_for_port(receiver)
    port = free_port()
    config = tmp_path / "agent.yml"
    config.write_text(AGENT_CONFIG.format(port=port, receiver=receiver))
    storage = tmp_path / "agent"
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
        # Before the receiver: an agent whose receiver is gone waits out its flush deadline.
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
