"""The steady-state scrape shortcut gives exactly what the full parser gives.

Differential tests: ``SteadyShape`` against ``parse`` on the same bodies (a table
of value spellings, then fuzzed bodies), and two ScrapeLoops on one loopback
target — one allowed the shortcut, one always parsing in full — whose committed
samples, metadata, exemplars and statuses must be identical scrape by scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import struct
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from src_helpers import RecordingAppender, TargetServer
from test_scrape_loop import anyio_backend, scrape_config  # noqa: F401 (a fixture)

from rwconsole.labels import Labels
from rwconsole.model import is_stale_nan
from rwconsole.sources.scrape import ScrapeLoop
from rwconsole.sources.steady import SteadyShape
from rwconsole.sources.textparse import Format, parse

pytestmark = [pytest.mark.timeout(60)]

TEXT = Format.TEXT
OM = Format.OPENMETRICS
OM_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

BASE = (
    "# HELP http_requests_total Requests handled.\n"
    "# TYPE http_requests_total counter\n"
    'http_requests_total{code="200",method="GET"} {v0}\n'
    'http_requests_total{code="500",method="GET"} {v1}\n'
    "# HELP temp Temperature in a room.\n"
    "# TYPE temp gauge\n"
    'temp{room="a b"} {v2}\n'
    "plain {v3}\n"
)


def render(*values: str, template: str = BASE) -> bytes:
    text = template
    for index, value in enumerate(values):
        text = text.replace(f"{{v{index}}}", value)
    return text.encode()


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


def learned(data: bytes, fmt: Format = TEXT) -> SteadyShape:
    shape = SteadyShape.learn(data, fmt, parse(data, fmt))
    assert shape is not None
    return shape


def check_against_parser(shape: SteadyShape, data: bytes, fmt: Format = TEXT) -> bool:
    """Assert the shortcut agrees with the parser on ``data``; return whether it matched."""
    values = shape.values(data, fmt)
    if values is None:
        return False
    payload = parse(data, fmt)  # must not raise: the shortcut only takes valid bodies
    assert not payload.timestamps and not payload.exemplars
    assert list(map(bits, values)) == list(map(bits, payload.values))
    return True


# --- SteadyShape against the parser ------------------------------------------------------

# Value spellings and whether the shortcut may take them (False: the body must go to
# the parser, which either accepts it with a different reading or reports an error).
SPELLINGS = [
    ("1", True),
    ("0", True),
    ("007", True),
    ("-0", True),
    ("-12", True),
    ("+5", True),
    ("1.5e-3", True),
    ("1.234567e+06", True),
    ("+Inf", True),
    ("-Inf", True),
    ("Inf", True),
    ("inf", True),
    ("infinity", True),
    ("NaN", True),
    ("nan", True),
    ("1e400", True),
    ("9" * 400, True),
    ("9" * 5000, True),
    (".5", True),
    ("5.", True),
    ("1_000", False),
    ("0x10", False),
    ("1,5", False),
    ("abc", False),
    ("\u0663", False),  # an Arabic-Indic digit: float() takes it, the shortcut leaves it
    ("1\u00a0", False),
    ("--1", False),
    ('"1"', False),
]


@pytest.mark.parametrize(("spelling", "fast"), SPELLINGS)
def test_value_spellings_match_the_parser(spelling: str, fast: bool) -> None:
    shape = learned(render("1", "2", "3", "4"))
    for position in range(4):
        values = ["10", "20", "30", "40"]
        values[position] = spelling
        assert check_against_parser(shape, render(*values)) is fast


def test_negative_zero_keeps_its_sign() -> None:
    shape = learned(render("1", "2", "3", "4"))
    values = shape.values(render("-0", "0", "-0.0", "-0"), TEXT)
    assert values is not None
    assert [math.copysign(1, v) for v in values] == [-1, 1, -1, -1]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # a series added, removed, renamed; lines reordered
        (render("1", "2", "3", "4"), render("1", "2", "3", "4") + b"extra 1\n"),
        (render("1", "2", "3", "4"), render("1", "2", "3", "4").replace(b"plain 4\n", b"")),
        (render("1", "2", "3", "4"), render("1", "2", "3", "4").replace(b"plain", b"plane")),
        (b"a 1\nb 2\n", b"b 2\na 1\n"),
        # a timestamp or an exemplar appears
        (b"a 1\nb 2\n", b"a 1\nb 2 1700000000000\n"),
        (b"a 1\nb 2\n", b"a 1 2\nb 2\n"),
        # metadata changes
        (render("1", "2", "3", "4"), render("1", "2", "3", "4").replace(b"Requests", b"Calls")),
        (render("1", "2", "3", "4"), render("1", "2", "3", "4").replace(b"gauge", b"untyped")),
        # layout changes around the same tokens
        (b"a 1\nb 2\n", b"a 1\n\nb 2\n"),
        (b"a 1\nb 2\n", b"a  1\nb 2\n"),
        (b"a 1\nb 2\n", b"a\t1\nb 2\n"),
        (b"a 1\nb 2\n", b"a 1\nb 2"),
        (b"a 1\nb 2\n", b"a 1\r\nb 2\n"),
        (b"a 1\nb 2\n", b" a 1\nb 2\n"),
        (b"a 1\nb 2\n", b"a 1\nb\n2\n"),
        (b"a 1\nb 2\n", b"a\n1 b 2\n"),
        # the same whitespace characters, spread differently (no final newline)
        (b"a 1\nb 2\n", b" a\n1 b\n2"),
        (b"a 1\nb 2\n", b"a \n1 b\n2"),
    ],
)
def test_changed_bodies_go_to_the_parser(first: bytes, second: bytes) -> None:
    shape = learned(first)
    assert shape.values(second, TEXT) is None


@pytest.mark.parametrize(
    "data",
    [
        b"a 1 1700000000000\n",  # explicit timestamp
        b"a 1\n\nb 2\n",  # blank line
        b"a  1\n",  # double space
        b"a\t1\n",  # tab before the value
        b"a 1 \n",  # trailing space
        b"a 1",  # no final newline
        b"a 1\r\n",  # CRLF
        b"# just a comment\n",  # no samples
    ],
)
def test_bodies_that_never_become_steady(data: bytes) -> None:
    assert SteadyShape.learn(data, TEXT, parse(data)) is None


def test_openmetrics_steady_and_exemplar_bodies() -> None:
    om = b'# TYPE r counter\n# HELP r Requests.\nr_total{a="x # y"} 1\nr_created 17\n# EOF\n'
    shape = learned(om, OM)
    assert check_against_parser(shape, om.replace(b"} 1\n", b"} 2.5\n"), OM)
    assert shape.values(om, TEXT) is None  # another content type: parse again
    assert shape.values(om.replace(b"} 1\n", b'} 1 # {t="1"} 2\n'), OM) is None
    assert shape.values(om.replace(b"# EOF\n", b""), OM) is None
    with_exemplar = om.replace(b"} 1\n", b'} 1 # {t="1"} 2\n')
    assert SteadyShape.learn(with_exemplar, OM, parse(with_exemplar, OM)) is None


def test_node_exporter_style_body_with_spaces_in_label_values() -> None:
    data = (
        b"# HELP node_uname_info Labeled system information as provided by the uname system call.\n"
        b"# TYPE node_uname_info gauge\n"
        b'node_uname_info{machine="x86_64",version="#1 SMP Debian 6.1"} 1\n'
        b"# HELP go_gc_duration_seconds A summary of the pause duration.\n"
        b"# TYPE go_gc_duration_seconds summary\n"
        b'go_gc_duration_seconds{quantile="0"} 2.3e-05\n'
        b'go_gc_duration_seconds{quantile="1"} NaN\n'
        b"go_gc_duration_seconds_sum 0.001234\n"
        b"go_gc_duration_seconds_count 12\n"
    )
    shape = learned(data)
    assert shape.count == 5
    assert check_against_parser(shape, data.replace(b"NaN", b"0.5").replace(b" 12\n", b" 13\n"))


def _mutations(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    alphabet = b' \t\n#{}",=_.-+eE0123456789aINnf\xc2\xa0'
    out = []
    for _ in range(count):
        raw = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(raw) + 1)
            kind = rng.randrange(3)
            if kind == 0 and pos < len(raw):
                raw[pos] = rng.choice(alphabet)
            elif kind == 1 and pos < len(raw):
                del raw[pos]
            else:
                raw.insert(pos, rng.choice(alphabet))
        out.append(bytes(raw))
    return out


@pytest.mark.parametrize("fmt", [TEXT, OM])
def test_mutated_bodies_match_the_parser_or_go_to_it(fmt: Format) -> None:
    """Random byte edits: the shortcut either declines or agrees with the parser."""
    data = render("1", "2.5", "NaN", "-7")
    if fmt is OM:
        data = data.replace(b"untyped", b"unknown") + b"# EOF\n"
    shape = learned(data, fmt)
    known_keys = parse(data, fmt).keys
    rng = random.Random(7)
    matched = 0
    for mutated in _mutations(data, rng, 3000):
        if check_against_parser(shape, mutated, fmt):
            matched += 1
            payload = parse(mutated, fmt)
            assert payload.keys == known_keys
            assert [(f.name, f.type, f.help, f.start, f.end) for f in payload.families] == [
                (f.name, f.type, f.help, f.start, f.end) for f in parse(data, fmt).families
            ]
    assert matched > 0  # some edits only touch values


_VALUE_TOKENS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["+Inf", "-Inf", "NaN", "-0", "1_0", "0x1", "1e", "", "1 2", "٣"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_VALUE_TOKENS, min_size=4, max_size=4))
def test_any_values_match_the_parser(tokens: list[str]) -> None:
    shape = learned(render("1", "2", "3", "4"))
    data = render(*tokens)
    if not check_against_parser(shape, data):
        assert shape.values(data, TEXT) is None


# --- two ScrapeLoops, shortcut on and off ---------------------------------------------------


class Twins:
    """Scrape one target with a loop that may take the shortcut and one that never does."""

    def __init__(self, target: TargetServer, client: httpx.AsyncClient, **cfg: Any) -> None:
        self.now = 1_700_000_000.0
        self.target = target
        self.fast_app = RecordingAppender()
        self.full_app = RecordingAppender()
        config = scrape_config(**cfg)
        clock = lambda: self.now  # noqa: E731
        self.fast = ScrapeLoop(config, target.address, self.fast_app, client, clock=clock)
        self.full = ScrapeLoop(config, target.address, self.full_app, client, clock=clock)

    async def scrape(self, body: bytes | str, content_type: str = "text/plain") -> bool:
        """Both loops scrape ``body``; return whether the first took the shortcut."""
        self.target.body = body
        self.target.content_type = content_type
        shortcut_ready = self.fast._state.steady is not None
        up = await self.fast.scrape_once()
        took_shortcut = shortcut_ready and self.fast._state.full_scrapes == 0
        self.full._state.steady = None  # the reference loop parses every body
        assert await self.full.scrape_once() == up
        self.now += 1
        return took_shortcut

    async def settle(self, body: bytes | str, content_type: str = "text/plain") -> None:
        """Scrape ``body`` twice: the second scrape must take the shortcut."""
        await self.scrape(body, content_type)
        assert await self.scrape(body, content_type)

    def assert_same(self) -> None:
        assert _committed(self.fast_app) == _committed(self.full_app)
        a, b = self.fast_app, self.full_app
        assert _metadata(a) == _metadata(b)
        assert _exemplars(a) == _exemplars(b)
        assert a.commits == b.commits
        fast, full = self.fast.status(), self.full.status()
        assert (fast.health, fast.last_samples, fast.last_error, fast.series) == (
            full.health,
            full.last_samples,
            full.last_error,
            full.series,
        )
        assert (fast.scrapes, fast.failures, fast.parse_errors) == (
            full.scrapes,
            full.failures,
            full.parse_errors,
        )


def _committed(app: RecordingAppender) -> list[tuple[Labels, int, bytes]]:
    """Committed samples in order by label set; scrape durations differ run to run."""
    out = []
    for ref, ts, value in app.samples:
        labels = app.labels_by_ref[ref]
        if dict(labels)["__name__"] == "scrape_duration_seconds" and not is_stale_nan(value):
            value = 0.0
        out.append((labels, ts, bits(value)))
    return out


def _metadata(app: RecordingAppender) -> list[tuple[Labels, int, str, str]]:
    return [(app.labels_by_ref[m.ref], int(m.type), m.unit, m.help) for m in app.metadata]


def _exemplars(app: RecordingAppender) -> list[tuple[Labels, Labels, float, int]]:
    return [(app.labels_by_ref[e.ref], e.labels, e.value, e.timestamp) for e in app.exemplars]


@contextlib.asynccontextmanager
async def started_twins(**cfg: Any) -> AsyncIterator[Twins]:
    """Twins on a fresh loopback target; both loops end with staleness, compared again."""
    server = TargetServer()
    await server.start()
    try:
        async with httpx.AsyncClient() as client:
            twins = Twins(server, client, **cfg)
            yield twins
            twins.assert_same()
            await twins.fast.stop(stale=True)
            await twins.full.stop(stale=True)
            twins.assert_same()
    finally:
        await server.stop()


@pytest.fixture
async def twins() -> AsyncIterator[Twins]:
    async with started_twins() as pair:
        yield pair


async def run_twins(
    bodies: Sequence[bytes | str], content_type: str = "text/plain", **cfg: Any
) -> list[bool]:
    """Scrape ``bodies`` in turn; return for each whether the shortcut was taken."""
    async with started_twins(**cfg) as twins:
        return [await twins.scrape(body, content_type) for body in bodies]


@pytest.mark.anyio
async def test_steady_target_takes_the_shortcut() -> None:
    bodies = [render(str(i), str(2 * i), f"{i}.5", "NaN" if i % 2 else "+Inf") for i in range(6)]
    used = await run_twins(bodies)
    assert used == [False, True, True, True, True, True]


@pytest.mark.anyio
async def test_special_values_through_the_loop() -> None:
    spellings = [s for s, _ in SPELLINGS]
    bodies = [render("1", "2", "3", "4")]
    for i in range(0, len(spellings), 4):
        chunk = [*spellings[i : i + 4], "1", "1", "1"][:4]
        bodies.append(render(*chunk))
        bodies.append(render("1", "2", "3", "4"))
    used = await run_twins(bodies)
    assert any(used)


@pytest.mark.anyio
async def test_series_come_go_and_reorder() -> None:
    a = "a 1\nb 2\nc 3\n"
    bodies = [
        a,
        a.replace("1", "5"),
        a + "d 4\n",  # added
        a + "d 5\n",
        "a 1\nc 3\n",  # b goes stale
        "a 1\nc 4\n",
        "c 4\na 1\n",  # reordered
        "c 5\na 2\n",
        "c 5\na 2\nb 9\n",  # b is back
        "c 6\na 2\nb 9\n",
    ]
    used = await run_twins(bodies)
    assert used == [False, True, False, True, False, True, False, True, False, True]


@pytest.mark.anyio
async def test_staleness_after_steady_scrapes(twins: Twins) -> None:
    for value in range(3):
        await twins.scrape(f"keep {value}\ngone {value}\n")
    assert not await twins.scrape("keep 9\n")
    twins.assert_same()
    ((_, gone),) = twins.fast_app.named("gone").items()
    assert [is_stale_nan(v) for _, v in gone] == [False, False, False, True]


@pytest.mark.anyio
async def test_timestamps_appear_and_vanish() -> None:
    bodies = [
        "a 1\nb 2\n",
        "a 2\nb 3\n",
        "a 3\nb 4 1600000000000\n",
        "a 4\nb 5 1600000001000\n",
        "a 5\nb 6\n",
        "a 6\nb 7\n",
        "a 7\nb 8\n",
    ]
    for honor in (True, False):
        used = await run_twins(bodies, honor_timestamps=honor)
        assert used == [False, True, False, False, False, True, True]


@pytest.mark.anyio
async def test_help_and_type_changes_update_metadata() -> None:
    one = "# HELP g One.\n# TYPE g gauge\ng 1\n"
    two = "# HELP g Two.\n# TYPE g gauge\ng 2\n"
    three = "# HELP g Two.\n# TYPE g counter\ng 2\n"
    used = await run_twins([one, one, two, two, three, three, one])
    assert used == [False, True, False, True, False, True, False]


@pytest.mark.anyio
async def test_repeated_family_rewrites_metadata_every_scrape() -> None:
    body = '# TYPE g gauge\ng{a="1"} 1\n# TYPE h gauge\nh 1\n# TYPE g counter\ng{a="2"} 2\n'
    used = await run_twins([body] * 4)
    assert not any(used)


@pytest.mark.anyio
async def test_parse_error_after_steady_scrapes_keeps_its_line_number(twins: Twins) -> None:
    good = render("1", "2", "3", "4")
    bad = render("1", "2", "3_0", "4")
    await twins.settle(good)
    assert not await twins.scrape(bad)
    twins.assert_same()
    assert twins.fast.status().last_error == "parse error at line 7: invalid value '3_0'"
    assert not await twins.scrape(good)  # after a failure: the full path again
    assert await twins.scrape(good)
    twins.assert_same()
    assert all(is_stale_nan(points[2][1]) for points in twins.fast_app.named("temp").values())


@pytest.mark.anyio
async def test_failed_scrape_between_steady_ones(twins: Twins) -> None:
    body = "x 1\ny 2\n"
    await twins.settle(body)
    twins.target.status = 500
    await twins.scrape(body)
    twins.target.status = 200
    assert not await twins.scrape(body)
    assert await twins.scrape(body)
    twins.assert_same()


@pytest.mark.anyio
async def test_duplicate_series_in_a_steady_body() -> None:
    bodies = [f'd{{a="1"}} {i}\nd{{a="1"}} {10 + i}\ne {i}\n' for i in range(4)]
    used = await run_twins(bodies)
    assert used == [False, True, True, True]


@pytest.mark.anyio
async def test_openmetrics_steady_then_exemplar() -> None:
    def om(value: int, exemplar: str = "") -> str:
        return (
            "# TYPE req counter\n# HELP req Requests.\n"
            f'req_total{{code="200"}} {value}{exemplar}\n'
            f"req_created 1700000000\n# EOF\n"
        )

    bodies = [om(1), om(2), om(3, ' # {trace_id="abc"} 1 1700000000.5'), om(4), om(5)]
    used = await run_twins(bodies, OM_TYPE)
    assert used == [False, True, False, False, True]


@pytest.mark.anyio
async def test_content_type_switch_goes_to_the_parser(twins: Twins) -> None:
    body = "# TYPE g gauge\ng 1\n# EOF\n"
    await twins.settle(body, OM_TYPE)
    assert not await twins.scrape(body, "text/plain")
    twins.assert_same()


@pytest.mark.anyio
async def test_honor_labels_and_target_labels_kept_on_the_shortcut() -> None:
    bodies = [f'm{{job="scraped",instance="x"}} {i}\n' for i in range(3)]
    for honor in (False, True):
        used = await run_twins(bodies, honor_labels=honor, labels={"env": "dev"})
        assert used == [False, True, True]


@pytest.mark.anyio
async def test_churning_target_learns_again_once_it_settles() -> None:
    churn = [f"a 1\nb{i} 1\n" for i in range(12)]
    settled = ["a 1\nb 1\n"] * 10
    used = await run_twins(churn + settled)
    assert not any(used[: len(churn)])
    assert used[-1]
    assert used[len(churn) :].index(True) <= 8


@pytest.mark.anyio
async def test_collected_series_force_the_full_path(twins: Twins) -> None:
    body = "g 1\nh 2\n"
    await twins.settle(body)
    ref = twins.fast._state.refs["g"]
    twins.fast.forget_series({ref})
    twins.full.forget_series({twins.full._state.refs["g"]})
    assert not await twins.scrape(body)
    assert "g" in twins.fast._state.refs
    assert await twins.scrape(body)
    twins.assert_same()


def large_bodies(count: int) -> list[str]:
    """Bodies over the size that is parsed in a worker thread, values changing."""
    lines = [f'big{{i="{i}",pad="{"x" * 40}"}} {{}}\n' for i in range(12000)]
    template = "".join(lines)
    assert len(template) > 512 * 1024
    return [template.replace("{}", str(step)) for step in range(count)]


@pytest.mark.anyio
async def test_large_body_in_a_worker_thread() -> None:
    used = await run_twins(large_bodies(3))
    assert used == [False, True, True]


@pytest.mark.anyio
async def test_large_steady_body_is_read_on_the_loop(twins: Twins) -> None:
    """Only full parses go to the worker thread: a steady body just has its values read."""
    first, second, third = large_bodies(3)
    await twins.settle(first)
    full_reads: list[bool] = []
    read_full = twins.fast._read_full

    def recording(body: bytes, fmt: Format) -> object:
        full_reads.append(threading.current_thread() is threading.main_thread())
        return read_full(body, fmt)

    twins.fast._read_full = recording  # type: ignore[method-assign]
    assert await twins.scrape(second)
    assert full_reads == []
    assert not await twins.scrape(third + 'big_extra{pad="y"} 1\n')  # a new layout
    assert full_reads == [False]
    twins.assert_same()


@pytest.mark.anyio
async def test_with_one_cpu_a_large_body_is_parsed_on_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker thread on the same CPU only takes the GIL from the loop in slices."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    first, second, third = large_bodies(3)
    async with started_twins() as twins:
        read = twins.fast._read_full
        on_loop: list[bool] = []

        def recording(body: bytes, fmt: Format) -> object:
            on_loop.append(threading.current_thread() is threading.main_thread())
            return read(body, fmt)

        twins.fast._read_full = recording  # type: ignore[method-assign]
        assert not await twins.scrape(first)
        assert await twins.scrape(second)
        assert not await twins.scrape(third + 'big_extra{pad="y"} 1\n')
        assert on_loop == [True, True]
        twins.assert_same()


@pytest.mark.anyio
async def test_a_full_parse_that_outlasts_the_timeout_is_kept() -> None:
    """The timeout bounds the fetch; a parse in the worker thread cannot be stopped, so
    its result is used rather than thrown away and paid for again by the next scrape."""
    first, second = large_bodies(2)
    async with started_twins(scrape_timeout=0.5) as twins:
        read = twins.fast._read_full
        reads: list[bool] = []

        def slow(body: bytes, fmt: Format) -> object:
            reads.append(threading.current_thread() is threading.main_thread())
            time.sleep(1.5)  # three times the timeout
            return read(body, fmt)

        twins.fast._read_full = slow  # type: ignore[method-assign]
        assert not await twins.scrape(first)
        status = twins.fast.status()
        assert (status.health, status.last_error, status.series) == ("up", "", 12000)
        assert status.last_duration >= 1.5
        assert await twins.scrape(second)  # the shape learned by the slow parse is used
        assert reads == [False]
        twins.assert_same()


@pytest.mark.anyio
async def test_series_collected_while_a_large_body_is_read(twins: Twins) -> None:
    """forget_series runs on the event loop while the worker thread parses a body."""
    first, second = large_bodies(2)
    changed = second + 'big_extra{pad="y"} 1\n'  # a new layout: parsed in full
    await twins.settle(first)
    event_loop = asyncio.get_running_loop()
    read = twins.fast._read_full
    collected: list[int] = []

    def read_then_collect(body: bytes, fmt: Format) -> object:
        result = read(body, fmt)
        if threading.current_thread() is not threading.main_thread() and not collected:
            ref = twins.fast._state.refs['big{i="7",pad="' + "x" * 40 + '"}']
            done = threading.Event()

            def collect() -> None:
                twins.fast.forget_series({ref})
                done.set()

            event_loop.call_soon_threadsafe(collect)
            assert done.wait(10)
            collected.append(ref)
        return result

    twins.fast._read_full = read_then_collect  # type: ignore[method-assign]
    twins.full.forget_series({twins.full._state.refs['big{i="7",pad="' + "x" * 40 + '"}']})
    assert not await twins.scrape(changed)
    assert collected and twins.fast.status().health == "up"
    twins.assert_same()
    assert await twins.scrape(changed)  # the collected series was created again
    twins.assert_same()
