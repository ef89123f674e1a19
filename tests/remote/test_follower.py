"""The WAL follower: memory while caught up, files after an overflow, each item handed over once."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest

from rwconsole.labels import make_labels
from rwconsole.metrics import Registry
from rwconsole.model import WalAppendError
from rwconsole.remote import follower as follower_module
from rwconsole.remote.chunks import Chunk, Position
from rwconsole.remote.follower import FollowerGauges, WalFollower
from rwconsole.wal.records import SampleLayouts, encode_samples
from rwconsole.wal.segment import HEADER_SIZE, TailReader, WalRecord
from rwconsole.wal.storage import WalStorage

SERIES = 100


def _commit(wal: WalStorage, follower: WalFollower, refs: list[int], round_: int) -> Position:
    """Append and commit one round, offer it to ``follower``; the WAL position after it."""
    start = wal.position()
    values = [round_ * 1000.0 + i for i in range(len(refs))]
    wal.append_samples(refs, 1_700_000_000_000 + round_ * 1000, values)
    wal.commit()
    chunk = Chunk(
        end=wal.position(),
        refs=list(refs),
        timestamps=[1_700_000_000_000 + round_ * 1000] * len(refs),
        values=values,
    )
    follower.offer(start, chunk)
    return chunk.end


def _wal_with_series(tmp_path: Path) -> tuple[WalStorage, list[int]]:
    wal = WalStorage.open(tmp_path / "wal", compress=False)
    refs = wal.series_refs([make_labels({"__name__": "m", "i": str(i)}) for i in range(SERIES)])
    wal.commit()
    return wal, refs


async def _take(follower: WalFollower, items: int) -> list[tuple[int, float]]:
    got: list[tuple[int, float]] = []
    for _ in range(1000):
        if len(got) >= items:
            break
        chunk = await asyncio.wait_for(follower.next_chunk(), 5)
        got.extend(zip(chunk.refs, chunk.values, strict=True))
    return got


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _expected(refs: list[int], rounds: range) -> list[tuple[int, float]]:
    return [(ref, r * 1000.0 + i) for r in rounds for i, ref in enumerate(refs)]


def test_overflow_hands_the_buffer_over_and_reads_the_rest_from_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory stays within the bound: past it the follower stops buffering and reads
    what comes next from the files. What it buffered is still handed over from
    memory (the queue is only slower than the commits, and takes it soon): every
    item arrives in order, once, and none of them is decoded twice."""
    monkeypatch.setattr(follower_module, "MIN_BUFFERED_ITEMS", 250)
    decoded: list[int] = []
    decode = follower_module._decode_into

    def counting_decode(chunk: Chunk, data: bytes, layouts: SampleLayouts | None) -> None:
        before = len(chunk.refs)
        decode(chunk, data, layouts)
        decoded.append(len(chunk.refs) - before)

    monkeypatch.setattr(follower_module, "_decode_into", counting_decode)

    async def body() -> None:
        wal, refs = _wal_with_series(tmp_path)
        try:
            start = wal.position()
            follower = WalFollower(tmp_path / "wal", start, start)
            assert follower.live and follower.max_buffered_items == 250
            _commit(wal, follower, refs, 0)
            kept_until = _commit(wal, follower, refs, 1)
            for round_ in range(2, 10):  # the third offer overflows the buffer
                _commit(wal, follower, refs, round_)
                assert follower.buffered_items <= 250
            assert not follower.live and follower.fallbacks == 1
            assert follower.buffered_items == 2 * SERIES and follower.items_given_up == 0
            assert follower.in_memory_until == kept_until
            got = await _take(follower, 10 * SERIES)
            assert got == _expected(refs, range(10))  # in order, nothing twice, nothing missing
            assert sum(decoded) == 8 * SERIES  # only the commits after the bound, from files
            # Caught up: back on the memory path for what comes next.
            nothing_new = asyncio.ensure_future(follower.next_chunk())
            await asyncio.sleep(0.05)
            assert follower.live and not nothing_new.done()
            _commit(wal, follower, refs, 10)
            chunk = await asyncio.wait_for(nothing_new, 5)
            assert chunk.values[0] == 10_000.0 and follower.fallbacks == 1
            assert sum(decoded) == 8 * SERIES
        finally:
            wal.close()

    asyncio.run(body())


def test_a_read_ahead_due_when_the_buffer_is_kept_waits_for_it(tmp_path: Path) -> None:
    """A read-ahead scheduled while behind that runs only after the follower caught
    up and fell behind again (keeping its buffer) must not read from the files what
    the buffer holds: the files are read from the buffer's end."""

    async def body() -> None:
        wal, refs = _wal_with_series(tmp_path)
        try:
            start = wal.position()
            follower = WalFollower(tmp_path / "wal", start, start)
            follower._fall_back(give_up=True)
            _commit(wal, follower, refs, 0)
            first = await follower.next_chunk()  # from the files; a read-ahead is due
            got = list(zip(first.refs, first.values, strict=True))
            follower._live = True  # caught up before the read-ahead had its turn
            for round_ in (1, 2):
                _commit(wal, follower, refs, round_)
            assert follower.buffered_items == 2 * SERIES
            follower._fall_back(give_up=False)  # behind again, the buffer kept
            _commit(wal, follower, refs, 3)  # not buffered: read from the files later
            for _ in range(3):
                await asyncio.sleep(0)  # the read-ahead's turn
            got += await _take(follower, 3 * SERIES)
            assert got == _expected(refs, range(4))
        finally:
            wal.close()

    asyncio.run(body())


def test_bound_follows_the_queue_capacity(tmp_path: Path) -> None:
    capacity = [10]
    follower = WalFollower(tmp_path, (0, 0), (0, 0), shard_capacity=lambda: capacity[0])
    assert follower.max_buffered_items == follower_module.MIN_BUFFERED_ITEMS
    capacity[0] = 100_000
    assert follower.max_buffered_items == follower_module.BUFFER_SHARD_CAPACITIES * 100_000


def test_a_queue_that_stops_taking_chunks_releases_the_buffer(tmp_path: Path) -> None:
    """The outage case: the queue's shards are full, its read loop takes nothing. After
    ``STALL_SECONDS`` the next offer gives the buffer up (well under the bound), and
    once the queue takes chunks again it gets every item from the files, in order."""

    async def body() -> None:
        wal, refs = _wal_with_series(tmp_path)
        clock = _Clock()
        try:
            start = wal.position()
            follower = WalFollower(tmp_path / "wal", start, start, clock=clock)
            first_chunk = asyncio.ensure_future(follower.next_chunk())
            await asyncio.sleep(0)  # the queue waits for data: it is consuming
            _commit(wal, follower, refs, 0)
            taken = await asyncio.wait_for(first_chunk, 5)
            assert taken.values[0] == 0.0
            # The queue now stops taking chunks; offers pile up for a while.
            for round_ in range(1, 4):
                clock.now += 0.3
                _commit(wal, follower, refs, round_)
            assert follower.live and follower.buffered_items == 3 * SERIES
            clock.now += follower_module.STALL_SECONDS
            _commit(wal, follower, refs, 4)
            assert not follower.live and follower.buffered_items == 0
            assert follower.items_given_up == 3 * SERIES
            assert follower.in_memory_until == taken.end
            for round_ in range(5, 8):  # the outage goes on: nothing is held
                clock.now += 5
                _commit(wal, follower, refs, round_)
                assert follower.buffered_items == 0
            got = [(r, v) for r, v in zip(taken.refs, taken.values, strict=True)]
            got += await _take(follower, 7 * SERIES)
            assert got == _expected(refs, range(8))
        finally:
            wal.close()

    asyncio.run(body())


def test_a_kept_buffer_is_given_up_once_the_queue_stops_taking_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind by more than the bound, the follower keeps what it buffered; when the
    queue then stops taking chunks (an outage), the next offer after
    ``STALL_SECONDS`` gives it up, so the outage holds nothing in memory."""
    monkeypatch.setattr(follower_module, "MIN_BUFFERED_ITEMS", 250)

    async def body() -> None:
        wal, refs = _wal_with_series(tmp_path)
        clock = _Clock()
        try:
            start = wal.position()
            follower = WalFollower(tmp_path / "wal", start, start, clock=clock)
            for round_ in range(3):  # the third offer passes the bound
                _commit(wal, follower, refs, round_)
            assert not follower.live and follower.buffered_items == 2 * SERIES
            clock.now += follower_module.STALL_SECONDS / 2
            _commit(wal, follower, refs, 3)
            assert follower.buffered_items == 2 * SERIES  # slow, not stopped: kept
            clock.now += follower_module.STALL_SECONDS
            _commit(wal, follower, refs, 4)
            assert follower.buffered_items == 0 and follower.items_given_up == 2 * SERIES
            assert follower.in_memory_until == start
            got = await _take(follower, 5 * SERIES)
            assert got == _expected(refs, range(5))
        finally:
            wal.close()

    asyncio.run(body())


def test_a_stalled_queue_keeps_what_a_truncation_already_cut(tmp_path: Path) -> None:
    """An age cut leaves buffered chunks of the cut segments to the queue (counted as
    held, to go out). If the queue then stalls, those chunks cannot be read again
    from the files, so giving the buffer up keeps them."""

    async def body() -> None:
        wal, refs = _wal_with_series(tmp_path)
        clock = _Clock()
        try:
            start = wal.position()
            follower = WalFollower(tmp_path / "wal", start, start, clock=clock)
            for round_ in range(3):
                _commit(wal, follower, refs, round_)
            follower.drop_read_ahead_before(start[0] + 1)  # an age cut of this segment
            clock.now += follower_module.STALL_SECONDS
            _commit(wal, follower, refs, 3)
            assert follower.buffered_items == 3 * SERIES and follower.items_given_up == 0
            got = await _take(follower, 4 * SERIES)
            assert got == _expected(refs, range(4))
        finally:
            wal.close()

    asyncio.run(body())


def test_a_queue_that_keeps_taking_chunks_keeps_the_memory_path(tmp_path: Path) -> None:
    async def body() -> None:
        wal, refs = _wal_with_series(tmp_path)
        clock = _Clock()
        try:
            start = wal.position()
            follower = WalFollower(tmp_path / "wal", start, start, clock=clock)
            for round_ in range(20):
                clock.now += 10 * follower_module.STALL_SECONDS
                _commit(wal, follower, refs, round_)
                got = await _take(follower, SERIES)
                assert got == _expected(refs, range(round_, round_ + 1))
            assert follower.live and follower.fallbacks == 0
        finally:
            wal.close()

    asyncio.run(body())


def test_behind_reads_files_ahead_once_and_hands_over_bounded_chunks_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follower behind reads many records per file read and keeps those it has not
    merged yet, instead of reading the segment again for each chunk."""
    monkeypatch.setattr(follower_module, "MAX_CHUNK_ITEMS", 250)
    reads: list[int] = []
    read = TailReader.read

    def counting_read(self: TailReader, max_records: int = 100_000) -> list[WalRecord]:
        out = read(self, max_records)
        reads.append(len(out))
        return out

    monkeypatch.setattr(TailReader, "read", counting_read)

    async def body() -> None:
        wal, refs = _wal_with_series(tmp_path)
        try:
            start = wal.position()
            for round_ in range(40):
                wal.append_samples(
                    refs, 1_700_000_000_000 + round_ * 1000, [float(round_)] * SERIES
                )
                wal.commit()
            follower = WalFollower(tmp_path / "wal", start, wal.position())
            assert not follower.live
            chunks: list[Chunk] = []
            for _ in range(100):
                if chunks and chunks[-1].end == wal.position():
                    break
                chunks.append(await asyncio.wait_for(follower.next_chunk(), 5))
            got = [(ref, v) for c in chunks for ref, v in zip(c.refs, c.values, strict=True)]
            assert got == [(ref, float(r)) for r in range(40) for ref in refs]
            assert all(len(c.refs) <= 250 + SERIES for c in chunks)
            ends = [c.end for c in chunks]
            assert ends == sorted(ends) and len(set(ends)) == len(ends)
            assert sum(reads) == 40 and len([n for n in reads if n]) <= 2
        finally:
            wal.close()

    asyncio.run(body())


def test_records_read_ahead_from_a_cut_segment_are_dropped_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read-ahead lies past ``in_memory_until``, where the engine counts a cut's samples
    as lost: they must not go out after all."""
    monkeypatch.setattr(follower_module, "MAX_CHUNK_ITEMS", 250)

    async def body() -> None:
        wal, refs = _wal_with_series(tmp_path)
        try:
            start = wal.position()
            for round_ in range(10):
                wal.append_samples(
                    refs, 1_700_000_000_000 + round_ * 1000, [float(round_)] * SERIES
                )
                wal.commit()
            follower = WalFollower(tmp_path / "wal", start, wal.position())
            first = await asyncio.wait_for(follower.next_chunk(), 5)
            assert follower.in_memory_until == first.end < wal.position()
            assert follower.drop_before(wal.position()[0] + 1) == 0
            rest = await asyncio.wait_for(follower.next_chunk(), 5)
            assert rest.refs == [] and rest.end == wal.position()
            # An age cut keeps the buffer but drops the read-ahead the same way.
            again = WalFollower(tmp_path / "wal", start, wal.position())
            assert (await asyncio.wait_for(again.next_chunk(), 5)).end == first.end
            again.drop_read_ahead_before(wal.position()[0] + 1)
            rest = await asyncio.wait_for(again.next_chunk(), 5)
            assert rest.refs == [] and rest.end == wal.position()
        finally:
            wal.close()

    asyncio.run(body())


def test_records_of_a_refused_commit_are_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit whose write fails after a complete record reached the file, and whose
    cut-back fails too (EIO on ftruncate), leaves that record readable until the next
    commit cuts it: a follower stops at the last successful commit all the same."""

    async def body() -> None:
        wal, refs = _wal_with_series(tmp_path)
        try:
            start = wal.position()
            follower = WalFollower(tmp_path / "wal", start, start)
            _commit(wal, follower, refs, 0)
            _commit(wal, follower, refs, 1)
            follower._fall_back(give_up=True)  # behind: it reads the files
            committed = wal.position()
            first_record = len(encode_samples(refs, 0, [0.0] * SERIES)) + HEADER_SIZE
            calls = []

            def write(fd: int, data: memoryview) -> int:
                calls.append(len(data))
                if len(calls) == 1:  # the refused commit's first record, whole
                    return os.write(fd, data[:first_record])
                raise OSError(errno.ENOSPC, "no space left on device")

            def ftruncate(fd: int, length: int) -> None:
                raise OSError(errno.EIO, "input/output error")

            assert wal._writer is not None
            wal._writer._write = write
            monkeypatch.setattr(os, "ftruncate", ftruncate)
            wal.append_samples(refs, 1_700_000_002_000, [2000.0 + i for i in range(SERIES)])
            wal.append_samples(refs, 1_700_000_003_000, [3000.0 + i for i in range(SERIES)])
            with pytest.raises(WalAppendError):
                wal.commit()
            assert wal.position() == committed
            # The window: a complete record of the refused commit is in the file.
            plain = TailReader(tmp_path / "wal", start)
            assert len(plain.read()) == 3
            got = await _take(follower, 2 * SERIES)
            assert got == _expected(refs, range(2))
            assert follower.in_memory_until == committed
            nothing = asyncio.ensure_future(follower.next_chunk())
            await asyncio.sleep(0.05)
            assert not nothing.done() and follower.live
            # The disk is back: the next commit cuts the refused record off first.
            monkeypatch.undo()
            wal._writer._write = os.write
            _commit(wal, follower, refs, 4)
            chunk = await asyncio.wait_for(nothing, 5)
            assert list(zip(chunk.refs, chunk.values, strict=True)) == _expected(refs, range(4, 5))
            written = TailReader(tmp_path / "wal", start).read()
            assert len(written) == 3 and (written[-1].segment, written[-1].end) == chunk.end
        finally:
            wal.close()

    asyncio.run(body())


def test_gauges_report_the_buffer_and_the_read_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follower_module, "MAX_CHUNK_ITEMS", SERIES)

    async def body() -> None:
        wal, refs = _wal_with_series(tmp_path)
        registry = Registry()
        gauges = FollowerGauges(registry, "q", "http://x")
        try:
            start = wal.position()
            follower = WalFollower(tmp_path / "wal", start, start)
            for round_ in range(3):
                _commit(wal, follower, refs, round_)
            gauges.publish(follower)
            labels = {"remote_name": "q", "url": "http://x"}
            assert registry.value("rwconsole_remote_follower_buffered_items", **labels) == 300
            assert registry.value("rwconsole_remote_follower_fallbacks_total", **labels) == 0
            follower._fall_back(give_up=True)
            gauges.publish(follower)
            gauges.publish(follower)  # publishing twice counts the fallback once
            assert registry.value("rwconsole_remote_follower_fallbacks_total", **labels) == 1
            assert registry.value("rwconsole_remote_follower_items_reread_total", **labels) == 300
            # A follower built anew (the queue was rebuilt) adds to the counters.
            other = WalFollower(tmp_path / "wal", start, start)
            other._fall_back(give_up=True)
            gauges.publish(other)
            assert registry.value("rwconsole_remote_follower_fallbacks_total", **labels) == 2
            # One record handed over, the next decoded ahead, the third read and waiting.
            await _take(follower, SERIES)
            for _ in range(3):
                await asyncio.sleep(0)
            assert follower.read_ahead_items == SERIES
            gauges.publish(follower)
            assert registry.value("rwconsole_remote_follower_buffered_items", **labels) == SERIES
            ahead = registry.value("rwconsole_remote_follower_read_ahead_bytes", **labels)
            assert ahead == len(encode_samples(refs, 0, [0.0] * SERIES))
            assert "rwconsole_remote_follower_read_ahead_bytes{" in registry.expose()
        finally:
            wal.close()

    asyncio.run(body())
