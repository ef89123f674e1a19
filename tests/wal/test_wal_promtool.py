"""Prometheus reads what we write: ``promtool tsdb dump`` on a WAL written by WalStorage."""

from __future__ import annotations

import math
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import peer_binary

from rwconsole.labels import format_labels
from rwconsole.model import STALE_NAN
from rwconsole.wal.segment import PAGE_SIZE
from rwconsole.wal.storage import WalStorage

N = 300
_LINE = re.compile(r"^(\{.*\}) (\S+) (-?\d+)$")


def _parse(value: str) -> float:
    return float(value.replace("+Inf", "inf").replace("-Inf", "-inf"))


@pytest.mark.peer
@pytest.mark.parametrize("compress", [False, True])
def test_promtool_dump_reads_our_wal(tmp_path: Path, compress: bool) -> None:
    promtool = peer_binary("promtool")
    now = int(time.time() * 1000) - 10 * 60 * 1000
    wal = WalStorage.open(tmp_path / "wal", segment_size=PAGE_SIZE, compress=compress)
    labels = [(("__name__", "rw_test"), ("idx", str(i)), ("job", "wal")) for i in range(N)]
    refs = wal.series_refs(labels)
    expected: dict[str, list[tuple[int, float]]] = {format_labels(lab): [] for lab in labels}
    specials = [STALE_NAN, math.nan, math.inf, -math.inf, -0.0, 1e-300]
    for b in range(40):
        t = now + b * 1000
        values = [specials[(i + b) % 6] if i % 10 == 0 else b * 1.5 + i * 0.37 for i in range(N)]
        if b % 2:
            wal.append_samples(refs, t, values)
            ts = [t] * N
        else:
            ts = [t + (i % 7) for i in range(N)]
            wal.append_samples(refs, ts, values)
        wal.commit()
        for lab, tt, v in zip(labels, ts, values, strict=True):
            expected[format_labels(lab)].append((tt, v))
    wal.close()
    assert len(list((tmp_path / "wal").iterdir())) >= 2  # rotated

    proc = subprocess.run(
        [promtool, "tsdb", "dump", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    got: dict[str, list[tuple[int, float]]] = {}
    for line in proc.stdout.splitlines():
        match = _LINE.match(line)
        assert match, line
        got.setdefault(match.group(1), []).append((int(match.group(3)), _parse(match.group(2))))
    assert set(got) == set(expected)
    for key, samples in expected.items():
        dumped = sorted(got[key])
        assert [t for t, _ in dumped] == [t for t, _ in samples]
        for (_, want), (_, have) in zip(samples, dumped, strict=True):
            if math.isnan(want):
                assert math.isnan(have)  # promtool prints stale markers as NaN too
            else:
                assert have == want and math.copysign(1, have) == math.copysign(1, want)
