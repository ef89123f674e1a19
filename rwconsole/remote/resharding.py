"""Desired-shards calculation, as Prometheus' queue manager does it.

Pure arithmetic with no I/O: EWMA rates ticked every ``SHARD_UPDATE_INTERVAL``
and ``desired_shards`` which turns the rates and the delay into a shard count
(tolerance band, no downscale while behind, clamped to [min, max]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SHARD_UPDATE_INTERVAL = 10.0
"""Seconds between two desired-shards calculations."""

EWMA_WEIGHT = 0.2
SHARD_TOLERANCE = 0.3
BACKLOG_CATCHUP_FRACTION = 0.05
MAX_DELAY_FOR_DOWNSCALE = 10.0
"""No downscale while the queue is more than this many seconds behind."""


class EwmaRate:
    """Events per second, smoothed with alpha 0.2 over fixed intervals."""

    __slots__ = ("_initialised", "_interval", "_pending", "rate")

    def __init__(self, interval: float = SHARD_UPDATE_INTERVAL) -> None:
        self._interval = interval
        self._pending = 0.0
        self._initialised = False
        self.rate = 0.0

    def add(self, amount: float) -> None:
        self._pending += amount

    def tick(self) -> None:
        instant = self._pending / self._interval
        self._pending = 0.0
        if self._initialised:
            self.rate += EWMA_WEIGHT * (instant - self.rate)
        elif instant > 0:
            self.rate = instant
            self._initialised = True


@dataclass(frozen=True)
class ShardDecision:
    desired_raw: float
    """The unrounded desired shards, exported as shards_desired."""
    shards: int
    """The number of shards to run."""


def desired_shards(
    *,
    current: int,
    min_shards: int,
    max_shards: int,
    rate_in: float,
    rate_out: float,
    rate_dropped: float,
    rate_out_duration_ns: float,
    delay_seconds: float,
) -> ShardDecision | None:
    """Return the shard decision, or None when nothing is known yet (no output)."""
    if rate_out <= 0:
        return None
    kept_ratio = rate_out / (rate_dropped + rate_out)
    out_duration = rate_out_duration_ns / 1e9
    pending = max(delay_seconds, 0.0) * rate_in * kept_ratio
    backlog_catchup = BACKLOG_CATCHUP_FRACTION * pending
    time_per_sample = out_duration / rate_out
    desired = time_per_sample * (rate_in * kept_ratio + backlog_catchup)
    target = math.ceil(desired)
    low = current * (1 - SHARD_TOLERANCE)
    high = current * (1 + SHARD_TOLERANCE)
    within_tolerance = low <= target <= high
    behind = target < current and delay_seconds > MAX_DELAY_FOR_DOWNSCALE
    if within_tolerance or behind:
        target = current
    target = max(min_shards, min(max_shards, target))
    return ShardDecision(desired_raw=desired, shards=target)
