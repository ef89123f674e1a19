"""A ``rwconsole run`` service for admin tests: config, process, socket, ctl."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import ProcessManager, free_port, wait_until


def metric(address: str, name: str, remote_name: str | None = None) -> float | None:
    try:
        text = httpx.get(f"http://{address}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head == name or (remote_name and f'remote_name="{remote_name}"' in head):
            return float(value)
    return None


class Service:
    """``rwconsole run`` on a synthetic source, sending to ``receiver_url``."""

    def __init__(
        self, processes: ProcessManager, tmp: Path, receiver_url: str, admin: str = ""
    ) -> None:
        self.processes = processes
        self.data = tmp / "data"
        self.config = tmp / "rw.toml"
        self.log = tmp / "rw.log"
        self.metrics = f"127.0.0.1:{free_port()}"
        self.config.write_text(
            f"""
[storage]
path = "{self.data}"

[http]
listen_address = "{self.metrics}"

[synthetic]
series = 50
interval = "200ms"

[[endpoint]]
name = "vm"
url = "{receiver_url}"

[endpoint.queue_config]
max_shards = 5
batch_send_deadline = "100ms"
{admin}
"""
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.data / "rwconsole.sock"

    def start(self) -> Service:
        with open(self.log, "ab") as stderr:
            self.proc = self.processes.start(
                [sys.executable, "-m", "rwconsole", "run", "--config", str(self.config)],
                stderr=stderr,
            )
        wait_until(lambda: self.socket.exists() and self.out_total() > 0)
        return self

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout=60)

    def out_total(self) -> float:
        return metric(self.metrics, "prometheus_remote_storage_samples_total", "vm") or 0.0

    def ctl(self, *args: str, target: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rwconsole", "ctl", target or str(self.data), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ctl_json(self, *args: str) -> dict[str, object]:
        done = self.ctl(*args, "--json")
        assert done.returncode == 0, done.stderr + done.stdout
        data: dict[str, object] = json.loads(done.stdout)
        return data
