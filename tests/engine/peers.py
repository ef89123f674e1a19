"""Real receivers from Debian's packages, started on loopback for a test."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from conftest import ProcessManager, free_port, peer_binary, wait_for_port

from rwconsole.labels import Labels
from rwconsole.protocol import encode


class VictoriaMetrics:
    def __init__(self, processes: ProcessManager, data_dir: Path, port: int | None = None) -> None:
        self.binary = peer_binary("victoria-metrics")
        self.processes = processes
        self.data_dir = data_dir
        self.port = port or free_port()
        self.proc = None

    @property
    def write_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/write"

    def start(self) -> VictoriaMetrics:
        self.proc = self.processes.start(
            [
                self.binary,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.data_dir}",
                "-retentionPeriod=100y",
                "-search.latencyOffset=0s",
                "-dedup.minScrapeInterval=0",
            ]
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)

    def export(self, match: str) -> dict[tuple[tuple[str, str], ...], list[tuple[int, float]]]:
        """Every raw sample of the matching series: labels → [(t_ms, value)]."""
        httpx.get(f"http://127.0.0.1:{self.port}/internal/force_flush", timeout=10)
        response = httpx.get(
            f"http://127.0.0.1:{self.port}/api/v1/export", params={"match[]": match}, timeout=30
        )
        response.raise_for_status()
        result: dict[tuple[tuple[str, str], ...], list[tuple[int, float]]] = {}
        for line in response.text.splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            labels = tuple(sorted(row["metric"].items()))
            result[labels] = list(zip(row["timestamps"], row["values"], strict=True))
        return result


class PrometheusReceiver:
    def __init__(self, processes: ProcessManager, data_dir: Path) -> None:
        self.binary = peer_binary("prometheus")
        self.processes = processes
        self.data_dir = data_dir
        self.port = free_port()

    @property
    def write_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/write"

    def start(self, *extra: str) -> PrometheusReceiver:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1h\n")
        self.processes.start(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-remote-write-receiver",
                *extra,
            ]
        )
        wait_for_port(self.port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/-/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("prometheus did not become ready")

    def api(self, path: str, **params: str) -> dict:
        response = httpx.get(f"http://127.0.0.1:{self.port}{path}", params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def raw_samples(
        self, selector: str, window: str = "2h"
    ) -> dict[tuple[tuple[str, str], ...], list[tuple[int, str]]]:
        """Raw samples through a range-vector query: labels → [(t_ms, value string)]."""
        data = self.api("/api/v1/query", query=f"{selector}[{window}]")
        result = {}
        for row in data["data"]["result"]:
            labels = tuple(sorted(row["metric"].items()))
            result[labels] = [(round(float(t) * 1000), v) for t, v in row["values"]]
        return result


def push_v1(port: int, labels: list[Labels], timestamp: int, values: list[float]) -> None:
    """POST one remote-write 1.0 request (one sample per series) to 127.0.0.1:``port``."""
    series = [encode.encode_series_v1(s) for s in labels]
    body = encode.compress(
        encode.encode_write_request_v1(series, [timestamp] * len(labels), values)
    )
    response = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/write",
        content=body,
        headers={
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "snappy",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
        },
        timeout=10,
    )
    assert response.status_code in (200, 204), response.text
