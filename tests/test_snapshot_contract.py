"""The engine ↔ console contract: snapshots survive JSON, bad data is named, no secrets."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import free_port, wait_until

from rwconsole.config.load import parse_config
from rwconsole.demo.receiver import Fault
from rwconsole.engine import Engine
from rwconsole.model import SourceStatus, TargetStatus
from rwconsole.snapshot import (
    EMPTY_SNAPSHOT,
    SNAPSHOT_VERSION,
    ScrapeTargetSnapshot,
    Snapshot,
    SnapshotFormatError,
    from_dict,
    to_dict,
)
from tests.tui.recorded import recorded_snapshot


def _full_snapshot() -> Snapshot:
    """The recorded snapshot with every optional part filled in."""
    snap = recorded_snapshot()
    assert snap.demo is not None
    demo = dataclasses.replace(snap.demo, fault=Fault("too_many_requests", retry_after=2.5))
    target = TargetStatus(
        "node", "127.0.0.1:9100", "http://127.0.0.1:9100/metrics", "up", 1.7e9, 0.01, 420
    )
    sources = (
        SourceStatus("scrape", {"scrapes_total": 12.0}, targets=(target,)),
        SourceStatus("receiver", {"requests": 3.0}, last_error="HTTP 400: bad body"),
    )
    targets = (
        ScrapeTargetSnapshot(
            "node",
            "http://127.0.0.1:9100/metrics?module=a",
            "up",
            {"job": "node", "instance": "127.0.0.1:9100"},
            {"__address__": "127.0.0.1:9100", "__meta_x": "y", "job": "node"},
            1.7e9,
            0.01,
            420,
            "",
            "",
            15.0,
            10.0,
        ),
        ScrapeTargetSnapshot(
            "node", "", "dropped", {}, {"__address__": "10.0.0.1:9100"}, dropped_by="[0] (keep)"
        ),
    )
    return dataclasses.replace(snap, demo=demo, sources=sources, targets=targets)


def _json_round_trip(snap: Snapshot) -> Snapshot:
    return from_dict(json.loads(json.dumps(to_dict(snap))))


@pytest.mark.parametrize(
    "snap", [_full_snapshot(), recorded_snapshot(demo=False), EMPTY_SNAPSHOT], ids=str
)
def test_every_field_survives_json(snap: Snapshot) -> None:
    back = _json_round_trip(snap)
    assert back == snap
    # Equal is not enough where JSON changes types: int keys, tuples, ints.
    if snap.demo is not None:
        assert back.demo is not None
        assert all(type(k) is int for k in back.demo.by_status)
    assert type(back.targets) is tuple
    assert all(type(t.labels) is dict for t in back.targets)
    for before, after in zip(snap.endpoints, back.endpoints, strict=True):
        assert type(after.read_position) is tuple
        assert type(after.history) is tuple
        assert {k: type(v) for k, v in after.queue_config.items()} == {
            k: type(v) for k, v in before.queue_config.items()
        }


def test_the_dict_carries_the_version() -> None:
    assert to_dict(EMPTY_SNAPSHOT)["version"] == SNAPSHOT_VERSION


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=SNAPSHOT_VERSION + 1), "version: snapshot version"),
        (lambda d: d.pop("wal_position"), "wal_position: missing"),
        (
            lambda d: d["endpoints"][1]["history"][3].pop("pending"),
            "endpoints[1].history[3].pending: missing",
        ),
        (lambda d: d["endpoints"][0].update(shards="2"), "endpoints[0].shards: expected int"),
        (lambda d: d.update(wal_position=[1]), "wal_position: expected 2 items"),
        (
            lambda d: d["demo"]["by_status"].update(ok=1),
            "demo.by_status: key 'ok' is not an integer",
        ),
    ],
)
def test_bad_data_names_the_key(change, message: str) -> None:
    data = json.loads(json.dumps(to_dict(recorded_snapshot())))
    change(data)
    with pytest.raises(SnapshotFormatError, match="^" + message.replace("[", r"\[")):
        from_dict(data)


def test_a_live_snapshot_carries_no_secrets(tmp_path: Path) -> None:
    secrets = ["LEAK-urlpw-7Tg1", "LEAK-pw-3Xc8", "LEAK-bearer-5Jd2", "LEAK-scrape-1Mn4"]
    dead = free_port()  # nothing listens: the endpoints keep retrying with their errors
    config = parse_config(
        f"""
[storage]
path = "{tmp_path / "data"}"
[http]
listen_address = "127.0.0.1:{free_port()}"
[[endpoint]]
name = "userinfo"
url = "http://someone:{secrets[0]}@127.0.0.1:{dead}/api/v1/write"
[endpoint.queue_config]
min_backoff = "10ms"
max_backoff = "50ms"

[[endpoint]]
name = "basic"
url = "http://127.0.0.1:{dead}/api/v1/write"
[endpoint.basic_auth]
username = "someone"
password = "{secrets[1]}"

[[endpoint]]
name = "bearer"
url = "http://127.0.0.1:{dead}/api/v1/write"
bearer_token = "{secrets[2]}"

[[scrape]]
job_name = "node"
targets = ["127.0.0.1:{dead}"]
scrape_interval = "1s"
scrape_timeout = "1s"
bearer_token = "{secrets[3]}"
"""
    )
    engine = Engine(config, flush_deadline=0.5)
    engine.start()
    try:
        wait_until(
            lambda: (
                all(e.last_error for e in engine.snapshot().endpoints)
                and engine.snapshot().sources
                and engine.snapshot().sources[0].targets[0].last_error
            )
        )
        text = json.dumps(to_dict(engine.snapshot()))
    finally:
        engine.stop()
    assert "userinfo" in text and "127.0.0.1" in text
    for secret in secrets:
        assert secret not in text
