"""Delivery progress: round trip, and bad files or directories never stop the engine."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from rwconsole.remote.ahead import DeliveredAhead
from rwconsole.remote.progress import FILE_NAME, ProgressStore


def test_round_trip(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path)
    assert store.get("a") is None
    store.set("a", (3, 32768))
    store.set("b", (4, 7))
    store.save()
    again = ProgressStore(tmp_path)
    assert again.positions() == {"a": (3, 32768), "b": (4, 7)}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".progress-")]


def test_samples_held_from_cut_segments_round_trip_and_clear(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path)
    store.set("a", (3, 32768))
    store.set_cut_undelivered("a", {"wal_size_limit": 1200, "other": 0})
    store.save()
    again = ProgressStore(tmp_path)
    assert again.cut_undelivered("a") == {"wal_size_limit": 1200}
    assert again.cut_undelivered("b") == {}
    again.set_cut_undelivered("a", {})
    again.save()
    assert ProgressStore(tmp_path).cut_undelivered("a") == {}
    assert "cut_undelivered" not in (tmp_path / FILE_NAME).read_text()


def test_corrupt_file_is_reported_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / FILE_NAME).write_text('{"queues": {"a": {"segment": "x"}}')
    with caplog.at_level(logging.ERROR, logger="rwconsole.progress"):
        store = ProgressStore(tmp_path)
    assert store.positions() == {}
    assert FILE_NAME in caplog.text


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only directory")
def test_unwritable_directory_keeps_the_positions_for_the_next_save(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ProgressStore(tmp_path)
    store.set("a", (1, 2))
    tmp_path.chmod(0o500)
    try:
        with caplog.at_level(logging.ERROR, logger="rwconsole.progress"):
            store.save()
        assert "cannot save delivery progress" in caplog.text
    finally:
        tmp_path.chmod(0o700)
    store.save()
    assert ProgressStore(tmp_path).get("a") == (1, 2)


def test_a_file_where_the_directory_should_be_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a directory")
    store = ProgressStore(blocker / "sub")
    store.set("a", (1, 2))
    with caplog.at_level(logging.ERROR, logger="rwconsole.progress"):
        store.save()  # must not raise
    assert "cannot save delivery progress" in caplog.text
    blocker.unlink()
    store.save()
    assert ProgressStore(blocker / "sub").get("a") == (1, 2)


def test_items_delivered_ahead_round_trip_until_the_position_passes_them(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path)
    store.set("a", (3, 100))
    ahead = DeliveredAhead.of((3, 900), [(([1, 2], [10, 10]), ([], []), ([], []))])
    store.set_delivered_ahead("a", ahead)
    store.save()
    again = ProgressStore(tmp_path)
    loaded = again.delivered_ahead("a")
    assert loaded is not None and loaded.until == (3, 900)
    assert loaded.counts[0] == {(1, 10): 1, (2, 10): 1}
    again.set("a", (3, 500))
    assert again.delivered_ahead("a") is not None
    again.set("a", (3, 900))
    assert again.delivered_ahead("a") is None, "the position passed them"
    again.save()
    assert "delivered_ahead" not in (tmp_path / FILE_NAME).read_text()
    again.set_delivered_ahead("a", ahead)
    assert again.delivered_ahead("a") is None, "none at or before the position"


def test_damaged_items_delivered_ahead_are_reported_and_the_position_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ProgressStore(tmp_path)
    store.set("a", (3, 100))
    store.set_delivered_ahead("a", DeliveredAhead.of((3, 900), [(([1], [10]), ([], []), ([], []))]))
    store.save()
    path = tmp_path / FILE_NAME
    data = json.loads(path.read_text())
    data["queues"]["a"]["delivered_ahead"]["items"] = 7
    path.write_text(json.dumps(data))
    with caplog.at_level(logging.ERROR, logger="rwconsole.progress"):
        again = ProgressStore(tmp_path)
    assert again.get("a") == (3, 100)
    assert again.delivered_ahead("a") is None
    assert "queues.a.delivered_ahead: items: says 7, the columns hold 1" in caplog.text
