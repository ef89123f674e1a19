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
    hours: int = 0
    """Hourly summaries it is based on (0: the one-second history of the last hour)."""


def window_points(history: Sequence[Any], window: float, now: float) -> list[Any]:
    """The history points newer than ``now - window``."""
    start = now - window
    # The history is in time order: scan back from the newest point.
    index = len(history)
    while index > 0 and history[index - 1].time >= start:
        index -= 1
    return list(history[index:])


def average_rate(history: Sequence[Any], name: str, window: float) -> float:
    """Mean of the per-second field ``name`` over the newest ``window`` seconds of history.

    Points are one second each; a younger history is averaged over what it has.
    """
    if not history:
        return 0.0
    points = window_points(history, max(window, 1.0) - 0.5, history[-1].time)
    return sum(getattr(p, name) for p in points) / len(points)


@dataclass(frozen=True, slots=True)
class SendBreakdown:
    """How an endpoint's sends spent their time over a window (means per batch)."""

    in_flight: float
    """Mean requests in flight."""
    batches_per_second: float
    utilisation: float
    """Share of the time the shards had a batch (0–1)."""
    encode: float
    loop_wait: float
    network: float


def send_breakdown(history: Sequence[Any], window: float) -> SendBreakdown | None:
    """The send phases over the newest ``window`` seconds, weighted by batches (None: no
    batch finished in the window)."""
    if not history:
        return None
    points = window_points(history, max(window, 1.0) - 0.5, history[-1].time)
    batches = sum(p.batches_per_second for p in points)
    if batches <= 0:
        return None

    def per_batch(name: str) -> float:
        return sum(getattr(p, name) * p.batches_per_second for p in points) / batches

    return SendBreakdown(
        in_flight=sum(p.requests_in_flight for p in points) / len(points),
        batches_per_second=batches / len(points),
        utilisation=sum(p.shard_utilisation for p in points) / len(points),
        encode=per_batch("send_encode_seconds"),
        loop_wait=per_batch("send_loop_wait_seconds"),
        network=per_batch("send_network_seconds"),
    )


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


def weighted_percentile(pairs: Sequence[tuple[float, float]], fraction: float) -> float:
    """Nearest-rank percentile of ``(value, weight)`` pairs (weights > 0, non-empty)."""
    ordered = sorted(pairs)
    rank = fraction * sum(weight for _, weight in ordered)
    seen = 0.0
    for value, weight in ordered:
        seen += weight
        if seen >= rank:
            return value
    return ordered[-1][0]


def suggest_max_shards(
    history: Sequence[Any], current: int | None = None, hours: Sequence[Any] = ()
) -> ShardAdvice | None:
    """4 × the 90th percentile of desired shards, at least 50.

    Over ``hours`` (the engine's persisted hourly summaries, ``ShardHour``, each
    weighted by the seconds it covers) when there are any, else over the
    one-second ``history``. Against ``current``: raise when that is above it;
    lower when 4 × p90 is far below it (under ``LOWER_BELOW`` of it), so headroom
    bought for an old peak is given back; otherwise keep it.
    """
    hours = [h for h in hours if h.seconds > 0]
    if hours:
        p90 = weighted_percentile([(h.p90, h.seconds) for h in hours], SUGGEST_PERCENTILE)
        points = int(sum(h.seconds for h in hours))
        span = hours[-1].start + hours[-1].seconds - hours[0].start
    elif history:
        p90 = percentile([p.shards_desired for p in history], SUGGEST_PERCENTILE)
        points = len(history)
        span = history[-1].time - history[0].time if len(history) > 1 else 0.0
    else:
        return None
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
    return ShardAdvice(
        max_shards=value,
        percentile_desired=p90,
        points=points,
        window_seconds=span,
        change=change,
        hours=len(hours),
    )
