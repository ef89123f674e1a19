"""Self-metrics: a small registry of counters, gauges and histograms.

It owns metric families with fixed label names, their children, the Prometheus
text exposition (``expose``) and flat snapshots for the console (``sample``).
Updates are plain attribute arithmetic so the engine can count per batch on
its hot path without locks: every update happens on the engine's event-loop
thread, and readers on other threads only copy numbers (a torn read of one
float cannot happen in CPython).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    60.0,
    120.0,
    300.0,
)


class Counter:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Gauge:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount


class Histogram:
    __slots__ = ("bucket_counts", "count", "sum", "upper_bounds")

    def __init__(self, upper_bounds: Sequence[float]) -> None:
        self.upper_bounds = tuple(upper_bounds)
        self.bucket_counts = [0] * (len(self.upper_bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.bucket_counts[bisect_left(self.upper_bounds, value)] += 1
        self.count += 1
        self.sum += value

    @property
    def value(self) -> float:
        return float(self.count)

    def quantile(self, q: float) -> float:
        """Estimate quantile ``q`` by linear interpolation inside the bucket."""
        if self.count == 0:
            return math.nan
        rank = q * self.count
        cumulative = 0
        lower = 0.0
        for upper, n in zip(self.upper_bounds, self.bucket_counts, strict=False):
            if cumulative + n >= rank and n > 0:
                return lower + (upper - lower) * (rank - cumulative) / n
            cumulative += n
            lower = upper
        return self.upper_bounds[-1] if self.upper_bounds else math.nan


Child = Counter | Gauge | Histogram


@dataclass
class Family:
    name: str
    help: str
    type: str  # "counter" | "gauge" | "histogram"
    label_names: tuple[str, ...]
    buckets: tuple[float, ...] = DEFAULT_BUCKETS

    def __post_init__(self) -> None:
        self.children: dict[tuple[str, ...], Child] = {}

    def labels(self, *values: str) -> Child:
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.label_names):
                raise ValueError(f"{self.name}: expected labels {self.label_names}, got {values}")
            if self.type == "counter":
                child = Counter()
            elif self.type == "gauge":
                child = Gauge()
            else:
                child = Histogram(self.buckets)
            self.children[values] = child
        return child

    def remove(self, *values: str) -> None:
        self.children.pop(values, None)


class Registry:
    """A set of metric families, exposed in the Prometheus text format."""

    def __init__(self) -> None:
        self._families: dict[str, Family] = {}
        self._collectors: list[Callable[[], Mapping[str, float]]] = []

    def add_collector(self, collect: Callable[[], Mapping[str, float]]) -> None:
        """Add unlabelled values computed at exposition time (``*_total`` are counters)."""
        self._collectors.append(collect)

    def _family(
        self, name: str, help: str, type_: str, labels: Iterable[str], **kw: object
    ) -> Family:
        existing = self._families.get(name)
        if existing is not None:
            if existing.type != type_ or existing.label_names != tuple(labels):
                raise ValueError(f"metric {name} registered twice with different shapes")
            return existing
        family = Family(name, help, type_, tuple(labels), **kw)  # type: ignore[arg-type]
        self._families[name] = family
        return family

    def include(self, family: Family) -> None:
        """Expose ``family``, defined elsewhere (a process-wide family shared by engines)."""
        existing = self._families.get(family.name)
        if existing is not None and existing is not family:
            raise ValueError(f"metric {family.name} registered twice")
        self._families[family.name] = family

    def counter(self, name: str, help: str, labels: Iterable[str] = ()) -> Family:
        return self._family(name, help, "counter", labels)

    def gauge(self, name: str, help: str, labels: Iterable[str] = ()) -> Family:
        return self._family(name, help, "gauge", labels)

    def histogram(
        self,
        name: str,
        help: str,
        labels: Iterable[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> Family:
        return self._family(name, help, "histogram", labels, buckets=tuple(buckets))

    def families(self) -> list[Family]:
        return list(self._families.values())

    def get(self, name: str) -> Family | None:
        return self._families.get(name)

    def value(self, name: str, **labels: str) -> float:
        """The value of one child (0 when it does not exist); for tests and the console."""
        family = self._families.get(name)
        if family is None:
            return 0.0
        key = tuple(labels.get(n, "") for n in family.label_names)
        child = family.children.get(key)
        return 0.0 if child is None else child.value

    def total(self, name: str, **labels: str) -> float:
        """Sum over the children matching ``labels`` (other labels aggregated away)."""
        family = self._families.get(name)
        if family is None:
            return 0.0
        idx = [(family.label_names.index(k), v) for k, v in labels.items()]
        return sum(
            child.value
            for key, child in list(family.children.items())
            if all(key[i] == v for i, v in idx)
        )

    def expose(self) -> str:
        """Render every family in the Prometheus text format 0.0.4."""
        out: list[str] = []
        for family in list(self._families.values()):
            out.append(f"# HELP {family.name} {_escape_help(family.help)}")
            out.append(f"# TYPE {family.name} {family.type}")
            for key, child in sorted(list(family.children.items())):
                pairs = list(zip(family.label_names, key, strict=True))
                if isinstance(child, Histogram):
                    cumulative = 0
                    for bound, n in zip(
                        (*child.upper_bounds, math.inf), child.bucket_counts, strict=True
                    ):
                        cumulative += n
                        le = [*pairs, ("le", _format_value(bound))]
                        out.append(f"{family.name}_bucket{_labels(le)} {cumulative}")
                    out.append(f"{family.name}_sum{_labels(pairs)} {_format_value(child.sum)}")
                    out.append(f"{family.name}_count{_labels(pairs)} {child.count}")
                else:
                    out.append(f"{family.name}{_labels(pairs)} {_format_value(child.value)}")
        for collect in self._collectors:
            for name, value in sorted(collect().items()):
                kind = "counter" if name.endswith("_total") else "gauge"
                out.append(f"# TYPE {name} {kind}")
                out.append(f"{name} {_format_value(float(value))}")
        return "\n".join(out) + "\n"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{name}="{_escape_value(value)}"' for name, value in pairs) + "}"


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)
