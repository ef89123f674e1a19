"""The WAL follower: memory while caught up, files after an overflow, each item handed over once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rwconsole.labels import make_labels
from rwconsole.remote import follower as follower_module
from rwconsole.remote.chunks import Chunk
from rwconsole.remote.follower import WalFollower
from rwconsole.wal.records import SampleLayouts
from rwconsole.wal.segment import TailReader, WalRecord
from rwconsole.wal.storage import WalStorage

SERIES = 100


def _commit(wal: WalStorage, follower: WalFollower, refs: list[int], round_: int) -> None:
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


def test_overflow_hands_over_the_buffer_then_reads_only_the_rest_from_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follower_module, "MAX_BUFFERED_ITEMS", 250)
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
            follower = WalFollower(tmp_path / "wal", wal.position(), wal.position())
            assert follower.live
            for round_ in range(10):  # the third offer overflows the buffer
                _commit(wal, follower, refs, round_)
            assert not follower.live and follower.fallbacks == 1
            got = await _take(follower, 10 * SERIES)
            expected = [(ref, r * 1000.0 + i) for r in range(10) for i, ref in enumerate(refs)]
            assert got == expected  # in order, nothing twice, nothing missing
            assert sum(decoded) == 8 * SERIES  # the two buffered commits were not read again
            # Caught up: back on the memory path for what comes next.
            nothing_new = asyncio.ensure_future(follower.next_chunk())
            await asyncio.sleep(0.05)
            assert follower.live and not nothing_new.done()
            _commit(wal, follower, refs, 10)
            chunk = await asyncio.wait_for(nothing_new, 5)
            assert chunk.values[0] == 10_000.0 and follower.fallbacks == 1
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
        finally:
            wal.close()

    asyncio.run(body())
