"""Reading WALs written by Prometheus 2.42 must reproduce their ground truth exactly."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from pathlib import Path

import pytest
from wal_helpers import bits

from rwconsole.labels import format_labels
from rwconsole.wal import records as rec
from rwconsole.wal import tools
from rwconsole.wal.segment import WalWriter, iter_wal


@pytest.fixture(params=["agent-uncompressed", "agent-snappy"])
def fixture(request: pytest.FixtureRequest, fixtures_dir: Path) -> Path:
    return fixtures_dir / request.param


def _read(wal: Path) -> tuple[dict[str, list[list[object]]], dict[str, list[dict[str, object]]]]:
    labels: dict[int, str] = {}
    samples: dict[str, list[list[object]]] = defaultdict(list)
    exemplars: dict[str, list[dict[str, object]]] = defaultdict(list)
    for item in iter_wal(wal):
        decoded = rec.decode(item.data)
        if isinstance(decoded, rec.SeriesRecord):
            for ref, lab in decoded.series:
                labels[ref] = format_labels(lab)
        elif isinstance(decoded, rec.SamplesRecord):
            for ref, t, v in zip(decoded.refs, decoded.timestamps, decoded.values, strict=True):
                samples[labels[ref]].append([t, bits(v)])
        elif isinstance(decoded, rec.ExemplarsRecord):
            for ex in decoded.exemplars:
                exemplars[labels[ex.ref]].append(
                    {"labels": dict(ex.labels), "value": bits(ex.value), "t": ex.timestamp}
                )
    return samples, exemplars


def test_samples_and_exemplars_match_ground_truth(fixture: Path) -> None:
    truth = json.loads((fixture / "groundtruth.json").read_text())
    with gzip.open(fixture / "groundtruth-samples.json.gz", "rt") as fh:
        truth_samples = json.load(fh)
    samples, exemplars = _read(fixture / "wal")

    assert len(samples) == truth["series_total"] == 352
    # Remote write turns -0.0 into +0; the WAL keeps the sign bit.
    (negzero_key,) = [k for k in samples if "fx_special" in k and 'kind="negzero"' in k]
    negzero = samples[negzero_key]
    assert {v for _, v in negzero} == {"8000000000000000", "7ff0000000000002"}
    expected_samples = dict(truth_samples["samples"])
    expected_samples[negzero_key] = [
        [t, "8000000000000000" if v == "0000000000000000" else v]
        for t, v in expected_samples[negzero_key]
    ]
    assert samples == expected_samples
    assert sum(len(v) for v in samples.values()) == truth["sample_count"] == 11692
    flat = [v for vs in samples.values() for _, v in vs]
    assert flat.count("7ff0000000000002") == truth["stale_marker_count"] == 422
    assert flat.count("7ff8000000000001") == truth["other_nan_count"] == 35
    assert {k: len(v) for k, v in samples.items()} == truth["per_series_sample_count"]

    assert sum(len(v) for v in exemplars.values()) == truth["exemplar_count"] == 1820
    assert {k: len(v) for k, v in exemplars.items()} == truth["per_series_exemplar_count"]
    assert dict(exemplars) == truth_samples["exemplars"]


def test_reencoding_reproduces_prometheus_bytes(fixture: Path, tmp_path: Path) -> None:
    """Decode every record, re-encode it, write it: the segment is byte-identical."""
    src = fixture / "wal"
    compressed = fixture.name == "agent-snappy"
    writer = WalWriter(tmp_path, compress=compressed)
    for item in iter_wal(src):
        decoded = rec.decode(item.data)
        if isinstance(decoded, rec.SeriesRecord):
            data = rec.encode_series(decoded.series)
        elif isinstance(decoded, rec.SamplesRecord):
            data = rec.encode_samples(decoded.refs, decoded.timestamps, decoded.values)
        else:
            assert isinstance(decoded, rec.ExemplarsRecord)
            data = rec.encode_exemplars(decoded.exemplars)
        assert data == item.data
        writer.log([data])
    writer.close()
    assert (tmp_path / "00000000").read_bytes() == (src / "00000000").read_bytes()


def test_inspect_and_verify_fixture(fixture: Path) -> None:
    truth = json.loads((fixture / "groundtruth.json").read_text())
    report = tools.inspect(fixture / "wal")
    assert report.series == 352
    assert report.samples == truth["sample_count"]
    assert report.exemplars == truth["exemplar_count"]
    assert report.min_time_ms == truth["min_t"]
    assert report.max_time_ms == truth["max_t"]
    assert report.records == {"series": 2, "samples": 72, "exemplars": 35}
    assert report.corruption is None
    assert tools.verify(fixture / "wal").ok
