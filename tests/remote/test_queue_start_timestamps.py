"""Start timestamps through the queue: chunks → shard batches → 2.0 bodies.

The bodies are parsed with the reference protobuf classes. Chunks with and
without start timestamps are mixed so batches span both; the batches go through
one shard, a few (the bulk path) and many (sample by sample), through a
reshard that carries unsent batches over, through ``sample_age_limit`` shedding
and through the fallback to 1.0. Metadata that changes after a series was first
read reaches the series' next entries.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest
import snappy

from rwconsole.config.schema import QueueConfig
from rwconsole.labels import Labels, make_labels
from rwconsole.metrics import Registry
from rwconsole.model import Histogram, HistogramSample, MetricMetadata, MetricType
from rwconsole.protocol.proto import remote_v1_pb2, remote_v2_pb2
from rwconsole.remote.chunks import Chunk
from rwconsole.remote.queue import QueueManager
from rwconsole.remote.queue_metrics import QueueMetrics
from rwconsole.remote.resharding import EwmaRate
from rwconsole.wal.families import MetadataTable

NOW = int(time.time() * 1000)
HIST = Histogram(schema=0, zero_threshold=0.0, zero_count=0, count=3, sum=2.0)


@dataclass
class Result:
    outcome: str = "ok"
    status: int | None = 204
    retry_after: float | None = None
    reason: str = ""
    duration: float = 0.001
    written: tuple[int, int, int] | None = None


class ReferenceClient:
    """Parses every body with the protobuf classes; answers 2.0 with full Written counts
    (or 415 to the first ``refuse_v2`` 2.0 requests)."""

    def __init__(self, refuse_v2: int = 0) -> None:
        self.v2: list[remote_v2_pb2.Request] = []
        self.v1: list[remote_v1_pb2.WriteRequest] = []
        self.refuse_v2 = refuse_v2

    async def send(self, body: bytes, *, protocol: int, **_: Any) -> Result:
        raw = snappy.uncompress(body)
        if protocol == 1:
            self.v1.append(remote_v1_pb2.WriteRequest.FromString(raw))
            return Result()
        if self.refuse_v2:
            self.refuse_v2 -= 1
            return Result("fatal", 415, reason="unsupported")
        message = remote_v2_pb2.Request.FromString(raw)
        self.v2.append(message)
        samples = sum(len(ts.samples) for ts in message.timeseries)
        hists = sum(len(ts.histograms) for ts in message.timeseries)
        return Result(written=(samples, hists, 0))

    def v2_points(self) -> dict[tuple[str, str, int], tuple[int, MetricType, str]]:
        """(series label, kind, timestamp) -> (start timestamp, metadata type, help)."""
        out = {}
        for message in self.v2:
            symbols = list(message.symbols)
            for ts in message.timeseries:
                labels = dict(zip(*[iter(symbols[r] for r in ts.labels_refs)] * 2, strict=True))
                meta = (MetricType(ts.metadata.type), symbols[ts.metadata.help_ref])
                for s in ts.samples:
                    out[(labels["series"], "s", s.timestamp)] = (s.start_timestamp, *meta)
                for h in ts.histograms:
                    out[(labels["series"], "h", h.timestamp)] = (h.start_timestamp, *meta)
        return out

    def v1_points(self) -> set[tuple[str, int]]:
        return {
            (dict((label.name, label.value) for label in ts.labels)["series"], s.timestamp)
            for message in self.v1
            for ts in message.timeseries
            for s in ts.samples
        }


class Source:
    def __init__(self) -> None:
        self.chunks: asyncio.Queue[Chunk] = asyncio.Queue()
        self.position = 0

    def push(self, chunk: Chunk) -> None:
        self.position += 1
        chunk.end = (0, self.position)
        self.chunks.put_nowait(chunk)

    async def next_chunk(self) -> Chunk:
        return await self.chunks.get()


SERIES: dict[int, Labels] = {
    ref: make_labels({"__name__": "st_metric", "series": str(ref)}) for ref in range(1, 41)
}


def make_queue(
    client: ReferenceClient,
    source: Source,
    *,
    shards: int = 1,
    protocol: int = 2,
    clock: Any = time.time,
    max_age: float = 0.0,
    **kwargs: Any,
) -> QueueManager:
    settings = QueueConfig(
        min_shards=shards,
        max_shards=max(shards, 16),
        max_samples_per_send=7,
        capacity=700,
        batch_send_deadline=0.01,
        sample_age_limit=max_age,
    )
    return QueueManager(
        name="st",
        url="http://receiver.invalid/",
        settings=settings,
        client=client,
        source=source,
        lookup=SERIES.get,
        metrics=QueueMetrics(Registry(), "st", "http://receiver.invalid/"),
        data_in=EwmaRate(),
        highest_timestamp_in=lambda: NOW / 1000,
        start_position=(0, 0),
        protocol=protocol,
        send_native_histograms=True,
        clock=clock,
        flush_deadline=5.0,
        **kwargs,
    )


def chunks(rounds: int, t0: int = NOW) -> tuple[list[Chunk], dict[tuple[str, str, int], int]]:
    """Rounds over every series: some chunks without start timestamps, some with."""
    out: list[Chunk] = []
    expected: dict[tuple[str, str, int], int] = {}
    refs = sorted(SERIES)
    for r in range(rounds):
        t = t0 + r * 1000
        chunk = Chunk(end=(0, 0), refs=list(refs), timestamps=[t] * len(refs))
        chunk.values = [float(r)] * len(refs)
        starts = [t0 - 1000 * ref if (ref + r) % 3 else 0 for ref in refs] if r % 2 else None
        if starts is not None:
            chunk.start_timestamps = starts
        for i, ref in enumerate(refs):
            expected[(str(ref), "s", t)] = starts[i] if starts else 0
        hist_starts = [0, t0 - 7] if r % 2 else [0, 0]
        chunk.histograms = [
            HistogramSample(ref, t, HIST, st) for ref, st in zip((5, 6), hist_starts, strict=True)
        ]
        for ref, st in zip((5, 6), hist_starts, strict=True):
            expected[(str(ref), "h", t)] = st
        out.append(chunk)
    return out, expected


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("shards", [1, 3, 12])  # 12: more than the bulk path splits
def test_start_timestamps_reach_2_0_bodies(shards: int) -> None:
    async def main() -> None:
        client, source = ReferenceClient(), Source()
        queue = make_queue(client, source, shards=shards)
        queue.start()
        pushed, expected = chunks(6)
        for chunk in pushed:
            source.push(chunk)
        await wait_for(lambda: len(client.v2_points()) >= len(expected))
        await queue.stop()
        assert {k: v[0] for k, v in client.v2_points().items()} == expected

    asyncio.run(main())


def test_a_1_0_queue_sends_the_same_samples_without_start_timestamps() -> None:
    async def main() -> None:
        client, source = ReferenceClient(), Source()
        queue = make_queue(client, source, protocol=1)
        queue.start()
        pushed, expected = chunks(4)
        for chunk in pushed:
            source.push(chunk)
        want = {(s, t) for s, kind, t in expected if kind == "s"}
        await wait_for(lambda: client.v1_points() >= want)
        await queue.stop()
        assert client.v1_points() == want and not client.v2

    asyncio.run(main())


def test_the_fallback_to_1_0_resends_without_start_timestamps() -> None:
    async def main() -> None:
        client, source = ReferenceClient(refuse_v2=1), Source()
        queue = make_queue(client, source)
        queue.start()
        pushed, expected = chunks(2)
        for chunk in pushed:
            source.push(chunk)
        want = {(s, t) for s, kind, t in expected if kind == "s"}
        await wait_for(lambda: client.v1_points() >= want)
        await queue.stop()

    asyncio.run(main())


def test_a_reshard_carries_start_timestamps_with_the_batches() -> None:
    async def main() -> None:
        client, source = ReferenceClient(), Source()
        queue = make_queue(client, source, shards=2)
        queue.pause()  # batches pile up unsent in the shards
        queue.start()
        pushed, expected = chunks(5)
        for chunk in pushed:
            source.push(chunk)
        await wait_for(lambda: queue.read_position == (0, source.position))
        new = QueueConfig(**{**queue.settings.__dict__, "min_shards": 5, "max_shards": 16})
        await queue.apply_settings(new)
        assert queue.shard_count == 5
        queue.resume()
        await wait_for(lambda: len(client.v2_points()) >= len(expected))
        await queue.stop()
        assert {k: v[0] for k, v in client.v2_points().items()} == expected

    asyncio.run(main())


def test_shedding_old_samples_keeps_the_others_start_timestamps() -> None:
    async def main() -> None:
        now = [NOW / 1000 + 5]
        client, source = ReferenceClient(), Source()
        queue = make_queue(client, source, clock=lambda: now[0], max_age=60.0)
        queue.pause()
        queue.start()
        pushed, expected = chunks(6, t0=NOW - 30_000)
        pushed2, expected2 = chunks(6, t0=NOW + 100_000)
        for chunk in (*pushed, *pushed2):
            source.push(chunk)
        await wait_for(lambda: queue.read_position == (0, source.position))
        now[0] += 120  # the first rounds are now older than the limit
        queue.resume()
        await wait_for(lambda: client.v2_points().keys() >= expected2.keys())
        await queue.stop()
        got = {k: v[0] for k, v in client.v2_points().items()}
        # A batch a shard held while paused may still go out; the rest was shed.
        assert len(got) < len(expected) + len(expected2)
        assert got == {k: {**expected, **expected2}[k] for k in got}

    asyncio.run(main())


def test_metadata_set_after_a_series_was_read_reaches_its_next_entries() -> None:
    async def main() -> None:
        table = MetadataTable()
        client, source = ReferenceClient(), Source()
        queue = make_queue(
            client,
            source,
            metadata_lookup=table.get,
            metadata_changes=lambda since: (table.version, table.changed_since(since)),
        )
        queue.start()
        first = Chunk(end=(0, 0), refs=[1, 2], timestamps=[NOW, NOW], values=[1.0, 2.0])
        source.push(first)
        await wait_for(lambda: len(client.v2_points()) >= 2)
        table.set(1, "st_metric", MetricMetadata(1, MetricType.COUNTER, "", "Counted."))
        second = Chunk(end=(0, 0), refs=[1, 2], timestamps=[NOW + 1] * 2, values=[3.0, 4.0])
        source.push(second)
        await wait_for(lambda: len(client.v2_points()) >= 4)
        await queue.stop()
        points = client.v2_points()
        assert points[("1", "s", NOW)][1:] == (MetricType.UNKNOWN, "")
        assert points[("1", "s", NOW + 1)][1:] == (MetricType.COUNTER, "Counted.")
        assert points[("2", "s", NOW + 1)][1:] == (MetricType.UNKNOWN, "")

    asyncio.run(main())


def test_the_metadata_log_is_bounded_and_says_when_it_lost_track() -> None:
    table = MetadataTable()
    start = table.version
    meta = MetricMetadata(0, MetricType.GAUGE, "", "")
    for ref in range(table.CHANGE_LOG_SIZE + 10):
        table.set(ref, "m", meta)
    assert table.version == start + table.CHANGE_LOG_SIZE + 10
    assert table.changed_since(start) is None  # too far back: look every series up again
    assert table.changed_since(table.version - 2) == [
        table.CHANGE_LOG_SIZE + 8,
        table.CHANGE_LOG_SIZE + 9,
    ]
