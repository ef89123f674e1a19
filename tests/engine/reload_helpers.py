"""Helpers of the reload tests: a config writer, a /metrics poller, a self-metric reader."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx

from rwconsole.config.load import load_config
from rwconsole.engine import Engine
from rwconsole.labels import Labels
from rwconsole.model import is_stale_nan


def write_config(
    path: Path,
    data_dir: Path,
    listen: str,
    endpoints: dict[str, tuple[str, int]],
    targets: list[str],
    *,
    job: str = "reload",
    interval: str = "100ms",
    scrape_interval: str = "1s",
    lifecycle: bool = False,
) -> Path:
    """Synthetic series every ``interval``, a scrape job over ``targets`` and
    ``endpoints`` (name → (url, max_shards))."""
    quoted = ", ".join(f'"{t}"' for t in targets)
    text = f"""
[storage]
path = "{data_dir}"

[http]
listen_address = "{listen}"
enable_lifecycle = {str(lifecycle).lower()}

[synthetic]
series = 20
metrics = 2
interval = "{interval}"

[[scrape]]
job_name = "{job}"
scrape_interval = "{scrape_interval}"
scrape_timeout = "{scrape_interval}"
targets = [{quoted}]
"""
    for name, (url, shards) in endpoints.items():
        text += f"""
[[endpoint]]
name = "{name}"
url = "{url}"

[endpoint.queue_config]
max_shards = {shards}
batch_send_deadline = "50ms"
min_backoff = "50ms"
"""
    path.write_text(text)
    return path


@contextlib.contextmanager
def running_engine(path: Path, flush_deadline: float = 5.0) -> Iterator[Engine]:
    """An engine on the config file ``path``, always stopped (stopping twice is fine)."""
    engine = Engine(load_config(path), config_path=path, flush_deadline=flush_deadline)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


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


def stale_instances(table: Mapping[Labels, Sequence[tuple[int, float | None]]]) -> set[str]:
    """Instances with staleness markers (None: a receiver's null) that no failed scrape wrote.

    A failed scrape (``up`` 0) rightly ends the target's series at that timestamp; on a
    loaded machine a scrape can time out, so those markers are no evidence against a reload.
    """
    failed = {
        (dict(labels).get("instance"), t)
        for labels, points in table.items()
        if dict(labels).get("__name__") == "up"
        for t, v in points
        if v == 0
    }
    found = set()
    for labels, points in table.items():
        instance = dict(labels).get("instance", "")
        if any((v is None or is_stale_nan(v)) and (instance, t) not in failed for t, v in points):
            found.add(instance)
    return found
