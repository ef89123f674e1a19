"""Desired-shards calculation, as Prometheus' queue manager does it.

EWMA rates ticked every ``SHARD_UPDATE_INTERVAL`` and ``desired_shards``, pure
arithmetic that turns the rates and the delay into a shard count (tolerance
band, no downscale while behind, clamped to [min, max]).

``LoopLag`` keeps the formula honest on one event loop. Prometheus reads the
wall time of sends as the receiver's latency; here every shard, the scrapes
and the parser share one loop, so a send also waits while the loop runs other
work, and a busy CPU would look like a slow receiver (more shards, which only
add cost). The probe measures how late the loop wakes a sleeper; the queue
subtracts the lateness seen during a send from that send's duration, and times
a send from the moment its body is encoded and compressed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import weakref
from dataclasses import dataclass
from typing import Any

SHARD_UPDATE_INTERVAL = 10.0
"""Seconds between two desired-shards calculations."""

EWMA_WEIGHT = 0.2
SHARD_TOLERANCE = 0.3
BACKLOG_CATCHUP_FRACTION = 0.05
MAX_DELAY_FOR_DOWNSCALE = 10.0
"""No downscale while the queue is more than this many seconds behind."""
LOOP_SPARE = 0.85
"""The event loop has CPU to spare while its thread is busy less than this share of
the time: a send's waits for the loop are then worth covering with more shards."""
BULK_MAX_SHARDS = 8
"""Up to this many shards the queue splits a chunk by shard in C-level passes (sample by
sample beyond); loop waits alone never ask for more shards than this."""


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
    time_per_sample: float = 0.0
    """Seconds of sending per sample (network and receiver)."""
    wait_per_sample: float = 0.0
    """Seconds per sample a send waited for the event loop, counted in ``desired_raw``
    only while the loop has CPU to spare."""
    loop_busy: float | None = None
    """Share of the time the event loop's thread was busy (None: not measured)."""
    rate_needed: float = 0.0
    """Samples per second to send: what comes in (less drops) plus the catch-up share."""
    catchup: float = 0.0
    """The part of ``rate_needed`` that catches up on the backlog."""
    rule: str = ""
    """Why ``shards`` differs from the rounded ``desired_raw`` (empty: it does not)."""

    def explain(self) -> str:
        """One line for an operator: what desired shards is made of, and what runs."""
        needed = f"{_count(self.rate_needed)} samples/s to send"
        if self.catchup:
            needed += f" (incl. {_count(self.catchup)}/s catching up on the backlog)"
        per_sample = f"{_per_sample(self.time_per_sample)} of network and receiver"
        if self.wait_per_sample and self.counts_wait:
            per_sample += f" + {_per_sample(self.wait_per_sample)} waiting for the loop"
        text = f"desired {self.desired_raw:.2f} = ({per_sample}) per sample × {needed}"
        if self.loop_busy is not None:
            text += f"; loop busy {self.loop_busy:.0%}"
        text += f" → {self.shards} shard{'s' if self.shards != 1 else ''}"
        return f"{text} ({self.rule})" if self.rule else text

    @property
    def counts_wait(self) -> bool:
        return self.loop_busy is not None and self.loop_busy < LOOP_SPARE


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
    rate_out_wait_ns: float = 0.0,
    loop_busy: float | None = None,
) -> ShardDecision | None:
    """Return the shard decision, or None when nothing is known yet (no output).

    ``rate_out_duration_ns`` is the senders' network and receiver time, as
    Prometheus reads it. ``rate_out_wait_ns`` is the time sends waited for the
    event loop: a shard sends one batch at a time, so while the loop has CPU to
    spare (``loop_busy`` below ``LOOP_SPARE``) those waits need more shards
    just as a slow receiver does (up to ``BULK_MAX_SHARDS``). A loop that
    is busy gains nothing from more shards: the waits then neither add shards
    nor take any away.
    """
    if rate_out <= 0:
        return None
    kept_ratio = rate_out / (rate_dropped + rate_out)
    out_duration = rate_out_duration_ns / 1e9
    pending = max(delay_seconds, 0.0) * rate_in * kept_ratio
    backlog_catchup = BACKLOG_CATCHUP_FRACTION * pending
    time_per_sample = out_duration / rate_out
    wait_per_sample = rate_out_wait_ns / 1e9 / rate_out
    needed = rate_in * kept_ratio + backlog_catchup
    desired = time_per_sample * needed
    rule = ""
    if loop_busy is not None and wait_per_sample > 0:
        with_waits = (time_per_sample + wait_per_sample) * needed
        if loop_busy < LOOP_SPARE:
            desired = max(desired, min(with_waits, BULK_MAX_SHARDS))
        elif desired < current:
            desired = min(with_waits, current)
            rule = f"the loop is busy {loop_busy:.0%}: more shards would not help, fewer might hurt"
    target = wanted = math.ceil(desired)
    low = current * (1 - SHARD_TOLERANCE)
    high = current * (1 + SHARD_TOLERANCE)
    within_tolerance = low <= target <= high
    behind = target < current and delay_seconds > MAX_DELAY_FOR_DOWNSCALE
    if within_tolerance or behind:
        target = current
        if wanted != current:
            rule = (
                f"kept, within {SHARD_TOLERANCE:.0%} of the {current} running"
                if within_tolerance
                else f"no fewer while over {MAX_DELAY_FOR_DOWNSCALE:g}s behind"
            )
    if target > max_shards:
        rule = f"capped at max_shards {max_shards}"
    elif target < min_shards:
        rule = f"raised to min_shards {min_shards}"
    target = max(min_shards, min(max_shards, target))
    return ShardDecision(
        desired_raw=desired,
        shards=target,
        time_per_sample=time_per_sample,
        wait_per_sample=wait_per_sample,
        loop_busy=loop_busy,
        rate_needed=needed,
        catchup=backlog_catchup,
        rule=rule,
    )


def _per_sample(seconds: float) -> str:
    micros = seconds * 1e6
    return f"{micros:.3g} µs" if micros < 1000 else f"{micros / 1000:.3g} ms"


def _count(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    return f"{value:.0f}"


LAG_PROBE_PERIOD = 0.01
"""Seconds between two wake-ups of the loop-lag probe."""
LAG_PROBE_SLACK = 0.001
"""Lateness up to this is timer jitter, not a busy loop."""


class LoopLag:
    """Cumulative lateness of an event loop, measured by a sleeping task.

    The probe sleeps ``period`` seconds at a time; how much later than asked
    it wakes (less a small slack for timer jitter) is lateness: time the loop
    spent on other work while a timer, or a response, waited for it.
    ``seconds()`` is the lateness so far, including the stretch the probe is
    overdue right now, so the difference of two readings is the lateness
    between them (within one period) without waiting for the probe to run.

    One probe serves every queue on a loop: ``acquire()`` starts it on first
    use, ``release()`` stops it when the last user is gone.
    """

    __slots__ = (
        "__weakref__",
        "_due",
        "_idle",
        "_period",
        "_selector",
        "_task",
        "_total",
        "_users",
    )

    def __init__(self, period: float = LAG_PROBE_PERIOD) -> None:
        self._period = period
        self._task: asyncio.Task[None] | None = None
        self._total = 0.0
        self._due = math.inf
        self._users = 0
        self._idle = 0.0
        self._selector: Any = None

    @classmethod
    def acquire(cls) -> LoopLag:
        """The running loop's probe (started if it is not running yet)."""
        loop = asyncio.get_running_loop()
        probe = _PROBES.get(loop)
        if probe is None:
            probe = _PROBES[loop] = cls()
        probe._users += 1
        if probe._task is None:
            probe._task = loop.create_task(probe._run(), name="loop-lag-probe")
            probe._watch_idle(loop)
        return probe

    async def release(self) -> None:
        self._users -= 1
        if self._users <= 0 and self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._due = math.inf
            if self._selector is not None:
                with contextlib.suppress(AttributeError):
                    del self._selector.select  # the selector's own method again
                self._selector = None

    def idle_seconds(self) -> float | None:
        """Seconds the loop has waited for events so far (None: not measurable).

        Read on the loop's own thread, so the loop is never inside a wait then.
        """
        return self._idle if self._selector is not None else None

    def _watch_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        """Time the loop's waits in its selector: the loop's idle time."""
        selector = getattr(loop, "_selector", None)
        if selector is None or "select" in getattr(selector, "__dict__", {}):
            return
        select = selector.select
        clock = time.monotonic

        def timed_select(timeout: float | None = None) -> Any:
            started = clock()
            try:
                return select(timeout)
            finally:
                self._idle += clock() - started

        selector.select = timed_select
        self._selector = selector

    def seconds(self) -> float:
        overdue = time.monotonic() - self._due - LAG_PROBE_SLACK
        return self._total + overdue if overdue > 0 else self._total

    async def _run(self) -> None:
        period = self._period
        clock = time.monotonic
        while True:
            self._due = clock() + period
            await asyncio.sleep(period)
            late = clock() - self._due - LAG_PROBE_SLACK
            if late > 0:
                self._total += late


_PROBES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopLag] = weakref.WeakKeyDictionary()
