"""OpenMetrics ``_created`` samples as start timestamps (``[[scrape]] start_timestamps``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from src_helpers import RecordingAppender, TargetServer, serving_target

from rwconsole.config import schema
from rwconsole.labels import Labels
from rwconsole.sources.scrape import ScrapeLoop
from rwconsole.sources.textparse import Format, parse, start_time_sources

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

OM_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
NOW = 1_700_000_000.0

BODY = """\
# TYPE requests counter
# HELP requests Requests served.
requests_total{code="200"} 17
requests_created{code="200"} 1699999000.5
requests_total{code="500"} 2
requests_created{code="500"} 1699999100
# TYPE latency histogram
latency_bucket{path="/",le="0.5"} 3
latency_bucket{path="/",le="+Inf"} 4
latency_count{path="/"} 4
latency_sum{path="/"} 1.5
latency_created{path="/"} 1699998000
# TYPE rpc summary
rpc{quantile="0.9"} 0.2
rpc_sum 9
rpc_count 30
rpc_created 1699997000
# TYPE plain counter
plain_total 5
# TYPE temp gauge
temp 21
# EOF
"""

CREATED = {
    ("requests_total", (("code", "200"),)): 1_699_999_000_500,
    ("requests_total", (("code", "500"),)): 1_699_999_100_000,
    ("latency_bucket", (("le", "0.5"), ("path", "/"))): 1_699_998_000_000,
    ("latency_bucket", (("le", "+Inf"), ("path", "/"))): 1_699_998_000_000,
    ("latency_count", (("path", "/"),)): 1_699_998_000_000,
    ("latency_sum", (("path", "/"),)): 1_699_998_000_000,
    ("rpc", (("quantile", "0.9"),)): 1_699_997_000_000,
    ("rpc_sum", ()): 1_699_997_000_000,
    ("rpc_count", ()): 1_699_997_000_000,
}
"""Expected start timestamps by (metric name, labels other than name/job/instance)."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def target() -> AsyncIterator[TargetServer]:
    async with serving_target() as server:
        yield server


def config(**overrides: Any) -> schema.ScrapeConfig:
    return schema.ScrapeConfig(job_name="om", scrape_interval=1.0, scrape_timeout=2.0, **overrides)


def _key(labels: Labels) -> tuple[str, tuple[tuple[str, str], ...]]:
    name = dict(labels)["__name__"]
    rest = tuple(p for p in labels if p[0] not in ("__name__", "job", "instance"))
    return name, rest


def starts_by_series(app: RecordingAppender) -> dict[tuple[str, Any], list[int]]:
    """Every committed sample's start timestamp (0 = none), per series, in order."""
    out: dict[tuple[str, Any], list[int]] = {}
    for ref, t, _ in app.samples:
        st = app.start_timestamps.get((ref, t), 0)
        out.setdefault(_key(app.labels_by_ref[ref]), []).append(st)
    return out


async def scrape(
    target: TargetServer, app: RecordingAppender, times: int, **cfg: Any
) -> ScrapeLoop:
    now = [NOW]
    loop = ScrapeLoop(config(**cfg), target.address, app, httpx.AsyncClient(), clock=lambda: now[0])
    try:
        for _ in range(times):
            assert await loop.scrape_once(), loop.status().last_error
            now[0] += 1
    finally:
        await loop._client.aclose()
    return loop


def test_sources_pair_each_point_with_its_created_sample() -> None:
    payload = parse(BODY, Format.OPENMETRICS)
    sources = start_time_sources(payload)
    assert sources is not None
    pairs = {payload.keys[i]: payload.keys[j] for i, j in zip(*sources, strict=True)}
    assert pairs['requests_total{code="200"}'] == 'requests_created{code="200"}'
    assert pairs['requests_total{code="500"}'] == 'requests_created{code="500"}'
    assert pairs['latency_bucket{path="/",le="0.5"}'] == 'latency_created{path="/"}'
    assert pairs['latency_sum{path="/"}'] == 'latency_created{path="/"}'
    assert pairs['rpc{quantile="0.9"}'] == "rpc_created"
    assert pairs["rpc_count"] == "rpc_created"
    # _created samples, counters without one and gauges have none.
    assert not any(k.startswith(("plain", "temp")) or "_created" in k for k in pairs)
    assert len(pairs) == len(CREATED)
    assert (
        start_time_sources(parse("# TYPE a counter\na_total 1\n# EOF\n", Format.OPENMETRICS))
        is None
    )


async def test_openmetrics_created_lines_become_start_timestamps(target: TargetServer) -> None:
    target.body = BODY
    target.content_type = OM_TYPE
    app = RecordingAppender()
    loop = await scrape(target, app, 3, start_timestamps=True)
    assert loop._state.steady is not None  # the later scrapes took the steady shortcut
    starts = starts_by_series(app)
    for key, expected in CREATED.items():
        assert starts[key] == [expected] * 3, key
    # The _created series stay ordinary series (Prometheus 2.42 stores them too).
    assert starts[("requests_created", (("code", "200"),))] == [0, 0, 0]
    assert starts[("plain_total", ())] == [0, 0, 0]
    assert starts[("temp", ())] == [0, 0, 0]
    assert starts[("up", ())] == [0, 0, 0]


async def test_a_changed_created_value_is_taken_in_the_steady_path(target: TargetServer) -> None:
    target.body = BODY
    target.content_type = OM_TYPE
    app = RecordingAppender()
    now = [NOW]
    loop = ScrapeLoop(
        config(start_timestamps=True),
        target.address,
        app,
        httpx.AsyncClient(),
        clock=lambda: now[0],
    )
    try:
        for _ in range(2):
            assert await loop.scrape_once()
            now[0] += 1
        assert loop._state.steady is not None
        # A counter reset: new _created value, same shape.
        target.body = BODY.replace("1699999100", "1699999900")
        assert await loop.scrape_once()
    finally:
        await loop._client.aclose()
    assert starts_by_series(app)[("requests_total", (("code", "500"),))] == [
        1_699_999_100_000,
        1_699_999_100_000,
        1_699_999_900_000,
    ]


@pytest.mark.parametrize(
    ("content_type", "enabled"),
    [(OM_TYPE, False), ("text/plain; version=0.0.4", True)],
    ids=["option-off", "text-format"],
)
async def test_no_start_timestamps_without_the_option_or_in_text_format(
    target: TargetServer, content_type: str, enabled: bool
) -> None:
    target.body = BODY if content_type == OM_TYPE else BODY.replace("# EOF\n", "")
    target.content_type = content_type
    app = RecordingAppender()
    await scrape(target, app, 2, start_timestamps=enabled)
    assert app.samples and not app.start_timestamps


async def test_turning_the_option_on_or_off_takes_effect_on_a_steady_target(
    target: TargetServer,
) -> None:
    target.body = BODY
    target.content_type = OM_TYPE
    app = RecordingAppender()
    now = [NOW]
    loop = ScrapeLoop(config(), target.address, app, httpx.AsyncClient(), clock=lambda: now[0])
    key = ("requests_total", (("code", "200"),))
    try:
        for enabled in (False, False, True, True, False, False):
            loop.config = config(start_timestamps=enabled)  # as a reload hands it over
            assert await loop.scrape_once()
            now[0] += 1
    finally:
        await loop._client.aclose()
    st = CREATED[key]
    assert starts_by_series(app)[key] == [0, 0, st, st, 0, 0]
