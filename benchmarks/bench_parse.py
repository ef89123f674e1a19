"""Benchmark the exposition parser, the scrape append path and the synthetic source.

Usage: python benchmarks/bench_parse.py [--series 100000] [--repeat 5]

Measures samples/s for
- a real node_exporter payload (captured from prometheus-node-exporter started
  on a free loopback port, when installed), cold (labels parsed) and warm
  (every series key known, as in a steady scrape);
- a generated payload of --series series, text format and OpenMetrics;
- ScrapeLoop's append step into a counting appender (warm cache);
- SyntheticSource.tick() into a counting appender.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace

import httpx

from rwconsole.labels import Labels
from rwconsole.sources.scrape import ScrapeLoop
from rwconsole.sources.synthetic import SyntheticSource
from rwconsole.sources.textparse import Format, parse


class CountingAppender:
    """Counts appender calls; refs are handed out in order."""

    def __init__(self) -> None:
        self.next_ref = 1
        self.samples = 0

    def series_refs(self, labels: Sequence[Labels]) -> list[int]:
        refs = list(range(self.next_ref, self.next_ref + len(labels)))
        self.next_ref += len(labels)
        return refs

    def append_samples(
        self, refs: Sequence[int], timestamps: object, values: Sequence[float]
    ) -> None:
        self.samples += len(values)

    def append_exemplars(self, exemplars: Sequence[object]) -> None:
        pass

    def append_histograms(self, histograms: Sequence[object]) -> None:
        pass

    def append_metadata(self, entries: Sequence[object]) -> None:
        pass

    def commit(self) -> None:
        pass


def best_of(repeat: int, fn: Callable[[], int]) -> tuple[float, int]:
    """(best seconds, items) over ``repeat`` runs."""
    best = float("inf")
    items = 0
    for _ in range(repeat):
        started = time.perf_counter()
        items = fn()
        best = min(best, time.perf_counter() - started)
    return best, items


def report(name: str, seconds: float, items: int) -> None:
    rate = items / seconds if seconds else float("inf")
    print(f"{name:<66} {items:>7} samples  {seconds * 1000:9.2f} ms  {rate / 1e6:7.2f} M samples/s")


def capture_node_exporter() -> bytes | None:
    binary = shutil.which("prometheus-node-exporter")
    if binary is None:
        print("prometheus-node-exporter not installed: skipping the node_exporter payload")
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/metrics",
                    headers={"Accept": "text/plain;version=0.0.4"},
                    timeout=5,
                )
                if response.status_code == 200:
                    return response.content
            except httpx.HTTPError:
                time.sleep(0.1)
        return None
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def generated_payload(series: int, openmetrics: bool) -> bytes:
    rng = random.Random(1)
    lines = []
    per_family = 1000
    for family in range(max(1, series // per_family)):
        name = f"app_requests_{family}_total"
        lines.append(f"# HELP {name} Requests of family {family}.")
        lines.append(f"# TYPE {name} counter")
        for i in range(per_family):
            lines.append(
                f'{name}{{instance="10.0.{i % 256}.{i // 256}:9100",pod="api-{i}-7f9c",'
                f'method="{("GET", "POST")[i % 2]}",status="{200 + i % 5}"}} '
                f"{rng.random() * 1e6:.3f}"
            )
    if openmetrics:
        lines = [line.replace("_total counter", " counter") for line in lines]
        lines.append("# EOF")
    return ("\n".join(lines) + "\n").encode()


def bench_payload(label: str, data: bytes, fmt: Format, repeat: int) -> None:
    cold_seconds, count = best_of(repeat, lambda: len(parse(data, fmt).keys))
    report(f"{label}: parse, cold (labels parsed)", cold_seconds, count)
    known = set(parse(data, fmt).new_series)
    warm_seconds, count = best_of(repeat, lambda: len(parse(data, fmt, known).keys))
    report(f"{label}: parse, warm (keys cached)", warm_seconds, count)


def bench_scrape_append(data: bytes, repeat: int) -> None:
    """Parse + resolve refs + append, the synchronous part of a steady scrape."""
    app = CountingAppender()
    config = SimpleNamespace(
        job_name="bench",
        scrape_timeout=10.0,
        scrape_interval=15.0,
        honor_labels=False,
        honor_timestamps=True,
        labels={},
    )

    async def make() -> ScrapeLoop:
        return ScrapeLoop(config, "127.0.0.1:1", app, httpx.AsyncClient())

    loop = asyncio.run(make())
    state = loop._state

    def once() -> int:
        payload = parse(data, Format.TEXT, state.refs)
        loop._append(1_700_000_000_000, payload, 0.0)
        return len(payload.keys)

    once()
    seconds, count = best_of(repeat, once)
    report("scrape append path (parse+refs+append), warm", seconds, count)


def bench_synthetic(series: int, repeat: int) -> None:
    app = CountingAppender()
    source = SyntheticSource(app, series=series, metrics=50, histograms=True, seed=1)
    source.tick(0)
    ticks = iter(range(1, 10_000))
    seconds, count = best_of(repeat, lambda: source.tick(next(ticks) * 1000))
    report("synthetic tick (histograms, no churn)", seconds, count)
    churn = SyntheticSource(app, series=series, metrics=50, churn=0.01, exemplars=True, seed=1)
    churn.tick(0)
    seconds, count = best_of(repeat, lambda: churn.tick(next(ticks) * 1000))
    report("synthetic tick (1% churn, exemplars)", seconds, count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    node = capture_node_exporter()
    if node is not None:
        lines = node.count(b"\n")
        print(f"node_exporter payload: {len(node)} bytes, {lines} lines")
        bench_payload("node_exporter", node, Format.TEXT, args.repeat * 4)
    text = generated_payload(args.series, openmetrics=False)
    bench_payload(f"generated {args.series} series, text", text, Format.TEXT, args.repeat)
    om = generated_payload(args.series, openmetrics=True)
    bench_payload(
        f"generated {args.series} series, OpenMetrics", om, Format.OPENMETRICS, args.repeat
    )
    bench_scrape_append(text, args.repeat)
    bench_synthetic(args.series, args.repeat)


if __name__ == "__main__":
    main()
