"""The data model shared by sources, the WAL and the remote-write encoders.

Plain, slotted dataclasses for the things that are not float samples (float
samples travel as columns: refs, timestamps, values, never as objects). Both the
WAL record codecs and the protocol encoders speak these types, so no layer
converts between private copies of the same idea.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from rwconsole.labels import Labels

STALE_NAN_BITS = 0x7FF0000000000002
"""Bit pattern of Prometheus' staleness marker."""

STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]


def is_stale_nan(value: float) -> bool:
    """True when ``value`` carries exactly the staleness marker's bits."""
    return struct.pack("<d", value) == _STALE_BYTES


_STALE_BYTES = struct.pack("<Q", STALE_NAN_BITS)


CUSTOM_BUCKETS_SCHEMA = -53
"""Schema of native histograms with custom bucket bounds (NHCB)."""


class MetricType(IntEnum):
    """Metric types, numbered as in WAL metadata records and the protobufs."""

    UNKNOWN = 0
    COUNTER = 1
    GAUGE = 2
    HISTOGRAM = 3
    GAUGEHISTOGRAM = 4
    SUMMARY = 5
    INFO = 6
    STATESET = 7


class ResetHint(IntEnum):
    """Counter-reset hint of a native histogram."""

    UNKNOWN = 0
    YES = 1
    NO = 2
    GAUGE = 3


@dataclass(frozen=True, slots=True)
class Exemplar:
    ref: int
    timestamp: int
    value: float
    labels: Labels = ()


@dataclass(frozen=True, slots=True)
class MetricMetadata:
    ref: int
    type: MetricType
    unit: str = ""
    help: str = ""


@dataclass(frozen=True, slots=True)
class Histogram:
    """A native histogram; integer counts when ``is_float`` is False.

    Bucket lists hold what the WAL and the protobufs carry: for integer
    histograms the delta-encoded counts (each bucket minus the previous one,
    the first relative to 0), for float histograms the absolute float counts.
    Spans are ``(offset, length)`` pairs as in Prometheus.
    """

    schema: int
    zero_threshold: float
    zero_count: float
    count: float
    sum: float
    positive_spans: tuple[tuple[int, int], ...] = ()
    negative_spans: tuple[tuple[int, int], ...] = ()
    positive_buckets: tuple[float, ...] = ()
    negative_buckets: tuple[float, ...] = ()
    reset_hint: ResetHint = ResetHint.UNKNOWN
    is_float: bool = False
    custom_values: tuple[float, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class HistogramSample:
    ref: int
    timestamp: int
    histogram: Histogram


class Appender(Protocol):
    """What sources write into (implemented by ``rwconsole.wal.storage``)."""

    def series_refs(self, labels: Sequence[Labels]) -> list[int]: ...

    def append_samples(
        self, refs: Sequence[int], timestamps: Sequence[int] | int, values: Sequence[float]
    ) -> None: ...

    def append_exemplars(self, exemplars: Sequence[Exemplar]) -> None: ...

    def append_histograms(self, histograms: Sequence[HistogramSample]) -> None: ...

    def append_metadata(self, entries: Sequence[MetricMetadata]) -> None: ...

    def commit(self) -> None: ...
