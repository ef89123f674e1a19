"""Memory per active series: the WAL series table plus one endpoint queue's series cache.

Usage: python benchmarks/bench_memory.py [--series 100000] [--per-target 10000]
       [--endpoints 1] [--tracemalloc] [--compare DIR ...]
       python benchmarks/bench_memory.py --scrape [--series 100000] [--per-target 10000]
       [--scrapes 3] [--distinct] [--compare DIR ...]

Builds N series the way a scrape does (each series key parsed by the exposition
parser, the target's ``job``/``instance`` merged in, so every series arrives
with its own fresh strings), then:

* creates them in a real ``WalStorage`` (``series_refs``), appends one sample
  and one metadata entry per series and commits, as a scrape does;
* runs one real ``QueueManager`` per endpoint (``--endpoints``) over the
  committed chunk with a client that answers at once, so each queue builds its
  per-series cache (relabelled, encoded labels) exactly as when forwarding;
* calls the WAL's metadata listing once, as the 1.0 metadata sender does.

The parsed inputs are dropped before measuring, so what remains is what the
forwarder keeps per series. Reported: RSS growth per series (``/proc/self``
VmRSS after minus before) and, with ``--tracemalloc``, Python-allocated bytes
per series (slower). ``--compare DIR`` runs the same measurement with the
``rwconsole`` package found in DIR (e.g. a ``git worktree`` of an older
commit) in a child process and prints both with their ratio; each run is its
own process so they do not share a heap.

``--scrape`` measures the scrape side instead: one loopback target per
``--per-target`` series serving load-generator bodies (``loadgen.render_bodies``,
values changing on every request), one real ``ScrapeLoop`` per target writing
into a real ``WalStorage``, each scraped ``--scrapes`` times (the second scrape
onwards takes the steady shortcut). Then, under tracemalloc, it takes each
loop's state apart field by field (the steady shape's fields first, then the
steady entry's, then the cache state's), and reports the bytes each field held
per series (what freeing it gave back: objects shared with the WAL, such as
the ref ints, stay with the WAL), then the WAL and the HTTP client. It also
reports the peak extra memory of one steady scrape per series of the target.
All targets expose the same series lines (as the load generator's do) unless
``--distinct`` gives each its own metric names.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

_METHODS = ("GET", "POST", "PUT", "DELETE")
_CODES = ("200", "201", "400", "404", "500")


def _rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _series_keys(n: int, family_size: int = 100) -> list[str]:
    """Series keys as the load generator exposes them (the same shape per target)."""
    keys = []
    for i in range(n):
        family, member = divmod(i, family_size)
        keys.append(
            f'loadgen_requests_{family}_total{{handler="/api/v1/items/{member}",'
            f'method="{_METHODS[member % 4]}",code="{_CODES[member % 5]}",'
            f'zone="zone-{member % 3}"}}'
        )
    return keys


class _OkResult:
    outcome = "ok"
    status = 204
    retry_after = None
    reason = ""
    duration = 0.0
    written = None


class _OkClient:
    """A receiver that accepts everything at once (memory needs no HTTP)."""

    async def send(
        self, body: bytes, *, protocol: int, attempt: int, items: int, retry_on_http_429: bool
    ) -> _OkResult:
        return _OkResult()


class _OneChunk:
    def __init__(self, chunk: Any) -> None:
        self._chunk: Any = chunk

    async def next_chunk(self) -> Any:
        if self._chunk is None:
            await asyncio.Event().wait()
        chunk, self._chunk = self._chunk, None
        return chunk


def measure(n: int, per_target: int, endpoints: int, trace: bool) -> dict[str, float]:
    from rwconsole.config.schema import QueueConfig
    from rwconsole.metrics import Registry
    from rwconsole.model import MetricMetadata, MetricType
    from rwconsole.remote.chunks import Chunk
    from rwconsole.remote.queue import QueueManager
    from rwconsole.remote.queue_metrics import QueueMetrics
    from rwconsole.remote.resharding import EwmaRate
    from rwconsole.sources.scrape import merge_labels
    from rwconsole.sources.textparse import parse_series
    from rwconsole.wal.storage import WalStorage

    per_target = min(per_target, n)
    keys = _series_keys(per_target)
    workdir = tempfile.TemporaryDirectory(prefix="bench-memory-")
    wal = WalStorage.open(Path(workdir.name) / "wal", segment_size=256 << 20)
    gc.collect()
    if trace:
        tracemalloc.start()
    rss_before = _rss_bytes()
    traced_before = tracemalloc.get_traced_memory()[0] if trace else 0
    started = time.perf_counter()

    now_ms = int(time.time() * 1000)
    all_refs: list[int] = []
    for target in range(0, n, per_target):
        count = min(per_target, n - target)
        target_labels = (("instance", f"10.0.{target // per_target}.1:9100"), ("job", "loadgen"))
        labels = [merge_labels(parse_series(key), target_labels, False) for key in keys[:count]]
        refs = wal.series_refs(labels)
        del labels
        wal.append_samples(refs, now_ms, [1.0] * count)
        help_text = "Requests handled."
        wal.append_metadata(
            [MetricMetadata(ref, MetricType.COUNTER, "", help_text) for ref in refs]
        )
        wal.commit()
        all_refs.extend(refs)
    build_wal = time.perf_counter() - started

    async def forward(refs: list[int]) -> list[Any]:
        queues = []
        for index in range(endpoints):
            registry = Registry()
            chunk = Chunk(
                end=wal.position(),
                refs=refs,
                timestamps=[now_ms] * len(refs),
                values=[1.0] * len(refs),
            )
            queue = QueueManager(
                name=f"e{index}",
                url="http://127.0.0.1:1/api/v1/write",
                settings=QueueConfig(max_samples_per_send=5000, capacity=10000),
                client=_OkClient(),
                source=_OneChunk(chunk),
                lookup=wal.lookup,
                metrics=QueueMetrics(registry, f"e{index}", "http://127.0.0.1:1"),
                data_in=EwmaRate(),
                highest_timestamp_in=lambda: now_ms / 1000,
                start_position=(0, 0),
                external_labels=(("cluster", "bench"),),
            )
            queue.start()
            deadline = time.monotonic() + 600
            while queue.delivered_position != chunk.end and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await queue.stop(5.0)
            queues.append(queue)
        return queues

    started_q = time.perf_counter()
    queues = asyncio.run(forward(all_refs))
    build_queues = time.perf_counter() - started_q
    started_m = time.perf_counter()
    families = len({labels[0][1] for labels, _ in wal.metadata_entries()})
    metadata_s = time.perf_counter() - started_m
    del all_refs
    gc.collect()
    rss_after = _rss_bytes()
    traced = (tracemalloc.get_traced_memory()[0] - traced_before) if trace else 0
    if trace:
        tracemalloc.stop()
    result = {
        "series": float(wal.series_count()),
        "rss_per_series": (rss_after - rss_before) / n,
        "traced_per_series": traced / n if trace else 0.0,
        "build_wal_s": build_wal,
        "build_queues_s": build_queues,
        "metadata_listing_ms": metadata_s * 1000,
        "families": float(families),
    }
    wal.close()
    del queues
    workdir.cleanup()
    return result


# --- the scrape side ------------------------------------------------------------------------


def _slots(obj: Any) -> list[str]:
    names: list[str] = []
    for klass in type(obj).__mro__:
        names.extend(n for n in getattr(klass, "__slots__", ()) if n not in names)
    return [n for n in names if not n.startswith("__")]


def _release(obj: Any, prefix: str, parts: dict[str, int], nested: dict[str, str]) -> None:
    """Set every slot of ``obj`` to None, nested objects first; add what each freed to ``parts``.

    ``nested`` names the slots whose value is taken apart the same way first.
    """
    for name in _slots(obj):
        value = getattr(obj, name, None)
        if value is None:
            continue
        if name in nested:
            _release(value, f"{prefix}{nested[name]}.", parts, nested)
        before = tracemalloc.get_traced_memory()[0]
        try:
            object.__setattr__(obj, name, None)
        except (AttributeError, TypeError):
            continue  # a read-only slot
        del value
        gc.collect()
        key = prefix + name.lstrip("_")
        parts[key] = parts.get(key, 0) + before - tracemalloc.get_traced_memory()[0]


def measure_scrape(n: int, per_target: int, scrapes: int, distinct: bool) -> dict[str, Any]:
    """Bytes per series the scrape side keeps, by structure (see the module docstring)."""
    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from loadgen import render_bodies

    from rwconsole.config import schema
    from rwconsole.http.server import HttpServer, Request, Response
    from rwconsole.sources.scrape import ScrapeLoop
    from rwconsole.wal.storage import WalStorage

    per_target = min(per_target, n)
    targets = max(1, n // per_target)
    n = targets * per_target
    bodies = render_bodies(per_target, variants=4, family_size=100)
    workdir = tempfile.TemporaryDirectory(prefix="bench-memory-")
    storage = [WalStorage.open(Path(workdir.name) / "wal", segment_size=256 << 20)]
    config = schema.ScrapeConfig(
        job_name="loadgen",
        scrape_interval=10.0,
        scrape_timeout=10.0,
        honor_labels=False,
        honor_timestamps=True,
        labels={},
    )
    result: dict[str, Any] = {"series": float(n)}

    def handler(index: int) -> Callable[[Request], Awaitable[Response]]:
        served = [0]
        own = bodies
        if distinct:  # other series lines per target: no shape has a twin to share with
            own = [b.replace(b"loadgen_", f"t{index}_".encode()) for b in bodies]

        async def handle(request: Request) -> Response:
            served[0] += 1
            body = own[served[0] % len(own)]
            return Response(200, body, {"Content-Type": "text/plain; version=0.0.4"})

        return handle

    async def run() -> None:
        servers = [HttpServer(handler(index)) for index in range(targets)]
        for server in servers:
            await server.start("127.0.0.1", 0)
        client = httpx.AsyncClient()
        loops = [
            ScrapeLoop(config, f"127.0.0.1:{server.port}", storage[0], client, clock=time.time)
            for server in servers
        ]
        gc.collect()
        tracemalloc.start()
        rss_before = _rss_bytes()
        traced_before = tracemalloc.get_traced_memory()[0]
        for round_ in range(scrapes):
            if round_ == scrapes - 1:
                gc.collect()
                round_start = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
            for loop in loops:
                started = time.perf_counter()
                if not await loop.scrape_once():
                    raise SystemExit(f"scrape failed: {loop.status().last_error}")
                result.setdefault(f"scrape {round_ + 1} ms", 0.0)
                result[f"scrape {round_ + 1} ms"] += (time.perf_counter() - started) * 1000
        peak = tracemalloc.get_traced_memory()[1] - round_start
        result["transient_per_target_series"] = peak / per_target
        for key in [k for k in result if k.endswith(" ms")]:
            result[key] /= targets
        gc.collect()
        traced_after = tracemalloc.get_traced_memory()[0]
        result["rss_per_series"] = (_rss_bytes() - rss_before) / n
        result["traced_per_series"] = (traced_after - traced_before) / n
        parts: dict[str, int] = {}
        nested = {"_state": "state", "_steady": "steady", "steady": "steady", "shape": "shape"}
        for loop in loops:
            _release(loop._state, "", parts, nested)
        before = tracemalloc.get_traced_memory()[0]
        await client.aclose()
        del loops, client
        gc.collect()
        parts["loops, HTTP client"] = before - tracemalloc.get_traced_memory()[0]
        storage.pop().close()
        gc.collect()
        parts["the rest (WAL series table, ...)"] = (
            tracemalloc.get_traced_memory()[0] - traced_before
        )
        tracemalloc.stop()
        result["parts"] = {name: size / n for name, size in parts.items()}
        for server in servers:
            await server.stop()

    asyncio.run(run())
    workdir.cleanup()
    return result


def _print_scrape(rows: list[tuple[str, dict[str, Any]]]) -> None:
    names: list[str] = []
    for _, r in rows:
        names.extend(k for k in r["parts"] if k not in names)
    header = f"{'bytes per series':<40}" + "".join(f"{label[:14]:>15}" for label, _ in rows)
    print(header)
    for name in names:
        if all(abs(r["parts"].get(name, 0.0)) < 0.05 for _, r in rows):
            continue
        cells = "".join(
            f"{r['parts'][name]:>15.1f}" if name in r["parts"] else f"{'-':>15}" for _, r in rows
        )
        print(f"  {name:<38}{cells}")
    scalar = ["traced_per_series", "rss_per_series", "transient_per_target_series"]
    scalar += sorted(k for k in rows[0][1] if k.endswith(" ms"))
    for key in scalar:
        cells = "".join(f"{r.get(key, float('nan')):>15.1f}" for _, r in rows)
        print(f"{key:<40}{cells}")


def _run_child(code_dir: str | None, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    if code_dir:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [code_dir, env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        __file__,
        "--child",
        "--series",
        str(args.series),
        "--per-target",
        str(args.per_target),
        "--endpoints",
        str(args.endpoints),
    ]
    if args.tracemalloc:
        command.append("--tracemalloc")
    if args.scrape:
        command += ["--scrape", "--scrapes", str(args.scrapes)]
        if args.distinct:
            command.append("--distinct")
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _print_row(label: str, r: dict[str, float]) -> None:
    traced = f"{r['traced_per_series']:9.0f}" if r["traced_per_series"] else "        -"
    print(
        f"{label:<24} {r['series']:>9.0f} {r['rss_per_series']:>9.0f} {traced} "
        f"{r['build_wal_s']:>8.2f} {r['build_queues_s']:>8.2f} "
        f"{r['metadata_listing_ms']:>9.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--per-target", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=1)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--compare", action="append", default=[], metavar="DIR")
    parser.add_argument("--scrape", action="store_true", help="measure the scrape side")
    parser.add_argument("--scrapes", type=int, default=3, help="scrapes per target (--scrape)")
    parser.add_argument(
        "--distinct", action="store_true", help="other series lines per target (--scrape)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.scrape:
            scrapes = max(2, args.scrapes)
            result = measure_scrape(args.series, args.per_target, scrapes, args.distinct)
        else:
            result = measure(args.series, args.per_target, args.endpoints, args.tracemalloc)
        print(json.dumps(result))
        return
    if args.scrape:
        rows = [("this tree", _run_child(None, args))]
        rows += [(Path(d).name, _run_child(d, args)) for d in args.compare]
        _print_scrape(rows)
        return
    print(
        f"{'code':<24} {'series':>9} {'RSS B/s':>9} {'traced':>9} "
        f"{'wal s':>8} {'queue s':>8} {'meta ms':>9}"
    )
    this = _run_child(None, args)
    _print_row("this tree", this)
    for code_dir in args.compare:
        other = _run_child(code_dir, args)
        _print_row(Path(code_dir).name, other)
        print(
            f"{'  ratio this/that':<24} {'':>9} "
            f"{this['rss_per_series'] / max(other['rss_per_series'], 1):>9.2f} "
            + (
                f"{this['traced_per_series'] / max(other['traced_per_series'], 1):>9.2f}"
                if args.tracemalloc
                else ""
            )
        )


if __name__ == "__main__":
    main()
