"""The spool: request bodies encoded ahead while an endpoint is behind.

The file-level tests use a real file; the queue-level ones run the real queue,
encoder, HTTP client and a loopback receiver that counts every sample per
series, out-of-order ones and duplicates included.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import test_protocol_fallback as fallback
from test_queue import NOW_MS, Harness, assert_in_order, refuse_from_now_on, run
from waits import eventually

from rwconsole.config.schema import QueueConfig
from rwconsole.demo.receiver import DemoReceiver
from rwconsole.remote.queue import DRAIN_SHARDS, PARK_AFTER_LAG_SECONDS
from rwconsole.remote.spool import (
    FRAME_HEADER_SIZE,
    Spool,
    SpoolBudget,
    SpoolError,
    clear_directory,
)

BIG = 1 << 40


def test_bodies_come_back_whole_and_the_file_empties_when_none_waits(tmp_path: Path) -> None:
    budget = SpoolBudget(BIG, 0)
    spool = Spool(tmp_path / "q.spool", budget)
    bodies = [os.urandom(n) for n in (1, 700, 65_536)]
    refs = [spool.put(body) for body in bodies]
    assert all(ref is not None for ref in refs)
    assert [spool.get(ref) for ref in refs if ref] == bodies
    assert spool.waiting == 3 and budget.used == spool.size == (tmp_path / "q.spool").stat().st_size
    for ref in refs[:2]:
        assert ref is not None
        spool.done(ref)
    assert spool.size > 0, "a frame still waits: the file stays"
    assert refs[2] is not None
    spool.done(refs[2])
    assert spool.size == 0 and budget.used == 0
    assert (tmp_path / "q.spool").stat().st_size == 0
    spool.close()
    assert not (tmp_path / "q.spool").exists()


def test_a_damaged_frame_is_reported_with_file_and_offset(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q.spool", SpoolBudget(BIG, 0))
    first, second = spool.put(b"a" * 100), spool.put(b"b" * 100)
    assert first is not None and second is not None
    with open(tmp_path / "q.spool", "r+b") as f:
        f.seek(second.offset + 20)
        f.write(b"X")
    assert spool.get(first) == b"a" * 100
    with pytest.raises(SpoolError, match=rf"q\.spool: frame at offset {second.offset} fails"):
        spool.get(second)
    spool.close()


def test_the_extra_part_comes_back_checked_and_apart_from_the_body(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q.spool", SpoolBudget(BIG, 0))
    refs = [spool.put(b"body-%d" % i * 50, b"extra-%d" % i * 20) for i in range(3)]
    assert all(ref is not None for ref in refs)
    assert [spool.get_extra(ref) for ref in refs if ref] == [b"extra-%d" % i * 20 for i in range(3)]
    assert [spool.get(ref) for ref in refs if ref] == [b"body-%d" % i * 50 for i in range(3)]
    first, second, third = refs
    assert first is not None and second is not None and third is not None
    with open(tmp_path / "q.spool", "r+b") as f:
        f.seek(second.offset + second.length - 1)  # the last byte of the extra part
        f.write(b"X")
        f.seek(third.offset)  # the body length in the header: 300 (0x12c) becomes 0x101
        f.write(b"\x01")
    with pytest.raises(SpoolError, match=rf"offset {second.offset} fails .*\(extra part\)"):
        spool.get_extra(second)
    assert spool.get(second) == b"body-1" * 50, "the body is whole: the drain sends it"
    with pytest.raises(
        SpoolError, match=rf"offset {third.offset} says 257 \+ 140 bytes, was written with 300 "
    ):
        spool.get_extra(third)
    spool.close()
    with pytest.raises(SpoolError, match="is closed"):
        spool.get(first)


def test_the_budget_and_the_free_space_reserve_refuse_bodies(tmp_path: Path) -> None:
    small = SpoolBudget(250, 0)
    a, b = Spool(tmp_path / "a.spool", small), Spool(tmp_path / "b.spool", small)
    assert a.put(b"x" * 100) is not None
    assert b.put(b"y" * 100) is not None
    assert not b.has_room(100)
    assert b.put(b"z" * 100) is None, "the budget is shared by all spools"
    stat = os.statvfs(tmp_path)
    free = stat.f_bavail * stat.f_frsize
    reserved = Spool(tmp_path / "c.spool", SpoolBudget(BIG, free))
    assert not reserved.has_room(10)
    assert reserved.put(b"x" * 10) is None
    for spool in (a, b, reserved):
        spool.close()
    assert small.used == 0


def test_files_of_an_earlier_run_are_removed(tmp_path: Path) -> None:
    (tmp_path / "queue-1.spool").write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("not a spool")
    assert clear_directory(tmp_path) == 1
    assert clear_directory(tmp_path / "missing") == 0
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def assert_each_series(receiver: DemoReceiver, samples: int) -> None:
    """Each of the 50 series got ``samples`` samples, none out of order."""
    per_series = receiver.series()
    assert len(per_series) == 50
    for labels, stats in per_series.items():
        assert stats.out_of_order == 0, labels
        assert stats.samples == samples, (labels, stats.samples)


def _settings(**changes: object) -> QueueConfig:
    base: dict[str, object] = {
        "min_shards": 2,
        "max_shards": 2,
        "max_samples_per_send": 20,
        "capacity": 40,
        "batch_send_deadline": 0.02,
        "min_backoff": 0.02,
        "max_backoff": 0.1,
    }
    base.update(changes)
    return QueueConfig(**base)  # type: ignore[arg-type]


def _harness(
    receiver: DemoReceiver, tmp_path: Path, budget: SpoolBudget | None, **settings: object
) -> tuple[Harness, Spool | None]:
    spool = Spool(tmp_path / "q.spool", budget) if budget is not None else None
    return Harness(receiver, _settings(**settings), spool=spool, park_after_lag=0.0), spool


def _read_everything(h: Harness) -> bool:
    return h.queue.read_position == (0, h.source.position)


@pytest.mark.parametrize("spooled", [True, False])
def test_an_outage_is_read_and_encoded_ahead_then_drained_in_order(
    tmp_path: Path, spooled: bool
) -> None:
    rounds = 30

    async def body(receiver: DemoReceiver) -> None:
        await receiver.down()
        h, spool = _harness(receiver, tmp_path, SpoolBudget(BIG, 0) if spooled else None)
        h.queue.start()
        expected = h.push_rounds(rounds)
        await eventually(lambda: h.metric("samples_retried_total") > 0)
        if spooled:
            assert spool is not None
            await eventually(lambda: _read_everything(h))
            # Each of the two shards holds at most a batch in flight, 40 full and a
            # partial batch in memory; the rest is parked.
            assert spool.waiting >= (expected - 2 * (20 + 40 + 20)) // 20
            assert (
                h.registry.value(
                    "rwconsole_remote_spool_batches", remote_name="test", url=receiver.url
                )
                == spool.waiting
            )
            assert h.queue.delivered_position == (0, 0)
        else:
            await asyncio.sleep(0.5)
            assert not _read_everything(h), "without a spool a full queue stops the reader"
        await receiver.up()
        await eventually(h.delivered_everything(expected), timeout=30)
        await h.queue.stop(5)
        assert_in_order(receiver, rounds, 50)
        assert receiver.stats().samples == expected, "nothing sent twice"
        if spool is not None:
            assert spool.waiting == 0 and spool.size == 0
            assert not (tmp_path / "q.spool").exists(), "a stopped queue removes its spool"

    run(body)


def test_a_queue_widens_to_the_drain_shards_before_it_parks(tmp_path: Path) -> None:
    async def body(receiver: DemoReceiver) -> None:
        await receiver.down()
        h, spool = _harness(receiver, tmp_path, SpoolBudget(BIG, 0), min_shards=1, max_shards=50)
        assert spool is not None
        h.queue.start()
        expected = h.push_rounds(30)
        await eventually(lambda: _read_everything(h))
        assert h.queue.shard_count == DRAIN_SHARDS
        assert spool.waiting > 0
        await receiver.up()
        await eventually(h.delivered_everything(expected), timeout=30)
        await h.queue.stop(5)
        assert_in_order(receiver, 30, 50)
        assert receiver.stats().samples == expected

    run(body)


def test_a_stop_before_the_old_shards_finish_keeps_their_batches_undelivered(
    tmp_path: Path,
) -> None:
    """A reshard behind parked batches leaves the old shards to send them; a stop
    while the receiver is still down cancels those shards. Their batches were never
    sent, so the delivered position must not pass them: the next start sends them."""

    async def body(receiver: DemoReceiver) -> None:
        await receiver.down()
        h, spool = _harness(receiver, tmp_path, SpoolBudget(BIG, 0), max_shards=10)
        assert spool is not None
        h.queue.start()
        h.push_rounds(10)
        await eventually(lambda: _read_everything(h) and spool.waiting > 5)
        await h.queue._reshard(5)
        await h.queue.stop(0.2)
        assert receiver.stats().samples == 0
        assert h.queue.delivered_position == (0, 0)
        assert h.queue.delivered_ahead is None

    run(body)


def test_resharding_and_retuning_behind_parked_batches_keep_order(tmp_path: Path) -> None:
    async def body(receiver: DemoReceiver) -> None:
        await receiver.down()
        h, spool = _harness(receiver, tmp_path, SpoolBudget(BIG, 0), max_shards=10)
        assert spool is not None
        h.queue.start()
        expected = h.push_rounds(10)
        await eventually(lambda: _read_everything(h) and spool.waiting > 5)
        await h.queue._reshard(5)
        assert h.queue.shard_count == 5
        expected += h.push_rounds(10, start_ms=NOW_MS + 10_000)
        await h.queue.apply_settings(_settings(min_shards=6, max_shards=10, max_samples_per_send=7))
        assert h.queue.shard_count == 6
        expected += h.push_rounds(10, start_ms=NOW_MS + 20_000)
        await eventually(lambda: _read_everything(h))
        assert h.queue.delivered_position == (0, 0)
        await receiver.up()
        await eventually(h.delivered_everything(expected), timeout=30)
        await h.queue.stop(5)
        assert_each_series(receiver, 30)
        assert receiver.stats().samples == expected
        assert spool.size == 0

    run(body)


def test_a_full_spool_stops_the_reader_and_nothing_is_lost(tmp_path: Path) -> None:
    rounds = 30

    async def body(receiver: DemoReceiver) -> None:
        await receiver.down()
        budget = SpoolBudget(BIG, 0)
        h, spool = _harness(receiver, tmp_path, budget)
        assert spool is not None
        h.queue.start()
        expected = h.push_rounds(5)
        await eventually(lambda: spool.waiting >= 1 and _read_everything(h))
        frame = spool.size // spool.waiting
        budget.max_bytes = budget.used + 2 * frame + frame // 2  # room for two more
        parked = spool.waiting
        expected += h.push_rounds(rounds - 5, start_ms=NOW_MS + 5000)
        await eventually(lambda: h.queue.metrics.spool_refused.value > 0)
        await asyncio.sleep(0.3)
        assert not _read_everything(h)
        assert spool.waiting <= parked + 2
        await receiver.up()
        await eventually(h.delivered_everything(expected), timeout=30)
        await h.queue.stop(5)
        assert_each_series(receiver, rounds)
        assert receiver.stats().samples == expected

    run(body)


def test_a_stop_during_an_outage_keeps_parked_batches_undelivered(tmp_path: Path) -> None:
    async def body(receiver: DemoReceiver) -> None:
        await receiver.down()
        h, spool = _harness(receiver, tmp_path, SpoolBudget(BIG, 0))
        assert spool is not None
        h.queue.start()
        h.push_rounds(20)
        await eventually(lambda: _read_everything(h) and spool.waiting > 0)
        await h.queue.stop(0.2)
        assert h.queue.delivered_position == (0, 0)
        assert not (tmp_path / "q.spool").exists()
        assert receiver.stats().samples == 0

    run(body)


def test_a_stop_in_the_middle_of_a_drain_hands_on_the_parked_batches_delivered(
    tmp_path: Path,
) -> None:
    """Parked batches drain on two shards; the receiver refuses again and the queue
    stops. What the shards delivered beyond the position (read back from the
    spool's frames) is handed on, and a restart from the position sends every
    sample once."""
    rounds = 30

    async def body(receiver: DemoReceiver) -> None:
        await receiver.down()
        h, spool = _harness(receiver, tmp_path, SpoolBudget(BIG, 0))
        assert spool is not None
        h.queue.start()
        expected = h.push_rounds(rounds)
        await eventually(lambda: _read_everything(h) and spool.waiting > 20)
        await receiver.up()
        receiver.set_fault("latency", delay=0.05)
        # Past what the shards held in memory (2 × 80 samples): parked batches.
        await eventually(lambda: receiver.stats().samples >= 600, timeout=30)
        await refuse_from_now_on(h)
        await h.queue.stop(0.2)
        delivered = receiver.stats().samples
        position = h.queue.delivered_position
        ahead = h.queue.delivered_ahead
        assert ahead is not None
        # A batch is kept until the position passes its newest chunk: some of what it
        # hands on can lie before the position.
        beyond = sum(
            n for (_, ts), n in ahead.counts[0].items() if ts >= NOW_MS + 1000 * position[1]
        )
        assert delivered == 50 * position[1] + beyond, "the position and what is ahead"
        assert max(ts for _, ts in ahead.counts[0]) >= NOW_MS + 4000, "parked batches ahead"

        receiver.set_fault("ok")
        again = Harness(
            receiver,
            _settings(),
            spool=Spool(tmp_path / "q.spool", SpoolBudget(BIG, 0)),
            park_after_lag=0.0,
            start_position=position,
            delivered_ahead=ahead,
        )
        again.queue.start()
        again.source.position = position[1]
        refs = sorted(again.series)
        for r in range(position[1], rounds):
            again.source.push(refs, [NOW_MS + r * 1000] * len(refs), [float(r)] * len(refs))
        await eventually(again.delivered_everything(expected), timeout=30)
        await again.queue.stop(5)
        assert receiver.stats().samples == expected, "nothing twice"
        assert_each_series(receiver, rounds)

    run(body)


def test_an_unreadable_parked_body_is_counted_as_dropped(tmp_path: Path) -> None:
    async def body(receiver: DemoReceiver) -> None:
        await receiver.down()
        h, spool = _harness(receiver, tmp_path, SpoolBudget(BIG, 0), min_shards=1, max_shards=1)
        assert spool is not None
        h.queue.start()
        expected = h.push_rounds(10)
        await eventually(lambda: _read_everything(h) and spool.waiting > 2)
        with open(tmp_path / "q.spool", "r+b") as f:
            f.seek(FRAME_HEADER_SIZE + 4)  # inside the first parked body
            f.write(b"\xff\xff")
        await receiver.up()
        dropped = lambda: h.metric(  # noqa: E731
            "samples_dropped_total", reason="spool_unreadable"
        )
        await eventually(lambda: receiver.stats().samples + dropped() >= expected, timeout=30)
        await eventually(h.delivered_everything(expected - int(dropped())), timeout=30)
        await h.queue.stop(5)
        assert dropped() == 20, "the one damaged body of 20 samples, no more"
        assert receiver.stats().samples == expected - 20

    run(body)


@pytest.mark.parametrize(
    ("settings", "park_after_lag"),
    [({"sample_age_limit": 3600.0}, 0.0), ({}, PARK_AFTER_LAG_SECONDS)],
    ids=["sample_age_limit", "lag_under_the_threshold"],
)
def test_no_parking_with_a_sample_age_limit_or_without_lag(
    tmp_path: Path, settings: dict[str, float], park_after_lag: float
) -> None:
    async def body(receiver: DemoReceiver) -> None:
        await receiver.down()
        spool = Spool(tmp_path / "q.spool", SpoolBudget(BIG, 0))
        h = Harness(receiver, _settings(**settings), spool=spool, park_after_lag=park_after_lag)
        h.queue.start()
        h.push_rounds(20)
        await eventually(lambda: h.queue.status() == "retrying")
        await asyncio.sleep(0.3)
        assert h.queue.lag_seconds() < PARK_AFTER_LAG_SECONDS
        assert spool.waiting == 0 and not _read_everything(h)
        await h.queue.stop(0.1)

    run(body)


def test_a_queue_behind_a_receiver_that_accepts_does_not_park(tmp_path: Path) -> None:
    """Behind but not failing (a slow receiver, or a loop out of CPU): the reader keeps
    its backpressure; parking would only spend the sends' CPU on encoding ahead."""

    async def body(receiver: DemoReceiver) -> None:
        receiver.set_fault("latency", delay=0.3)
        h, spool = _harness(receiver, tmp_path, SpoolBudget(BIG, 0))
        assert spool is not None
        h.queue.start()
        expected = h.push_rounds(20)
        await eventually(lambda: h.queue.metrics.enqueue_retries.value > 0)
        await asyncio.sleep(0.5)
        assert spool.waiting == 0 and not _read_everything(h)
        receiver.set_fault("ok")
        await eventually(h.delivered_everything(expected), timeout=30)
        await h.queue.stop(5)
        assert_in_order(receiver, 20, 50)

    run(body)


def test_a_spool_turned_off_neither_parks_nor_widens(tmp_path: Path) -> None:
    async def body(receiver: DemoReceiver) -> None:
        await receiver.down()
        h, spool = _harness(receiver, tmp_path, SpoolBudget(0, 0), min_shards=1, max_shards=50)
        assert spool is not None
        h.queue.start()
        h.push_rounds(20)
        await eventually(lambda: h.queue.status() == "retrying")
        await asyncio.sleep(0.5)
        assert h.queue.shard_count == 1
        assert spool.waiting == 0 and not _read_everything(h)
        assert h.queue.metrics.spool_refused.value == 0
        assert not (tmp_path / "q.spool").exists()
        await h.queue.stop(0.1)

    run(body)


def test_parked_2_0_bodies_go_out_as_1_0_when_the_receiver_speaks_only_1_0(
    tmp_path: Path,
) -> None:
    """The receiver is down while 2.0 bodies are parked, and comes back speaking only 1.0:
    each parked body is decoded and sent again as 1.0, in order, once."""
    rounds = 40

    async def body() -> None:
        receiver = fallback.Receiver("v1-only-415")
        await receiver.server.start("127.0.0.1", 0)
        port = receiver.server.port
        await receiver.server.stop()
        source = fallback.Source()
        spool = Spool(tmp_path / "q.spool", SpoolBudget(BIG, 0))
        queue, registry = fallback.make_queue(receiver, source, spool=spool, park_after_lag=0.0)
        queue.settings = _settings(max_samples_per_send=10, capacity=20, max_shards=4)
        queue.start()
        try:
            for r in range(rounds):
                source.push_round(r)
            await eventually(lambda: queue.read_position == (0, rounds) and spool.waiting > 4)
            assert queue.negotiation.current == 2
            await receiver.server.start("127.0.0.1", port)
            await eventually(lambda: queue.delivered_position == (0, rounds), timeout=30)
        finally:
            await queue.stop(5.0)
            await receiver.server.stop()
        assert queue.negotiation.current == 1
        for labels, samples in receiver.samples.items():
            assert [v for _, v in samples] == [float(r) for r in range(rounds)], labels
        assert len(receiver.samples) == fallback.N_SERIES
        assert all(protocol == 1 for protocol, n in receiver.requests if n)
        failed = registry.value(
            "prometheus_remote_storage_samples_failed_total", remote_name="v2", url=queue.url
        )
        assert failed == 0
        assert spool.size == 0

    asyncio.run(body())
