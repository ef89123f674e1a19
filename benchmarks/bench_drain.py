"""Drain-only benchmark: the CPU one queue spends per request sending parked bodies.

Usage:
  python benchmarks/bench_drain.py [--requests 6000] [--samples-per-send 2000] \\
      [--runs 3] [--pin CPU] [--baseline DIR] [--profile FILE]

Each measurement is a fresh process (on ``--pin``'s CPU alone; the receiver on
the others) holding one real queue (``QueueManager`` with its spool, the real
remote-write client, the default ``queue_config`` but ``max_samples_per_send``)
whose receiver refuses connections while ``requests × samples-per-send``
samples are read, so they are parked as encoded bodies; then the null receiver
(``bench_forwarder.py``'s sink) starts, and the drain is timed from its first
answer until the delivered position reaches the end (an event, not a poll).
Nothing else runs in the process meanwhile: no scraping, no WAL, so the figure
is what sending one parked body costs (the spool read, the HTTP exchange, the
queue's accounting), which the end-to-end catch-up benchmark
(``bench_catchup.py``) mixes with the live load.

The series look like the load generator's (seven labels, a few hundred
thousand apart in value), so a body of 2,000 samples is some 41 KB, as in the
catch-up benchmark. With ``--baseline DIR`` the tree in DIR is measured too, the
two alternating run by run (the machine's drift then hits both alike); the
ratios compare medians.

Reported per run: the drain's wall time, samples a second, the process's CPU
share over the drain and its CPU µs per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TREE = HERE.parent
sys.path.insert(0, str(HERE))

from bench_forwarder import free_port  # noqa: E402

_METHODS = ("GET", "POST", "PUT", "DELETE")
_CODES = ("200", "404", "500", "301", "204")


def _wait_listening(port: int, seconds: float) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.01)
    raise SystemExit(f"the receiver did not listen on port {port} within {seconds:g}s")


async def _measure(args: argparse.Namespace) -> dict[str, float]:
    """One measurement, in the tree this process imports ``rwconsole`` from."""
    from rwconsole.config import schema
    from rwconsole.labels import make_labels
    from rwconsole.metrics import Registry
    from rwconsole.remote.chunks import Chunk
    from rwconsole.remote.client import RemoteWriteClient
    from rwconsole.remote.queue import QueueManager
    from rwconsole.remote.queue_metrics import QueueMetrics
    from rwconsole.remote.resharding import EwmaRate
    from rwconsole.remote.spool import Spool, SpoolBudget

    per_send, n_series = args.samples_per_send, args.series
    rounds = args.requests * per_send // n_series
    series = {
        i + 1: make_labels(
            {
                "__name__": f"loadgen_requests_{i // 20}_total",
                "handler": f"/api/v1/items/{i % 20}",
                "method": _METHODS[i % 4],
                "code": _CODES[i % 5],
                "zone": f"zone-{i % 3}",
                "instance": f"127.0.0.1:{40000 + i // 2000}",
                "job": "loadgen",
            }
        )
        for i in range(n_series)
    }
    refs = sorted(series)
    rng = random.Random(1)
    base = [float(rng.randrange(1, 10_000_000)) for _ in refs]
    step = [float(rng.randrange(1, 1000)) for _ in refs]
    start_ms = int(time.time() * 1000) - rounds * 1000

    chunks: asyncio.Queue[Chunk] = asyncio.Queue()

    class Source:
        async def next_chunk(self) -> Chunk:
            return await chunks.get()

    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/write"
    spool_path = Path(args.spool_dir) / f"drain-{os.getpid()}.spool"
    spool = Spool(spool_path, SpoolBudget(1 << 40, 0))
    client = RemoteWriteClient(schema.EndpointConfig(url=url, name="drain"), user_agent="drain")
    queue = QueueManager(
        name="drain",
        url=url,
        settings=schema.QueueConfig(max_samples_per_send=per_send),
        client=client,
        source=Source(),
        lookup=series.get,
        metrics=QueueMetrics(Registry(), "drain", url),
        data_in=EwmaRate(),
        highest_timestamp_in=time.time,
        start_position=(0, 0),
        spool=spool,
        park_after_lag=0.0,
    )
    queue.start()
    for r in range(rounds):
        values = [b + r * s for b, s in zip(base, step, strict=True)]
        chunks.put_nowait(
            Chunk(
                end=(0, r + 1),
                refs=refs,
                timestamps=[start_ms + r * 1000] * n_series,
                values=values,
            )
        )
    end = (0, rounds)
    for _ in range(100_000):
        if queue.read_position == end:
            break
        await asyncio.sleep(0.02)
    parked = spool.waiting
    if queue.read_position != end or parked < args.requests * 0.9:
        raise SystemExit(
            f"only {parked} of {args.requests} bodies were parked (spool in {args.spool_dir}: "
            f"{spool.last_error or 'no error'}); the figures would not be the drain's"
        )
    delivered = asyncio.Event()
    queue.on_delivered = lambda position: delivered.set() if position == end else None
    receiver = subprocess.Popen(
        [sys.executable, str(HERE / "bench_forwarder.py"), "--null-receiver", str(port)],
        stdout=subprocess.DEVNULL,
        **_pinned_to(args.receiver_cpus),
    )
    try:
        _wait_listening(port, 30)
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        # From the first answer: the shards' next retry after the receiver is up is
        # no part of sending.
        async with asyncio.timeout(60):
            while client.state.last_success_time is None:
                await asyncio.sleep(0.0005)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        async with asyncio.timeout(600):
            await delivered.wait()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
    finally:
        await queue.stop(5)
        receiver.terminate()
        receiver.wait(10)
    samples = rounds * n_series
    return {
        "parked": parked,
        "wall_s": wall,
        "cpu_s": cpu,
        "samples_per_s": samples / wall,
        "cpu_share": cpu / wall,
        "cpu_us_per_request": cpu / (samples / per_send) * 1e6,
    }


def _pinned_to(cpus: str | None) -> dict[str, object]:
    if not cpus:
        return {}
    chosen = {int(cpu) for cpu in cpus.split(",")}
    return {"preexec_fn": lambda: os.sched_setaffinity(0, chosen)}


def _child(args: argparse.Namespace) -> int:
    logging.disable(logging.WARNING)  # the outage's connection refusals
    print(json.dumps(asyncio.run(_measure(args))))
    return 0


def _run(tree: Path, args: argparse.Namespace) -> dict[str, float]:
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        f"--requests={args.requests}",
        f"--samples-per-send={args.samples_per_send}",
        f"--series={args.series}",
        f"--spool-dir={args.spool_dir}",
    ]
    if args.pin is not None:
        # Chosen here: the measuring process is pinned to ``pin`` alone.
        others = sorted(os.sched_getaffinity(0) - {args.pin}) or [args.pin]
        argv.append(f"--receiver-cpus={','.join(map(str, others))}")
    if args.profile:
        argv.append(f"--profile={args.profile}.{tree.name}")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    preexec = (lambda: os.sched_setaffinity(0, {args.pin})) if args.pin is not None else None
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, preexec_fn=preexec, timeout=1800
    )
    if done.returncode != 0:
        raise SystemExit(f"a run in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--samples-per-send", type=int, default=2000)
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pin", type=int, help="run each measurement on this CPU alone")
    parser.add_argument("--baseline", type=Path, help="a checkout to measure alternately")
    parser.add_argument("--profile", help="cProfile each drain into FILE.<tree name>")
    parser.add_argument("--spool-dir", default=tempfile.gettempdir(), help="where the spools go")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--receiver-cpus", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    trees = [("current", TREE)]
    if args.baseline is not None:
        trees.append(("base", args.baseline.resolve()))
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')} · {os.cpu_count()} CPUs · "
        f"{args.requests} requests of {args.samples_per_send} samples · pinned to "
        f"{args.pin if args.pin is not None else 'no CPU'}"
    )
    header = ("run", "tree", "drain s", "samples/s", "CPU %", "CPU µs/request")
    print("{:>3} {:<8} {:>8} {:>12} {:>6} {:>15}".format(*header))
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
    for run in range(1, args.runs + 1):
        order = trees if run % 2 else trees[::-1]
        for name, tree in order:
            r = _run(tree, args)
            results[name].append(r)
            print(
                f"{run:>3} {name:<8} {r['wall_s']:>8.2f} {r['samples_per_s']:>12,.0f} "
                f"{100 * r['cpu_share']:>6.0f} {r['cpu_us_per_request']:>15.0f}",
                flush=True,
            )
    if args.baseline is not None:
        now = [r["cpu_us_per_request"] for r in results["current"]]
        before = [r["cpu_us_per_request"] for r in results["base"]]
        rates = [r["samples_per_s"] for r in results["current"]]
        base_rates = [r["samples_per_s"] for r in results["base"]]
        print(
            f"current/base, medians: CPU per request "
            f"{statistics.median(now) / statistics.median(before):.2f}, drain rate "
            f"{statistics.median(rates) / statistics.median(base_rates):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
