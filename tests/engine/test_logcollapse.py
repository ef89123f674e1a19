"""Repeated log lines collapse to one per (endpoint, message) per window, with a count."""

from __future__ import annotations

import io
import logging

from rwconsole.logcollapse import Collapser, CollapsingHandler

RETRY = "queue %s: recoverable error, retrying in %.3fs: %s"


def _record(created: float, endpoint: str, msg: str = RETRY, *args: object) -> logging.LogRecord:
    record = logging.LogRecord("rwconsole.queue", logging.WARNING, __file__, 1, msg, args, None)
    record.created = created
    record.endpoint = endpoint
    return record


def test_repeats_within_the_window_become_one_summary_with_a_count() -> None:
    collapser = Collapser(window=10.0)
    passed: list[str] = []
    # 8 shards retrying every 0.5 s for 12 s on "a"; one line on "b" in between.
    for step in range(24):
        now = 1000.0 + step * 0.5
        for shard in range(8):
            record = _record(now, "a", RETRY, "a", 0.03 * (shard + 1), "HTTP 503")
            passed += [r.getMessage() for r in collapser.admit(record)]
        if step == 3:
            passed += [
                r.getMessage() for r in collapser.admit(_record(now, "b", RETRY, "b", 1, "y"))
            ]
    assert passed[0] == "queue a: recoverable error, retrying in 0.030s: HTTP 503"
    assert passed[1] == "queue b: recoverable error, retrying in 1.000s: y"
    # At 10 s the window closes: the newest repeat with how many were held back,
    # then the next line starts a new window.
    assert passed[2] == (
        "queue a: recoverable error, retrying in 0.240s: HTTP 503 (repeated 159 times in 10s)"
    )
    assert passed[3] == "queue a: recoverable error, retrying in 0.030s: HTTP 503"
    assert len(passed) == 4


def test_different_endpoints_and_levels_are_not_merged() -> None:
    collapser = Collapser(window=10.0)
    first = collapser.admit(_record(1.0, "a", "same"))
    other = collapser.admit(_record(1.0, "b", "same"))
    error = _record(1.0, "a", "same")
    error.levelno, error.levelname = logging.ERROR, "ERROR"
    assert len(first) == len(other) == len(collapser.admit(error)) == 1
    assert collapser.admit(_record(2.0, "a", "same")) == []


def test_handler_writes_one_line_per_window_and_leaves_the_record_alone() -> None:
    stream = io.StringIO()
    target = logging.StreamHandler(stream)
    target.setFormatter(logging.Formatter("%(message)s"))
    handler = CollapsingHandler(target, window=5.0)
    records = [_record(100.0 + i, "a", "boom %d", i) for i in range(7)]
    for record in records:
        handler.handle(record)
    assert stream.getvalue().splitlines() == ["boom 0", "boom 4 (repeated 4 times in 5s)", "boom 5"]
    # Other handlers of the same logger still see the record as it was logged.
    assert records[4].getMessage() == "boom 4"


def test_flush_gives_the_summary_when_nothing_else_is_logged() -> None:
    collapser = Collapser(window=10.0)
    for i in range(3):
        collapser.admit(_record(50.0 + i, "a", "boom"))
    assert collapser.flush(55.0) == []
    [summary] = collapser.flush(60.0)
    assert summary.getMessage() == "boom (repeated 2 times in 10s)"
    assert collapser.flush(70.0) == []
