"""WAL benchmark: append throughput, and verify/inspect speed on a full 128 MiB segment.

Usage: python benchmarks/bench_wal.py [--series 1000] [--segment-mib 128] [--compress]
       [--append-only]

Prints ns per sample for batched appends (``series_refs`` once, then one
append + ``commit`` per batch of ``--series`` samples, one timestamp per batch
as a scrape produces), old and new side by side in the same run:

* ``append_samples`` (refs checked and the record layout derived on every
  call) against ``append_prepared`` with a batch from ``prepare_samples``
  (what a steady scrape uses), for the record encoding alone, for the WAL's
  append + commit, and through the engine's fan-out appender (which also
  builds the columns offered to the queues);
* the one-time cost of ``prepare_samples``.

Each pair runs interleaved in rounds and the best round counts, so both sides
see the same machine load. Then MB/s for ``tools.verify`` and ``tools.inspect``
on a generated segment of the given size.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rwconsole.engine import _FanoutAppender
from rwconsole.remote.chunks import Chunk
from rwconsole.wal import records, tools
from rwconsole.wal.segment import PAGE_SIZE, list_segments
from rwconsole.wal.storage import WalStorage

ROUNDS = 7
T0 = 1_700_000_000_000


def _labels(n_series: int, job: str) -> list[tuple[tuple[str, str], ...]]:
    return [
        (("__name__", f"metric_{i % 50}"), ("instance", f"host-{i // 50}"), ("job", job))
        for i in range(n_series)
    ]


def _values(n_series: int) -> list[float]:
    rnd = random.Random(1)
    return [rnd.random() * 1000 for _ in range(n_series)]


def _best_pair(
    old: Callable[[int], None], new: Callable[[int], None], calls: int, n: int
) -> tuple[float, float]:
    """Best ns/sample of ``old(i)`` and ``new(i)`` over interleaved rounds of ``calls``."""
    best = [float("inf"), float("inf")]
    step = 0
    for fn in (old, new):  # warm up: first writes grow the file, first calls fill caches
        fn(step)
        step += 1
    for _ in range(ROUNDS):
        for side, fn in enumerate((old, new)):
            started = time.perf_counter()
            for _ in range(calls):
                fn(step)
                step += 1
            elapsed = time.perf_counter() - started
            best[side] = min(best[side], elapsed / (calls * n) * 1e9)
    return best[0], best[1]


def bench_encode(n_series: int, rounds: int) -> tuple[float, float]:
    """``encode_samples`` against a prepared layout (``FixedRefsSamples``), ns/sample."""
    refs = list(range(1, n_series + 1))
    values = _values(n_series)
    fixed = records.FixedRefsSamples(refs)
    return _best_pair(
        lambda i: records.encode_samples(refs, T0 + i, values),
        lambda i: fixed.encode(T0 + i, values),
        max(1, rounds // ROUNDS),
        n_series,
    )


def bench_append(directory: Path, n_series: int, batches: int, compress: bool) -> tuple[float, ...]:
    """WAL append + commit, old and new; then the same through the fan-out appender.

    Returns (old, new, fan-out old, fan-out new, prepare) in ns/sample. Each
    side appends to its own series in the same WAL, so both write equally
    large records.
    """
    wal = WalStorage.open(directory, compress=compress)
    old_refs = wal.series_refs(_labels(n_series, "old"))
    new_refs = wal.series_refs(_labels(n_series, "new"))
    wal.commit()
    values = _values(n_series)
    started = time.perf_counter()
    batch = wal.prepare_samples(new_refs)
    prepare = (time.perf_counter() - started) / n_series * 1e9
    calls = max(1, batches // ROUNDS)

    def old(i: int) -> None:
        wal.append_samples(old_refs, T0 + i * 15_000, values)
        wal.commit()

    def new(i: int) -> None:
        wal.append_prepared(batch, T0 + i * 15_000, values)
        wal.commit()

    wal_old, wal_new = _best_pair(old, new, calls, n_series)

    engine: Any = _Engine(wal)
    fanout = _FanoutAppender(engine)

    def fan_old(i: int) -> None:
        fanout.append_samples(old_refs, T0 + (calls * 2 * ROUNDS + 2 + i) * 15_000, values)
        fanout.commit()

    def fan_new(i: int) -> None:
        fanout.append_prepared(batch, T0 + (calls * 2 * ROUNDS + 2 + i) * 15_000, values)
        fanout.commit()

    fan_old_ns, fan_new_ns = _best_pair(fan_old, fan_new, calls, n_series)
    wal.close()
    return wal_old, wal_new, fan_old_ns, fan_new_ns, prepare


class _Engine:
    """What the fan-out appender needs of the engine: the WAL and a commit hook."""

    def __init__(self, wal: WalStorage) -> None:
        self.wal = wal
        self.chunks = 0

    def _on_commit(self, chunk: Chunk) -> None:
        self.chunks += 1


def fill_segment(directory: Path, size: int, n_series: int, compress: bool) -> Path:
    """Write one full segment of ``size`` bytes (plus the start of the next)."""
    wal = WalStorage.open(directory, segment_size=size, compress=compress)
    refs = wal.series_refs([(("__name__", "fill"), ("i", str(i))) for i in range(n_series)])
    rnd = random.Random(2)
    values = [rnd.random() for _ in range(n_series)]
    t = 1_700_000_000_000
    while wal.position()[0] == 0:
        wal.append_samples(refs, t, values)
        wal.commit()
        t += 15_000
    wal.close()
    return directory / "00000000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000, help="samples per batch")
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--segment-mib", type=int, default=128)
    parser.add_argument("--compress", action="store_true", help="snappy (Prometheus agent default)")
    parser.add_argument(
        "--append-only", action="store_true", help="skip the segment verify/inspect/replay part"
    )
    args = parser.parse_args()
    size = args.segment_mib * 1024 * 1024 // PAGE_SIZE * PAGE_SIZE

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(
            f"{args.series}-sample batches, one timestamp each, compress={args.compress}; "
            f"best of {ROUNDS} interleaved rounds, ns/sample"
        )
        print(f"{'':28}{'old':>8}{'prepared':>10}{'ratio':>8}")
        enc_old, enc_new = bench_encode(args.series, 2000)
        _row("record encoding", enc_old, enc_new)
        wal_old, wal_new, fan_old, fan_new, prepare = bench_append(
            root / "append", args.series, args.batches, args.compress
        )
        _row("WAL append + commit", wal_old, wal_new)
        _row("fan-out append + commit", fan_old, fan_new)
        print(f"prepare_samples (once):     {prepare:8.0f} ns/sample")
        if args.append_only:
            return

        started = time.perf_counter()
        seg = fill_segment(root / "fill", size, args.series, args.compress)
        print(
            f"generated {seg.stat().st_size / 2**20:.0f} MiB segment "
            f"in {time.perf_counter() - started:.1f}s"
        )
        wal_dir = root / "fill"
        total = sum(s.size for s in list_segments(wal_dir))

        started = time.perf_counter()
        report = tools.verify(wal_dir)
        elapsed = time.perf_counter() - started
        assert report.ok, report.problems
        print(
            f"verify:          {total / 1e6 / elapsed:7.0f} MB/s "
            f"({report.records:,} records in {elapsed:.2f}s)"
        )

        started = time.perf_counter()
        summary = tools.inspect(wal_dir)
        elapsed = time.perf_counter() - started
        print(
            f"inspect:         {total / 1e6 / elapsed:7.0f} MB/s "
            f"({summary.samples:,} samples in {elapsed:.2f}s)"
        )

        started = time.perf_counter()
        opened = WalStorage.open(wal_dir)
        elapsed = time.perf_counter() - started
        opened.close()
        print(f"replay on open:  {total / 1e6 / elapsed:7.0f} MB/s ({elapsed:.2f}s)")


def _row(name: str, old: float, new: float) -> None:
    print(f"{name:28}{old:8.0f}{new:10.0f}{old / new:7.2f}x")


if __name__ == "__main__":
    main()
