"""/api/v1/targets and /api/v1/targets/metadata on the engine's http listen address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import free_port, wait_until

from rwconsole.config.load import parse_config
from rwconsole.engine import Engine
from tests.engine.text_targets import text_targets

pytestmark = pytest.mark.timeout(60)


def _exposition(path: str) -> bytes:
    if path.startswith("/garbage"):
        return b"this is { not metrics\n"
    return b"# HELP m_total Things.\n# TYPE m_total counter\nm_total 1\n"


@pytest.fixture
def target() -> Iterator[str]:
    with text_targets(1, _exposition) as (address,):
        yield address


@pytest.fixture
def engine(tmp_path: Path, target: str) -> Iterator[tuple[Engine, str]]:
    port = free_port()
    config = parse_config(
        f"""
[storage]
path = "{tmp_path / "data"}"
[http]
listen_address = "127.0.0.1:{port}"
[demo]
enabled = true
[[scrape]]
job_name = "good"
targets = ["{target}", "10.255.255.1:9"]
scrape_interval = "1s"
scrape_timeout = "500ms"
[[scrape.relabel_configs]]
source_labels = ["__address__"]
regex = "10\\\\..*"
action = "drop"
[[scrape]]
job_name = "bad"
targets = ["{target}"]
metrics_path = "/garbage"
scrape_interval = "1s"
scrape_timeout = "500ms"
"""
    )
    running = Engine(config, flush_deadline=2.0)
    running.start()
    try:
        yield running, f"http://127.0.0.1:{port}"
    finally:
        running.stop()


def test_targets_api_has_prometheus_shape_and_says_why_a_target_is_down(
    engine: tuple[Engine, str], target: str
) -> None:
    running, base = engine

    def scraped() -> dict | None:
        data = httpx.get(f"{base}/api/v1/targets", timeout=5).json()["data"]
        healths = {t["scrapePool"]: t["health"] for t in data["activeTargets"]}
        return data if healths == {"good": "up", "bad": "down"} else None

    data = wait_until(scraped, timeout=20)
    by_pool = {t["scrapePool"]: t for t in data["activeTargets"]}
    good, bad = by_pool["good"], by_pool["bad"]
    assert good["labels"] == {"job": "good", "instance": target}
    assert good["discoveredLabels"]["__address__"] == target
    assert good["scrapeUrl"] == f"http://{target}/metrics"
    assert good["lastError"] == "" and good["lastScrape"].endswith("Z")
    assert good["lastScrapeDuration"] > 0
    assert bad["lastError"].startswith("parse error at line 1")
    assert data["droppedTargets"] == [
        {
            "discoveredLabels": {
                "__address__": "10.255.255.1:9",
                "__metrics_path__": "/metrics",
                "__scheme__": "http",
                "__scrape_interval__": "1s",
                "__scrape_timeout__": "500ms",
                "job": "good",
            }
        }
    ]
    only_dropped = httpx.get(f"{base}/api/v1/targets?state=dropped", timeout=5).json()
    assert only_dropped["data"]["activeTargets"] == []
    pool = httpx.get(f"{base}/api/v1/targets?scrapePool=bad", timeout=5).json()
    assert [t["scrapePool"] for t in pool["data"]["activeTargets"]] == ["bad"]

    snapshot = wait_until(lambda: len(running.snapshot().targets) == 3 and running.snapshot())
    dropped = [t for t in snapshot.targets if t.health == "dropped"]
    assert [t.dropped_by for t in dropped] == ["relabel_configs[0] (drop)"]


def test_targets_metadata_api(engine: tuple[Engine, str], target: str) -> None:
    _running, base = engine
    url = f"{base}/api/v1/targets/metadata"

    def metadata() -> list | None:
        return httpx.get(url, params={"match_target": '{job="good"}'}, timeout=5).json()["data"]

    rows = wait_until(metadata, timeout=20)
    assert rows == [
        {
            "target": {"job": "good", "instance": target},
            "metric": "m_total",
            "type": "counter",
            "help": "Things.",
            "unit": "",
        }
    ]
    assert httpx.get(url, params={"metric": "nope"}, timeout=5).json()["data"] == []
    bad = httpx.get(url, params={"match_target": "{job="}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"].startswith("match_target: ")
