"""Synthetic source: a deterministic generator of realistic-looking series.

``SyntheticSource`` spreads about ``series`` series over ``metrics`` metric
families (counters, gauges and, if enabled, classic histograms with ``le``
buckets, ``_sum`` and ``_count``) with label sets like a fleet of services
(``job``, ``instance``, ``pod``, ``region``, ``method``, ``status``). Every
``interval`` it appends one sample per series in batch form (one refs list,
one timestamp, one values list), optional exemplars on counters and histogram
buckets, and metadata for series it has not written before.

``churn`` replaces that fraction of series per interval (their pods get a new
name): the replaced series get staleness markers. ``set_series``,
``set_interval`` and ``set_rate`` change the load while running. The same
``seed`` produces the same series and values.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rwconsole.labels import METRIC_NAME, Labels, make_labels
from rwconsole.model import (
    STALE_NAN,
    Appender,
    Exemplar,
    MetricMetadata,
    MetricType,
    SourceStatus,
)

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
_SERIES_PER_HISTOGRAM = len(BUCKETS) + 2
_REGIONS = ("eu-west-1", "us-east-1", "us-west-2", "ap-south-1")
_METHODS = ("GET", "POST", "PUT", "DELETE")
_STATUSES = ("200", "201", "404", "429", "500")
_COUNTERS = (
    ("http_requests", "HTTP requests handled."),
    ("rpc_calls", "RPC calls made."),
    ("queue_messages_processed", "Queue messages processed."),
    ("cache_lookups", "Cache lookups."),
    ("db_queries", "Database queries run."),
)
_GAUGES = (
    ("memory_usage_bytes", "Resident memory in use.", "bytes"),
    ("cpu_temperature_celsius", "CPU temperature.", "celsius"),
    ("queue_depth", "Messages waiting in the queue.", ""),
    ("open_connections", "Open client connections.", ""),
    ("disk_free_bytes", "Free disk space.", "bytes"),
)
_HISTOGRAMS = (
    ("http_request_duration_seconds", "HTTP request latency."),
    ("rpc_latency_seconds", "RPC latency."),
    ("db_query_duration_seconds", "Database query latency."),
)

log = logging.getLogger("rwconsole.synthetic")


@dataclass(frozen=True, slots=True)
class SyntheticStats:
    series: int
    families: int
    interval: float
    rate: float
    """Samples per second at the current series count and interval."""
    ticks: int
    samples_total: int
    exemplars_total: int
    stale_markers_total: int
    churned_total: int


class _Family:
    """One metric family's series as columns; a combo is one label set (+ its buckets)."""

    __slots__ = (
        "amp",
        "base",
        "extra",
        "fractions",
        "gens",
        "help",
        "index",
        "kind",
        "name",
        "obs",
        "phase",
        "rates",
        "refs",
        "sums",
        "unit",
        "values",
    )

    def __init__(self, index: int, kind: MetricType, name: str, help_text: str, unit: str) -> None:
        self.index = index
        self.kind = kind
        self.name = name
        self.help = help_text
        self.unit = unit
        self.extra: Labels = ()
        self.gens: list[int] = []
        self.refs: list[int] = []
        self.rates: list[float] = []
        self.values: list[float] = []  # counters
        self.base: list[float] = []  # gauges
        self.amp: list[float] = []
        self.phase: list[float] = []
        self.obs: list[float] = []  # histograms: observation count and sum
        self.sums: list[float] = []
        self.fractions: list[float] = []

    @property
    def width(self) -> int:
        return _SERIES_PER_HISTOGRAM if self.kind == MetricType.HISTOGRAM else 1

    @property
    def combos(self) -> int:
        return len(self.gens)


class SyntheticSource:
    """Generates ``series`` series over ``metrics`` families every ``interval`` seconds."""

    def __init__(
        self,
        appender: Appender,
        *,
        series: int = 1000,
        metrics: int = 10,
        interval: float = 15.0,
        churn: float = 0.0,
        histograms: bool = False,
        exemplars: bool = False,
        labels: dict[str, str] | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if series < 0 or metrics < 1:
            raise ValueError("synthetic source needs series >= 0 and metrics >= 1")
        self._appender = appender
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random(seed)
        self._clock = clock
        self._extra = make_labels(labels or {})
        self._exemplars = exemplars
        self._interval = 1.0
        self.set_interval(interval)
        self._churn = 0.0
        self.set_churn(churn)
        self._churn_due = 0.0
        self._families = self._make_families(metrics, histograms)
        self._target_series = series
        self._layout_dirty = True
        self._pending_stale: list[int] = []
        self._pending_meta: list[MetricMetadata] = []
        self._ticks = 0
        self._samples = 0
        self._exemplar_count = 0
        self._stale = 0
        self._churned = 0

    @classmethod
    def from_config(cls, config: Any, appender: Appender, **kwargs: Any) -> SyntheticSource:
        return cls(
            appender,
            series=config.series,
            metrics=config.metrics,
            interval=config.interval,
            churn=config.churn,
            histograms=config.histograms,
            exemplars=config.exemplars,
            labels=dict(config.labels),
            **kwargs,
        )

    # --- run-time knobs ---------------------------------------------------------------

    def set_series(self, series: int) -> None:
        if series < 0:
            raise ValueError("series must be >= 0")
        self._target_series = series
        self._layout_dirty = True
        self._poke()

    def set_interval(self, seconds: float) -> None:
        if not seconds > 0 or math.isinf(seconds):
            raise ValueError(f"interval must be > 0 seconds, not {seconds}")
        self._interval = float(seconds)
        self._poke()

    def set_rate(self, samples_per_second: float) -> None:
        """Keep the series count and choose the interval that yields this rate."""
        if not samples_per_second > 0:
            raise ValueError("rate must be > 0 samples per second")
        self.set_interval(max(self._series_count(), 1) / samples_per_second)

    def set_churn(self, fraction: float) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"churn must be within 0..1, not {fraction}")
        self._churn = fraction

    def stats(self) -> SyntheticStats:
        series = self._series_count()
        return SyntheticStats(
            series,
            len(self._families),
            self._interval,
            series / self._interval,
            self._ticks,
            self._samples,
            self._exemplar_count,
            self._stale,
            self._churned,
        )

    def status(self) -> SourceStatus:
        return SourceStatus.of("synthetic", self.stats())

    def forget_series(self, refs: set[int]) -> None:
        """Nothing to forget: every live series is appended each interval, so the WAL
        collects only series this source has already replaced."""

    def series_labels(self) -> list[Labels]:
        """Label sets of the current series, in append order (for tests and the console)."""
        result: list[Labels] = []
        for family in self._families:
            for combo in range(family.combos):
                result.extend(self._labels(family, combo))
        return result

    # --- generation -------------------------------------------------------------------

    def tick(self, timestamp: int | None = None) -> int:
        """Append one interval's samples (and commit); return the number of samples."""
        count = 0
        for count in self._steps(timestamp):  # noqa: B007 (the last yield is the total)
            pass
        return count

    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        if self._wake is None:
            self._wake = asyncio.Event()
        while True:
            started = loop.time()
            try:
                for _ in self._steps(None):
                    await asyncio.sleep(0)  # let other sources in between families
            except OSError as err:  # e.g. a full disk: report, keep generating
                log.error("synthetic source: appending to the WAL failed: %s", err)
            while True:
                remaining = started + self._interval - loop.time()
                if remaining <= 0:
                    break
                self._wake.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._wake.wait()
                except TimeoutError:
                    break

    async def stop(self, *, stale: bool = False) -> None:
        """Stop generating; with ``stale`` end every series with a staleness marker.

        A shutdown leaves the series live: after a restart they go on without a gap.
        """
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        refs = [ref for family in self._families for ref in family.refs]
        if stale and refs:
            self._appender.append_samples(refs, int(self._clock() * 1000), [STALE_NAN] * len(refs))
            self._appender.commit()
            self._stale += len(refs)

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _steps(self, timestamp: int | None) -> Iterator[int]:
        ts = int(self._clock() * 1000) if timestamp is None else timestamp
        app = self._appender
        if self._churn > 0 and self._ticks > 0:  # only series written before are replaced
            self._do_churn()
        if self._layout_dirty:
            self._apply_layout()
        if self._pending_stale:
            stale = self._pending_stale
            self._pending_stale = []
            app.append_samples(stale, ts, [STALE_NAN] * len(stale))
            self._stale += len(stale)
        if self._pending_meta:
            app.append_metadata(self._pending_meta)
            self._pending_meta = []
        rng = self._rng
        count = 0
        exemplars: list[Exemplar] = []
        for family in self._families:
            if not family.refs:
                continue
            values = self._values(family, rng)
            app.append_samples(family.refs, ts, values)
            count += len(values)
            if self._exemplars:
                exemplars.extend(self._family_exemplars(family, ts, rng))
            yield count
        if exemplars:
            app.append_exemplars(exemplars)
            self._exemplar_count += len(exemplars)
        app.commit()
        self._ticks += 1
        self._samples += count
        yield count

    def _values(self, family: _Family, rng: random.Random) -> list[float]:
        kind = family.kind
        if kind == MetricType.COUNTER:
            jitter = 0.5 + rng.random()
            family.values = [
                v + r * jitter for v, r in zip(family.values, family.rates, strict=True)
            ]
            return family.values
        if kind == MetricType.GAUGE:
            step = self._ticks * 0.1
            sin = math.sin
            return [
                b + a * sin(p + step)
                for b, a, p in zip(family.base, family.amp, family.phase, strict=True)
            ]
        jitter = 0.5 + rng.random()
        fractions = family.fractions
        values: list[float] = []
        extend = values.extend
        obs = family.obs
        sums = family.sums
        for combo, rate in enumerate(family.rates):
            new = float(round(rate * jitter))
            count = obs[combo] + new
            obs[combo] = count
            sums[combo] += new * 0.2
            extend([float(math.floor(count * f)) for f in fractions])
            values.append(count)  # the +Inf bucket
            values.append(sums[combo])
            values.append(count)
        return values

    def _family_exemplars(self, family: _Family, ts: int, rng: random.Random) -> list[Exemplar]:
        if family.kind == MetricType.GAUGE or not family.combos:
            return []
        picks = max(1, family.combos // 100)
        result = []
        for _ in range(picks):
            combo = rng.randrange(family.combos)
            trace = (("trace_id", f"{rng.getrandbits(64):016x}"),)
            if family.kind == MetricType.COUNTER:
                result.append(Exemplar(family.refs[combo], ts, 1.0, trace))
            else:
                bucket = rng.randrange(len(BUCKETS))
                upper = BUCKETS[bucket] if bucket < len(BUCKETS) - 1 else 20.0
                lower = BUCKETS[bucket - 1] if bucket else 0.0
                value = lower + (upper - lower) * rng.random()
                ref = family.refs[combo * _SERIES_PER_HISTOGRAM + bucket]
                result.append(Exemplar(ref, ts, value, trace))
        return result

    # --- layout -----------------------------------------------------------------------

    def _make_families(self, metrics: int, histograms: bool) -> list[_Family]:
        kinds = (
            (MetricType.COUNTER, MetricType.GAUGE, MetricType.HISTOGRAM)
            if histograms
            else (MetricType.COUNTER, MetricType.GAUGE)
        )
        families = []
        seen: dict[str, int] = {}
        for index in range(metrics):
            kind = kinds[index % len(kinds)]
            rank = index // len(kinds)
            if kind == MetricType.COUNTER:
                base, help_text = _COUNTERS[rank % len(_COUNTERS)]
                unit = ""
            elif kind == MetricType.GAUGE:
                base, help_text, unit = _GAUGES[rank % len(_GAUGES)]
            else:
                base, help_text = _HISTOGRAMS[rank % len(_HISTOGRAMS)]
                unit = "seconds"
            number = seen.get(base, 0)
            seen[base] = number + 1
            name = base if number == 0 else f"{base}_{number}"
            if kind == MetricType.COUNTER:
                name += "_total"
            families.append(_Family(index, kind, name, help_text, unit))
        return families

    def _series_count(self) -> int:
        return sum(f.combos * f.width for f in self._families)

    def _apply_layout(self) -> None:
        """Grow or shrink each family's combos towards the target series count."""
        self._layout_dirty = False
        total = self._target_series
        families = self._families
        share, extra = divmod(total, len(families))
        new_labels: list[Labels] = []
        new_slots: list[tuple[_Family, int]] = []
        for family in families:
            want_series = share + (1 if family.index < extra else 0)
            want = want_series // family.width
            if family.kind == MetricType.HISTOGRAM and want_series and not want:
                want = 1
            while family.combos > want:
                self._pending_stale.extend(self._drop_combo(family))
            while family.combos < want:
                combo = self._add_combo(family)
                new_labels.extend(self._labels(family, combo))
                new_slots.append((family, combo))
        self._create(new_labels, new_slots)

    def _add_combo(self, family: _Family) -> int:
        rng = self._rng
        family.gens.append(0)
        rate = rng.uniform(0.5, 20.0)
        family.rates.append(rate)
        if family.kind == MetricType.COUNTER:
            family.values.append(0.0)
        elif family.kind == MetricType.GAUGE:
            family.base.append(rng.uniform(10.0, 1000.0))
            family.amp.append(rng.uniform(1.0, 10.0))
            family.phase.append(rng.uniform(0.0, math.tau))
        else:
            family.obs.append(0.0)
            family.sums.append(0.0)
            if not family.fractions:
                family.fractions = [1.0 - math.exp(-b / 0.3) for b in BUCKETS[:-1]]
        family.refs.extend([-1] * family.width)
        return family.combos - 1

    def _drop_combo(self, family: _Family) -> list[int]:
        family.gens.pop()
        family.rates.pop()
        for column in (family.values, family.base, family.amp, family.phase, family.obs):
            if column:
                column.pop()
        if family.sums:
            family.sums.pop()
        width = family.width
        gone = family.refs[-width:]
        del family.refs[-width:]
        return gone

    def _labels(self, family: _Family, combo: int) -> list[Labels]:
        gen = family.gens[combo]
        pairs = {
            "job": "synthetic",
            "instance": f"10.{combo // 65536 % 256}.{combo // 256 % 256}.{combo % 256}:9100",
            "pod": f"app-{combo}-{gen:x}",
            "region": _REGIONS[combo % len(_REGIONS)],
            **dict(self._extra),
            METRIC_NAME: family.name,
        }
        if family.kind == MetricType.COUNTER:
            pairs["method"] = _METHODS[combo % len(_METHODS)]
            pairs["status"] = _STATUSES[combo // len(_METHODS) % len(_STATUSES)]
            return [make_labels(pairs)]
        if family.kind == MetricType.GAUGE:
            return [make_labels(pairs)]
        pairs["method"] = _METHODS[combo % len(_METHODS)]
        result = []
        for bound in BUCKETS:
            pairs[METRIC_NAME] = family.name + "_bucket"
            pairs["le"] = "+Inf" if math.isinf(bound) else repr(bound)
            result.append(make_labels(pairs))
        del pairs["le"]
        for suffix in ("_sum", "_count"):
            pairs[METRIC_NAME] = family.name + suffix
            result.append(make_labels(pairs))
        return result

    def _create(self, labels: list[Labels], slots: list[tuple[_Family, int]]) -> None:
        if not labels:
            return
        refs = self._appender.series_refs(labels)
        position = 0
        for family, combo in slots:
            width = family.width
            start = combo * width
            chunk = refs[position : position + width]
            family.refs[start : start + width] = chunk
            position += width
            self._pending_meta.extend(
                MetricMetadata(ref, family.kind, family.unit, family.help) for ref in chunk
            )

    def _do_churn(self) -> None:
        families = [f for f in self._families if f.combos]
        if not families:
            return
        combos_total = sum(f.combos for f in families)
        self._churn_due += self._churn * combos_total
        count = min(int(self._churn_due), combos_total)
        self._churn_due -= count
        if not count:
            return
        rng = self._rng
        bounds = []
        running = 0
        for family in families:
            running += family.combos
            bounds.append(running)
        picked = {rng.randrange(combos_total) for _ in range(count)}
        new_labels: list[Labels] = []
        slots: list[tuple[_Family, int]] = []
        for flat in sorted(picked):
            position = bisect.bisect_right(bounds, flat)
            family = families[position]
            combo = flat - (bounds[position - 1] if position else 0)
            width = family.width
            self._pending_stale.extend(family.refs[combo * width : (combo + 1) * width])
            family.gens[combo] += 1
            if family.kind == MetricType.COUNTER:
                family.values[combo] = 0.0
            elif family.kind == MetricType.HISTOGRAM:
                family.obs[combo] = 0.0
                family.sums[combo] = 0.0
            new_labels.extend(self._labels(family, combo))
            slots.append((family, combo))
        self._churned += len(picked)
        self._create(new_labels, slots)
