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
        wal = WalStorage.open(tmp_path / "wal", compress=False)
        try:
            refs = wal.series_refs(
                [make_labels({"__name__": "m", "i": str(i)}) for i in range(SERIES)]
            )
            wal.commit()
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
