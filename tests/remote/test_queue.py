"""Queue manager behaviour against a real loopback receiver and the real HTTP client.

The chunks come from a list (the WAL follower has its own tests); everything
after the queue — encoder, snappy, client, HTTP, the receiver's decoder — is
real.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace

import pytest
from waits import eventually

from rwconsole.config import schema
from rwconsole.config.schema import QueueConfig
from rwconsole.demo.receiver import DemoReceiver
from rwconsole.labels import Labels, make_labels
from rwconsole.metrics import Registry
from rwconsole.protocol import encode
from rwconsole.relabel import compile_rules, relabel
from rwconsole.remote.chunks import Chunk
from rwconsole.remote.client import RemoteWriteClient
from rwconsole.remote.queue import QueueManager, _shard_positions
from rwconsole.remote.queue_metrics import DROP_UNKNOWN_SERIES, QueueMetrics, TimeIntegral
from rwconsole.remote.resharding import EwmaRate

NOW_MS = int(time.time() * 1000)


class ListSource:
    """Chunks handed over by the test, in order."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Chunk] = asyncio.Queue()
        self.position = 0

    def push(self, refs: list[int], timestamps: list[int], values: list[float]) -> Chunk:
        self.position += 1
        chunk = Chunk(end=(0, self.position), refs=refs, timestamps=timestamps, values=values)
        self._queue.put_nowait(chunk)
        return chunk

    async def next_chunk(self) -> Chunk:
        return await self._queue.get()


def series_table(n: int) -> dict[int, Labels]:
    return {
        ref: make_labels({"__name__": "test_metric", "series": str(ref), "job": "queue-test"})
        for ref in range(1, n + 1)
    }


ONE_SLOW_SHARD = QueueConfig(
    min_shards=1,
    max_shards=1,
    max_samples_per_send=500,
    capacity=2000,
    batch_send_deadline=0.05,
    min_backoff=0.02,
    max_backoff=0.1,
)
"""One shard, 500 samples a request, quick retries: a chunk of a few thousand samples
goes out in several requests, one at a time."""


class Harness:
    def __init__(self, receiver: DemoReceiver, settings: QueueConfig, **kwargs: object) -> None:
        self.receiver = receiver
        self.registry = Registry()
        self.series = series_table(int(kwargs.pop("series", 50)))  # type: ignore[call-overload]
        self.source = ListSource()
        endpoint = schema.EndpointConfig(
            url=receiver.url,
            name="test",
            remote_timeout=float(kwargs.pop("timeout", 5.0)),  # type: ignore[arg-type]
        )
        self.client = RemoteWriteClient(endpoint, user_agent="rwconsole-test")
        self.queue = QueueManager(
            name="test",
            url=receiver.url,
            settings=settings,
            client=self.client,
            source=self.source,
            lookup=self.series.get,
            metrics=QueueMetrics(self.registry, "test", receiver.url),
            data_in=EwmaRate(),
            highest_timestamp_in=lambda: NOW_MS / 1000,
            start_position=kwargs.pop("start_position", (0, 0)),  # type: ignore[arg-type]
            flush_deadline=5.0,
            **kwargs,  # type: ignore[arg-type]
        )

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.value(
            f"prometheus_remote_storage_{name}", remote_name="test", url=self.receiver.url, **labels
        )

    def push_rounds(self, rounds: int, *, start_ms: int = NOW_MS) -> int:
        refs = sorted(self.series)
        for r in range(rounds):
            self.source.push(refs, [start_ms + r * 1000] * len(refs), [float(r)] * len(refs))
        return rounds * len(refs)

    def rounds_in_one_chunk(self, rounds: int) -> tuple[list[int], list[int], list[float]]:
        """The columns of one chunk holding ``rounds`` rounds of every series (the value is
        the round), for ``ListSource.push``."""
        refs = sorted(self.series)
        return (
            [ref for _ in range(rounds) for ref in refs],
            [NOW_MS + r * 1000 for r in range(rounds) for _ in refs],
            [float(r) for r in range(rounds) for _ in refs],
        )

    def delivered_everything(self, expected: int) -> Callable[[], bool]:
        return lambda: (
            self.receiver.stats().samples >= expected
            and self.queue.delivered_position == (0, self.source.position)
        )


async def refuse_from_now_on(h: Harness) -> None:
    """Make the receiver answer 503, and return once a request was refused and none
    taken under the fault before is in flight: what it counted is what it took."""
    h.receiver.set_fault("error_5xx", status=503)
    retried = h.metric("samples_retried_total")
    in_flight = lambda: h.registry.value(  # noqa: E731
        "rwconsole_remote_requests_in_flight", remote_name="test", url=h.receiver.url
    )
    await eventually(lambda: h.metric("samples_retried_total") > retried and in_flight() == 0)


def run(test: Callable[[DemoReceiver], Awaitable[None]]) -> None:
    async def main() -> None:
        receiver = DemoReceiver("127.0.0.1:0")
        await receiver.start()
        try:
            await test(receiver)
        finally:
            await receiver.stop()

    asyncio.run(main())


def assert_in_order(receiver: DemoReceiver, rounds: int, n_series: int) -> None:
    per_series = receiver.series()
    assert len(per_series) == n_series
    for labels, stats in per_series.items():
        assert stats.out_of_order == 0, labels
        assert stats.samples == rounds, (labels, stats.samples)
        assert stats.last_value == float(rounds - 1)


@pytest.mark.parametrize("shards", [1, 4, 12])  # 12: more than the bulk path splits
def test_everything_arrives_in_order_across_shards(shards: int) -> None:
    async def body(receiver: DemoReceiver) -> None:
        h = Harness(
            receiver,
            QueueConfig(
                min_shards=shards,
                max_shards=shards,
                max_samples_per_send=37,
                batch_send_deadline=0.05,
                capacity=100,
            ),
        )
        h.queue.start()
        expected = h.push_rounds(20)
        await eventually(h.delivered_everything(expected))
        await h.queue.stop(5)
        assert_in_order(receiver, 20, 50)
        assert h.metric("samples_total") == expected
        assert h.metric("samples_pending") == 0
        assert h.metric("samples_failed_total") == 0
        assert h.metric("shards") == shards
        assert h.metric("queue_highest_sent_timestamp_seconds") == (NOW_MS + 19_000) // 1000
        assert h.metric("bytes_total") > 0

    run(body)


def test_a_chunk_of_new_series_goes_in_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    """New series are resolved for the whole chunk first; the item-by-item path is
    only for chunks with an unknown or a dropped series."""
    each: list[int] = []
    original = QueueManager._enqueue_samples_each

    async def counted(self: QueueManager, refs: list[int], *args: object) -> object:
        each.append(len(refs))
        return await original(self, refs, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(QueueManager, "_enqueue_samples_each", counted)

    async def body(receiver: DemoReceiver) -> None:
        h = Harness(
            receiver,
            QueueConfig(
                min_shards=3,
                max_shards=3,
                max_samples_per_send=37,
                batch_send_deadline=0.05,
                capacity=100,
            ),
            series=300,
        )
        h.queue.start()
        expected = h.push_rounds(5)
        await eventually(h.delivered_everything(expected))
        assert each == []
        h.source.push([10_001], [NOW_MS + 9000], [1.0])  # unknown: item by item
        await eventually(lambda: h.queue.delivered_position == (0, 6))
        await h.queue.stop(5)
        assert each == [1]
        assert_in_order(receiver, 5, 300)
        assert h.metric("samples_total") == expected
        assert h.metric("samples_pending") == 0

    run(body)


@pytest.mark.parametrize("cpus", [2, 1])
def test_large_batches_are_compressed_off_the_loop_and_arrive_whole(
    monkeypatch: pytest.MonkeyPatch, cpus: int
) -> None:
    """Bodies over the threshold go to snappy in a worker thread when another CPU can
    run it; small ones, and every one on a single CPU, stay on the loop."""
    threads: list[bool] = []
    compress = encode.compress

    def recording(body: bytes) -> bytes:
        threads.append(threading.current_thread() is threading.main_thread())
        return compress(body)

    monkeypatch.setattr(encode, "compress", recording)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))

    async def body(receiver: DemoReceiver) -> None:
        h = Harness(
            receiver,
            QueueConfig(max_samples_per_send=2000, batch_send_deadline=0.05, capacity=4000),
            series=2000,
        )
        h.queue.start()
        expected = h.push_rounds(3)
        await eventually(h.delivered_everything(expected))
        small = h.push_rounds(1, start_ms=NOW_MS + 3000)
        small_refs = sorted(h.series)[:5]
        h.source.push(small_refs, [NOW_MS + 4000] * 5, [3.0] * 5)
        await eventually(h.delivered_everything(expected + small + 5))
        await h.queue.stop(5)
        per_series = receiver.series()
        assert len(per_series) == 2000
        assert all(s.out_of_order == 0 for s in per_series.values())
        assert sum(s.samples for s in per_series.values()) == expected + small + 5

    run(body)
    # The 2000-sample bodies (about 150 KB) in a worker thread, if there is a CPU for it.
    assert (False in threads) is (cpus > 1)
    assert threads[-1] is True  # the 5-sample body on the loop


ENCODE_SECONDS = 0.3


def _slow_down(monkeypatch: pytest.MonkeyPatch, name: str, seconds: float) -> None:
    """Make ``encode.<name>`` block its thread ``seconds`` longer per call."""
    real = getattr(encode, name)

    def slow(*args: object, **kwargs: object) -> bytes:
        time.sleep(seconds)
        return real(*args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(encode, name, slow)


def test_encoding_time_is_not_counted_as_the_receivers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Desired shards read send time as the receiver's: a slow encode must not add to it."""
    _slow_down(monkeypatch, "compress", ENCODE_SECONDS)

    async def body(receiver: DemoReceiver) -> None:
        h = Harness(receiver, QueueConfig(max_samples_per_send=50, batch_send_deadline=0.05))
        h.queue.start()
        expected = h.push_rounds(3)
        await eventually(h.delivered_everything(expected))
        await h.queue.stop(5)
        # Three sends, each over ENCODE_SECONDS from batch to response. The bound is
        # the encode time alone, which counting it would reach however fast the
        # HTTP part is; that part (ms on loopback, more on a busy machine) gets all of it.
        assert 0 < h.queue._data_out_duration._pending < 3 * ENCODE_SECONDS * 1e9
        # The same split for the console: encoding blocks the loop itself, which is the
        # encode phase, not waiting for the loop.
        m = h.queue.metrics
        phase = {name: counter.value for name, counter in m.send_phase.items()}
        assert m.send_batches.value == 3
        assert phase["encode"] >= 3 * ENCODE_SECONDS
        assert phase["loop_wait"] < 3 * ENCODE_SECONDS / 2
        assert phase["network"] > 0 and phase["backoff"] == 0
        assert m.in_flight.value == 0

    run(body)


def test_shuffled_chunks_with_unknown_refs_keep_per_series_order() -> None:
    async def body(receiver: DemoReceiver) -> None:
        h = Harness(
            receiver,
            QueueConfig(
                min_shards=3,
                max_shards=3,
                max_samples_per_send=7,
                batch_send_deadline=0.05,
                capacity=14,
            ),
        )
        h.queue.start()
        refs = sorted(h.series)
        random.Random(7).shuffle(refs)
        unknown = [10_001, 10_002]
        for r in range(12):
            chunk_refs = refs + unknown if r % 3 == 0 else refs  # some chunks need the slow path
            h.source.push(
                chunk_refs, [NOW_MS + r * 1000] * len(chunk_refs), [float(r)] * len(chunk_refs)
            )
        expected = 12 * len(refs)
        await eventually(h.delivered_everything(expected))
        await h.queue.stop(5)
        assert_in_order(receiver, 12, 50)
        assert h.metric("samples_total") == expected
        assert h.metric("samples_pending") == 0
        dropped = h.metric("samples_dropped_total", reason=DROP_UNKNOWN_SERIES)
        assert dropped == 4 * len(unknown)

    run(body)


async def _retrying_503s(
    receiver: DemoReceiver, rounds: int, min_backoff: float, max_backoff: float
) -> tuple[Harness, int]:
    """A started queue whose receiver answers 503, once each batch was retried 3 times."""
    receiver.set_fault("error_5xx", status=503)
    h = Harness(
        receiver,
        QueueConfig(
            max_samples_per_send=1000,
            batch_send_deadline=0.05,
            min_backoff=min_backoff,
            max_backoff=max_backoff,
        ),
    )
    h.queue.start()
    expected = h.push_rounds(rounds)
    await eventually(lambda: h.metric("samples_retried_total") >= 3 * expected)
    return h, expected


def test_5xx_is_retried_with_backoff_until_it_succeeds() -> None:
    async def body(receiver: DemoReceiver) -> None:
        h, expected = await _retrying_503s(receiver, 3, 0.05, 0.2)
        assert receiver.stats().samples == 0
        # "retrying" while waiting out a backoff, "failing" during each new attempt.
        await eventually(lambda: h.queue.status() == "retrying")
        assert "503" in h.queue.last_error
        assert h.queue.delivered_position == (0, 0)
        receiver.set_fault("ok")
        await eventually(h.delivered_everything(expected))
        await h.queue.stop(5)
        assert_in_order(receiver, 3, 50)
        assert h.metric("samples_failed_total") == 0
        # Each attempt counts the batch again, as Prometheus does.
        assert h.metric("samples_total") == expected + h.metric("samples_retried_total")

    run(body)


def test_backoff_after_an_outage_is_not_counted_as_the_receivers_time() -> None:
    """Desired shards read send time as the receiver's latency: a batch that waited out
    an outage in backoff must not look like a receiver that took that long for it."""
    backoff = 0.4

    async def body(receiver: DemoReceiver) -> None:
        h, expected = await _retrying_503s(receiver, 1, backoff, backoff)
        receiver.set_fault("ok")
        await eventually(h.delivered_everything(expected))
        await h.queue.stop(5)
        # One batch, at least three backoffs (1.2 s) before it went through.
        assert 0 < h.queue._data_out_duration._pending < backoff * 1e9

    run(body)


def _two_shards_backing_off_20s(receiver: DemoReceiver) -> Harness:
    """Two shards over 10 series, 10 per send, each failed send backing off 20 s."""
    config = QueueConfig(
        min_shards=2,
        max_shards=2,
        max_samples_per_send=10,
        batch_send_deadline=0.02,
        min_backoff=20.0,
        max_backoff=20.0,
    )
    return Harness(receiver, config, series=10)


def test_a_success_ends_the_other_shards_backoff() -> None:
    """A shard backing off for 20 s retries as soon as another shard's send succeeds."""

    async def body(receiver: DemoReceiver) -> None:
        receiver.set_fault("error_5xx", status=503)  # answered: no probing
        h = _two_shards_backing_off_20s(receiver)
        h.queue.start()
        even, odd = [2, 4, 6, 8, 10], [1, 3, 5, 7, 9]  # shard 0's series, shard 1's
        h.source.push(even, [NOW_MS] * 5, [0.0] * 5)
        await eventually(lambda: h.queue.status() == "retrying")
        receiver.set_fault("ok")
        h.source.push(odd, [NOW_MS] * 5, [0.0] * 5)
        await eventually(h.delivered_everything(10), timeout=10)
        await h.queue.stop(1)
        assert len(receiver.series()) == 10

    run(body)


def test_one_shard_probes_a_receiver_that_does_not_answer() -> None:
    """Refused connections: one shard tries again within PROBE_SECONDS, not after its
    20 s backoff, and its success ends the other shard's backoff."""

    async def body(receiver: DemoReceiver) -> None:
        await receiver.down()
        h = _two_shards_backing_off_20s(receiver)
        h.queue.start()
        h.source.push(list(range(1, 11)), [NOW_MS] * 10, [0.0] * 10)
        await eventually(lambda: h.queue._retrying == 2)
        await receiver.up()
        await eventually(h.delivered_everything(10), timeout=10)
        await h.queue.stop(1)
        assert len(receiver.series()) == 10

    run(body)


def test_400_is_not_retried_and_is_counted_as_failed() -> None:
    async def body(receiver: DemoReceiver) -> None:
        receiver.set_fault("bad_request", reason="out of bounds")
        h = Harness(receiver, QueueConfig(max_samples_per_send=100, batch_send_deadline=0.05))
        h.queue.start()
        expected = h.push_rounds(2)
        await eventually(lambda: h.metric("samples_failed_total") == expected)
        await eventually(lambda: h.queue.delivered_position == (0, 2))
        assert h.metric("samples_retried_total") == 0
        assert "400" in h.queue.last_error and "out of bounds" in h.queue.last_error
        assert h.queue.status() == "failing"
        await h.queue.stop(5)

    run(body)


@pytest.mark.parametrize("retry_on_429", [True, False])
def test_429_honours_retry_after_only_when_enabled(retry_on_429: bool) -> None:
    async def body(receiver: DemoReceiver) -> None:
        receiver.set_fault("too_many_requests", retry_after=1)
        h = Harness(
            receiver,
            QueueConfig(
                max_samples_per_send=100,
                batch_send_deadline=0.05,
                min_backoff=0.01,
                max_backoff=0.02,
                retry_on_http_429=retry_on_429,
            ),
        )
        h.queue.start()
        expected = h.push_rounds(1)
        if not retry_on_429:
            await eventually(lambda: h.metric("samples_failed_total") == expected)
            assert h.metric("samples_retried_total") == 0
            await h.queue.stop(5)
            return
        await eventually(lambda: receiver.stats().requests >= 1)
        started = time.monotonic()
        await eventually(lambda: receiver.stats().requests >= 2, timeout=5)
        # Retry-After (1 s) wins over the 10 ms backoff.
        assert time.monotonic() - started >= 0.8
        receiver.set_fault("ok")
        await eventually(h.delivered_everything(expected))
        await h.queue.stop(5)

    run(body)


def test_hang_past_remote_timeout_is_retried() -> None:
    async def body(receiver: DemoReceiver) -> None:
        receiver.set_fault("hang")
        h = Harness(
            receiver,
            QueueConfig(
                max_samples_per_send=100,
                batch_send_deadline=0.05,
                min_backoff=0.01,
                max_backoff=0.05,
            ),
            timeout=0.3,
        )
        h.queue.start()
        expected = h.push_rounds(1)
        await eventually(lambda: h.metric("samples_retried_total") >= expected)
        assert "timed out" in h.queue.last_error.lower() or "timeout" in h.queue.last_error.lower()
        receiver.set_fault("ok")
        await eventually(h.delivered_everything(expected))
        await h.queue.stop(5)

    run(body)


def test_resharding_under_load_loses_and_reorders_nothing() -> None:
    async def body(receiver: DemoReceiver) -> None:
        receiver.set_fault("latency", delay=0.01)
        h = Harness(
            receiver,
            QueueConfig(
                min_shards=1,
                max_shards=8,
                max_samples_per_send=25,
                batch_send_deadline=0.02,
                capacity=50,
            ),
            series=40,
        )
        h.queue.start()
        total = 0
        for step, shards in enumerate([3, 8, 2, 5, 1]):
            total += h.push_rounds(10, start_ms=NOW_MS + step * 10_000)
            await asyncio.sleep(0.05)
            await h.queue._reshard(shards)
            assert h.queue.shard_count == shards
        await eventually(h.delivered_everything(total), timeout=30)
        await h.queue.stop(5)
        per_series = receiver.series()
        assert len(per_series) == 40
        for labels, stats in per_series.items():
            assert stats.out_of_order == 0, labels
            assert stats.samples == 50, labels
        assert h.metric("samples_failed_total") == 0

    run(body)


def test_a_reshard_keeps_the_delivered_position_before_every_carried_item() -> None:
    """Carried batches are dealt out one old shard after another, not oldest first: here
    the new shard's first batch comes from chunks 2-3 and its last holds chunk 1. The
    delivered position must still stay before chunk 1 until that is sent."""

    async def body(receiver: DemoReceiver) -> None:
        settings = QueueConfig(
            min_shards=2,
            max_shards=2,
            max_samples_per_send=2,
            capacity=8,
            batch_send_deadline=0.02,
        )
        h = Harness(receiver, settings, series=4)
        h.queue.pause()  # each shard holds its first batch at the gate, unsent
        h.queue.start()
        # Chunk 1 goes to shard 1 only (odd refs), chunks 2-4 to shard 0 only.
        h.source.push([1, 3], [NOW_MS, NOW_MS], [1.0, 1.0])
        for r in range(1, 4):
            h.source.push([2, 4], [NOW_MS + r * 1000] * 2, [float(r)] * 2)
        await eventually(lambda: h.queue.read_position == (0, 4))
        assert h.queue.delivered_position == (0, 0)
        await h.queue._reshard(1)
        h.source.push([2], [NOW_MS + 9000], [9.0])  # the reader looks for the position again
        await eventually(lambda: h.queue.read_position == (0, 5))
        assert h.queue.delivered_position == (0, 0), "chunk 1 is still unsent"
        h.queue.resume()
        await eventually(h.delivered_everything(9), timeout=30)
        await h.queue.stop(5)
        assert receiver.stats().samples == 9

    run(body)


def test_a_stop_while_the_receiver_refuses_hands_on_what_was_delivered_ahead() -> None:
    """One chunk of 2,000 samples, sent 500 at a time: the receiver takes the first
    batches, then refuses. The delivered position cannot pass the chunk, so the
    queue hands on what it delivered of it, and a queue started from the same
    position skips exactly that: every sample arrives once."""
    rounds = 40

    async def body(receiver: DemoReceiver) -> None:
        settings = ONE_SLOW_SHARD
        h = Harness(receiver, settings)
        refs = sorted(h.series)
        columns = h.rounds_in_one_chunk(rounds)
        receiver.set_fault("latency", delay=0.2)
        h.queue.start()
        h.source.push(*columns)
        await eventually(lambda: receiver.stats().samples >= 1000)
        await refuse_from_now_on(h)
        await h.queue.stop(0.2)
        delivered = receiver.stats().samples
        assert 1000 <= delivered < 2000
        assert h.queue.delivered_position == (0, 0), "the chunk is not delivered whole"
        ahead = h.queue.delivered_ahead
        assert ahead is not None and ahead.until == (0, 1)
        assert ahead.total() == delivered

        # Stopped again while the receiver still refuses: what the first run delivered
        # is handed on whole, though this run skipped it and sent none of it.
        kept = ahead.copy()
        refusing = Harness(receiver, settings, delivered_ahead=ahead)
        refusing.queue.start()
        refusing.source.push(*columns)
        await eventually(lambda: refusing.metric("samples_retried_total") > 0)
        await refusing.queue.stop(0.2)
        assert receiver.stats().samples == delivered
        assert ahead == kept, "a queue counts down its own copy, not the one it is given"
        assert refusing.queue.delivered_ahead == ahead

        receiver.set_fault("ok")
        again = Harness(receiver, settings, delivered_ahead=refusing.queue.delivered_ahead)
        again.queue.start()
        again.source.push(*columns)  # read again from the saved position
        await eventually(again.delivered_everything(rounds * len(refs)))
        await again.queue.stop(5)
        assert receiver.stats().samples == rounds * len(refs), "nothing twice"
        assert_in_order(receiver, rounds, len(refs))
        assert again.queue.delivered_ahead is None
        assert again.metric("samples_total") == rounds * len(refs) - delivered

    run(body)


def test_live_queue_config_change_during_an_outage() -> None:
    async def body(receiver: DemoReceiver) -> None:
        await receiver.down()
        h = Harness(
            receiver,
            QueueConfig(
                min_shards=2,
                max_shards=2,
                max_samples_per_send=20,
                batch_send_deadline=0.02,
                min_backoff=0.02,
                max_backoff=0.1,
            ),
        )
        h.queue.start()
        expected = h.push_rounds(6)
        await eventually(lambda: h.metric("samples_retried_total") > 0)
        started = time.monotonic()
        await h.queue.apply_settings(
            QueueConfig(
                min_shards=5,
                max_shards=10,
                max_samples_per_send=50,
                batch_send_deadline=0.02,
                min_backoff=0.02,
                max_backoff=0.1,
            )
        )
        # No flush wait: the outage does not block the change. A flush wait would
        # take the harness's 5 s flush deadline; 3 s leaves a busy machine room.
        assert time.monotonic() - started < 3.0
        assert h.queue.shard_count == 5
        assert h.metric("max_samples_per_send") == 50
        await receiver.up()
        await eventually(h.delivered_everything(expected))
        await h.queue.stop(5)
        assert_in_order(receiver, 6, 50)

    run(body)


def test_pause_holds_data_and_resume_sends_it() -> None:
    async def body(receiver: DemoReceiver) -> None:
        h = Harness(receiver, QueueConfig(max_samples_per_send=100, batch_send_deadline=0.02))
        h.queue.pause()
        h.queue.start()
        expected = h.push_rounds(2)
        # Not "nothing after a while" alone: first the data is in the queue, ready to go
        # (an event), then ten batch deadlines pass with it held.
        await eventually(lambda: h.queue.pending_items() == expected)
        await asyncio.sleep(10 * 0.02)
        assert receiver.stats().samples == 0 and receiver.stats().requests == 0
        assert h.queue.status() == "paused"
        h.queue.resume()
        await eventually(h.delivered_everything(expected))
        await h.queue.stop(5)
        # The batches waited out most of the hold inside their send: that is the
        # operator's time, not the receiver's (sending took milliseconds).
        assert 0 < h.queue._data_out_duration._pending < 10 * 0.02 / 2 * 1e9

    run(body)


def test_sample_age_limit_drops_and_counts_old_samples() -> None:
    async def body(receiver: DemoReceiver) -> None:
        h = Harness(
            receiver,
            QueueConfig(max_samples_per_send=1000, batch_send_deadline=0.02, sample_age_limit=60.0),
        )
        h.queue.start()
        old = h.push_rounds(1, start_ms=NOW_MS - 3_600_000)
        fresh = h.push_rounds(1, start_ms=int(time.time() * 1000))
        await eventually(lambda: receiver.stats().samples >= fresh)
        await eventually(lambda: h.queue.delivered_position == (0, 2))
        assert h.metric("samples_dropped_total", reason="too_old") == old
        await h.queue.stop(5)

    run(body)


def test_relabel_and_external_labels_and_dunder_labels() -> None:
    async def body(receiver: DemoReceiver) -> None:
        rules = compile_rules(
            [
                SimpleNamespace(
                    source_labels=["series"],
                    separator=";",
                    regex="1.*",
                    modulus=0,
                    target_label="",
                    replacement="$1",
                    action="drop",
                ),
            ]
        )
        h = Harness(
            receiver,
            QueueConfig(max_samples_per_send=1000, batch_send_deadline=0.02),
            external_labels=make_labels({"cluster": "eu", "job": "ignored"}),
            relabel=lambda labels: relabel(labels, rules),
            series=20,
        )
        h.series[5] = make_labels({"__name__": "x", "__tmp": "gone", "series": "5"})
        h.queue.start()
        h.push_rounds(1)
        kept = [ref for ref in h.series if not str(ref).startswith("1")]
        await eventually(lambda: receiver.stats().samples >= len(kept))
        await eventually(lambda: h.queue.delivered_position == (0, 1))
        dropped = len(h.series) - len(kept)
        assert h.metric("samples_dropped_total", reason="dropped_series") == dropped
        received = set(receiver.series())
        # __tmp is removed; external labels fill in what the series lacks.
        assert (
            make_labels({"__name__": "x", "series": "5", "cluster": "eu", "job": "ignored"})
            in received
        )
        # Series labels win over external labels.
        assert (
            make_labels(
                {"__name__": "test_metric", "series": "2", "job": "queue-test", "cluster": "eu"}
            )
            in received
        )
        # Every series known now: the dropped ones are still told apart in bulk.
        h.push_rounds(1, start_ms=NOW_MS + 1000)
        await eventually(lambda: h.queue.delivered_position == (0, 2))
        assert receiver.stats().samples == 2 * len(kept)
        assert h.metric("samples_dropped_total", reason="dropped_series") == 2 * dropped
        # Series the WAL collected are resolved again when they come back.
        h.queue.forget_series(list(h.series))
        assert h.queue._dropped_series == 0
        h.push_rounds(1, start_ms=NOW_MS + 2000)
        await eventually(lambda: h.queue.delivered_position == (0, 3))
        assert receiver.stats().samples == 3 * len(kept)
        assert h.metric("samples_dropped_total", reason="dropped_series") == 3 * dropped
        await h.queue.stop(5)

    run(body)


def test_accepted_counts_only_what_the_receiver_took() -> None:
    """Rejected (400) and retried (503) samples are sent, never accepted; only 2xx counts."""

    async def body(receiver: DemoReceiver) -> None:
        receiver.set_fault("bad_request", reason="out of bounds")
        h = Harness(
            receiver,
            QueueConfig(
                max_samples_per_send=100,
                batch_send_deadline=0.05,
                min_backoff=0.05,
                max_backoff=0.1,
            ),
        )
        accepted = h.queue.metrics.accepted["samples"]
        h.queue.start()
        rejected = h.push_rounds(2)
        await eventually(lambda: h.metric("samples_failed_total") == rejected)
        assert h.metric("samples_total") == rejected and accepted.value == 0
        receiver.set_fault("error_5xx", status=503)
        retried = h.push_rounds(1, start_ms=NOW_MS + 5000)
        await eventually(lambda: h.metric("samples_retried_total") >= retried)
        assert accepted.value == 0
        receiver.set_fault("ok")
        await eventually(lambda: accepted.value == retried)
        await h.queue.stop(5)
        assert receiver.stats().samples == accepted.value == retried
        # The Prometheus families keep their meaning; the accepted count is not one of them.
        assert "accepted" not in h.registry.expose()

    run(body)


def test_time_integral_counts_level_times_seconds() -> None:
    now = [100.0]
    integral = TimeIntegral(clock=lambda: now[0])
    integral.change(1)
    now[0] += 2.0
    integral.change(1)  # 2 in flight from here
    now[0] += 0.5
    assert integral.value == pytest.approx(3.0)  # read lazily: the open stretch counts
    integral.change(-2)
    now[0] += 10.0
    assert integral.value == pytest.approx(3.0)
    assert integral.level == 0


RECEIVER_DELAY = 0.4


def test_requests_in_flight_and_busy_shards_are_measured() -> None:
    """Two shards waiting on a slow receiver: 2 in flight, and the wait is network time."""

    async def body(receiver: DemoReceiver) -> None:
        receiver.set_fault("latency", delay=RECEIVER_DELAY)
        h = Harness(
            receiver,
            QueueConfig(
                min_shards=2,
                max_shards=2,
                max_samples_per_send=25,
                batch_send_deadline=0.05,
                capacity=50,
            ),
        )
        m = h.queue.metrics
        started = time.monotonic()
        h.queue.start()
        expected = h.push_rounds(2)
        await eventually(lambda: m.in_flight.value == 2)
        receiver.set_fault("ok")
        await eventually(h.delivered_everything(expected))
        await h.queue.stop(5)
        elapsed = time.monotonic() - started
        assert m.in_flight.value == 0
        assert m.in_flight_time.level == 0 and m.shard_busy_time.level == 0
        # Both first requests waited out the delay (started before the fault was lifted).
        assert m.in_flight_time.value >= 2 * RECEIVER_DELAY * 0.9
        assert m.send_phase["network"].value >= 2 * RECEIVER_DELAY * 0.9
        # A shard is busy from taking a batch to finishing it: that covers its requests.
        assert m.in_flight_time.value <= m.shard_busy_time.value <= 2 * elapsed
        assert m.send_batches.value >= 4
        exposed = h.registry.expose()
        for name in (
            "rwconsole_remote_requests_in_flight{",
            "rwconsole_remote_requests_in_flight_seconds_total{",
            "rwconsole_remote_shard_busy_seconds_total{",
            'rwconsole_remote_send_phase_seconds_total{remote_name="test"',
            "rwconsole_remote_send_batches_total{",
        ):
            assert name in exposed

    run(body)


@pytest.mark.parametrize(
    "refs",
    [
        list(range(1000, 11005)),  # one scrape's commit: consecutive refs
        [*range(1000, 10000), *range(50, 55)],  # its report series created elsewhere
        random.Random(7).sample(range(10**6), 5000),  # no runs at all
        [3, 1, 2, 4, *range(10, 600), 7],  # a permutation whose ends look like a run
    ],
    ids=["one-run", "two-runs", "scattered", "tricky"],
)
@pytest.mark.parametrize("n_shards", [1, 2, 3, 8])
def test_shard_positions_partition_a_chunk_in_order(refs: list[int], n_shards: int) -> None:
    parts = _shard_positions(refs, n_shards)
    assert sorted(i for pieces in parts for piece in pieces for i in piece) == list(
        range(len(refs))
    )
    for shard, pieces in enumerate(parts):
        positions = [i for piece in pieces for i in piece]
        assert positions == sorted(positions)  # chunk order, so per-series order holds
        assert all(refs[i] % n_shards == shard for i in positions)
    if n_shards > 1 and refs[:3] == [1000, 1001, 1002]:
        # Runs of consecutive refs are strided ranges, taken by slices.
        assert all(isinstance(pieces[0], range) for pieces in parts)
