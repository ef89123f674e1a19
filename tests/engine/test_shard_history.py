"""Hourly desired-shards summaries: p90 per hour, 7 days, kept across restarts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from rwconsole.shardhistory import FILE_NAME, HOUR, KEEP_SECONDS, ShardHistory
from rwconsole.snapshot import ShardHour

START = 1_800_000_000.0 - 1_800_000_000.0 % HOUR


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _feed(history: ShardHistory, clock: Clock, seconds: int, value: float, name: str = "a") -> None:
    for _ in range(seconds):
        history.add(name, value, clock.now)
        clock.now += 1


def test_each_clock_hour_is_summarised_by_its_p90(tmp_path: Path) -> None:
    clock = Clock(START)
    history = ShardHistory(tmp_path, clock)
    # First hour: 3240 s at 2 shards and 360 s at 9: the p90 is 2. Second hour so far: 5.
    _feed(history, clock, 3240, 2.0)
    _feed(history, clock, 360, 9.0)
    _feed(history, clock, 120, 5.0)
    assert history.hours("a") == (
        ShardHour(START, 3600.0, 2.0),
        ShardHour(START + HOUR, 120.0, 5.0),
    )
    assert history.hours("unknown") == ()


def test_history_survives_a_restart_and_ages_out_after_7_days(tmp_path: Path) -> None:
    clock = Clock(START)
    history = ShardHistory(tmp_path, clock)
    _feed(history, clock, 3600, 3.0)
    _feed(history, clock, 1800, 4.0, name="b")
    history.maybe_save(clock.now)  # more than a minute since the last save: written
    saved = json.loads((tmp_path / FILE_NAME).read_text())
    assert saved["endpoints"]["a"] == [[START, 3600.0, 3.0]]
    _feed(history, clock, 30, 4.0, name="b")
    history.maybe_save(clock.now)  # 30 s later: not written again
    assert json.loads((tmp_path / FILE_NAME).read_text()) == saved
    history.save()  # at stop: the hour in progress is written too

    restarted = ShardHistory(tmp_path, clock)
    assert restarted.hours("a") == (ShardHour(START, 3600.0, 3.0),)
    assert restarted.hours("b") == (ShardHour(START + HOUR, 1830.0, 4.0),)
    _feed(restarted, clock, 10, 6.0, name="b")  # the same clock hour goes on as its own summary
    assert [h.seconds for h in restarted.hours("b")] == [1830.0, 10.0]

    clock.now = START + KEEP_SECONDS + 1
    assert restarted.hours("a") == ()
    restarted.save()
    assert ShardHistory(tmp_path, clock).hours("a") == ()


@pytest.mark.parametrize(
    "content",
    ["{not json", '{"format": 99, "endpoints": {}}', '{"format": 1, "endpoints": {"a": [1]}}'],
)
def test_a_damaged_file_is_ignored_with_a_warning(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / FILE_NAME).write_text(content)
    with caplog.at_level(logging.WARNING, logger="rwconsole.shardhistory"):
        history = ShardHistory(tmp_path, Clock(START))
    assert history.hours("a") == ()
    assert FILE_NAME in caplog.text and "ignoring the shard history" in caplog.text
