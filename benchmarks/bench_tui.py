"""Console responsiveness under load: key press → screen updated, with the engine at full load.

Starts the demo engine with a heavier synthetic load (``--series`` series every
second, forwarded to the embedded receiver over both protocols), drives the
console with Textual's pilot in the same process and times each key press
until the app has processed it and redrawn. Prints median / p95 / max per key
and the engine's ingest rate during the run.

    python benchmarks/bench_tui.py [--series 50000] [--rounds 20] [--attach]

``--attach`` runs the engine in another process, as a service, and the console
attached to it over the admin socket (``rwconsole attach``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import logging
import multiprocessing
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_forwarder import Load

from rwconsole.admin.client import RemoteEngine, RemoteTools, parse_target
from rwconsole.config import schema
from rwconsole.engine import Engine
from rwconsole.pipelines import demo_config
from rwconsole.snapshot import Snapshot
from rwconsole.tui.app import ConsoleApp
from rwconsole.tui.widgets.charts import TimeSeriesChart

# (key, what the app state must show once the key took effect)
KEYS: tuple[tuple[str, str], ...] = (
    ("1", "mode:overview"),
    ("w", "window"),
    ("right_square_bracket", "endpoint"),
    ("2", "mode:endpoints"),
    ("3", "mode:queue"),
    ("5", "mode:demo"),
    ("6", "mode:logs"),
    ("4", "mode:wal"),
)
HERE = Path(__file__).resolve().parent
FRAME_TIMEOUT = 10.0
CHART_WATCH = 15.0


def _state(app: ConsoleApp) -> tuple[str, int, str | None]:
    return (app.current_mode, app.window_index, app.selected_endpoint)


def _took_effect(
    expect: str, before: tuple[str, int, str | None], now: tuple[str, int, str | None]
) -> bool:
    if expect.startswith("mode:"):
        return now[0] == expect[5:]
    if expect == "window":
        return now[1] != before[1]
    return now[2] != before[2]


async def _settle(engine: Engine | RemoteEngine, warmup: float, limit: float) -> None:
    """``warmup`` seconds, then until the queues keep up (every endpoint's lag under
    5 s) or ``limit`` seconds.

    While the first scrapes create every series, the long-lived objects grow and
    Python's full garbage collections run back to back (50–110 ms each with the
    GIL held at 200k series, for the first ~15 s); the forwarder benchmark's
    warm-up skips the same phase.
    """
    deadline = time.monotonic() + limit
    await asyncio.sleep(warmup)
    while time.monotonic() < deadline:
        endpoints = engine.snapshot().endpoints
        if endpoints and all(0 < e.lag_seconds < 5 for e in endpoints):
            return
        await asyncio.sleep(0.5)


def _rates(first: Snapshot, last: Snapshot) -> tuple[float, float, float]:
    """Samples in and sent per second between two snapshots, and the worst lag at the end."""
    seconds = max(last.time - first.time, 1e-9)
    sent = sum(e.samples_total + e.histograms_total for e in last.endpoints) - sum(
        e.samples_total + e.histograms_total for e in first.endpoints
    )
    return (
        (last.samples_in_total - first.samples_in_total) / seconds,
        sent / seconds,
        max((e.lag_seconds for e in last.endpoints), default=0.0),
    )


async def _headless(
    engine: Engine, warmup: float, settle: float, seconds: float
) -> tuple[float, float, float]:
    await _settle(engine, warmup, settle)
    first = engine.snapshot()
    await asyncio.sleep(seconds)
    return _rates(first, engine.snapshot())


async def drive(
    engine: Engine | RemoteEngine, rounds: int, warmup: float, settle: float
) -> tuple[dict[str, list[float]], list[float], tuple[float, float, float]]:
    """Time from a key press to the first frame written that shows its effect.

    Textual's pilot waits for the whole process to go idle, which never happens
    with the engine busy in the same process, so frames are observed directly:
    the app's display hook records the time and app state of every frame.
    """
    timings: dict[str, list[float]] = {}
    app = ConsoleApp(engine)
    if isinstance(engine, RemoteEngine):
        app.tools = RemoteTools(engine)  # type: ignore[assignment]
    frames: list[tuple[float, tuple[str, int, str | None]]] = []
    async with app.run_test(size=(160, 50)):
        display = app._display

        def recording_display(screen, renderable):  # type: ignore[no-untyped-def]
            display(screen, renderable)
            # The mode of the screen this frame painted: a frame of the previous
            # screen painted after the switch does not count as the answer.
            painted = next(
                (m for m, stack in app._screen_stacks.items() if stack and stack[0] is screen),
                None,
            )
            _mode, window, endpoint = _state(app)
            frames.append((time.perf_counter(), (painted or "?", window, endpoint)))

        app._display = recording_display  # type: ignore[method-assign]
        await _settle(engine, warmup, settle)
        first = engine.snapshot()
        app.simulate_key("4")  # each round starts on another screen, so "1" is a switch
        await asyncio.sleep(0.5)
        snapshot = engine.snapshot()
        keys = [
            (key, expect)
            for key, expect in KEYS
            if (expect != "endpoint" or len(snapshot.endpoints) > 1)
            and (expect != "mode:demo" or snapshot.demo is not None)
        ]
        for _ in range(rounds):
            for key, expect in keys:
                before = _state(app)
                frames.clear()
                started = time.perf_counter()
                app.simulate_key(key)
                deadline = started + FRAME_TIMEOUT
                hit = None
                while hit is None and time.perf_counter() < deadline:
                    await asyncio.sleep(0.001)
                    hit = next((t for t, st in frames if _took_effect(expect, before, st)), None)
                if hit is None:
                    raise SystemExit(f"key {key!r}: no frame showed its effect in {FRAME_TIMEOUT}s")
                timings.setdefault(key, []).append((hit - started) * 1000)
                await asyncio.sleep(0.3)
        chart_gaps = await _chart_refresh_gaps(app, frames)
        last = engine.snapshot()
    return timings, chart_gaps, _rates(first, last)


async def _chart_refresh_gaps(
    app: ConsoleApp, frames: list[tuple[float, tuple[str, int, str | None]]]
) -> list[float]:
    """Seconds between painted frames that carried a new drawing of the Overview charts."""
    app.simulate_key("1")
    await asyncio.sleep(1.0)
    chart = app.screen.query_one("#chart-rates", TimeSeriesChart)
    painted: list[float] = []
    seen_version = chart._version
    frames.clear()
    deadline = time.perf_counter() + CHART_WATCH
    while time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
        if chart._version != seen_version and frames:
            # The first frame painted after the chart took new data shows it.
            painted.append(frames[-1][0])
            seen_version = chart._version
            frames.clear()
    return [b - a for a, b in itertools.pairwise(painted)]


def _external_receiver(kind: str) -> tuple[subprocess.Popen[bytes], str]:
    """A receiver in its own process, so only forwarding runs in ours.

    ``process``: the demo receiver (decodes and counts every series);
    ``null``: the forwarder benchmark's sink, which only reads each body.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    if kind == "null":
        argv = [sys.executable, str(HERE / "bench_forwarder.py"), "--null-receiver", str(port)]
    else:
        argv = [sys.executable, "-m", "rwconsole.demo.receiver", "--listen", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}/api/v1/write"
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the external receiver did not start")


def _scrape_load(text: str) -> Load:
    """``KxS``: the forwarder benchmark's load ``KxS@1`` (its parser checks the numbers)."""
    return Load.parse(f"{text}@1")


def _scrape_targets(load: Load) -> tuple[subprocess.Popen[bytes], list[str]]:
    """K loopback targets of S series each (benchmarks/loadgen.py)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "loadgen.py"),
            "--targets",
            str(load.targets),
            "--series",
            str(load.series),
            "--max-seconds",
            "1800",
        ],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # one JSON line once every target listens
    if not line:
        proc.kill()
        raise SystemExit("the load generator did not start")
    return proc, json.loads(line)["targets"]


def _service(config: schema.Config, data: Path, stop: Any) -> None:
    """The engine as a service in its own process (``--attach``)."""
    logging.getLogger("rwconsole").setLevel(logging.INFO)
    engine = Engine(config, data_dir=data)
    engine.start()
    try:
        stop.wait()
    finally:
        engine.stop(timeout=15)


def _attached(config: schema.Config, data: Path, args: argparse.Namespace) -> Any:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    service = context.Process(target=_service, args=(config, data, stop))
    service.start()
    try:
        socket_path = data / "rwconsole.sock"
        deadline = time.monotonic() + 60
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        remote = RemoteEngine(parse_target(str(socket_path)))
        remote.start()
        try:
            return asyncio.run(drive(remote, args.rounds, args.warmup, args.settle))
        finally:
            remote.stop()
    finally:
        stop.set()
        service.join(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--settle", type=float, default=60.0, help="longest wait for the queues to catch up"
    )
    parser.add_argument(
        "--warmup", type=float, default=20.0, help="seconds before measuring (default 20)"
    )
    parser.add_argument(
        "--receiver",
        choices=("embedded", "process", "null"),
        default="embedded",
        help="the demo's embedded receiver (decoding in the engine's thread), the same "
        "receiver in another process, or a sink that only reads the bodies; the last two "
        "with one remote-write 1.0 endpoint",
    )
    parser.add_argument(
        "--scrape",
        metavar="KxS",
        type=_scrape_load,
        help="instead of the synthetic source, scrape K loopback targets of S series every "
        "second (benchmarks/loadgen.py), as the forwarder benchmark does",
    )
    parser.add_argument(
        "--headless",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="no console: measure the engine alone for SECONDS (the reference for the rates)",
    )
    parser.add_argument(
        "--attach",
        action="store_true",
        help="the engine in another process as a service, the console attached to it",
    )
    args = parser.parse_args()
    logging.getLogger("rwconsole").setLevel(logging.INFO)
    data = Path(tempfile.mkdtemp(prefix="rwconsole-bench-tui-"))
    config = demo_config(data)
    assert config.synthetic is not None
    config = dataclasses.replace(
        config, synthetic=dataclasses.replace(config.synthetic, series=args.series, interval=1.0)
    )
    helpers: list[subprocess.Popen[bytes]] = []
    offered = args.series
    if args.receiver != "embedded":
        receiver, url = _external_receiver(args.receiver)
        helpers.append(receiver)
        queue = schema.QueueConfig(max_samples_per_send=5000, capacity=10000)
        config = dataclasses.replace(
            config,
            demo=dataclasses.replace(config.demo, enabled=False),
            endpoint=[schema.EndpointConfig(url=url, name="bench", queue_config=queue)],
        )
    if args.scrape:
        loadgen, targets = _scrape_targets(args.scrape)
        offered = round(args.scrape.offered)
        helpers.append(loadgen)
        config = dataclasses.replace(
            config,
            synthetic=None,
            scrape=[
                schema.ScrapeConfig(
                    job_name="loadgen", targets=targets, scrape_interval=1.0, scrape_timeout=1.0
                )
            ],
        )
    if args.attach:
        try:
            timings, chart_gaps, rates = _attached(config, data, args)
        finally:
            for helper in helpers:
                helper.terminate()
                helper.wait(timeout=10)
        _report(timings, chart_gaps, rates, offered, args.receiver + ", attached")
        return
    engine = Engine(config, data_dir=data)
    engine.start()
    try:
        if args.headless:
            rates = asyncio.run(_headless(engine, args.warmup, args.settle, args.headless))
            print(
                f"headless: in {rates[0]:,.0f} samples/s, sent {rates[1]:,.0f} samples/s, "
                f"lag at the end {rates[2]:.1f}s (offered {offered:,}/s)"
            )
            return
        timings, chart_gaps, rates = asyncio.run(
            drive(engine, args.rounds, args.warmup, args.settle)
        )
    finally:
        engine.stop(timeout=15)
        for helper in helpers:
            helper.terminate()
            helper.wait(timeout=10)
    _report(timings, chart_gaps, rates, offered, args.receiver)


def _report(
    timings: dict[str, list[float]],
    chart_gaps: list[float],
    rates: tuple[float, float, float],
    offered: int,
    receiver: str,
) -> None:
    everything = [t for values in timings.values() for t in values]
    print(
        f"engine while measuring: in {rates[0]:,.0f} samples/s, sent {rates[1]:,.0f} samples/s, "
        f"lag at the end {rates[2]:.1f}s (offered {offered:,}/s, receiver {receiver})"
    )
    if chart_gaps:
        print(
            f"overview charts repainted every {statistics.median(chart_gaps):.2f}s "
            f"(median), {max(chart_gaps):.2f}s at most, over {CHART_WATCH:.0f}s"
        )
    print(f"{'key':<22}{'median ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for key, values in timings.items():
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        print(f"{key:<22}{statistics.median(values):>10.1f}{p95:>10.1f}{max(values):>10.1f}")
    ordered = sorted(everything)
    print(
        f"{'all keys':<22}{statistics.median(everything):>10.1f}"
        f"{ordered[int(0.95 * len(ordered))]:>10.1f}{max(everything):>10.1f}"
    )


if __name__ == "__main__":
    main()
