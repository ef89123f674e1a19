"""Scrape Debian's prometheus-node-exporter for real and compare with what it exposes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from conftest import ProcessManager, free_port, peer_binary, wait_for_port
from src_helpers import RecordingAppender

from rwconsole.config import schema
from rwconsole.labels import make_labels
from rwconsole.model import MetricType
from rwconsole.sources.scrape import ScrapeLoop, merge_labels, static_target
from rwconsole.sources.textparse import format_for, parse

pytestmark = [pytest.mark.peer, pytest.mark.timeout(60)]


def test_scrape_node_exporter(processes: ProcessManager, tmp_path: Path) -> None:
    binary = peer_binary("prometheus-node-exporter")
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    (textfiles / "fixed.prom").write_text(
        "# HELP rwconsole_fixture_value A value the test knows.\n"
        "# TYPE rwconsole_fixture_value gauge\n"
        'rwconsole_fixture_value{kind="a b \\"quoted\\""} 42.5\n'
        'rwconsole_fixture_value{kind="other"} -7\n'
    )
    port = free_port()
    processes.start(
        [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--collector.textfile.directory={textfiles}",
        ]
    )
    wait_for_port(port)
    address = f"127.0.0.1:{port}"
    config = schema.ScrapeConfig(
        job_name="node",
        targets=[address],
        scrape_interval=15.0,
        scrape_timeout=10.0,
        metrics_path="/metrics",
        scheme="http",
        params={},
        honor_labels=False,
        honor_timestamps=True,
        labels={},
    )
    app = RecordingAppender()

    async def scrape() -> tuple[bool, str]:
        async with httpx.AsyncClient() as client:
            loop = ScrapeLoop(config, address, app, client)
            up = await loop.scrape_once()
            return up, loop.status().last_error

    up, error = asyncio.run(scrape())
    assert up, error

    # what node_exporter exposes right now, parsed independently of the loop's cache
    response = httpx.get(f"http://{address}/metrics", timeout=10)
    exposed = parse(response.content, format_for(response.headers.get("content-type")))
    target = static_target(config, address).series_labels
    expected = {merge_labels(exposed.new_series[key], target, False) for key in exposed.keys}
    got = set(app.series())
    report = {
        labels
        for labels in got
        if dict(labels)["__name__"].startswith(("up", "scrape_")) and len(labels) == 3
    }
    scraped = got - report
    assert len(scraped) > 200
    # the few series that come and go between two scrapes (per-scrape collector timings
    # are stable by name) must not matter: names and label sets agree almost exactly
    names = {dict(labels)["__name__"] for labels in scraped}
    assert names == {dict(labels)["__name__"] for labels in expected}
    assert len(scraped ^ expected) <= len(expected) // 50

    values = app.last_values()
    build = [labels for labels in scraped if dict(labels)["__name__"] == "node_exporter_build_info"]
    assert len(build) == 1 and values[build[0]] == 1.0
    fixture = make_labels(
        {
            "__name__": "rwconsole_fixture_value",
            "kind": 'a b "quoted"',
            "job": "node",
            "instance": address,
        }
    )
    assert values[fixture] == 42.5
    other = make_labels(
        {"__name__": "rwconsole_fixture_value", "kind": "other", "job": "node", "instance": address}
    )
    assert values[other] == -7
    up_series = make_labels({"__name__": "up", "job": "node", "instance": address})
    assert values[up_series] == 1.0
    for labels in scraped:
        assert dict(labels)["job"] == "node" and dict(labels)["instance"] == address
    meta = app.metadata_by_labels()
    assert meta[fixture].type == MetricType.GAUGE
    assert meta[fixture].help == "A value the test knows."
    cpu = [labels for labels in scraped if dict(labels)["__name__"] == "node_cpu_seconds_total"]
    assert cpu and all(meta[labels].type == MetricType.COUNTER for labels in cpu)
