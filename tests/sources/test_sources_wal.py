"""Sources writing into a real WalStorage; the WAL is read back record by record."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from src_helpers import V2_TYPE, TargetServer, WireSeries, encode_v2

from rwconsole.config import schema
from rwconsole.labels import Labels, make_labels
from rwconsole.model import MetricType, is_stale_nan
from rwconsole.sources.receiver import RemoteWriteReceiver
from rwconsole.sources.scrape import ScrapeLoop
from rwconsole.sources.synthetic import SyntheticSource
from rwconsole.wal import records
from rwconsole.wal.segment import iter_wal
from rwconsole.wal.storage import WalStorage

pytestmark = pytest.mark.timeout(60)


class WalContent:
    def __init__(self, directory: Path) -> None:
        self.labels: dict[int, Labels] = {}
        self.samples: dict[Labels, list[tuple[int, float]]] = {}
        self.metadata: dict[Labels, records.MetricMetadata] = {}
        self.exemplars: list[records.Exemplar] = []
        pending: list[records.SamplesRecord] = []
        for rec in iter_wal(directory):
            decoded = records.decode(rec.data)
            if isinstance(decoded, records.SeriesRecord):
                self.labels.update(decoded.series)
            elif isinstance(decoded, records.SamplesRecord):
                pending.append(decoded)
            elif isinstance(decoded, records.MetadataRecord):
                for entry in decoded.entries:
                    self.metadata[self.labels[entry.ref]] = entry
            elif isinstance(decoded, records.ExemplarsRecord):
                self.exemplars.extend(decoded.exemplars)
        for rec in pending:
            for ref, ts, value in zip(rec.refs, rec.timestamps, rec.values, strict=True):
                self.samples.setdefault(self.labels[ref], []).append((ts, value))


def test_scrape_into_wal_and_read_back(tmp_path: Path) -> None:
    wal = WalStorage.open(tmp_path / "wal")
    config = schema.ScrapeConfig(
        job_name="j",
        scrape_interval=1.0,
        scrape_timeout=2.0,
        metrics_path="/metrics",
        scheme="http",
        params={},
        honor_labels=False,
        honor_timestamps=True,
        labels={},
    )

    async def run() -> str:
        target = TargetServer()
        target.content_type = "application/openmetrics-text; version=1.0.0"
        await target.start()
        clock = iter([1_700_000_000.0, 1_700_000_001.0])
        try:
            async with httpx.AsyncClient() as client:
                loop = ScrapeLoop(config, target.address, wal, client, clock=lambda: next(clock))
                target.body = (
                    "# TYPE req counter\n# HELP req Requests.\n"
                    'req_total{code="200"} 5 # {trace_id="abc"} 1 1700000000.5\n'
                    'req_total{code="500"} 1\n# EOF\n'
                )
                assert await loop.scrape_once()
                target.body = (
                    '# TYPE req counter\n# HELP req Requests.\nreq_total{code="200"} 6\n# EOF\n'
                )
                assert await loop.scrape_once()
        finally:
            await target.stop()
        return target.address

    address = asyncio.run(run())
    wal.close()
    content = WalContent(tmp_path / "wal")
    ok = make_labels({"__name__": "req_total", "code": "200", "job": "j", "instance": address})
    err = make_labels({"__name__": "req_total", "code": "500", "job": "j", "instance": address})
    assert content.samples[ok] == [(1_700_000_000_000, 5.0), (1_700_000_001_000, 6.0)]
    assert content.samples[err][0] == (1_700_000_000_000, 1.0)
    assert is_stale_nan(content.samples[err][1][1])
    up = make_labels({"__name__": "up", "job": "j", "instance": address})
    assert [v for _, v in content.samples[up]] == [1.0, 1.0]
    assert content.metadata[ok].type == MetricType.COUNTER
    assert content.metadata[ok].help == "Requests."
    (ex,) = content.exemplars
    assert content.labels[ex.ref] == ok and ex.timestamp == 1_700_000_000_500


def test_receiver_and_synthetic_into_wal(tmp_path: Path) -> None:
    wal = WalStorage.open(tmp_path / "wal")
    series = make_labels({"__name__": "pushed", "job": "p"})

    async def push() -> int:
        receiver = RemoteWriteReceiver(wal, "127.0.0.1:0")
        await receiver.start()
        try:
            body = encode_v2([WireSeries(series, [(1000, 1.5), (2000, 2.5)], [], (2, "H.", ""))])
            async with httpx.AsyncClient() as client:
                response = await client.post(
                    f"http://127.0.0.1:{receiver.port}/api/v1/write",
                    content=body,
                    headers={"Content-Type": V2_TYPE, "Content-Encoding": "snappy"},
                )
            return response.status_code
        finally:
            await receiver.stop()

    assert asyncio.run(push()) == 204
    source = SyntheticSource(wal, series=50, metrics=3, histograms=True, churn=0.2, seed=3)
    for tick in range(3):
        source.tick(10_000 + tick * 1000)
    wal.close()
    content = WalContent(tmp_path / "wal")
    assert content.samples[series] == [(1000, 1.5), (2000, 2.5)]
    assert content.metadata[series].help == "H."
    synthetic = [labels for labels in content.samples if dict(labels).get("job") == "synthetic"]
    assert len(synthetic) > 50  # churn created replacement series
    stale = [labels for labels in synthetic if is_stale_nan(content.samples[labels][-1][1])]
    assert stale
    assert all(labels in content.metadata for labels in synthetic)


def test_target_back_after_its_series_were_collected(tmp_path: Path) -> None:
    """A target down past the truncation window comes back with fresh series, not errors."""
    wal = WalStorage.open(tmp_path / "wal", segment_size=65536)
    config = schema.ScrapeConfig(
        job_name="j",
        scrape_interval=1.0,
        scrape_timeout=2.0,
        metrics_path="/metrics",
        scheme="http",
        params={},
        honor_labels=False,
        honor_timestamps=True,
        labels={},
    )
    now = [1_700_000_000.0]

    async def run() -> str:
        target = TargetServer()
        await target.start()
        try:
            async with httpx.AsyncClient() as client:
                loop = ScrapeLoop(config, target.address, wal, client, clock=lambda: now[0])
                target.body = "# TYPE g gauge\ng 1\n"
                assert await loop.scrape_once()
                target.status = 503  # down for a long time
                now[0] += 1
                assert not await loop.scrape_once()
                report = wal.truncate(before_segment=0, mint_ms=int(now[0] * 1000) + 3_600_000)
                assert report.series_collected >= 2  # g and the report series
                loop.forget_series(set(report.collected_refs))
                target.status = 200
                target.body = "# TYPE g gauge\ng 2\n"
                now[0] += 7200
                up = await loop.scrape_once()
                assert up, loop.status().last_error
                assert loop.status().last_error == ""
        finally:
            await target.stop()
        return target.address

    address = asyncio.run(run())
    wal.close()
    content = WalContent(tmp_path / "wal")
    g = make_labels({"__name__": "g", "job": "j", "instance": address})
    assert content.samples[g][-1] == (1_700_007_201_000, 2.0)
    up = make_labels({"__name__": "up", "job": "j", "instance": address})
    assert content.samples[up][-1] == (1_700_007_201_000, 1.0)
