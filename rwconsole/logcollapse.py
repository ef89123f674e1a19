"""Collapsing repeated log lines: one line per (endpoint, message) per window, with a count.

A failing endpoint logs one warning per shard per retry, many lines a second
that say the same thing. ``Collapser`` lets the first record of a kind through,
holds back the repeats within ``window`` seconds and, once the window is over,
lets through one summary line, the newest repeat with "(repeated N times in
10s)". Records are of a kind when logger, level, endpoint and unformatted
message are the same, so the arguments (backoff, error text) may differ.
``CollapsingHandler`` puts a collapser in front of another handler.
"""

from __future__ import annotations

import copy
import logging
import threading

WINDOW = 10.0

_Key = tuple[str, int, str, str]


class _Held:
    __slots__ = ("count", "last", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 0
        self.last: logging.LogRecord | None = None


class Collapser:
    """Decides which records pass; thread-safe."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._held: dict[_Key, _Held] = {}
        self._lock = threading.Lock()

    def admit(self, record: logging.LogRecord) -> list[logging.LogRecord]:
        """The records to emit now: due summaries of earlier repeats, then maybe ``record``."""
        now = record.created
        key = (record.name, record.levelno, getattr(record, "endpoint", ""), str(record.msg))
        with self._lock:
            out = self._due(now)
            held = self._held.get(key)
            if held is not None:
                held.count += 1
                held.last = record
                return out
            self._held[key] = _Held(now)
        out.append(record)
        return out

    def flush(self, now: float) -> list[logging.LogRecord]:
        """Summaries of windows over by ``now``, for when no new record comes to carry them."""
        with self._lock:
            return self._due(now)

    def _due(self, now: float) -> list[logging.LogRecord]:
        due = []
        for key, held in list(self._held.items()):
            if now - held.start < self.window:
                continue
            del self._held[key]
            if held.last is not None:
                due.append(self._summary(held.last, held.count))
        return due

    def _summary(self, record: logging.LogRecord, count: int) -> logging.LogRecord:
        summary = copy.copy(record)
        times = "1 time" if count == 1 else f"{count} times"
        summary.msg = f"{message(record)} (repeated {times} in {self.window:g}s)"
        summary.args = None
        return summary


def message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string must not break logging
        return str(record.msg)


class CollapsingHandler(logging.Handler):
    """Passes ``target`` what a ``Collapser`` admits."""

    def __init__(self, target: logging.Handler, window: float = WINDOW) -> None:
        super().__init__(level=target.level)
        self.target = target
        self._collapser = Collapser(window)

    def emit(self, record: logging.LogRecord) -> None:
        for admitted in self._collapser.admit(record):
            self.target.handle(admitted)

    def close(self) -> None:
        self.target.close()
        super().close()
