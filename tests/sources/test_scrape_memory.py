"""What a steady scrape keeps: the shape's keys stand in for the key map and staleness set.

``SteadyShape.keys`` must give back exactly the keys ``parse`` gave for the
learned body, since a loop rebuilds its key → ref map from them; a loop whose
shape holds keeps neither the map nor the staleness set, rebuilds both the
moment the full path needs them (compared against a loop that never takes the
shortcut), and keeps a bounded number of bytes per series.
"""

from __future__ import annotations

import asyncio
import gc
import random
import threading
import time
import tracemalloc
from typing import Any

import httpx
import pytest
from src_helpers import RecordingAppender, TargetServer
from test_scrape_fastpath import Twins, started_twins
from test_scrape_loop import anyio_backend, scrape_config  # noqa: F401 (a fixture)

from rwconsole.sources.scrape import ScrapeLoop
from rwconsole.sources.steady import SteadyShape
from rwconsole.sources.textparse import Format, parse

pytestmark = [pytest.mark.timeout(60)]

TEXT = Format.TEXT
OM = Format.OPENMETRICS

BODIES = [
    ("a 1\n", TEXT),
    ("a 1\nb 2\n", TEXT),
    ('# HELP a Some help text.\n# TYPE a gauge\na{x="1"} 1\na{x="2"} 2\n', TEXT),
    ('temp{room="a b"} 1\ntemp{room="c\td e"} 2\nplain 3\n', TEXT),
    ('spaced {x="1"} 1\nspaced\t{x="2"} 2\n', TEXT),
    ('# a free comment with words\nx{l="ü ñ"} 1\n#\n#TYPE x gauge\ny 2\n', TEXT),
    ('m{a="1",b="2"} 1\nm{b="2",a="1"} 2\nm {a="3"} 3\n', TEXT),
    ("# TYPE c counter\n# HELP c Help.\nc_total 1\nc_created 2\n# EOF\n", OM),
    ('# TYPE g gauge\n# UNIT g seconds\ng{a="x y z"} 1.5\n# EOF\n', OM),
]


def learned(data: bytes, fmt: Format) -> tuple[SteadyShape, list[str]]:
    payload = parse(data, fmt)
    shape = SteadyShape.learn(data, fmt, payload)
    assert shape is not None
    return shape, payload.keys


@pytest.mark.parametrize(("body", "fmt"), BODIES)
def test_keys_are_the_parsed_keys(body: str, fmt: Format) -> None:
    shape, keys = learned(body.encode(), fmt)
    assert shape.keys() == keys


LABEL_VALUES = ["v", "a b", "c\td", "é"]


def random_body(rng: random.Random) -> str:
    """Sample lines with odd but single-character gaps, comments between them."""
    lines = []
    for index in range(rng.randrange(1, 30)):
        if rng.random() < 0.2:
            kind = rng.choice(["HELP", "note", "TYPE"])
            tail = "gauge" if kind == "TYPE" else " ".join(["x"] * rng.randrange(3))
            lines.append(f"# {kind} m{index} {tail}".rstrip())
            continue
        name = f"m{index}" + rng.choice(["", " ", "\t"])
        pairs = [f'l{n}="{rng.choice(LABEL_VALUES)}"' for n in range(rng.randrange(3))]
        key = f"{name}{{{','.join(pairs)}}}" if pairs or name != name.rstrip() else name
        lines.append(f"{key} {rng.randrange(1000)}")
    return "\n".join(lines) + "\n"


def test_keys_of_random_bodies() -> None:
    rng = random.Random(7)
    learned_count = 0
    for _ in range(300):
        data = random_body(rng).encode()
        payload = parse(data, TEXT)
        shape = SteadyShape.learn(data, TEXT, payload)
        if shape is not None:
            learned_count += 1
            assert shape.keys() == payload.keys, data
    assert learned_count > 200


def series_body(count: int, step: int) -> str:
    lines = []
    for i in range(count):
        family, member = divmod(i, 100)
        if member == 0:
            lines.append(f"# HELP req_{family}_total Requests.\n# TYPE req_{family}_total counter")
        lines.append(
            f'req_{family}_total{{handler="/api/v1/items/{member}",method="GET",'
            f'code="200",zone="zone-{member % 3}"}} {i * 7 + step}'
        )
    return "\n".join(lines) + "\n"


def assert_same_state(twins: Twins) -> None:
    fast, full = twins.fast._state, twins.full._state
    assert fast.refs == full.refs
    assert fast.tracked == full.tracked


@pytest.mark.anyio
async def test_a_steady_loop_keeps_no_map_and_rebuilds_it_when_the_body_changes() -> None:
    async with started_twins() as twins:
        body = series_body(300, 0)
        await twins.settle(body)
        state = twins.fast._state
        assert state.refs_kept() is None
        assert state.tracked_count() == 300 == twins.fast.status().series
        # A series goes, another comes: the full path needs the map and the set.
        changed = body.replace('zone="zone-0"} 0\n', 'zone="zone-9"} 0\n', 1)
        assert changed != body
        assert not await twins.scrape(changed)
        assert_same_state(twins)
        await twins.settle(series_body(300, 5))
        assert state.refs_kept() is None
        twins.assert_same()


@pytest.mark.anyio
async def test_forgotten_series_leave_the_rebuilt_map() -> None:
    async with started_twins() as twins:
        await twins.settle(series_body(50, 0))
        assert twins.fast._state.refs_kept() is None
        key = 'req_0_total{handler="/api/v1/items/3",method="GET",code="200",zone="zone-0"}'
        fast_ref = twins.fast._state.known()[key]
        twins.fast.forget_series({fast_ref})
        twins.full.forget_series({twins.full._state.refs[key]})
        assert key not in twins.fast._state.refs
        assert fast_ref not in twins.fast._state.tracked
        assert_same_state(twins)
        assert not await twins.scrape(series_body(50, 1))
        assert await twins.scrape(series_body(50, 2))


@pytest.mark.anyio
async def test_series_of_other_targets_collected_leave_the_shape_lean() -> None:
    async with started_twins() as twins:
        await twins.settle(series_body(50, 0))
        state = twins.fast._state
        steady = state.steady
        assert steady is not None and state.refs_kept() is None
        elsewhere = max(steady.refs) + 1  # a ref this loop never used
        twins.fast.forget_series({elsewhere})
        twins.full.forget_series({elsewhere})
        assert state.steady is steady and state.refs_kept() is None
        assert await twins.scrape(series_body(50, 1))
        twins.assert_same()


@pytest.mark.anyio
async def test_steady_state_bytes_per_series() -> None:
    """The state of a steady 2000-series target: the shape's text and little else."""
    count = 2000
    server = TargetServer()
    await server.start()
    app = RecordingAppender()
    try:
        async with httpx.AsyncClient() as client:
            loop = ScrapeLoop(scrape_config(), server.address, app, client)
            learned(series_body(count, 0).encode(), TEXT)  # the shared index ints exist
            tracemalloc.start()
            try:
                for step in range(3):
                    server.body = series_body(count, step)
                    assert await loop.scrape_once()
                server.body = ""
                assert loop._state.refs_kept() is None
                gc.collect()
                before = tracemalloc.get_traced_memory()[0]
                loop._state = type(loop._state)()
                gc.collect()
                kept = before - tracemalloc.get_traced_memory()[0]
            finally:
                tracemalloc.stop()
    finally:
        await server.stop()
    key_bytes = len(series_body(count, 0)) / count  # about 100: the keys' own text
    assert kept / count < key_bytes + 50, (kept / count, key_bytes)


def test_shapes_of_the_same_layout_share_their_text() -> None:
    first = series_body(2000, 0).encode()
    second = series_body(2000, 3).encode()
    shape, keys = learned(first, TEXT)
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        twin = SteadyShape.learn(second, TEXT, parse(second, TEXT))
        gc.collect()
        twin_bytes = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert twin is not None
    assert twin_bytes / 2000 < 10, twin_bytes / 2000
    assert twin.keys() == keys
    assert twin.values(first, TEXT) == parse(first).values
    assert shape.values(second, TEXT) == parse(second).values


def test_a_layout_with_other_gaps_is_not_shared() -> None:
    """The same non-value tokens with a tab for a space are another layout."""
    spaced, tabbed = b'a{x="p q"} 1\nb 2\n', b'a{x="p\tq"} 1\nb 2\n'
    by_space, space_keys = learned(spaced, TEXT)
    by_tab, tab_keys = learned(tabbed, TEXT)
    assert by_space.values(b'a{x="p q"} 5\nb 6\n', TEXT) == [5.0, 6.0]
    assert by_space.values(b'a{x="p\tq"} 5\nb 6\n', TEXT) is None
    assert by_tab.values(b'a{x="p\tq"} 5\nb 6\n', TEXT) == [5.0, 6.0]
    assert by_tab.values(b'a{x="p q"} 5\nb 6\n', TEXT) is None
    assert by_space.keys() == space_keys != by_tab.keys() == tab_keys


@pytest.mark.anyio
async def test_large_bodies_are_read_one_at_a_time() -> None:
    """Reads in worker threads do not overlap, so their transient memory does not add up."""
    body = series_body(7000, 0)
    assert len(body) > 512 * 1024
    servers = [TargetServer() for _ in range(3)]
    active = [0]
    most = [0]
    lock = threading.Lock()
    try:
        async with httpx.AsyncClient() as client:
            loops = []
            for server in servers:
                await server.start()
                server.body = body
                # A timeout far above the reads: the test is about their overlap, and three
                # serialised 7000-series parses on a loaded machine can pass the default 2 s.
                config = scrape_config(scrape_timeout=60.0, scrape_interval=60.0)
                loop = ScrapeLoop(config, server.address, RecordingAppender(), client)
                read = loop._read_full

                def counted(data: bytes, fmt: Format, read: Any = read) -> Any:
                    with lock:
                        active[0] += 1
                        most[0] = max(most[0], active[0])
                    try:
                        time.sleep(0.05)
                        return read(data, fmt)
                    finally:
                        with lock:
                            active[0] -= 1

                loop._read_full = counted  # type: ignore[method-assign]
                loops.append(loop)
            ups = await asyncio.gather(*(loop.scrape_once() for loop in loops))
    finally:
        for server in servers:
            await server.stop()
    assert ups == [True, True, True]
    assert most[0] == 1
