"""The data model shared by sources, the WAL and the remote-write encoders.

Plain, slotted dataclasses for the things that are not float samples (float
samples travel as columns: refs, timestamps, values, never as objects). Both the
WAL record codecs and the protocol encoders speak these types, so no layer
converts between private copies of the same idea. Also the two protocols
between sources and the engine: ``Appender`` (what a source writes into, with
its errors) and ``Source`` (what the engine asks of a running source).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol, TypeVar

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
    start_timestamp: int = 0
    """Milliseconds; 0 = none (WAL types 12/13, remote write 2.0 field 17)."""


class UnknownSeriesError(KeyError):
    """A sample refers to a series ref the WAL does not know (or has collected)."""


class StalePreparedError(UnknownSeriesError):
    """A prepared batch names series the WAL has collected since it was prepared.

    ``refs`` are the collected ones: forget them, resolve their labels again
    and prepare a new batch.
    """

    def __init__(self, refs: list[int]) -> None:
        self.refs = refs
        shown = ", ".join(map(str, refs[:5])) + (", ..." if len(refs) > 5 else "")
        super().__init__(
            f"a prepared batch names {len(refs)} series the WAL has collected since: refs {shown}"
        )

    def __str__(self) -> str:
        return str(self.args[0])  # the message, not KeyError's quoted repr of it


class WalAppendError(Exception):
    """A commit could not be written to the WAL; nothing of it was kept.

    ``reason`` is one of ``WAL_APPEND_REASONS`` (``disk_full``, ``quota``,
    ``io_error``, ``write_error``, ``size_limit``), ``path`` the file or
    directory concerned. The appender has discarded the commit's pending
    data: the caller retries with fresh data later or reports the failure
    (a receiver answers 503, a scrape counts it).
    """

    def __init__(self, reason: str, path: str) -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"WAL {WAL_APPEND_REASONS.get(reason, reason)}: {path}")


WAL_APPEND_REASONS: dict[str, str] = {
    "disk_full": "disk full",
    "quota": "disk quota exceeded",
    "io_error": "I/O error",
    "write_error": "write failed",
    "size_limit": "size limit reached",
}


class PreparedBatch(Protocol):
    """Refs checked once by ``Appender.prepare_samples``, for repeated ``append_prepared``."""

    @property
    def refs(self) -> tuple[int, ...]: ...


PreparedT = TypeVar("PreparedT", bound=PreparedBatch)


class Appender(Protocol[PreparedT]):
    """What sources write into (implemented by ``rwconsole.wal.storage``).

    ``prepare_samples`` / ``append_prepared`` append the same series again and
    again with only a timestamp and values; ``prepare_samples`` returns None when
    the appender has no faster path than ``append_samples`` (see
    ``NoPreparedBatches``). ``append_prepared`` raises ``StalePreparedError``
    (and writes nothing) when series of the batch were collected since it was
    prepared. ``start_timestamps`` (one per sample, 0 = none) are the samples'
    start timestamps where the source has them (OpenMetrics ``_created``, a
    2.0 request's ``start_timestamp``); None, the common case, means none.
    """

    def series_refs(self, labels: Sequence[Labels]) -> list[int]: ...

    def append_samples(
        self,
        refs: Sequence[int],
        timestamps: Sequence[int] | int,
        values: Sequence[float],
        start_timestamps: Sequence[int] | None = None,
    ) -> None: ...

    def prepare_samples(self, refs: Sequence[int]) -> PreparedT | None: ...

    def append_prepared(
        self, batch: PreparedT, timestamp: int, values: Sequence[float]
    ) -> None: ...

    def append_exemplars(self, exemplars: Sequence[Exemplar]) -> None: ...

    def append_histograms(self, histograms: Sequence[HistogramSample]) -> None: ...

    def append_metadata(self, entries: Sequence[MetricMetadata]) -> None: ...

    def commit(self) -> None: ...


class NoPreparedBatches:
    """The prepared-samples API of an appender without a faster path than ``append_samples``."""

    def prepare_samples(self, refs: Sequence[int]) -> None:
        return None

    def append_prepared(
        self, batch: PreparedBatch, timestamp: int, values: Sequence[float]
    ) -> None:
        raise TypeError("this appender prepares no batches; use append_samples")


# ---- sources -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """One scrape target as the console shows it."""

    job: str
    instance: str
    url: str
    health: str = "unknown"
    """``unknown`` before the first scrape, then ``up`` or ``down``."""
    last_scrape: float | None = None
    """Unix time (seconds) the last scrape started."""
    last_duration: float = 0.0
    last_samples: int = 0
    last_error: str = ""
    scrapes: int = 0
    failures: int = 0
    parse_errors: int = 0
    series: int = 0
    append_failures: int = 0
    """Scrapes the WAL refused (disk full, size limit); ``last_error`` says why."""


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """A running source's state: its kind, counters, last error and (scrape) targets."""

    kind: str
    counters: dict[str, float] = field(default_factory=dict)
    last_error: str = ""
    targets: tuple[TargetStatus, ...] = ()

    @classmethod
    def of(
        cls, kind: str, stats: Any, *, last_error: str = "", targets: tuple[TargetStatus, ...] = ()
    ) -> SourceStatus:
        """The status with the numeric fields of the dataclass ``stats`` as counters."""
        counters = {}
        for item in dataclasses.fields(stats):
            value = getattr(stats, item.name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                counters[item.name] = float(value)
        return cls(kind, counters, last_error, targets)


class Source(Protocol):
    """What the engine asks of a running source (scrape manager, receiver, generator)."""

    def status(self) -> SourceStatus: ...

    def forget_series(self, refs: set[int]) -> None:
        """Drop refs the WAL collected; their series get new refs when they come back."""

    async def stop(self) -> None: ...
