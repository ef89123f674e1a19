"""The endpoint queue where two things meet: a fallback and parking, a stop and a live
queue_config change, a stop and a failing WAL read, a reshard and shedding by age (also
after a fallback to 1.0), a restart and shedding by age.

Each test drives one such sequence end to end against a real receiver and checks
that nothing is lost, sent twice or counted twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
import test_protocol_fallback as fallback
from test_queue import (
    NOW_MS,
    ONE_SLOW_SHARD,
    Harness,
    ListSource,
    assert_in_order,
    refuse_from_now_on,
    run,
)
from test_spool import BIG, _settings
from waits import eventually

from rwconsole.config.schema import QueueConfig
from rwconsole.demo.receiver import DemoReceiver
from rwconsole.model import CUSTOM_BUCKETS_SCHEMA, Histogram, HistogramSample
from rwconsole.remote.chunks import Chunk
from rwconsole.remote.spool import Spool, SpoolBudget


def test_batches_parked_after_a_fallback_to_1_0_are_encoded_as_1_0(tmp_path: Path) -> None:
    """A 2.0 endpoint whose receiver speaks only 1.0 falls back; later the receiver goes
    down and the queue parks batches. They are parked as 1.0 bodies (the batches hold
    2.0 series keys, which the 1.0 encoder cannot take as they are: encoding them
    raised in ``seal()``, which ended the read loop, or, in a shard's ``take()``, lost
    the batch it had just taken), and every round reaches the receiver once, in order."""
    rounds = 40

    async def body() -> None:
        receiver = fallback.Receiver("v1-only-415")
        await receiver.server.start("127.0.0.1", 0)
        port = receiver.server.port
        source = fallback.Source()
        spool = Spool(tmp_path / "q.spool", SpoolBudget(BIG, 0))
        queue, _ = fallback.make_queue(receiver, source, spool=spool, park_after_lag=0.0)
        queue.settings = _settings(max_samples_per_send=10, capacity=20, max_shards=4)
        queue.start()
        try:
            source.push_round(0)
            await eventually(lambda: queue.delivered_position == (0, 1))
            assert queue.negotiation.current == 1, "fell back to 1.0"
            await receiver.server.stop()
            for r in range(1, rounds):
                source.push_round(r)
            await eventually(lambda: queue.status() == "retrying")
            await asyncio.sleep(1.0)
            await receiver.server.start("127.0.0.1", port)
            await eventually(lambda: queue.delivered_position == (0, rounds), timeout=15)
        finally:
            read_task = queue._tasks[0]
            crashed = read_task.done() and not read_task.cancelled() and read_task.exception()
            await queue.stop(5.0)
            await receiver.server.stop()
        assert not crashed, f"the read loop died: {crashed!r}"
        for labels, samples in receiver.samples.items():
            assert [v for _, v in samples] == [float(r) for r in range(rounds)], labels
        assert len(receiver.samples) == fallback.N_SERIES

    asyncio.run(body())


def test_a_stop_during_a_live_queue_config_change_leaves_no_shard_sending() -> None:
    """``apply_settings`` reshards: the old shards are stopped and ``_reshard`` waits for
    the one in an HTTP attempt. A queue stop meanwhile (an engine shutdown while a
    console command runs) flushes the old shards and saves the delivered position;
    the reshard then leaves the shards as they are instead of starting new ones with
    the carried batches, so no shard runs and nothing is sent after the stop returned
    (a restart would send it again)."""

    async def body(receiver: DemoReceiver) -> None:
        receiver.set_fault("latency", delay=0.2)
        settings = QueueConfig(
            min_shards=2,
            max_shards=4,
            max_samples_per_send=20,
            capacity=1000,
            batch_send_deadline=0.02,
        )
        h = Harness(receiver, settings)
        h.queue.start()
        expected = h.push_rounds(10)
        in_flight = lambda: h.registry.value(  # noqa: E731
            "rwconsole_remote_requests_in_flight", remote_name="test", url=receiver.url
        )
        await eventually(lambda: h.queue.read_position == (0, 10) and in_flight() > 0)
        change = asyncio.create_task(
            h.queue.apply_settings(dataclasses.replace(settings, min_shards=3, max_shards=3))
        )
        await asyncio.sleep(0.05)  # the reshard waits for the attempts in flight
        await h.queue.stop(30)
        await change
        at_stop = receiver.stats().samples
        await asyncio.sleep(1.0)
        running = [s for s in h.queue._shards if s.task is not None and not s.task.done()]
        for shard in running:
            shard.task.cancel()
        assert not running, "shard tasks still running after stop"
        assert receiver.stats().samples == at_stop == expected
        assert h.queue.delivered_position == (0, 10)

    run(body)


def test_a_source_error_does_not_cost_the_stop_its_flush_and_delivered_ahead() -> None:
    """The chunk source raises (an I/O error reading the WAL files): the read loop logs it
    and tries again later instead of ending, and a stop still flushes and cancels the
    shards, keeps the delivered position and hands on every item delivered beyond it
    (a stop that re-raised the read loop's error skipped all of that, so a restart
    sent those items again)."""

    class FailingSource(ListSource):
        async def next_chunk(self) -> Chunk:
            if self._queue.empty() and self.position:
                raise OSError("EIO reading a WAL segment")
            return await super().next_chunk()

    async def body(receiver: DemoReceiver) -> None:
        h = Harness(receiver, ONE_SLOW_SHARD)
        h.source = h.queue._source = FailingSource()
        receiver.set_fault("latency", delay=0.2)
        h.queue.start()
        h.source.push(*h.rounds_in_one_chunk(40))
        await eventually(lambda: receiver.stats().samples >= 1000)
        await refuse_from_now_on(h)
        raised = None
        try:
            await h.queue.stop(0.2)
        except OSError as err:
            raised = err
        delivered = receiver.stats().samples
        running = [s for s in h.queue._shards if s.task is not None and not s.task.done()]
        for shard in running:
            shard.task.cancel()
        assert h.queue.delivered_position == (0, 0)
        ahead = h.queue.delivered_ahead
        assert ahead is not None and ahead.total() == delivered, (
            f"{delivered} samples delivered ahead of the position are not handed on "
            f"(stop raised {raised!r})"
        )
        assert not running, "shard tasks still running after stop"

    run(body)


def test_items_shed_before_a_reshard_interrupted_the_retry_are_counted_once() -> None:
    """Items shed by age while a batch is retried, then a reshard that interrupts the
    retry: the batch is carried as shed, so ``samples_dropped_total{reason="too_old"}``
    counts each shed item once and ``samples_pending`` ends at zero (shedding a copy
    left the carried batch whole, and its new shard shed and counted it again)."""
    now = [NOW_MS / 1000]

    async def body(receiver: DemoReceiver) -> None:
        receiver.set_fault("error_5xx", status=503)
        h = Harness(
            receiver,
            QueueConfig(
                min_shards=1,
                max_shards=2,
                max_samples_per_send=1000,
                batch_send_deadline=0.02,
                sample_age_limit=60.0,
                min_backoff=0.02,
                max_backoff=0.1,
            ),
            clock=lambda: now[0],
        )
        h.queue.start()
        h.push_rounds(1, start_ms=NOW_MS - 30_000)
        fresh = h.push_rounds(1, start_ms=NOW_MS)
        await eventually(lambda: h.metric("samples_retried_total") > 0)
        now[0] += 45  # the first round is 75 s old now, the second 45 s
        dropped = lambda: h.metric("samples_dropped_total", reason="too_old")  # noqa: E731
        await eventually(lambda: dropped() == 50)
        await h.queue._reshard(2)
        receiver.set_fault("ok")
        await eventually(lambda: receiver.stats().samples >= fresh)
        await h.queue.stop(5)
        assert receiver.stats().samples == fresh
        assert dropped() == 50, "each shed sample counted once"
        assert h.metric("samples_pending") == 0

    run(body)


def test_a_failed_read_of_the_wal_is_tried_again_and_loses_nothing() -> None:
    """One read of the source fails (an I/O error); the queue says so in its last error,
    tries again a second later and delivers every round exactly once."""

    class OnceFailingSource(ListSource):
        calls = 0

        async def next_chunk(self) -> Chunk:
            self.calls += 1
            if self.calls == 3:
                raise OSError("EIO reading a WAL segment")
            return await super().next_chunk()

    async def body(receiver: DemoReceiver) -> None:
        h = Harness(
            receiver,
            QueueConfig(min_shards=1, max_shards=1, max_samples_per_send=100),
        )
        h.source = h.queue._source = OnceFailingSource()
        expected = h.push_rounds(10)
        h.queue.start()
        await eventually(lambda: "reading the WAL" in (h.queue.last_error or ""))
        await eventually(h.delivered_everything(expected), timeout=15)
        await h.queue.stop(5)
        assert receiver.stats().samples == expected

    run(body)


def test_a_stop_during_a_reshard_of_the_queue_still_flushes_everything() -> None:
    """The queue's own reshard (the reshard loop, or the widening before parking) has
    stopped the old shards and waits for the one in an HTTP attempt when the queue
    stops, which cancels that reshard: the old shards send what they hold before the
    stop returns, the interrupted batch first, and the delivered position reaches the
    end (stopped shards that were never woken again sent nothing more, so the stop
    waited out its deadline and a restart sent it all)."""

    async def body(receiver: DemoReceiver) -> None:
        receiver.set_fault("latency", delay=0.3)
        h = Harness(
            receiver,
            QueueConfig(
                min_shards=2, max_shards=4, max_samples_per_send=20, batch_send_deadline=0.02
            ),
        )
        h.queue.start()
        expected = h.push_rounds(10)
        await eventually(lambda: h.queue.read_position == (0, 10))
        in_flight = lambda: h.registry.value(  # noqa: E731
            "rwconsole_remote_requests_in_flight", remote_name="test", url=receiver.url
        )
        await eventually(lambda: in_flight() > 0)
        reshard = asyncio.create_task(h.queue._reshard(3))
        h.queue._tasks.append(reshard)  # as the reshard loop's task: a stop cancels it
        await eventually(lambda: all(s.stop.is_set() for s in h.queue._shards))
        await h.queue.stop(10)
        assert reshard.cancelled()
        assert receiver.stats().samples == expected
        assert h.queue.delivered_position == (0, 10)
        assert_in_order(receiver, 10, len(h.series))

    run(body)


def test_items_shed_by_age_beyond_the_delivered_position_are_skipped_after_a_restart() -> None:
    """A batch that ages past ``sample_age_limit`` while it is retried is shed whole and
    finishes, while the next batch of the same chunk is still retried, so the delivered
    position stays before both. The stop hands the shed items on as delivered ahead, and
    the next start skips them: they are not read, dropped and counted in
    ``samples_dropped_total{reason="too_old"}`` a second time."""
    now = [NOW_MS / 1000]

    async def body(receiver: DemoReceiver) -> None:
        receiver.set_fault("error_5xx", status=503)
        settings = QueueConfig(
            min_shards=1,
            max_shards=1,
            max_samples_per_send=25,
            batch_send_deadline=0.02,
            sample_age_limit=60.0,
            min_backoff=0.02,
            max_backoff=0.1,
        )
        clock = lambda: now[0]  # noqa: E731
        first = Harness(receiver, settings, clock=clock)
        refs = sorted(first.series)
        # One chunk, two batches: 25 series scraped 50 s ago, then 25 scraped now.
        timestamps = [NOW_MS - 50_000] * 25 + [NOW_MS] * 25
        first.source.push(refs, timestamps, [1.0] * 50)
        first.queue.start()
        await eventually(lambda: first.metric("samples_retried_total") > 0)
        now[0] += 15  # the first batch is 65 s old now: shed at its next attempt
        await eventually(lambda: first.metric("samples_dropped_total", reason="too_old") == 25)
        await first.queue.stop(0.2)
        assert first.queue.delivered_position == (0, 0)
        ahead = first.queue.delivered_ahead
        assert ahead is not None and ahead.total() == 25, "the shed items are not handed on"

        receiver.set_fault("ok")
        again = Harness(receiver, settings, clock=clock, delivered_ahead=ahead)
        again.source.push(refs, timestamps, [1.0] * 50)
        again.queue.start()
        await eventually(again.delivered_everything(25))
        await again.queue.stop(5)
        assert receiver.stats().samples == 25
        assert again.metric("samples_dropped_total", reason="too_old") == 0, "dropped again"
        assert again.metric("samples_pending") == 0

    run(body)


@pytest.mark.parametrize("receiver_back", [True, False], ids=["delivered", "stopped-while-down"])
def test_items_dropped_after_a_fallback_then_a_reshard_are_counted_once(
    receiver_back: bool,
) -> None:
    """After a fallback to 1.0 a shard sends its batch's 1.0 form, without the histograms
    with custom buckets (1.0 has no form for them); items are shed by age from that form
    while it is retried; then a reshard interrupts the retry. The batch the shard held
    loses the same items, so the shards it is dealt out to do not drop and count them
    again: ``samples_dropped_total{reason="too_old"}`` and
    ``histograms_dropped_total{reason="nhcb_in_rw1_not_supported"}`` count each once.
    Either the receiver comes back and the rest is delivered, or the queue stops while
    it is down, and then the dropped items are handed on as delivered ahead (finished,
    though no batch holding them finished), so a restart skips them."""
    now = [fallback.NOW_MS / 1000]

    async def body() -> None:
        receiver = fallback.Receiver("v1-only-415")
        await receiver.server.start("127.0.0.1", 0)
        port = receiver.server.port
        source = fallback.Source()
        queue, registry = fallback.make_queue(
            receiver, source, clock=lambda: now[0], send_native_histograms=True
        )
        queue.settings = dataclasses.replace(
            queue.settings,
            min_shards=1,
            max_shards=2,
            sample_age_limit=60.0,
            min_backoff=0.02,
            max_backoff=0.1,
        )

        def metric(name: str, **labels: str) -> float:
            return fallback.value(queue, registry, f"prometheus_remote_storage_{name}", **labels)

        queue.start()
        try:
            source.push_round(0)
            await eventually(lambda: queue.delivered_position == (0, 1))
            assert queue.negotiation.current == 1, "fell back to 1.0"
            retried = metric("samples_retried_total")  # the 2.0 attempt of round 0
            await receiver.server.stop()
            # One chunk, so one batch: round 1, shed below, round 30, which is not, and
            # histograms with custom buckets, which 1.0 cannot carry.
            source.position += 1
            refs = list(range(1, fallback.N_SERIES + 1))
            nhcb = Histogram(
                schema=CUSTOM_BUCKETS_SCHEMA,
                zero_threshold=0.0,
                zero_count=0.0,
                count=3.0,
                sum=1.5,
                positive_spans=((0, 2),),
                positive_buckets=(1.0, 1.0),
                custom_values=(1.0,),
            )
            source.queue.put_nowait(
                Chunk(
                    end=(0, source.position),
                    refs=refs * 2,
                    timestamps=[fallback.NOW_MS + r * 1000 for r in (1, 30) for _ in refs],
                    values=[float(r) for r in (1, 30) for _ in refs],
                    histograms=[
                        HistogramSample(ref, fallback.NOW_MS + 30_000, nhcb) for ref in refs[:5]
                    ],
                )
            )
            await eventually(lambda: metric("samples_retried_total") > retried)
            now[0] += 75  # round 1 is 74 s old now, round 30 45 s
            await eventually(lambda: metric("samples_dropped_total", reason="too_old") > 0)
            await queue._reshard(2)
            if receiver_back:
                await receiver.server.start("127.0.0.1", port)
                await eventually(lambda: queue.delivered_position == (0, 2), timeout=15)
            else:
                retried = metric("samples_retried_total")
                await eventually(lambda: metric("samples_retried_total") > retried)
        finally:
            await queue.stop(5.0 if receiver_back else 0.2)
            await receiver.server.stop()
        dropped = metric("samples_dropped_total", reason="too_old")
        assert dropped == fallback.N_SERIES, "each shed sample counted once"
        nhcb_dropped = metric("histograms_dropped_total", reason="nhcb_in_rw1_not_supported")
        assert nhcb_dropped == 5, "each histogram with custom buckets counted once"
        if receiver_back:
            assert metric("samples_pending") == 0
            assert metric("histograms_pending") == 0
            for labels, samples in receiver.samples.items():
                assert [v for _, v in samples] == [0.0, 30.0], labels
        else:
            assert queue.delivered_position == (0, 1)
            ahead = queue.delivered_ahead
            assert ahead is not None
            samples, _, histograms = ahead.counts
            assert sorted(samples) == [(ref, fallback.NOW_MS + 1000) for ref in refs]
            assert sorted(histograms) == [(ref, fallback.NOW_MS + 30_000) for ref in refs[:5]]

    asyncio.run(body())
