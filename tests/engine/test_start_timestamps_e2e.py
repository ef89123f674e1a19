"""Start timestamps and late metadata, end to end through the engine.

A capturing receiver parses every request with the reference protobuf classes.
Samples and histograms whose WAL records carry start timestamps (types 11–13,
written by our encoder) reach a 2.0 endpoint with them, whether the queue reads
them back from the segment files (a WAL written before the engine started,
``backfill``) or follows live commits; a 1.0 endpoint gets the same samples
without. The relay keeps the start timestamps of 2.0 requests, stores them as
type-11 records and forwards them, and metadata that arrives after a series was
first forwarded reaches the 2.0 endpoint with the series' next samples.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import snappy
from conftest import free_port, wait_until
from text_targets import text_targets

from rwconsole.config import schema
from rwconsole.engine import Engine
from rwconsole.http.server import HttpServer, Request, Response
from rwconsole.labels import Labels, make_labels
from rwconsole.model import Histogram, HistogramSample, MetricType, ResetHint
from rwconsole.protocol import encode
from rwconsole.protocol.proto import remote_v1_pb2, remote_v2_pb2
from rwconsole.remote.replay import Replay, ReplayOptions
from rwconsole.wal import records
from rwconsole.wal.segment import iter_wal
from rwconsole.wal.storage import WalStorage

pytestmark = pytest.mark.timeout(90)

HIST = Histogram(
    schema=1,
    zero_threshold=1e-3,
    zero_count=1,
    count=6,
    sum=4.5,
    positive_spans=((0, 2),),
    positive_buckets=(2, 1),
    reset_hint=ResetHint.NO,
)
FLOAT_HIST = Histogram(
    schema=0,
    zero_threshold=0.0,
    zero_count=0.0,
    count=2.5,
    sum=1.25,
    positive_spans=((1, 1),),
    positive_buckets=(2.5,),
    is_float=True,
)


class ReferenceCapture:
    """A remote-write receiver that parses each body with the generated protobuf classes.

    It keeps (protocol, message) per request and answers 2.0 with Written headers.
    """

    def __init__(self) -> None:
        self.messages: list[tuple[int, object]] = []
        self._lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.server = HttpServer(self._handle)
        self.loop.run_until_complete(self.server.start("127.0.0.1", 0))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/api/v1/write"

    async def _handle(self, request: Request) -> Response:
        raw = snappy.uncompress(request.body)
        if "io.prometheus.write.v2" in request.header("content-type"):
            message = remote_v2_pb2.Request.FromString(raw)
            samples = sum(len(ts.samples) for ts in message.timeseries)
            hists = sum(len(ts.histograms) for ts in message.timeseries)
            exemplars = sum(len(ts.exemplars) for ts in message.timeseries)
            with self._lock:
                self.messages.append((2, message))
            return Response(204, headers=encode_written(samples, hists, exemplars))
        with self._lock:
            self.messages.append((1, remote_v1_pb2.WriteRequest.FromString(raw)))
        return Response(204)

    def v2_points(self) -> list[tuple[Labels, str, int, int, MetricType, str]]:
        """(labels, kind, timestamp, start timestamp, metadata type, help) of every 2.0 entry."""
        out = []
        with self._lock:
            messages = [m for v, m in self.messages if v == 2]
        for message in messages:
            symbols = list(message.symbols)
            for ts in message.timeseries:
                refs = list(ts.labels_refs)
                labels = tuple(
                    (symbols[refs[i]], symbols[refs[i + 1]]) for i in range(0, len(refs), 2)
                )
                meta = (MetricType(ts.metadata.type), symbols[ts.metadata.help_ref])
                for s in ts.samples:
                    out.append((labels, "sample", s.timestamp, s.start_timestamp, *meta))
                for h in ts.histograms:
                    out.append((labels, "histogram", h.timestamp, h.start_timestamp, *meta))
        return out

    def v1_samples(self) -> list[tuple[Labels, int]]:
        with self._lock:
            messages = [m for v, m in self.messages if v == 1]
        return [
            (tuple((label.name, label.value) for label in ts.labels), s.timestamp)
            for message in messages
            for ts in message.timeseries
            for s in ts.samples
        ]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def encode_written(samples: int, histograms: int, exemplars: int) -> dict[str, str]:
    return {
        encode.SAMPLES_WRITTEN_HEADER: str(samples),
        encode.HISTOGRAMS_WRITTEN_HEADER: str(histograms),
        encode.EXEMPLARS_WRITTEN_HEADER: str(exemplars),
    }


@pytest.fixture
def capture() -> Iterator[ReferenceCapture]:
    receiver = ReferenceCapture()
    try:
        yield receiver
    finally:
        receiver.close()


def endpoint(url: str, protocol: str, name: str) -> schema.EndpointConfig:
    return schema.EndpointConfig(
        url=url,
        name=name,
        protobuf_message=protocol,
        send_native_histograms=True,
        backfill=True,
        queue_config=schema.QueueConfig(batch_send_deadline=0.05),
        metadata_config=schema.MetadataConfig(send=False),
    )


def record_types(wal_dir: Path) -> list[int]:
    return [records.record_type(r.data) for r in iter_wal(wal_dir)]


def test_start_timestamps_from_the_wal_reach_a_2_0_endpoint(
    tmp_path: Path, capture: ReferenceCapture
) -> None:
    data = tmp_path / "data"
    now = int(time.time() * 1000)
    counters = [make_labels({"__name__": f"st_requests_total{i}", "job": "st"}) for i in range(3)]
    hist_labels = [make_labels({"__name__": f"st_latency{i}", "job": "st"}) for i in range(2)]
    # Written before the engine starts: the queues read these back from the files.
    wal = WalStorage.open(data / "wal")
    refs = wal.series_refs(counters)
    h_refs = wal.series_refs(hist_labels)
    wal.append_samples(refs, now, [1.0, 2.0, 3.0])  # no start timestamps: type 2
    wal.append_samples(refs, now + 1000, [4.0, 5.0, 6.0], [now - 60_000, 0, now - 30_000])
    wal.append_histograms(
        [
            HistogramSample(h_refs[0], now, HIST, now - 90_000),
            HistogramSample(h_refs[1], now, FLOAT_HIST, now - 80_000),
        ]
    )
    wal.commit()
    wal.close()
    types = record_types(data / "wal")
    assert records.RecordType.SAMPLES in types and records.RecordType.SAMPLES_V2 in types
    assert {12, 13} <= set(types)  # HistogramSamplesV2 and FloatHistogramSamplesV2

    config = schema.Config(
        storage=schema.StorageConfig(path=str(data)),
        endpoint=[
            endpoint(capture.url, schema.PROTOBUF_V2, "v2"),
            endpoint(capture.url, schema.PROTOBUF_V1, "v1"),
        ],
    )
    engine = Engine(config, serve_metrics=False, serve_admin=False, flush_deadline=5.0)
    engine.start()
    try:
        wait_until(lambda: len(capture.v2_points()) >= 8, timeout=30)

        async def live() -> None:  # followed from the commit, not read from files
            app = engine.appender
            app.append_samples(refs[:2], now + 2000, [7.0, 8.0], [now - 60_000, 0])
            app.append_samples(refs[2:], now + 2000, [9.0])
            app.commit()

        engine.submit(live).result(10)
        wait_until(lambda: len(capture.v2_points()) >= 11, timeout=30)
        wait_until(lambda: len(capture.v1_samples()) >= 9, timeout=30)
    finally:
        engine.stop()

    got = {(dict(p[0])["__name__"], p[1], p[2]): p[3] for p in capture.v2_points()}
    name = "st_requests_total{}".format
    assert got == {
        (name(0), "sample", now): 0,
        (name(1), "sample", now): 0,
        (name(2), "sample", now): 0,
        (name(0), "sample", now + 1000): now - 60_000,
        (name(1), "sample", now + 1000): 0,
        (name(2), "sample", now + 1000): now - 30_000,
        ("st_latency0", "histogram", now): now - 90_000,
        ("st_latency1", "histogram", now): now - 80_000,
        (name(0), "sample", now + 2000): now - 60_000,
        (name(1), "sample", now + 2000): 0,
        (name(2), "sample", now + 2000): 0,
    }
    # 1.0 has no start timestamps: the same samples arrive without them.
    assert sorted(t for _, t in capture.v1_samples()) == sorted(
        [now] * 3 + [now + 1000] * 3 + [now + 2000] * 3
    )


def _v2_request(labels: Labels, points: list[tuple[int, float, int]], meta: tuple | None) -> bytes:
    request = remote_v2_pb2.Request()
    symbols = [""]

    def ref(text: str) -> int:
        if text not in symbols:
            symbols.append(text)
        return symbols.index(text)

    ts = request.timeseries.add()
    for name, value in labels:
        ts.labels_refs.extend([ref(name), ref(value)])
    for t, v, st in points:
        ts.samples.add(value=v, timestamp=t, start_timestamp=st)
    if meta is not None:
        ts.metadata.type, help_text = meta
        ts.metadata.help_ref = ref(help_text)
    request.symbols.extend(symbols)
    return request.SerializeToString()


def _post(url: str, body: bytes, protocol: int) -> httpx.Response:
    content_type = encode.CONTENT_TYPE_V2 if protocol == 2 else encode.CONTENT_TYPE_V1
    version = encode.VERSION_V2 if protocol == 2 else encode.VERSION_V1
    return httpx.post(
        url,
        content=snappy.compress(body),
        headers={
            "Content-Type": content_type,
            "Content-Encoding": "snappy",
            encode.VERSION_HEADER: version,
        },
        timeout=10,
    )


def test_the_relay_keeps_start_timestamps_and_sends_late_metadata(
    tmp_path: Path, capture: ReferenceCapture
) -> None:
    port = free_port()
    config = schema.Config(
        storage=schema.StorageConfig(path=str(tmp_path / "data")),
        receiver=schema.ReceiverConfig(listen_address=f"127.0.0.1:{port}"),
        endpoint=[endpoint(capture.url, schema.PROTOBUF_V2, "relayed")],
    )
    engine = Engine(config, serve_metrics=False, serve_admin=False, flush_deadline=5.0)
    engine.start()
    relay = f"http://127.0.0.1:{port}/api/v1/write"
    now = int(time.time() * 1000)
    late = make_labels({"__name__": "late_jobs_total", "job": "relay"})
    try:
        # 1: samples with start timestamps, no metadata yet.
        body = _v2_request(late, [(now, 1.0, now - 5000), (now + 1000, 2.0, now - 5000)], None)
        assert _post(relay, body, 2).status_code == 204
        wait_until(lambda: len(capture.v2_points()) >= 2, timeout=30)
        # 2: the family's metadata alone, as Prometheus sends it with 1.0.
        metadata_only = remote_v1_pb2.WriteRequest()
        metadata_only.metadata.add(
            type=remote_v1_pb2.MetricMetadata.COUNTER,
            metric_family_name="late_jobs_total",
            help="Jobs finished late.",
        )
        assert _post(relay, metadata_only.SerializeToString(), 1).status_code == 204
        # 3: more samples of the series the queue has cached already.
        body = _v2_request(late, [(now + 2000, 3.0, now - 5000), (now + 3000, 4.0, 0)], None)
        assert _post(relay, body, 2).status_code == 204
        wait_until(lambda: len(capture.v2_points()) >= 4, timeout=30)
    finally:
        engine.stop()

    points = sorted(capture.v2_points(), key=lambda p: p[2])
    assert [(p[2], p[3]) for p in points] == [
        (now, now - 5000),
        (now + 1000, now - 5000),
        (now + 2000, now - 5000),
        (now + 3000, 0),
    ]
    assert {p[0] for p in points} == {late}
    # The first samples left before any metadata was known; the later ones carry it.
    assert [(p[4], p[5]) for p in points[2:]] == [(MetricType.COUNTER, "Jobs finished late.")] * 2
    # The relay stored the start timestamps as SamplesV2 records.
    stored = [
        records.decode(r.data)
        for r in iter_wal(tmp_path / "data" / "wal")
        if records.record_type(r.data) == records.RecordType.SAMPLES_V2
    ]
    assert [st for rec in stored for st in rec.start_timestamps] == [now - 5000] * 3 + [0]


@pytest.mark.parametrize("time_range", [False, True], ids=["all", "from-to"])
def test_wal_replay_of_type_11_records_sends_their_start_timestamps(
    tmp_path: Path, capture: ReferenceCapture, time_range: bool
) -> None:
    now = int(time.time() * 1000)
    wal = WalStorage.open(tmp_path / "wal")
    labels = [make_labels({"__name__": f"replayed_total{i}", "job": "r"}) for i in range(4)]
    refs = wal.series_refs(labels)
    for step in range(4):
        t = now + step * 1000
        if step % 2:
            wal.append_samples(refs, t, [float(step)] * 4, [now - 1000 * (i + 1) for i in range(4)])
        else:
            wal.append_samples(refs, t, [float(step)] * 4)
        wal.commit()
    wal.close()
    options = ReplayOptions(flush_deadline=5.0)
    if time_range:  # only steps 1 and 2: the filtered path
        options = ReplayOptions(start_ms=now + 1000, end_ms=now + 2000, flush_deadline=5.0)
    endpoint = schema.EndpointConfig(
        url=capture.url,
        protobuf_message=schema.PROTOBUF_V2,
        queue_config=schema.QueueConfig(batch_send_deadline=0.05),
    )
    replay = Replay(tmp_path / "wal", endpoint, tmp_path / "progress.json", options)
    summary = asyncio.run(asyncio.wait_for(replay.run(), 60))
    assert summary.ok
    got = {(dict(p[0])["__name__"], p[2]): p[3] for p in capture.v2_points()}
    steps = (1, 2) if time_range else (0, 1, 2, 3)
    assert got == {
        (f"replayed_total{i}", now + step * 1000): (now - 1000 * (i + 1) if step % 2 else 0)
        for step in steps
        for i in range(4)
    }


def test_a_scraped_openmetrics_counter_reaches_2_0_with_its_created_time(
    tmp_path: Path, capture: ReferenceCapture
) -> None:
    created = 1_700_000_000.25

    def body(_: str) -> bytes:
        return (
            "# TYPE om_jobs counter\n"
            "# HELP om_jobs Jobs run.\n"
            'om_jobs_total{queue="a"} 12\n'
            f'om_jobs_created{{queue="a"}} {created}\n'
            "# EOF\n"
        ).encode()

    om = "application/openmetrics-text; version=1.0.0; charset=utf-8"
    with text_targets(1, body, om) as (address,):
        config = schema.Config(
            storage=schema.StorageConfig(path=str(tmp_path / "data")),
            scrape=[
                schema.ScrapeConfig(
                    job_name="om",
                    targets=[address],
                    scrape_interval=0.5,
                    scrape_timeout=0.4,
                    start_timestamps=True,
                )
            ],
            endpoint=[endpoint(capture.url, schema.PROTOBUF_V2, "om")],
        )
        engine = Engine(config, serve_metrics=False, serve_admin=False, flush_deadline=5.0)
        engine.start()
        try:

            def by_name(name: str) -> list[tuple]:
                return [p for p in capture.v2_points() if dict(p[0])["__name__"] == name]

            wait_until(lambda: len(by_name("om_jobs_total")) >= 2, timeout=30)
        finally:
            engine.stop()
    counter = by_name("om_jobs_total")
    assert {p[3] for p in counter} == {1_700_000_000_250}
    assert {(p[4], p[5]) for p in counter} == {(MetricType.COUNTER, "Jobs run.")}
    assert by_name("om_jobs_created") and {p[3] for p in by_name("om_jobs_created")} == {0}
    assert records.RecordType.SAMPLES_V2 in record_types(tmp_path / "data" / "wal")
