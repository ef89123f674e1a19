"""Benchmark the exposition parser, the scrape append path and the synthetic source.

Usage: python benchmarks/bench_parse.py [--series 100000] [--repeat 5]

Measures samples/s for
- a real node_exporter payload (captured from prometheus-node-exporter started
  on a free loopback port, when installed), cold (labels parsed) and warm
  (every series key known, as in a steady scrape);
- a generated payload of --series series, text format and OpenMetrics;
- ScrapeLoop's append step into a counting appender (warm cache);
- the steady state of a scrape (same series lines, new values) side by side: the
  full path (warm parse + append, as every scrape did before the shortcut) and
  the shortcut (shape match + bulk value conversion + append with the refs of the
  last scrape), into a counting appender and into a real WAL, with the ratio;
- SyntheticSource.tick() into a counting appender.

Old and new runs alternate within one process, so load from other work on the
machine affects both alike; compare the ratios rather than absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence

import httpx

from rwconsole.config import schema
from rwconsole.labels import Labels
from rwconsole.model import NoPreparedBatches
from rwconsole.sources.scrape import ScrapeLoop
from rwconsole.sources.steady import SteadyShape
from rwconsole.sources.synthetic import SyntheticSource
from rwconsole.sources.textparse import Format, parse
from rwconsole.wal.storage import WalStorage


class CountingAppender(NoPreparedBatches):
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


def generated_payload(series: int, openmetrics: bool, seed: int = 1) -> bytes:
    """``series`` counters in families of 1000; ``seed`` changes the values only."""
    rng = random.Random(seed)
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


def make_loop(appender: object) -> ScrapeLoop:
    config = schema.ScrapeConfig(
        job_name="bench",
        scrape_timeout=10.0,
        scrape_interval=15.0,
        honor_labels=False,
        honor_timestamps=True,
        labels={},
    )

    async def make() -> ScrapeLoop:
        return ScrapeLoop(config, "127.0.0.1:1", appender, httpx.AsyncClient())  # type: ignore[arg-type]

    return asyncio.run(make())


def bench_scrape_append(data: bytes, repeat: int) -> None:
    """Parse + resolve refs + append, the synchronous part of a steady scrape."""
    app = CountingAppender()
    loop = make_loop(app)
    state = loop._state

    def once() -> int:
        payload = parse(data, Format.TEXT, state.refs)
        loop._append(1_700_000_000_000, payload, 0.0)
        return len(payload.keys)

    once()
    seconds, count = best_of(repeat, once)
    report("scrape append path (parse+refs+append), warm", seconds, count)


def value_variants(data: bytes, count: int) -> list[bytes]:
    """``count`` bodies with the lines of ``data`` and other values (integers stay integers)."""
    rng = random.Random(3)
    bodies = []
    for _ in range(count):
        lines = data.split(b"\n")
        for i, line in enumerate(lines):
            if not line or line.startswith(b"#"):
                continue
            head, _, value = line.rpartition(b" ")
            if value.isdigit():
                lines[i] = head + b" " + str(int(value) + rng.randrange(1000)).encode()
            elif value not in (b"NaN", b"+Inf", b"-Inf"):
                lines[i] = head + b" " + repr(float(value) * (1 + rng.random())).encode()
        bodies.append(b"\n".join(lines))
    return bodies


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench_steady(label: str, bodies: Sequence[bytes], fmt: Format, repeat: int) -> None:
    """Full path vs shortcut on bodies that differ in values only, alternating old and new."""
    first = parse(bodies[0], fmt)
    shape = SteadyShape.learn(bodies[0], fmt, first)
    if shape is None:
        print(f"{label}: body does not qualify for the shortcut (irregular layout)")
        return
    count = len(first.keys)
    known = set(first.new_series)
    ts = iter(range(1_700_000_000_000, 1_800_000_000_000, 1000))
    with tempfile.TemporaryDirectory() as tmp:
        wal_old = WalStorage.open(f"{tmp}/old")
        wal_new = WalStorage.open(f"{tmp}/new")
        loops = {
            "old-count": make_loop(CountingAppender()),
            "new-count": make_loop(CountingAppender()),
            "old-wal": make_loop(wal_old),
            "new-wal": make_loop(wal_new),
        }

        def old(loop: ScrapeLoop) -> Callable[[], None]:
            def run() -> None:
                for body in bodies:
                    loop._append(next(ts), parse(body, fmt, loop._state.refs), 0.0)

            return run

        def new(loop: ScrapeLoop) -> Callable[[], None]:
            def run() -> None:
                for body in bodies:
                    loop._store(next(ts), loop._read(body, fmt), 0.0)

            return run

        runs: dict[str, Callable[[], object]] = {
            "parse (warm)": lambda: [parse(body, fmt, known) for body in bodies],
            "shape match + values": lambda: [shape.values(body, fmt) for body in bodies],
            "old-count": old(loops["old-count"]),
            "new-count": new(loops["new-count"]),
            "old-wal": old(loops["old-wal"]),
            "new-wal": new(loops["new-wal"]),
        }
        for name in ("old-count", "new-count", "old-wal", "new-wal"):
            loops[name]._store(next(ts), loops[name]._read(bodies[0], fmt), 0.0)  # warm up
        best = dict.fromkeys(runs, float("inf"))
        for _ in range(repeat):
            for name, fn in runs.items():
                best[name] = min(best[name], _timed(fn))
        wal_old.close()
        wal_new.close()
    assert loops["new-wal"]._state.steady is not None, "the shortcut was not taken"
    samples = count * len(bodies)

    def ns(name: str) -> float:
        return best[name] / samples * 1e9

    print(f"{label}: {count} samples per body, {len(bodies)} bodies, best of {repeat}")
    pairs = (
        ("parse only", "parse (warm)", "shape match + values"),
        ("parse + append, counting appender", "old-count", "new-count"),
        ("parse + append + WAL commit", "old-wal", "new-wal"),
    )
    for title, old_name, new_name in pairs:
        print(
            f"  {title:<36} old {ns(old_name):7.0f} ns/sample   new {ns(new_name):7.0f} ns/sample"
            f"   old/new {best[old_name] / best[new_name]:5.2f}x"
        )


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


def loadgen_bodies(series: int) -> list[bytes]:
    """The bodies bench_forwarder's load generator serves (integer counters)."""
    from loadgen import render_bodies  # a sibling script: run from benchmarks/ or the root

    return render_bodies(series, variants=4, family_size=100)


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
    if node is not None:
        bench_steady("steady node_exporter", value_variants(node, 4), Format.TEXT, args.repeat * 4)
    loadgen = loadgen_bodies(4000)
    bench_steady("steady loadgen 4000 series", loadgen, Format.TEXT, args.repeat * 2)
    steady = [generated_payload(args.series, openmetrics=False, seed=s) for s in (1, 2)]
    bench_steady(f"steady generated {args.series} series", steady, Format.TEXT, args.repeat)
    bench_synthetic(args.series, args.repeat)


if __name__ == "__main__":
    main()
