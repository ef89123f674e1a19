"""Console responsiveness under load: key press → screen updated, with the engine at full load.

Starts the demo engine with a heavier synthetic load (``--series`` series every
second, forwarded to the embedded receiver over both protocols), drives the
console with Textual's pilot in the same process and times each key press
until the app has processed it and redrawn. Prints median / p95 / max per key
and the engine's ingest rate during the run.

    python benchmarks/bench_tui.py [--series 50000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import statistics
import tempfile
import time
from pathlib import Path

from rwconsole.engine import Engine
from rwconsole.pipelines import demo_config
from rwconsole.tui.app import ConsoleApp

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
FRAME_TIMEOUT = 10.0


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


async def drive(engine: Engine, rounds: int) -> dict[str, list[float]]:
    """Time from a key press to the first frame written that shows its effect.

    Textual's pilot waits for the whole process to go idle, which never happens
    with the engine busy in the same process, so frames are observed directly:
    the app's display hook records the time and app state of every frame.
    """
    timings: dict[str, list[float]] = {}
    app = ConsoleApp(engine)
    frames: list[tuple[float, tuple[str, int, str | None]]] = []
    async with app.run_test(size=(160, 50)) as pilot:
        display = app._display

        def recording_display(screen, renderable):  # type: ignore[no-untyped-def]
            display(screen, renderable)
            frames.append((time.perf_counter(), _state(app)))

        app._display = recording_display  # type: ignore[method-assign]
        await pilot.pause(3.0)  # let the history fill and the queues settle
        for _ in range(rounds):
            for key, expect in KEYS:
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
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    logging.getLogger("rwconsole").setLevel(logging.INFO)
    data = Path(tempfile.mkdtemp(prefix="rwconsole-bench-tui-"))
    config = demo_config(data)
    assert config.synthetic is not None
    config = dataclasses.replace(
        config, synthetic=dataclasses.replace(config.synthetic, series=args.series, interval=1.0)
    )
    engine = Engine(config, data_dir=data)
    engine.start()
    try:
        before = engine.snapshot().samples_in_total
        started = time.monotonic()
        timings = asyncio.run(drive(engine, args.rounds))
        elapsed = time.monotonic() - started
        ingested = engine.snapshot().samples_in_total - before
    finally:
        engine.stop(timeout=15)
    everything = [t for values in timings.values() for t in values]
    print(
        f"engine ingest during the run: {ingested / elapsed:,.0f} samples/s ({args.series} series)"
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
