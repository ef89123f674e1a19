"""Queue tuning arithmetic on the engine's history: throughput estimates, max_shards advice.

Pure functions over ``HistoryPoint`` sequences, so they are easy to test and
the screens stay thin. The throughput formula is the one the Alloy
documentation gives for sizing a queue: at most ``max_shards`` requests are in
flight, each carrying up to ``max_samples_per_send`` samples and taking the
average request latency.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MIN_SUGGESTED_MAX_SHARDS = 50
SUGGEST_FACTOR = 4
SUGGEST_PERCENTILE = 0.9
LOWER_BELOW = 0.5
"""Lowering is suggested only when 4 × p90 is below this share of the current max_shards."""


@dataclass(frozen=True, slots=True)
class ShardAdvice:
    """A suggested max_shards and what it is based on."""

    max_shards: int
    percentile_desired: float
    points: int
    window_seconds: float
    change: str = "set"
    """``raise``, ``lower`` or ``keep`` against the current max_shards (``set``: unknown)."""


def window_points(history: Sequence[Any], window: float, now: float) -> list[Any]:
    """The history points newer than ``now - window``."""
    start = now - window
    # The history is in time order: scan back from the newest point.
    index = len(history)
    while index > 0 and history[index - 1].time >= start:
        index -= 1
    return list(history[index:])


def average_latency(history: Sequence[Any]) -> float | None:
    """Mean send latency over the seconds in which requests completed (None if none did)."""
    values = [p.send_latency_seconds for p in history if p.send_latency_seconds > 0]
    if not values:
        return None
    return sum(values) / len(values)


def max_throughput(queue_config: Mapping[str, Any], latency: float | None) -> float | None:
    """Samples per second the queue can send at most: shards × batch / latency."""
    if not latency or latency <= 0:
        return None
    shards = float(queue_config.get("max_shards", 0) or 0)
    batch = float(queue_config.get("max_samples_per_send", 0) or 0)
    return shards * batch / latency


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def suggest_max_shards(history: Sequence[Any], current: int | None = None) -> ShardAdvice | None:
    """4 × the 90th percentile of desired shards over the history, at least 50.

    Against ``current``: raise when that is above it; lower when 4 × p90 is far
    below it (under ``LOWER_BELOW`` of it), so headroom bought for an old peak is
    given back; otherwise keep it.
    """
    if not history:
        return None
    p90 = percentile([p.shards_desired for p in history], SUGGEST_PERCENTILE)
    needed = math.ceil(SUGGEST_FACTOR * p90)
    value = max(MIN_SUGGESTED_MAX_SHARDS, needed)
    change = "set"
    if current is not None:
        if value > current:
            change = "raise"
        elif value < current and needed < current * LOWER_BELOW:
            change = "lower"
        else:
            change, value = "keep", current
    span = history[-1].time - history[0].time if len(history) > 1 else 0.0
    return ShardAdvice(
        max_shards=value,
        percentile_desired=p90,
        points=len(history),
        window_seconds=span,
        change=change,
    )
