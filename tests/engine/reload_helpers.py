"""Helpers of the reload tests: a /metrics poller and a self-metric reader."""

from __future__ import annotations

import threading

import httpx


class MetricsPoller:
    """Polls /metrics every 20 ms in a thread; every failed request is kept."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(0.02):
                try:
                    response = client.get(f"http://{self.address}/metrics")
                    response.raise_for_status()
                    self.ok += 1
                except httpx.HTTPError as err:
                    self.failures.append(repr(err))

    def __enter__(self) -> MetricsPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def metric(address: str, name: str) -> float:
    for line in httpx.get(f"http://{address}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")
