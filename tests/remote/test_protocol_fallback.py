"""A 2.0 endpoint whose receiver speaks only 1.0: fallback without loss, re-probe, partial writes.

The receiver is real HTTP on loopback. It answers a 2.0 body as a 1.0-only
receiver does (Prometheus 2.42 reads it as an empty 1.0 WriteRequest and
answers 204 with no Written header), or with 415, or it speaks 2.0 but
confirms fewer items than it was sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from waits import eventually

from rwconsole.config import schema
from rwconsole.config.schema import QueueConfig
from rwconsole.http.server import HttpServer, Request, Response
from rwconsole.labels import Labels, make_labels
from rwconsole.metrics import Registry
from rwconsole.model import MetricMetadata, MetricType
from rwconsole.protocol.decode import decode_write_request
from rwconsole.protocol.encode import PROTOBUF_MESSAGE_V2
from rwconsole.remote.chunks import Chunk
from rwconsole.remote.client import RemoteWriteClient
from rwconsole.remote.queue import QueueManager
from rwconsole.remote.queue_metrics import QueueMetrics
from rwconsole.remote.resharding import EwmaRate
from rwconsole.sources.receiver import written_headers

NOW_MS = int(time.time() * 1000)
N_SERIES = 20


class Receiver:
    """``mode``: "v1-only-204", "v1-only-415", "v2", or "v2-partial" (confirms half the samples)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.samples: dict[Labels, list[tuple[int, float]]] = {}
        self.requests: list[tuple[int, int]] = []  # (protocol, samples in it)
        self.server = HttpServer(self._handle)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/api/v1/write"

    async def _handle(self, request: Request) -> Response:
        v2 = "io.prometheus.write.v2" in request.header("content-type")
        if v2 and self.mode.startswith("v1-only"):
            self.requests.append((2, 0))
            return Response(415 if self.mode.endswith("415") else 204)
        decoded = decode_write_request(
            request.body, request.header("content-type"), request.header("content-encoding")
        )
        count = 0
        for series in decoded.series:
            self.samples.setdefault(series.labels, []).extend(series.samples)
            count += len(series.samples)
        self.requests.append((2 if v2 else 1, count))
        if not v2:
            return Response(204)
        if self.mode == "v2-partial":
            return Response(
                200, b"out of bounds: too old\n", headers=written_headers(count // 2, 0, 0)
            )
        return Response(204, headers=written_headers(count, 0, 0))


class Source:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Chunk] = asyncio.Queue()
        self.position = 0

    def push_round(self, r: int) -> None:
        self.position += 1
        refs = list(range(1, N_SERIES + 1))
        self.queue.put_nowait(
            Chunk(
                end=(0, self.position),
                refs=refs,
                timestamps=[NOW_MS + r * 1000] * N_SERIES,
                values=[float(r)] * N_SERIES,
            )
        )

    async def next_chunk(self) -> Chunk:
        return await self.queue.get()


def make_queue(
    receiver: Receiver, source: Source, clock: Callable[[], float] = time.time, **kw: Any
) -> tuple[QueueManager, Registry]:
    registry = Registry()
    endpoint = schema.EndpointConfig(
        url=receiver.url, name="v2", protobuf_message=PROTOBUF_MESSAGE_V2
    )
    labels = {
        ref: make_labels({"__name__": "fallback_metric", "series": str(ref)})
        for ref in range(1, N_SERIES + 1)
    }
    meta = MetricMetadata(0, MetricType.GAUGE, "", "a gauge")
    queue = QueueManager(
        name="v2",
        url=receiver.url,
        settings=QueueConfig(max_samples_per_send=50, batch_send_deadline=0.05, min_backoff=0.01),
        client=RemoteWriteClient(endpoint, user_agent="rwconsole-test"),
        source=source,
        lookup=labels.get,
        metrics=QueueMetrics(registry, "v2", receiver.url),
        data_in=EwmaRate(),
        highest_timestamp_in=lambda: NOW_MS / 1000,
        start_position=(0, 0),
        protocol=2,
        metadata_lookup=lambda ref: meta,
        clock=clock,
        **kw,
    )
    return queue, registry


def value(queue: QueueManager, registry: Registry, name: str, **labels: str) -> float:
    return registry.value(name, remote_name="v2", url=queue.url, **labels)


@pytest.mark.parametrize("mode", ["v1-only-204", "v1-only-415"])
def test_refused_2_0_is_resent_as_1_0_without_loss(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    rounds = 10

    async def body() -> None:
        receiver = Receiver(mode)
        await receiver.server.start("127.0.0.1", 0)
        source = Source()
        queue, registry = make_queue(receiver, source)
        queue.start()
        try:
            for r in range(rounds):
                source.push_round(r)
            await eventually(lambda: queue.delivered_position == (0, rounds))
        finally:
            await queue.stop(5.0)
            await receiver.server.stop()
        assert sum(len(s) for s in receiver.samples.values()) == rounds * N_SERIES
        for labels, samples in receiver.samples.items():
            assert [v for _, v in samples] == [float(r) for r in range(rounds)], labels
        assert receiver.requests[0] == (2, 0)
        assert all(protocol == 1 for protocol, _ in receiver.requests[1:])
        assert value(queue, registry, "prometheus_remote_storage_samples_failed_total") == 0
        assert value(queue, registry, "rwconsole_remote_write_protocol", version="1.0") == 1
        assert value(queue, registry, "rwconsole_remote_write_protocol", version="2.0") == 0
        assert queue.negotiation.current == 1 and queue.negotiation.fallbacks == 1
        assert queue.negotiation.describe().startswith("1.0 (receiver refused 2.0")

    with caplog.at_level(logging.WARNING, logger="rwconsole.queue"):
        asyncio.run(body())
    refusals = [r for r in caplog.records if "does not accept remote write 2.0" in r.message]
    assert len(refusals) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_2_0_is_probed_again_after_the_interval() -> None:
    now = [time.time()]

    async def body() -> None:
        receiver = Receiver("v1-only-204")
        await receiver.server.start("127.0.0.1", 0)
        source = Source()
        queue, registry = make_queue(
            receiver, source, clock=lambda: now[0], protocol_reprobe_interval=600.0
        )
        queue.start()
        try:
            source.push_round(0)
            await eventually(lambda: queue.delivered_position == (0, 1))
            assert queue.negotiation.current == 1
            now[0] += 300
            source.push_round(1)
            await eventually(lambda: queue.delivered_position == (0, 2))
            assert queue.negotiation.current == 1  # not yet
            receiver.mode = "v2"
            now[0] += 301
            source.push_round(2)
            await eventually(lambda: queue.delivered_position == (0, 3))
        finally:
            await queue.stop(5.0)
            await receiver.server.stop()
        assert queue.negotiation.current == 2
        assert receiver.requests[-1] == (2, N_SERIES)
        assert value(queue, registry, "rwconsole_remote_write_protocol", version="2.0") == 1
        assert sum(len(s) for s in receiver.samples.values()) == 3 * N_SERIES

    asyncio.run(body())


def test_partial_writes_are_counted_and_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        receiver = Receiver("v2-partial")
        await receiver.server.start("127.0.0.1", 0)
        source = Source()
        queue, registry = make_queue(receiver, source)
        queue.start()
        try:
            source.push_round(0)
            await eventually(lambda: queue.delivered_position == (0, 1))
        finally:
            await queue.stop(5.0)
            await receiver.server.stop()
        assert receiver.requests == [(2, N_SERIES)]  # nothing resent
        partial = value(
            queue, registry, "rwconsole_remote_write_partial_writes_total", kind="samples"
        )
        assert partial == N_SERIES - N_SERIES // 2
        assert value(queue, registry, "prometheus_remote_storage_samples_retried_total") == 0
        assert queue.negotiation.current == 2

    with caplog.at_level(logging.WARNING, logger="rwconsole.queue"):
        asyncio.run(body())
    assert any(
        "partial write" in r.message and "out of bounds: too old" in r.message
        for r in caplog.records
    )


def test_endpoints_screen_shows_the_fallback() -> None:
    import dataclasses

    from rwconsole.tui.screens.endpoints import detail_markup, row_values
    from tests.tui.recorded import recorded_snapshot

    endpoint = recorded_snapshot().endpoint("demo-v2")
    assert endpoint is not None and endpoint.protocol == 2
    assert str(row_values(endpoint)["proto"]) == "2.0"
    fell_back = dataclasses.replace(
        endpoint,
        protocol_state="1.0 (receiver refused 2.0: HTTP 415; 2.0 is tried again in 59m)",
    )
    assert str(row_values(fell_back)["proto"]) == "2.0→1.0"
    assert "sending remote write 1.0 (receiver refused 2.0: HTTP 415" in detail_markup(fell_back)


def test_a_batch_switched_to_1_0_before_its_send_counts_one_attempt() -> None:
    """A batch held while another shard fell back goes out once as 1.0, counted once."""

    async def body() -> None:
        receiver = Receiver("v2")
        await receiver.server.start("127.0.0.1", 0)
        source = Source()
        queue, registry = make_queue(receiver, source)
        queue.start()
        try:
            queue.pause()
            source.push_round(0)
            await eventually(lambda: queue.metrics.pending["samples"].value == N_SERIES)
            await asyncio.sleep(0.2)  # past batch_send_deadline: the batch waits on the pause
            queue.negotiation.fall_back("HTTP 415")
            queue.resume()
            await eventually(lambda: queue.delivered_position == (0, 1))
        finally:
            await queue.stop(5.0)
            await receiver.server.stop()
        assert receiver.requests == [(1, N_SERIES)]
        assert value(queue, registry, "prometheus_remote_storage_samples_total") == N_SERIES

    asyncio.run(body())
