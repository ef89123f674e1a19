"""Start timestamps in the WAL: which record types are written, checkpoints, reading back.

An append with start timestamps is logged as Prometheus 3.11+ logs it (types 11,
12, 13); one without stays in the 2.42 types (2, 7, 8), so 2.42 tools read it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rwconsole.labels import make_labels
from rwconsole.model import CUSTOM_BUCKETS_SCHEMA, Histogram, HistogramSample
from rwconsole.remote.chunks import Chunk
from rwconsole.remote.follower import _decode_into
from rwconsole.wal import records as rec
from rwconsole.wal.checkpoint import write_checkpoint
from rwconsole.wal.segment import checkpoint_name, iter_checkpoint, iter_wal
from rwconsole.wal.storage import WalStorage

INT = Histogram(schema=0, zero_threshold=0.0, zero_count=0, count=2, sum=1.0)
FLOAT = Histogram(schema=0, zero_threshold=0.0, zero_count=0.0, count=2.5, sum=1.0, is_float=True)
CUSTOM = Histogram(
    schema=CUSTOM_BUCKETS_SCHEMA,
    zero_threshold=0.0,
    zero_count=0,
    count=1,
    sum=0.5,
    positive_spans=((0, 1),),
    positive_buckets=(1,),
    custom_values=(1.0,),
)


def _wal(tmp_path: Path, n: int = 3) -> tuple[WalStorage, list[int]]:
    wal = WalStorage.open(tmp_path / "wal")
    labels = [make_labels({"__name__": "st", "i": str(i)}) for i in range(n)]
    return wal, wal.series_refs(labels)


def _decoded(directory: Path) -> list[rec.Record]:
    return [
        rec.decode(r.data)
        for r in iter_wal(directory)
        if rec.record_type(r.data) != rec.RecordType.SERIES
    ]


def test_samples_use_type_11_only_with_start_timestamps(tmp_path: Path) -> None:
    wal, refs = _wal(tmp_path)
    wal.append_samples(refs, 1000, [1.0, 2.0, 3.0])
    wal.append_samples(refs, 2000, [1.0, 2.0, 3.0], [0, 0, 0])  # none: still type 2
    wal.append_samples(refs, [3000, 3001, 3002], [4.0, 5.0, 6.0], [500, 0, 700])
    wal.append_samples(refs, 4000, [7.0, 8.0, 9.0], [500, 500, 600])  # one time for all
    with pytest.raises(ValueError, match="start timestamps for 3 samples"):
        wal.append_samples(refs, 5000, [1.0, 2.0, 3.0], [1, 2])
    wal.commit()
    wal.close()
    out = _decoded(tmp_path / "wal")
    assert [type(r) for r in out] == [rec.SamplesRecord] * 4
    assert [r.start_timestamps for r in out] == [None, None, [500, 0, 700], [500, 500, 600]]
    assert out[2].timestamps == [3000, 3001, 3002] and out[3].timestamps == [4000] * 3
    assert out[3].values == [7.0, 8.0, 9.0]


def test_histograms_use_types_12_and_13_only_with_start_timestamps(tmp_path: Path) -> None:
    wal, (a, b, c) = _wal(tmp_path)
    wal.append_histograms([HistogramSample(a, 1000, INT), HistogramSample(b, 1000, FLOAT)])
    wal.append_histograms(
        [
            HistogramSample(a, 2000, INT, 900),
            HistogramSample(b, 2000, INT),  # same kind as one with a start: same record
            HistogramSample(c, 2000, FLOAT, 800),
        ]
    )
    # Custom buckets have no record with start timestamps (types 9/10 stay).
    wal.append_histograms([HistogramSample(c, 3000, CUSTOM, 700)])
    wal.commit()
    wal.close()
    out = [r for r in _decoded(tmp_path / "wal") if isinstance(r, rec.HistogramsRecord)]
    assert [r.type for r in out] == [7, 8, 12, 13, 9]
    assert out[2].start_timestamps == [900, 0]
    assert [h.start_timestamp for h in out[2].histograms] == [900, 0]
    assert [h.start_timestamp for h in out[3].histograms] == [800]
    assert out[4].histograms == [HistogramSample(c, 3000, CUSTOM)]


def test_a_checkpoint_keeps_start_timestamps(tmp_path: Path) -> None:
    wal, refs = _wal(tmp_path)
    wal.append_samples(refs, [1000, 5000, 6000], [1.0, 2.0, 3.0], [900, 0, 0])
    wal.append_samples(refs, [1000, 5000, 6000], [1.0, 2.0, 3.0], [0, 4000, 0])
    wal.append_histograms([HistogramSample(refs[0], 5000, INT, 4500)])
    wal.commit()
    wal.close()
    directory = tmp_path / "wal"
    dropped = write_checkpoint(
        directory,
        None,
        0,
        0,
        mint_ms=2000,
        keep=lambda ref: True,
        segment_size=1 << 20,
        compress=False,
    )
    assert dropped == 2
    kept = [rec.decode(r.data) for r in iter_checkpoint(directory / checkpoint_name(0), 0)]
    samples = [r for r in kept if isinstance(r, rec.SamplesRecord)]
    # The first record's only start timestamp was on a dropped sample: back to type 2.
    assert [r.start_timestamps for r in samples] == [None, [4000, 0]]
    (hists,) = [r for r in kept if isinstance(r, rec.HistogramsRecord)]
    assert hists.type == 12 and hists.start_timestamps == [4500]


def test_a_follower_chunk_keeps_the_column_aligned_across_records() -> None:
    chunk = Chunk(end=(0, 0))
    _decode_into(chunk, rec.encode_samples([1, 2], 10, [1.0, 2.0]), None)
    assert chunk.start_timestamps is None  # nothing to carry yet
    _decode_into(chunk, rec.encode_samples_v2([3], [20], [3.0], [0]), None)
    assert chunk.start_timestamps is None  # a type 11 record without any start
    _decode_into(chunk, rec.encode_samples_v2([1, 2], [30, 30], [4.0, 5.0], [7, 0]), None)
    _decode_into(chunk, rec.encode_samples([3], 40, [6.0]), None)
    assert chunk.refs == [1, 2, 3, 1, 2, 3]
    assert chunk.start_timestamps == [0, 0, 0, 7, 0, 0]
    _decode_into(
        chunk, rec.encode_histograms_v2([HistogramSample(1, 50, INT)], [9], is_float=False), None
    )
    assert chunk.histograms == [HistogramSample(1, 50, INT, 9)]


def test_dump_shows_start_timestamps(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from rwconsole.cli import main

    wal, refs = _wal(tmp_path, 2)
    wal.append_samples(refs, 1000, [1.0, 2.0])
    wal.append_samples(refs, 2000, [3.0, 4.0], [400, 0])
    wal.append_histograms([HistogramSample(refs[0], 2500, INT, 300)])
    wal.commit()
    wal.close()
    assert main(["wal", "dump", str(tmp_path / "wal"), "--format", "json"]) == 0
    import json

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    starts = [(d["timestamp"], d["labels"]["i"], d.get("start_timestamp")) for d in lines]
    assert sorted(starts) == [
        (1000, "0", None),
        (1000, "1", None),
        (2000, "0", 400),
        (2000, "1", None),
        (2500, "0", 300),
    ]
    assert main(["wal", "dump", str(tmp_path / "wal")]) == 0
    text = capsys.readouterr().out.splitlines()
    assert sum(" start=400" in line for line in text) == 1
    assert sum(line.startswith("histogram ") and line.endswith(" start=300") for line in text) == 1
