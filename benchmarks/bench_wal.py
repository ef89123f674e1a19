"""WAL benchmark: append throughput, and verify/inspect speed on a full 128 MiB segment.

Usage: python benchmarks/bench_wal.py [--series 1000] [--segment-mib 128] [--compress]

Prints ns per sample for batched appends (``series_refs`` once, then
``append_samples`` + ``commit`` per 1000-sample batch, one timestamp per batch
as a scrape produces) and MB/s for ``tools.verify`` and ``tools.inspect`` on a
generated segment of the given size.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from rwconsole.wal import records, tools
from rwconsole.wal.segment import PAGE_SIZE, list_segments
from rwconsole.wal.storage import WalStorage


def bench_append(directory: Path, n_series: int, batches: int, compress: bool) -> float:
    wal = WalStorage.open(directory, compress=compress)
    labels = [
        (("__name__", f"metric_{i % 50}"), ("instance", f"host-{i // 50}"), ("job", "bench"))
        for i in range(n_series)
    ]
    refs = wal.series_refs(labels)
    wal.commit()
    rnd = random.Random(1)
    values = [rnd.random() * 1000 for _ in range(n_series)]
    t0 = int(time.time() * 1000)
    started = time.perf_counter()
    for b in range(batches):
        wal.append_samples(refs, t0 + b * 15_000, values)
        wal.commit()
    elapsed = time.perf_counter() - started
    wal.close()
    return elapsed / (batches * n_series) * 1e9


def bench_encode(n_series: int, rounds: int) -> float:
    refs = list(range(1, n_series + 1))
    values = [float(i) * 1.5 for i in range(n_series)]
    started = time.perf_counter()
    for r in range(rounds):
        records.encode_samples(refs, 1_700_000_000_000 + r, values)
    return (time.perf_counter() - started) / (rounds * n_series) * 1e9


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
    args = parser.parse_args()
    size = args.segment_mib * 1024 * 1024 // PAGE_SIZE * PAGE_SIZE

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        enc = bench_encode(args.series, 2000)
        print(f"encode_samples:  {enc:7.0f} ns/sample ({args.series}-sample batches)")
        ns = bench_append(root / "append", args.series, args.batches, args.compress)
        print(
            f"append+commit:   {ns:7.0f} ns/sample "
            f"({args.batches} x {args.series}-sample batches, compress={args.compress})"
        )

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


if __name__ == "__main__":
    main()
