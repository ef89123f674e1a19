"""metric_relabel_configs and scrape limits on a real loopback target."""

from __future__ import annotations

import asyncio
import gzip
import resource
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from src_helpers import RecordingAppender, TargetServer, serving_target
from test_scrape_loop import Clock, scrape_config

from rwconsole.config import schema
from rwconsole.labels import make_labels
from rwconsole.model import is_stale_nan
from rwconsole.sources.scrape import ScrapeLoop
from rwconsole.sources.scrape_limits import limits_of

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def target() -> AsyncIterator[TargetServer]:
    async with serving_target() as server:
        yield server


def rule(**fields: Any) -> schema.RelabelConfig:
    return schema.RelabelConfig(**fields)


async def scrape(address: str, app: RecordingAppender, times: int = 1, **cfg: Any) -> ScrapeLoop:
    config = scrape_config(**cfg)
    async with httpx.AsyncClient() as client:
        loop = ScrapeLoop(config, address, app, client, clock=Clock())
        for _ in range(times):
            await loop.scrape_once()
    return loop


BODY = '# TYPE a counter\na_total 1\nb{x="1",y="2"} 2\nc 3\n'
DROP_A_AND_Y = [
    rule(source_labels=["__name__"], regex="a_total", action="drop"),
    rule(regex="y", action="labeldrop"),
]


async def test_metric_relabel_drops_series_and_labels_also_on_the_steady_path(
    target: TargetServer,
) -> None:
    target.body = BODY
    app = RecordingAppender()
    loop = await scrape(target.address, app, 3, metric_relabel_configs=DROP_A_AND_Y)
    assert loop._state.steady is not None  # the later scrapes took the shortcut
    base = {"job": "test", "instance": target.address}
    assert {k for k in app.series() if dict(k)["__name__"] in ("a_total", "b", "c")} == {
        make_labels({**base, "__name__": "b", "x": "1"}),
        make_labels({**base, "__name__": "c"}),
    }
    assert all(len(points) == 3 for points in app.named("b").values())
    ((_, post),) = app.named("scrape_samples_post_metric_relabeling").items()
    ((_, scraped),) = app.named("scrape_samples_scraped").items()
    assert [v for _, v in post] == [2.0] * 3
    assert [v for _, v in scraped] == [3.0] * 3


async def test_metric_relabel_is_evaluated_once_per_series(
    target: TargetServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rwconsole.sources import scrape as scrape_module

    calls: list[Any] = []
    real = scrape_module.relabel

    def counting(labels: Any, rules: Any) -> Any:
        calls.append(labels)
        return real(labels, rules)

    monkeypatch.setattr(scrape_module, "relabel", counting)
    target.body = BODY
    app = RecordingAppender()
    await scrape(target.address, app, 5, metric_relabel_configs=DROP_A_AND_Y)
    assert len(calls) == 3  # three series, five scrapes


async def test_a_series_appearing_later_is_relabelled(target: TargetServer) -> None:
    target.body = "c 1\n"
    app = RecordingAppender()
    config = scrape_config(metric_relabel_configs=DROP_A_AND_Y)
    async with httpx.AsyncClient() as client:
        loop = ScrapeLoop(config, target.address, app, client, clock=Clock())
        await loop.scrape_once()
        await loop.scrape_once()
        target.body = BODY
        assert await loop.scrape_once()
    assert not app.named("a_total")
    assert list(app.named("b")) == [
        make_labels({"__name__": "b", "x": "1", "job": "test", "instance": target.address})
    ]


def _last(app: RecordingAppender, name: str) -> float:
    ((_, points),) = app.named(name).items()
    return points[-1][1]


LIMIT_CASES = [
    ({"sample_limit": 2}, BODY, "sample limit exceeded"),
    ({"label_limit": 3}, BODY, "label_limit exceeded (metric: b, number of labels: 5, limit: 3)"),
    (
        {"label_name_length_limit": 10},
        'q{a_long_label="v"} 1\n',
        "label_name_length_limit exceeded (metric: q, label name: a_long_label, length: 12, "
        "limit: 10)",
    ),
    (
        {"label_value_length_limit": 20},
        'q{v="' + "x" * 25 + '"} 1\n',
        "label_value_length_limit exceeded (metric: q, label name: v, ",
    ),
    ({"body_size_limit": 20}, BODY, "body size limit exceeded"),
]


@pytest.mark.parametrize(("limits", "bad", "message"), LIMIT_CASES)
async def test_a_broken_limit_fails_the_scrape_and_appends_nothing(
    target: TargetServer, limits: dict[str, int], bad: str, message: str
) -> None:
    target.body = "m 1\n"
    app = RecordingAppender()
    config = scrape_config(**limits)
    async with httpx.AsyncClient() as client:
        loop = ScrapeLoop(config, target.address, app, client, clock=Clock())
        assert await loop.scrape_once()
        target.body = bad
        assert not await loop.scrape_once()
    status = loop.status()
    assert status.health == "down" and status.last_error.startswith(message), status.last_error
    assert _last(app, "up") == 0.0
    assert not any(dict(k)["__name__"] in ("a_total", "b", "c", "q") for k in app.series())
    ((_, points),) = app.named("m").items()
    assert is_stale_nan(points[-1][1])  # the failed scrape ends the previous series


async def test_the_sample_limit_counts_after_metric_relabelling(target: TargetServer) -> None:
    target.body = BODY
    app = RecordingAppender()
    loop = await scrape(target.address, app, 2, metric_relabel_configs=DROP_A_AND_Y, sample_limit=2)
    assert loop.status().health == "up"


async def test_a_lowered_limit_applies_to_series_already_cached(target: TargetServer) -> None:
    target.body = BODY
    app = RecordingAppender()
    async with httpx.AsyncClient() as client:
        before = ScrapeLoop(scrape_config(), target.address, app, client, clock=Clock())
        assert await before.scrape_once() and await before.scrape_once()
        after = ScrapeLoop(scrape_config(label_limit=3), target.address, app, client, clock=Clock())
        after.take_state(before)
        assert not await after.scrape_once()
    assert after.status().last_error.startswith("label_limit exceeded (metric: b")


def test_job_limits_override_scrape_defaults() -> None:
    defaults = schema.ScrapeDefaultsConfig(sample_limit=100, body_size_limit=1000)
    limits = limits_of(scrape_config(sample_limit=0), defaults)
    assert (limits.sample_limit, limits.body_size_limit) == (0, 1000)


async def _raw_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, str]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


def _gzip_answer(
    body: bytes,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        await writer.drain()

    return answer


def _gzip_bomb(size: int, *, members: bool) -> bytes:
    """``size`` bytes of zeros gzipped: one member, or many 1 MiB members (quick to make)."""
    block = b"0" * (1 << 20)
    if members:
        return gzip.compress(block, 9) * (size >> 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join([*(packer.compress(block) for _ in range(size >> 20)), packer.flush()])


@pytest.mark.parametrize(("size", "members"), [(96 << 20, False), (1 << 30, True)])
async def test_a_gzip_bomb_is_cut_off_at_the_body_limit_with_rss_bounded(
    size: int, members: bool
) -> None:
    bomb = _gzip_bomb(size, members=members)
    server, address = await _raw_server(_gzip_answer(bomb))
    app = RecordingAppender()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        loop = await scrape(address, app, body_size_limit=10 << 20)
    finally:
        server.close()
    assert len(bomb) < size // 500
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert loop.status().last_error == "body size limit exceeded"
    assert _last(app, "up") == 0.0
    assert grown_mb < 100


async def test_the_timeout_bounds_a_body_that_trickles_in() -> None:
    async def trickle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
        )
        for _ in range(200):
            writer.write(b"m 1\n")
            await writer.drain()
            await asyncio.sleep(0.05)

    server, address = await _raw_server(trickle)
    app = RecordingAppender()
    started = time.monotonic()
    try:
        loop = await scrape(address, app, scrape_interval=1.0, scrape_timeout=0.5)
    finally:
        server.close()
    assert time.monotonic() - started < 5  # bounded by the timeout, not the 10 s body
    assert loop.status().last_error == "scrape timed out after 0.5s"
    assert _last(app, "up") == 0.0


async def test_a_gzip_body_within_the_limit_is_read() -> None:
    server, address = await _raw_server(_gzip_answer(gzip.compress(BODY.encode())))
    app = RecordingAppender()
    try:
        loop = await scrape(address, app, body_size_limit=len(BODY))
    finally:
        server.close()
    assert loop.status().health == "up", loop.status().last_error
    assert _last(app, "scrape_samples_scraped") == 3.0
