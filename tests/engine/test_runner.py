"""``rwconsole run``: a real subprocess, signals, config reload, exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from conftest import ProcessManager, free_port, wait_for_port, wait_until


def metric(address: str, name: str, remote_name: str) -> float | None:
    try:
        text = httpx.get(f"http://{address}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith(name + "{") and f'remote_name="{remote_name}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def write_config(path: Path, data_dir: Path, metrics: str, receiver_url: str, shards: int) -> None:
    path.write_text(
        f"""
[storage]
path = "{data_dir}"

[http]
listen_address = "{metrics}"

[synthetic]
series = 50
interval = "200ms"

[[endpoint]]
name = "demo"
url = "{receiver_url}"

[endpoint.queue_config]
max_shards = {shards}
batch_send_deadline = "100ms"
"""
    )


def test_signals_reload_and_clean_stop(tmp_path: Path, processes: ProcessManager) -> None:
    receiver_port = free_port()
    processes.start(
        [sys.executable, "-m", "rwconsole.demo.receiver", "--listen", f"127.0.0.1:{receiver_port}"]
    )
    wait_for_port(receiver_port)
    url = f"http://127.0.0.1:{receiver_port}/api/v1/write"
    metrics_address = f"127.0.0.1:{free_port()}"
    config = tmp_path / "rw.toml"
    write_config(config, tmp_path / "data", metrics_address, url, shards=5)
    log = tmp_path / "rw.log"
    with open(log, "wb") as stderr:
        proc = processes.start(
            [sys.executable, "-m", "rwconsole", "run", "--config", str(config)], stderr=stderr
        )
    wait_until(
        lambda: (
            (metric(metrics_address, "prometheus_remote_storage_samples_total", "demo") or 0) > 100
        )
    )
    assert metric(metrics_address, "prometheus_remote_storage_shards_max", "demo") == 5

    # An invalid config on SIGHUP is reported; the pipeline keeps running.
    config.write_text(config.read_text().replace("max_shards = 5", "max_shards = -1"))
    proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "config reload failed" in log.read_text())
    assert "endpoint[0].queue_config.max_shards" in log.read_text()
    assert proc.poll() is None
    before = metric(metrics_address, "prometheus_remote_storage_samples_total", "demo") or 0
    wait_until(
        lambda: (
            (metric(metrics_address, "prometheus_remote_storage_samples_total", "demo") or 0)
            > before
        )
    )

    # A valid one replaces the pipeline.
    write_config(config, tmp_path / "data", metrics_address, url, shards=7)
    proc.send_signal(signal.SIGHUP)
    wait_until(lambda: metric(metrics_address, "prometheus_remote_storage_shards_max", "demo") == 7)

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    progress = json.loads((tmp_path / "data" / "remote-progress.json").read_text())
    assert "demo" in progress["queues"]
    assert "Traceback" not in log.read_text()


def test_exit_codes(tmp_path: Path) -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "rwconsole", "run", "--config", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert "not found" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[endpoint]]\nurl = "http://127.0.0.1:1/x"\n[endpoint.queue_config]\nmax_shards = 0\n'
    )
    invalid = subprocess.run(
        [sys.executable, "-m", "rwconsole", "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert invalid.returncode == 1
    assert "endpoint[0].queue_config.max_shards" in invalid.stderr
    assert "Traceback" not in invalid.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "rwconsole", "run"], capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 2
