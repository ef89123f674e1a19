"""Every field survives source → WAL → queue → wire, for remote write 1.0 and 2.0.

A capturing receiver decodes each request with the protobuf-based decoder and
keeps it; the test compares every field of samples (stale marker bits),
exemplars, integer / float / custom-bucket histograms and metadata.
"""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path

import pytest
from conftest import wait_until

from rwconsole.config import schema
from rwconsole.engine import Engine
from rwconsole.http.server import HttpServer, Request, Response
from rwconsole.labels import make_labels
from rwconsole.model import (
    STALE_NAN,
    Exemplar,
    Histogram,
    HistogramSample,
    MetricMetadata,
    MetricType,
    ResetHint,
)
from rwconsole.protocol.decode import DecodedRequest, decode_write_request

INT_HIST = Histogram(
    schema=3,
    zero_threshold=1e-4,
    zero_count=2,
    count=19,
    sum=-7.25,
    positive_spans=((-2, 2), (3, 1)),
    negative_spans=((1, 2),),
    positive_buckets=(4, -1, 2),
    negative_buckets=(3, 1),
    reset_hint=ResetHint.NO,
)
FLOAT_HIST = Histogram(
    schema=-1,
    zero_threshold=0.5,
    zero_count=1.5,
    count=10.25,
    sum=3.75,
    positive_spans=((0, 3),),
    negative_spans=(),
    positive_buckets=(1.25, 0.0, 7.5),
    negative_buckets=(),
    reset_hint=ResetHint.GAUGE,
    is_float=True,
)
CUSTOM_HIST = Histogram(
    schema=-53,
    zero_threshold=0.0,
    zero_count=0,
    count=6,
    sum=2.0,
    positive_spans=((0, 3),),
    positive_buckets=(1, 2, 0),
    custom_values=(0.1, 0.5, 1.0),
    reset_hint=ResetHint.UNKNOWN,
)


class CapturingReceiver:
    def __init__(self) -> None:
        self.requests: list[DecodedRequest] = []
        self.server = HttpServer(self._handle)

    async def _handle(self, request: Request) -> Response:
        decoded = decode_write_request(
            request.body, request.header("content-type"), request.header("content-encoding")
        )
        self.requests.append(decoded)
        headers = {}
        if decoded.protocol.startswith("io."):
            headers = {
                "X-Prometheus-Remote-Write-Samples-Written": str(decoded.samples),
                "X-Prometheus-Remote-Write-Histograms-Written": str(decoded.histograms),
                "X-Prometheus-Remote-Write-Exemplars-Written": str(decoded.exemplars),
            }
        return Response(204, headers=headers)


def bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


@pytest.mark.parametrize("protocol", [schema.PROTOBUF_V1, schema.PROTOBUF_V2])
def test_every_field_reaches_the_receiver(tmp_path: Path, protocol: str) -> None:
    capture = CapturingReceiver()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(capture.server.start("127.0.0.1", 0))
    import threading

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{capture.server.port}/api/v1/write"
    config = schema.Config(
        storage=schema.StorageConfig(path=str(tmp_path / "data")),
        external_labels={"region": "eu"},
        endpoint=[
            schema.EndpointConfig(
                url=url,
                name="wire",
                protobuf_message=protocol,
                send_native_histograms=True,
                queue_config=schema.QueueConfig(batch_send_deadline=0.05),
                metadata_config=schema.MetadataConfig(send_interval=0.2),
            )
        ],
    )
    engine = Engine(config, serve_metrics=False, flush_deadline=5.0)
    engine.start()
    now = int(time.time() * 1000)
    counter = make_labels({"__name__": "wire_requests_total", "job": "w"})
    hists = [make_labels({"__name__": f"wire_h{i}", "job": "w"}) for i in range(3)]
    try:

        async def write() -> None:
            app = engine.appender
            ref_c, *refs_h = app.series_refs([counter, *hists])
            app.append_metadata(
                [
                    MetricMetadata(ref_c, MetricType.COUNTER, "requests", "Requests served."),
                    MetricMetadata(refs_h[0], MetricType.HISTOGRAM, "seconds", "Latency."),
                ]
            )
            app.append_samples([ref_c, ref_c], [now, now + 1000], [1.5, STALE_NAN])
            app.append_exemplars(
                [Exemplar(ref_c, now, 0.25, make_labels({"trace_id": "abc123", "span": "s1"}))]
            )
            app.append_histograms(
                [
                    HistogramSample(refs_h[0], now, INT_HIST),
                    HistogramSample(refs_h[1], now, FLOAT_HIST),
                    HistogramSample(refs_h[2], now, CUSTOM_HIST),
                ]
            )
            app.commit()

        engine.submit(write).result(10)

        def series_of(name: str):
            return [
                s
                for r in capture.requests
                for s in r.series
                if dict(s.labels).get("__name__") == name
            ]

        expected_hist_series = 2 if protocol == schema.PROTOBUF_V1 else 3
        wait_until(
            lambda: sum(len(series_of(f"wire_h{i}")) for i in range(3)) >= expected_hist_series,
            timeout=20,
        )
        wait_until(
            lambda: (
                len([s for s in series_of("wire_requests_total") if s.samples]) >= 2
                and any(s.exemplars for s in series_of("wire_requests_total"))
            ),
            timeout=20,
        )

        counter_entries = series_of("wire_requests_total")
        wire_labels = make_labels({**dict(counter), "region": "eu"})
        assert all(s.labels == wire_labels for s in counter_entries)
        samples = [p for s in counter_entries for p in s.samples]
        assert [(t, bits(v)) for t, v in samples] == [
            (now, bits(1.5)),
            (now + 1000, bits(STALE_NAN)),
        ]
        (exemplar,) = [e for s in counter_entries for e in s.exemplars]
        assert (exemplar.timestamp, exemplar.value) == (now, 0.25)
        assert exemplar.labels == make_labels({"trace_id": "abc123", "span": "s1"})

        def only_histogram(name: str) -> tuple[int, Histogram]:
            (entry,) = [h for s in series_of(name) for h in s.histograms]
            return entry

        assert only_histogram("wire_h0") == (now, INT_HIST)
        assert only_histogram("wire_h1") == (now, FLOAT_HIST)
        if protocol == schema.PROTOBUF_V1:
            assert series_of("wire_h2") == []
            dropped = engine.registry.value(
                "prometheus_remote_storage_histograms_dropped_total",
                remote_name="wire",
                url=url,
                reason="nhcb_in_rw1_not_supported",
            )
            assert dropped == 1
            # 1.0: metadata comes in its own requests, by metric family.
            wait_until(lambda: any(r.metadata for r in capture.requests), timeout=20)
            families = dict(m for r in capture.requests for m in r.metadata)
            assert families["wire_requests_total"] == MetricMetadata(
                0, MetricType.COUNTER, "requests", "Requests served."
            )
            assert families["wire_h0"] == MetricMetadata(
                0, MetricType.HISTOGRAM, "seconds", "Latency."
            )
        else:
            assert only_histogram("wire_h2") == (now, CUSTOM_HIST)
            # 2.0: metadata travels with every entry of the series.
            assert all(
                s.metadata == MetricMetadata(0, MetricType.COUNTER, "requests", "Requests served.")
                for s in counter_entries
            )
            assert all(
                s.metadata is not None and s.metadata.type == MetricType.HISTOGRAM
                for s in series_of("wire_h0")
            )
    finally:
        engine.stop()
        asyncio.run_coroutine_threadsafe(capture.server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
