"""Discovered targets drive the scrape loops: file_sd changes start and stop targets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from src_helpers import RecordingAppender, TargetServer
from test_scrape_loop import scrape_config

from rwconsole.config import schema
from rwconsole.labels import make_labels
from rwconsole.sources.scrape import ScrapeManager

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def targets() -> AsyncIterator[list[TargetServer]]:
    servers = [TargetServer() for _ in range(2)]
    for index, server in enumerate(servers):
        server.body = f"m {index}\n"
        await server.start()
    try:
        yield servers
    finally:
        for server in servers:
            await server.stop()


async def until(check: Callable[[], bool], what: str) -> None:
    for _ in range(300):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def write_groups(path: Path, groups: list[dict[str, object]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(groups))
    tmp.replace(path)


async def test_file_sd_changes_start_and_stop_only_the_targets_that_changed(
    tmp_path: Path, targets: list[TargetServer]
) -> None:
    sd_file = tmp_path / "targets.json"
    a, b = (t.address for t in targets)
    write_groups(sd_file, [{"targets": [a, b], "labels": {"team": "x"}}])
    config = scrape_config(
        job_name="sd",
        scrape_interval=0.1,
        scrape_timeout=0.1,
        file_sd_configs=[schema.FileSDConfig(files=[str(sd_file)], refresh_interval=0.1)],
    )
    app = RecordingAppender()
    manager = ScrapeManager(app, stagger=False, discovery_throttle=0.05)
    try:
        await manager.apply([config])
        await until(lambda: all(t.requests for t in targets), "both targets scraped")
        (loop_a,) = [loop for loop in manager._loops.values() if loop.target.instance == a]
        write_groups(sd_file, [{"targets": [a], "labels": {"team": "x"}}])
        await until(lambda: len(manager.targets()) == 1, "target b to go")
        assert manager.targets()[0].instance == a
        (still_a,) = manager._loops.values()
        assert still_a is loop_a  # an unchanged target keeps running untouched
        series_b = make_labels({"__name__": "m", "job": "sd", "instance": b, "team": "x"})
        series_a = make_labels({"__name__": "m", "job": "sd", "instance": a, "team": "x"})
        await until(lambda: series_b in app.stale_series(), "b's series marked stale")
        assert series_a not in app.stale_series()
        # and a target added back is scraped again
        write_groups(sd_file, [{"targets": [a, b], "labels": {"team": "x"}}])
        await until(lambda: len(manager.targets()) == 2, "target b to come back")
    finally:
        await manager.stop()


async def test_target_limit_fails_every_scrape_of_the_job(targets: list[TargetServer]) -> None:
    config = scrape_config(
        job_name="many",
        targets=[t.address for t in targets],
        scrape_interval=0.1,
        scrape_timeout=0.1,
        target_limit=1,
    )
    app = RecordingAppender()
    manager = ScrapeManager(app, stagger=False)
    try:
        await manager.apply([config])
        await until(lambda: all(s.scrapes >= 1 for s in manager.targets()), "scrapes")
        for status in manager.targets():
            assert status.health == "down"
            assert status.last_error == "target_limit exceeded (number of targets: 2, limit: 1)"
        assert not any(t.requests for t in targets)  # nothing fetched
        # the limit from [scrape_defaults] applies when the job sets none
        await manager.apply(
            [scrape_config(job_name="many", targets=[t.address for t in targets])],
            defaults=schema.ScrapeDefaultsConfig(target_limit=5),
        )
        await until(lambda: all(t.requests for t in targets), "scrapes within the limit")
    finally:
        await manager.stop()


async def test_relabel_dropped_targets_are_listed_with_the_rule(
    targets: list[TargetServer],
) -> None:
    a, b = (t.address for t in targets)
    config = scrape_config(
        job_name="keep",
        targets=[a, b],
        scrape_interval=0.1,
        scrape_timeout=0.1,
        relabel_configs=[
            schema.RelabelConfig(source_labels=["__address__"], regex=a, action="keep")
        ],
    )
    manager = ScrapeManager(RecordingAppender(), stagger=False)
    try:
        await manager.apply([config])
        assert [s.instance for s in manager.targets()] == [a]
        (dropped,) = manager.dropped_targets()
        assert dict(dropped.discovered)["__address__"] == b
        assert dropped.reason == "relabel_configs[0] (keep)"
    finally:
        await manager.stop()


async def test_a_reload_that_changes_static_targets_moves_only_those(
    targets: list[TargetServer],
) -> None:
    a, b = (t.address for t in targets)
    app = RecordingAppender()
    manager = ScrapeManager(app, stagger=False)
    try:
        await manager.apply([scrape_config(job_name="st", targets=[a], scrape_interval=0.1)])
        await until(lambda: bool(targets[0].requests), "a scraped")
        await manager.apply([scrape_config(job_name="st", targets=[b], scrape_interval=0.1)])
        await until(lambda: bool(targets[1].requests), "b scraped")
        assert [s.instance for s in manager.targets()] == [b]
        series_a = make_labels({"__name__": "m", "job": "st", "instance": a})
        assert series_a in app.stale_series()
    finally:
        await manager.stop()
