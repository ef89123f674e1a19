"""ScrapeLoop and ScrapeManager against a real HTTP target on loopback."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from src_helpers import RecordingAppender, TargetServer, serving_target

from rwconsole.config import schema
from rwconsole.labels import make_labels
from rwconsole.model import MetricType, is_stale_nan
from rwconsole.sources.scrape import ACCEPT_HEADER, ScrapeLoop, ScrapeManager, merge_labels

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


OM_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def scrape_config(**overrides: Any) -> schema.ScrapeConfig:
    base: dict[str, Any] = {
        "job_name": "test",
        "targets": [],
        "scrape_interval": 1.0,
        "scrape_timeout": 2.0,
        "metrics_path": "/metrics",
        "scheme": "http",
        "params": {},
        "honor_labels": False,
        "honor_timestamps": True,
        "labels": {},
    }
    base.update(overrides)
    return schema.ScrapeConfig(**base)


@pytest.fixture
async def target() -> AsyncIterator[TargetServer]:
    async with serving_target() as server:
        yield server


class Clock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


async def make_loop(
    target: TargetServer, app: RecordingAppender, clock: Clock | None = None, **cfg: Any
) -> tuple[ScrapeLoop, httpx.AsyncClient]:
    client = httpx.AsyncClient()
    loop = ScrapeLoop(scrape_config(**cfg), target.address, app, client, clock=clock or Clock())
    return loop, client


def value_of(app: RecordingAppender, name: str, **labels: str) -> float:
    matches = [
        points[-1][1]
        for key, points in app.named(name).items()
        if all(dict(key).get(k) == v for k, v in labels.items())
    ]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


async def test_scrape_adds_job_instance_and_report_series(target: TargetServer) -> None:
    target.body = (
        "# HELP temp Temperature.\n# TYPE temp gauge\n"
        'temp{room="a"} 21.5\ntemp{room="b"} 19\n'
        'test{b="2",a="1"} 1\ntest{a=""} 7\n'
    )
    app = RecordingAppender()
    loop, client = await make_loop(target, app, labels={"env": "dev"})
    async with client:
        assert await loop.scrape_once()
    inst = target.address
    series = app.series()
    assert (
        make_labels(
            {"__name__": "temp", "room": "a", "job": "test", "instance": inst, "env": "dev"}
        )
        in series
    )
    # compliance: SortedLabels, EmptyLabels, JobLabel, InstanceLabel, Up
    assert (
        make_labels(
            {"__name__": "test", "a": "1", "b": "2", "job": "test", "instance": inst, "env": "dev"}
        )
        in series
    )
    assert (
        make_labels({"__name__": "test", "job": "test", "instance": inst, "env": "dev"}) in series
    )
    for labels in series:
        assert list(labels) == sorted(labels)
        assert all(value != "" for _, value in labels)
    assert value_of(app, "up") == 1.0
    assert value_of(app, "scrape_samples_scraped") == 4.0
    assert value_of(app, "scrape_samples_post_metric_relabeling") == 4.0
    assert value_of(app, "scrape_series_added") == 4.0
    assert 0 < value_of(app, "scrape_duration_seconds") < 2
    assert app.commits == 1
    ts = {t for points in series.values() for t, _ in points}
    assert ts == {1_700_000_000_000}
    meta = app.metadata_by_labels()
    temp = make_labels(
        {"__name__": "temp", "room": "a", "job": "test", "instance": inst, "env": "dev"}
    )
    assert meta[temp].type == MetricType.GAUGE and meta[temp].help == "Temperature."
    request = target.requests[0]
    assert request.header("accept") == ACCEPT_HEADER
    assert request.header("x-prometheus-scrape-timeout-seconds") == "2"
    status = loop.status()
    assert (status.health, status.last_samples, status.last_error) == ("up", 4, "")


async def test_honor_labels_false_exports_clashing_labels(target: TargetServer) -> None:
    target.body = 'm{job="original",instance="foo",exported_job="x"} 1\n'
    app = RecordingAppender()
    loop, client = await make_loop(target, app)
    async with client:
        await loop.scrape_once()
    (labels,) = app.named("m")
    assert dict(labels) == {
        "__name__": "m",
        "job": "test",
        "instance": target.address,
        "exported_instance": "foo",
        # an existing exported_job stays; the clashing job moves one prefix further
        "exported_job": "x",
        "exported_exported_job": "original",
    }


async def test_honor_labels_true_keeps_scraped_labels(target: TargetServer) -> None:
    target.body = 'm{job="original"} 1\n'
    app = RecordingAppender()
    loop, client = await make_loop(target, app, honor_labels=True)
    async with client:
        await loop.scrape_once()
    (labels,) = app.named("m")
    assert dict(labels) == {"__name__": "m", "job": "original", "instance": target.address}


def test_merge_labels_rules() -> None:
    target = make_labels({"job": "j", "instance": "i"})
    scraped = make_labels({"__name__": "x", "job": "s"})
    assert dict(merge_labels(scraped, target, False))["exported_job"] == "s"
    assert dict(merge_labels(scraped, target, True))["job"] == "s"


async def test_timestamps_honored_or_not(target: TargetServer) -> None:
    target.body = "a 1 1600000000000\nb 2\n"
    for honor, want in ((True, 1_600_000_000_000), (False, 1_700_000_000_000)):
        app = RecordingAppender()
        loop, client = await make_loop(target, app, honor_timestamps=honor)
        async with client:
            await loop.scrape_once()
        ((_, points),) = app.named("a").items()
        assert points == [(want, 1.0)]
        ((_, points),) = app.named("b").items()
        assert points == [(1_700_000_000_000, 2.0)]


async def test_staleness_when_a_series_disappears(target: TargetServer) -> None:
    clock = Clock()
    app = RecordingAppender()
    loop, client = await make_loop(target, app, clock)
    async with client:
        target.body = "keep 1\ngone 2\n"
        await loop.scrape_once()
        clock.now += 1
        target.body = "keep 3\n"
        await loop.scrape_once()
        clock.now += 1
        await loop.scrape_once()
    ((_, gone),) = app.named("gone").items()
    assert gone[0] == (1_700_000_000_000, 2.0)
    assert len(gone) == 2 and gone[1][0] == 1_700_000_001_000 and is_stale_nan(gone[1][1])
    ((_, keep),) = app.named("keep").items()
    assert [v for _, v in keep] == [1.0, 3.0, 3.0]
    assert value_of(app, "scrape_series_added") == 0.0


async def test_failed_scrape_marks_everything_stale_and_up_zero(target: TargetServer) -> None:
    clock = Clock()
    app = RecordingAppender()
    loop, client = await make_loop(target, app, clock)
    async with client:
        target.body = 'a{x="1"} 1\na{x="2"} 2\n'
        assert await loop.scrape_once()
        clock.now += 1
        target.status = 500
        assert not await loop.scrape_once()
    for points in app.named("a").values():
        assert len(points) == 2 and is_stale_nan(points[1][1])
    ups = next(iter(app.named("up").values()))
    assert [v for _, v in ups] == [1.0, 0.0]
    status = loop.status()
    assert status.health == "down" and "500" in status.last_error
    assert status.failures == 1 and status.scrapes == 2


async def test_malformed_payload_appends_nothing_of_it(target: TargetServer) -> None:
    clock = Clock()
    app = RecordingAppender()
    loop, client = await make_loop(target, app, clock)
    async with client:
        target.body = "good 1\n"
        await loop.scrape_once()
        clock.now += 1
        # compliance: RepeatedLabels, NameLabel, Invalid
        target.body = 'good 2\nnew_series 5\nbad{a="1",a="2"} 1\n'
        assert not await loop.scrape_once()
    assert app.named("new_series") == {}
    assert app.named("bad") == {}
    ((_, good),) = app.named("good").items()
    assert good[0] == (1_700_000_000_000, 1.0) and is_stale_nan(good[1][1])
    assert value_of(app, "up") == 0.0
    status = loop.status()
    assert status.parse_errors == 1
    assert status.last_error == "parse error at line 3: repeated label name 'a'"
    for labels in app.series():
        names = [name for name, _ in labels]
        assert len(names) == len(set(names))
        assert "__name__" in names


async def test_missing_metric_name_fails_the_scrape(target: TargetServer) -> None:
    target.body = 'ok 1\n{a="b"} 1\n'
    app = RecordingAppender()
    loop, client = await make_loop(target, app)
    async with client:
        assert not await loop.scrape_once()
    assert (
        "line 2" in loop.status().last_error and "metric name missing" in loop.status().last_error
    )
    assert app.named("ok") == {}


async def test_openmetrics_exemplars_metadata_and_repeated_exemplar(target: TargetServer) -> None:
    target.content_type = OM_TYPE
    target.body = (
        "# TYPE req counter\n# HELP req Requests.\n"
        'req_total{code="200"} 5 # {trace_id="abc"} 1 1700000000.5\n'
        "# EOF\n"
    )
    clock = Clock()
    app = RecordingAppender()
    loop, client = await make_loop(target, app, clock)
    async with client:
        await loop.scrape_once()
        clock.now += 1
        await loop.scrape_once()
    assert len(app.exemplars) == 1
    ex = app.exemplars[0]
    assert ex.labels == (("trace_id", "abc"),) and ex.value == 1.0
    assert ex.timestamp == 1_700_000_000_500
    assert app.labels_by_ref[ex.ref] == make_labels(
        {"__name__": "req_total", "code": "200", "job": "test", "instance": target.address}
    )
    assert len(app.metadata) == 1  # unchanged metadata is not written again
    assert app.metadata[0].type == MetricType.COUNTER


async def test_metadata_rewritten_when_it_changes(target: TargetServer) -> None:
    app = RecordingAppender()
    loop, client = await make_loop(target, app)
    async with client:
        target.body = "# HELP g One.\n# TYPE g gauge\ng 1\n"
        await loop.scrape_once()
        target.body = "# HELP g Two.\n# TYPE g gauge\ng 1\n"
        await loop.scrape_once()
    assert [m.help for m in app.metadata] == ["One.", "Two."]


async def test_params_and_path_are_used(target: TargetServer) -> None:
    target.body = "x 1\n"
    app = RecordingAppender()
    loop, client = await make_loop(
        target, app, metrics_path="/probe", params={"module": ["a", "b"], "t": ["x"]}
    )
    async with client:
        await loop.scrape_once()
    request = target.requests[0]
    assert request.path == "/probe"
    assert request.query == "module=a&module=b&t=x"


async def test_scrape_timeout(target: TargetServer) -> None:
    target.body = "x 1\n"
    target.delay = 1.0
    app = RecordingAppender()
    loop, client = await make_loop(target, app, scrape_timeout=0.2)
    async with client:
        assert not await loop.scrape_once()
    assert "timed out" in loop.status().last_error or "Timeout" in loop.status().last_error


async def test_stop_marks_all_series_and_report_series_stale(target: TargetServer) -> None:
    target.body = "a 1\nb 2\n"
    app = RecordingAppender()
    loop, client = await make_loop(target, app)
    async with client:
        await loop.scrape_once()
        await loop.stop(stale=True)
    stale_names = {dict(labels)["__name__"] for labels in app.stale_series()}
    assert {"a", "b", "up", "scrape_duration_seconds"} <= stale_names


async def test_duplicate_series_in_payload_keeps_first(target: TargetServer) -> None:
    target.body = 'd{a="1"} 1\nd{a="1"} 2\n'
    app = RecordingAppender()
    loop, client = await make_loop(target, app)
    async with client:
        assert await loop.scrape_once()
    ((_, points),) = app.named("d").items()
    assert [v for _, v in points] == [1.0]


async def test_manager_runs_loops_reports_status_and_stops_with_staleness(
    target: TargetServer,
) -> None:
    target.body = "m 1\n"
    app = RecordingAppender()
    manager = ScrapeManager(app, stagger=False)
    down_target = f"127.0.0.1:{_closed_port()}"
    configs = [
        scrape_config(job_name="one", targets=[target.address], scrape_interval=0.1),
        scrape_config(job_name="two", targets=[down_target], scrape_interval=0.1),
    ]
    try:
        await manager.apply(configs)
        for _ in range(100):
            counters = manager.counters()
            if counters.scrapes_total >= 4 and counters.scrape_failures_total >= 2:
                break
            await asyncio.sleep(0.05)
        statuses = {s.job: s for s in manager.targets()}
        assert statuses["one"].health == "up" and statuses["one"].last_samples == 1
        assert statuses["two"].health == "down" and statuses["two"].last_error
        assert manager.counters().scrape_failures_total >= 2
        # drop job "one": its series get staleness markers
        await manager.apply(configs[1:])
        assert [s.job for s in manager.targets()] == ["two"]
        m_series = make_labels({"__name__": "m", "job": "one", "instance": target.address})
        assert m_series in app.stale_series()
    finally:
        await manager.stop()
    assert manager.targets() == []


async def test_manager_shutdown_writes_no_staleness_markers(target: TargetServer) -> None:
    """A shutdown is not the end of a series: a restart scrapes it again (as Prometheus)."""
    target.body = "live 1\n"
    app = RecordingAppender()
    manager = ScrapeManager(app, stagger=False)
    await manager.apply([scrape_config(job_name="live", targets=[target.address])])
    for _ in range(100):
        if manager.counters().scrapes_total >= 1:
            break
        await asyncio.sleep(0.05)
    assert app.named("live")
    await manager.stop()
    assert app.stale_series() == set()
    assert manager.targets() == []


async def test_manager_reload_keeps_cache_without_staleness(target: TargetServer) -> None:
    target.body = "m 1\n"
    app = RecordingAppender()
    manager = ScrapeManager(app, stagger=False)
    config = scrape_config(targets=[target.address], scrape_interval=0.1)
    try:
        await manager.apply([config])
        for _ in range(100):
            if manager.counters().scrapes_total >= 1:
                break
            await asyncio.sleep(0.02)
        await manager.apply([scrape_config(targets=[target.address], scrape_interval=0.2)])
        assert app.stale_series() == set()
        assert manager.targets()[0].scrapes >= 1
    finally:
        await manager.stop()


async def test_manager_reload_with_other_target_labels_starts_fresh_series(
    target: TargetServer,
) -> None:
    target.body = "m 1\n"
    app = RecordingAppender()
    manager = ScrapeManager(app, stagger=False)
    before = scrape_config(targets=[target.address], scrape_interval=0.1, labels={"env": "a"})
    after = scrape_config(targets=[target.address], scrape_interval=0.1, labels={"env": "b"})
    old = make_labels({"__name__": "m", "job": "test", "env": "a", "instance": target.address})
    new = make_labels({"__name__": "m", "job": "test", "env": "b", "instance": target.address})
    try:
        await manager.apply([before])
        for _ in range(100):
            if manager.counters().scrapes_total >= 1:
                break
            await asyncio.sleep(0.02)
        await manager.apply([after])
        for _ in range(100):
            if new in app.series():
                break
            await asyncio.sleep(0.02)
        assert new in app.series()
        assert old in app.stale_series()  # the old labelling ended with staleness markers
    finally:
        await manager.stop()


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_manager_with_the_real_schema_and_basic_auth(target: TargetServer) -> None:
    from rwconsole.config.schema import BasicAuthConfig, ScrapeConfig

    target.body = "x 1\n"
    config = ScrapeConfig(
        job_name="real",
        targets=[target.address],
        scrape_interval=0.1,
        scrape_timeout=1.0,
        basic_auth=BasicAuthConfig(username="user", password=None),
    )
    app = RecordingAppender()
    manager = ScrapeManager(app, stagger=False)
    try:
        await manager.apply([config])
        for _ in range(100):
            if manager.counters().scrapes_total >= 1:
                break
            await asyncio.sleep(0.02)
        assert manager.targets()[0].health == "up"
        assert target.requests[0].header("authorization") == "Basic dXNlcjo="
    finally:
        await manager.stop()


async def test_manager_keeps_one_connection_and_reads_gzip_bodies() -> None:
    """Scrapes reuse their keep-alive connection and accept gzip, as Prometheus does."""
    connections = 0
    accept_encodings: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                for line in head.decode().split("\r\n"):
                    if line.lower().startswith("accept-encoding:"):
                        accept_encodings.append(line.split(":", 1)[1].strip())
                body = gzip.compress(f"m {len(accept_encodings)}\n".encode())
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                    b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    app = RecordingAppender()
    manager = ScrapeManager(app, stagger=False)
    try:
        await manager.apply([scrape_config(job_name="gz", targets=[address], scrape_interval=0.05)])
        for _ in range(200):
            if manager.counters().scrapes_total >= 4:
                break
            await asyncio.sleep(0.02)
        (status,) = manager.targets()
        assert status.health == "up", status.last_error
    finally:
        await manager.stop()
        server.close()
        await server.wait_closed()
    assert connections == 1
    assert accept_encodings and all("gzip" in a for a in accept_encodings)
    ((_, points),) = app.named("m").items()
    values = [v for _, v in points if not is_stale_nan(v)]
    assert values[:4] == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("follow", [True, False])
async def test_redirects_followed_by_the_http_policy_unless_disabled(follow: bool) -> None:
    from http_helpers import HTTPServer, Request, Response

    def handler(request: Request) -> Response:
        if request.target.startswith("/metrics"):
            return Response(302, headers=[("Location", "/moved"), ("Content-Length", "0")])
        return Response(200, headers=[("Content-Type", "text/plain")], body=b"x 1\n")

    server = await HTTPServer(handler).start()
    app = RecordingAppender()
    config = scrape_config(follow_redirects=follow)
    try:
        async with httpx.AsyncClient() as client:
            loop = ScrapeLoop(config, server.url.split("//")[1], app, client, clock=Clock())
            scraped = await loop.scrape_once()
    finally:
        await server.aclose()
    assert scraped is follow
    expected = ["/metrics", "/moved"] if follow else ["/metrics"]
    assert [r.target for r in server.requests] == expected
    if not follow:
        assert "302" in loop.status().last_error
