"""Shared helpers for the WAL tests: copying fixtures, float bits, writing WALs."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

from rwconsole.labels import Labels
from rwconsole.wal.storage import WalStorage


def bits(value: float) -> str:
    return struct.pack(">d", value).hex()


def from_bits(text: str) -> float:
    return struct.unpack(">d", bytes.fromhex(text))[0]


def copy_wal(src: Path, dst: Path) -> Path:
    """Copy a (read-only) fixture WAL to a writable place."""
    shutil.copytree(src, dst)
    for root, _dirs, files in os.walk(dst):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    return dst


def series(n: int, metric: str = "m") -> list[Labels]:
    return [(("__name__", metric), ("i", str(i))) for i in range(n)]


def write_batches(
    directory: Path,
    *,
    batches: int,
    n_series: int,
    t0: int,
    step: int = 1000,
    segment_size: int = 128 * 1024 * 1024,
    compress: bool = True,
) -> dict[Labels, list[tuple[int, float]]]:
    """Append ``batches`` commits of one sample per series; return what was written."""
    expected: dict[Labels, list[tuple[int, float]]] = {}
    wal = WalStorage.open(directory, segment_size=segment_size, compress=compress)
    labels = series(n_series)
    refs = wal.series_refs(labels)
    for b in range(batches):
        t = t0 + b * step
        values = [float(b * n_series + i) for i in range(n_series)]
        wal.append_samples(refs, t, values)
        wal.commit()
        for lab, v in zip(labels, values, strict=True):
            expected.setdefault(lab, []).append((t, v))
    wal.close()
    return expected
