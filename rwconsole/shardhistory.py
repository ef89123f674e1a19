"""Desired shards per endpoint, summarised per hour and kept across restarts.

Sizing ``max_shards`` wants days of history, not the hour the console keeps in
memory, so the engine feeds every endpoint's desired shards here once per
second. Each clock hour becomes one ``ShardHour`` (its 90th percentile and how
many seconds it covers); the last seven days are kept in
``<data dir>/shard-history.json``, written at most once a minute and at stop.
An hour cut by a restart stays a shorter summary of its own.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

from rwconsole.config.save import atomic_write
from rwconsole.snapshot import ShardHour

log = logging.getLogger("rwconsole.shardhistory")

FILE_NAME = "shard-history.json"
HOUR = 3600.0
KEEP_SECONDS = 7 * 24 * HOUR
SAVE_INTERVAL = 60.0
_FORMAT = 1


class _Hour:
    __slots__ = ("start", "summary", "values")

    def __init__(self, start: float) -> None:
        self.start = start
        self.values: list[float] = []
        self.summary: ShardHour | None = None

    def summarise(self, fresh: bool = False) -> ShardHour:
        """The summary; without ``fresh`` up to a minute old (sorting 3600 values each
        second for every snapshot would be waste)."""
        if self.summary is None or (fresh and self.summary.seconds != len(self.values)):
            ordered = sorted(self.values)
            p90 = ordered[max(1, math.ceil(0.9 * len(ordered))) - 1]
            self.summary = ShardHour(self.start, float(len(ordered)), p90)
        return self.summary


class ShardHistory:
    """Hourly p90 of desired shards per endpoint name, persisted in the data directory."""

    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = data_dir / FILE_NAME
        self._clock = clock
        self._hours: dict[str, list[ShardHour]] = {}
        self._current: dict[str, _Hour] = {}
        self._last_save = clock()
        self._load()

    def add(self, endpoint: str, desired: float, now: float) -> None:
        """One second's desired shards of ``endpoint``."""
        current = self._current.get(endpoint)
        if current is not None and now // HOUR != current.start // HOUR:
            self._hours.setdefault(endpoint, []).append(current.summarise(fresh=True))
            current = None
        if current is None:
            current = self._current[endpoint] = _Hour(now)
        current.values.append(desired)
        if len(current.values) % 60 == 1:
            current.summary = None

    def hours(self, endpoint: str, fresh: bool = False) -> tuple[ShardHour, ...]:
        """Closed hours, then the current one so far; oldest first, the last 7 days.

        The current hour's summary is up to a minute old unless ``fresh``.
        """
        floor = self._clock() - KEEP_SECONDS
        kept = [h for h in self._hours.get(endpoint, ()) if h.start >= floor]
        current = self._current.get(endpoint)
        if current is not None and current.values:
            kept.append(current.summarise(fresh))
        return tuple(kept)

    def maybe_save(self, now: float) -> None:
        if now - self._last_save >= SAVE_INTERVAL:
            self.save()

    def save(self) -> None:
        """Write the file (the current hours included); failures are logged, not raised."""
        self._last_save = self._clock()
        names = set(self._hours) | set(self._current)
        payload = {
            "format": _FORMAT,
            "endpoints": {
                name: [[h.start, h.seconds, h.p90] for h in self.hours(name, fresh=True)]
                for name in sorted(names)
            },
        }
        try:
            atomic_write(self.path, json.dumps(payload, separators=(",", ":")) + "\n")
        except OSError as err:
            log.warning("cannot save the shard history to %s: %s", self.path, err)

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            log.warning("ignoring the shard history in %s: %s", self.path, err)
            return
        try:
            if data.get("format") != _FORMAT:
                raise ValueError(f"format {data.get('format')!r} is not {_FORMAT}")
            floor = self._clock() - KEEP_SECONDS
            for name, rows in data["endpoints"].items():
                hours = [ShardHour(float(s), float(n), float(p)) for s, n, p in rows]
                self._hours[str(name)] = [h for h in hours if h.start >= floor]
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            self._hours.clear()
            log.warning("ignoring the shard history in %s: unexpected content (%s)", self.path, err)
