"""Steady scrapes through prepared batches: into a WAL, and through the engine to a receiver."""

from __future__ import annotations

import asyncio
import math
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from conftest import free_port, wait_until

from rwconsole.config import schema
from rwconsole.engine import Engine
from rwconsole.labels import Labels, make_labels
from rwconsole.model import (
    Appender,
    Exemplar,
    HistogramSample,
    MetricMetadata,
    NoPreparedBatches,
    is_stale_nan,
)
from rwconsole.sources.scrape import ScrapeLoop
from rwconsole.wal import records as rec
from rwconsole.wal.segment import iter_wal
from rwconsole.wal.storage import WalStorage

pytestmark = pytest.mark.timeout(60)

SERIES = 40


class _Target:
    """A scrape target on 127.0.0.1 (own thread): the same series each time, new values.

    Answer n (from 0) gives series i the value ``n * 1000 + i``.
    """

    def __init__(self) -> None:
        self.answers = 0
        self.lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with target.lock:
                    n = target.answers
                    target.answers += 1
                lines = [f'steady{{i="{i}"}} {n * 1000 + i}\n' for i in range(SERIES)]
                body = ("# TYPE steady gauge\n" + "".join(lines)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def _serving() -> Iterator[_Target]:
    target = _Target()
    thread = threading.Thread(target=target.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield target
    finally:
        target.server.shutdown()
        target.server.server_close()
        thread.join(5)


class _PlainAppender(NoPreparedBatches):
    """A WAL seen through the Appender protocol only (no prepared batches)."""

    def __init__(self, wal: WalStorage) -> None:
        self._wal = wal

    def series_refs(self, labels: Sequence[Labels]) -> list[int]:
        return self._wal.series_refs(labels)

    def append_samples(
        self, refs: Sequence[int], timestamps: Sequence[int] | int, values: Sequence[float]
    ) -> None:
        self._wal.append_samples(refs, timestamps, values)

    def append_exemplars(self, exemplars: Sequence[Exemplar]) -> None:
        self._wal.append_exemplars(exemplars)

    def append_histograms(self, histograms: Sequence[HistogramSample]) -> None:
        self._wal.append_histograms(histograms)

    def append_metadata(self, entries: Sequence[MetricMetadata]) -> None:
        self._wal.append_metadata(entries)

    def commit(self) -> None:
        self._wal.commit()


def _config(target: _Target) -> schema.ScrapeConfig:
    return schema.ScrapeConfig(
        job_name="j", targets=[target.address], scrape_interval=1.0, scrape_timeout=5.0
    )


def _wal_samples(directory: Path) -> list[tuple[Labels, int, bytes]]:
    """Every sample as (labels, t, value bits); scrape durations zeroed (they differ per run)."""
    labels: dict[int, Labels] = {}
    out = []
    for item in iter_wal(directory):
        decoded = rec.decode(item.data)
        if isinstance(decoded, rec.SeriesRecord):
            labels.update(decoded.series)
        elif isinstance(decoded, rec.SamplesRecord):
            for ref, t, v in zip(decoded.refs, decoded.timestamps, decoded.values, strict=True):
                series = labels[ref]
                if labels[ref][0][1] == "scrape_duration_seconds" and not is_stale_nan(v):
                    v = 0.0
                out.append((series, t, struct.pack(">d", v)))
    return out


def _scrape(loop: ScrapeLoop, now: list[float], times: int) -> list[bool]:
    async def run() -> list[bool]:
        ups = []
        for _ in range(times):
            ups.append(await loop.scrape_once())
            now[0] += 15
        return ups

    return asyncio.run(run())


def test_steady_scrapes_write_what_the_plain_path_writes(tmp_path: Path) -> None:
    written = []
    with _serving() as target:
        for prepared in (True, False):
            target.answers = 0
            wal = WalStorage.open(tmp_path / str(prepared))
            app: Appender = wal if prepared else _PlainAppender(wal)
            now = [1_700_000_000.0]

            async def scrape_all(app: Appender = app, now: list[float] = now) -> ScrapeLoop:
                async with httpx.AsyncClient() as client:
                    clock = lambda: now[0]  # noqa: E731
                    loop = ScrapeLoop(_config(target), target.address, app, client, clock=clock)
                    for _ in range(5):
                        assert await loop.scrape_once(), loop.status().last_error
                        now[0] += 15
                    await loop.stop(stale=True)
                    return loop

            loop = asyncio.run(scrape_all())
            steady = loop._state.steady
            if prepared:  # the steady scrapes went through one prepared batch
                assert steady is not None and steady.prepared is not None
                assert len(steady.prepared) == SERIES
            else:
                assert steady is not None and steady.prepared is None
            wal.close()
            written.append(_wal_samples(tmp_path / str(prepared)))
    with_batch, plain = written
    assert with_batch == plain
    values = [struct.unpack(">d", v)[0] for s, _, v in with_batch if dict(s).get("i") == "7"]
    assert values[:5] == [7.0, 1007.0, 2007.0, 3007.0, 4007.0] and is_stale_nan(values[5])


def test_steady_series_collected_under_a_batch(tmp_path: Path) -> None:
    """Nobody told the loop: the batch is refused once, loudly; no sample names a dead ref."""
    wal = WalStorage.open(tmp_path / "wal", segment_size=64 * 1024)
    now = [1_700_000_000.0]
    with _serving() as target:

        async def run() -> tuple[list[bool], list[str], list[int]]:
            async with httpx.AsyncClient() as client:
                clock = lambda: now[0]  # noqa: E731
                loop = ScrapeLoop(_config(target), target.address, wal, client, clock=clock)
                ups, errors = [], []
                for step in range(5):
                    if step == 2:  # the WAL collects every series behind the loop's back
                        report = wal.truncate(before_segment=0, mint_ms=int(now[0] * 1000) + 1)
                        collected = report.collected_refs
                        assert len(collected) == SERIES + 5
                    ups.append(await loop.scrape_once())
                    errors.append(loop.status().last_error)
                    now[0] += 15
                await loop.stop(stale=False)
                return ups, errors, collected

        ups, errors, collected = asyncio.run(run())
    wal.close()
    assert ups == [True, True, False, True, True]
    assert errors[2].startswith("append failed:") and "collected" in errors[2]
    after = [(s, t) for s, t, _ in _wal_samples(tmp_path / "wal") if t >= 1_700_000_030_000]
    assert len(after) == 2 * (SERIES + 5)  # the two scrapes after the failed one
    # Refs written after the truncation are new series, never the collected ones.
    refs_after = set()
    for item in iter_wal(tmp_path / "wal"):
        decoded = rec.decode(item.data)
        if isinstance(decoded, rec.SamplesRecord):
            refs_after.update(
                r
                for r, t in zip(decoded.refs, decoded.timestamps, strict=True)
                if t >= 1_700_000_030_000
            )
    assert refs_after.isdisjoint(collected)


def test_engine_delivers_steady_scrapes_to_the_receiver(tmp_path: Path) -> None:
    with _serving() as target:
        config = schema.Config(
            storage=schema.StorageConfig(path=str(tmp_path / "data")),
            http=schema.HTTPServerConfig(listen_address=f"127.0.0.1:{free_port()}"),
            demo=schema.DemoConfig(enabled=True),
            scrape=[
                schema.ScrapeConfig(
                    job_name="steady",
                    targets=[target.address],
                    scrape_interval=0.2,
                    scrape_timeout=0.2,
                )
            ],
        )
        engine = Engine(config, flush_deadline=5.0)
        engine.start()
        try:
            receiver = engine.demo_receiver

            def ours() -> dict[Labels, object]:
                return {k: v for k, v in receiver.series().items() if dict(k).get("i")}

            # Five scrapes or more, each delivered to both endpoints.
            wait_until(
                lambda: len(ours()) == SERIES and all(s.samples >= 10 for s in ours().values())
            )
            (loop,) = engine.sources[0]._loops.values()
            steady = loop._state.steady
            assert steady is not None and steady.prepared is not None
            assert loop.status().last_error == ""
            # Each value reached its own series (values are answer * 1000 + i).
            for labels, stats in ours().items():
                value = stats.last_value
                assert value is not None and not math.isnan(value)
                assert value % 1000 == int(dict(labels)["i"]), (labels, value)
        finally:
            engine.stop()
    snap = engine.snapshot()
    for endpoint in snap.endpoints:
        assert endpoint.samples_total == snap.samples_in_total, endpoint.name
        assert endpoint.samples_failed == 0
    key = make_labels({"__name__": "steady", "i": "3", "job": "steady", "instance": target.address})
    assert receiver.series()[key].samples % 2 == 0
