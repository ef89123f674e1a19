"""The contract between the engine and a console: snapshots out, commands in.

A ``Snapshot`` is plain, immutable data: numbers, strings, tuples, dicts with
string or integer keys and nested dataclasses of the same, nothing that refers
back into the engine. ``to_dict`` turns one into JSON-ready data tagged with
``SNAPSHOT_VERSION``; ``from_dict`` rebuilds it, naming the key that does not
fit. ``EngineControl`` is everything a console may ask of the engine. The
console imports only this module, never the engine's internals.

Snapshots carry no secrets: endpoint URLs are redacted before the engine sees
them, and no credential, header or config secret is part of any field.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import enum
import functools
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Union, get_args, get_origin, get_type_hints

from rwconsole.model import SourceStatus

SNAPSHOT_VERSION = 1
"""Raised when a field is removed or changes meaning; new fields keep the version."""

Position = tuple[int, int]
"""``(segment index, byte offset)`` in the WAL."""


# ---- the demo receiver (its faults are commands; its counters are shown) ----

FAULT_MODES = (
    "ok",
    "error_5xx",
    "too_many_requests",
    "bad_request",
    "latency",
    "hang",
    "down",
)


@dataclass(frozen=True, slots=True)
class Fault:
    mode: str = "ok"
    status: int = 503
    retry_after: float | None = None
    reason: str = "rejected by the demo receiver"
    delay: float = 0.0
    fraction: float = 1.0

    def describe(self) -> str:
        detail = {
            "ok": "",
            "error_5xx": f" {self.status}",
            "too_many_requests": f" retry-after={self.retry_after}"
            if self.retry_after is not None
            else "",
            "bad_request": f" {self.reason!r}",
            "latency": f" {self.delay}s",
            "hang": "",
            "down": "",
        }[self.mode]
        share = f" ({self.fraction:.0%} of requests)" if self.fraction < 1.0 else ""
        return f"{self.mode}{detail}{share}"


@dataclass(frozen=True, slots=True)
class DemoStats:
    address: str
    listening: bool
    fault: Fault
    requests: int = 0
    v1_requests: int = 0
    v2_requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    samples: int = 0
    exemplars: int = 0
    histograms: int = 0
    metadata: int = 0
    bytes: int = 0
    series: int = 0
    out_of_order: int = 0
    hung: int = 0
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One second of one endpoint, as the console charts it."""

    time: float
    shards: float
    shards_desired: float
    shards_min: float
    shards_max: float
    lag_seconds: float
    samples_in_per_second: float
    samples_out_per_second: float
    retried_per_second: float
    failed_per_second: float
    dropped_per_second: float
    pending: float
    send_latency_seconds: float
    accepted_per_second: float = 0.0
    """Samples the receiver accepted (``samples_out_per_second`` counts every sample
    whose sending finished, rejected ones included)."""
    requests_in_flight: float = 0.0
    """Mean number of remote-write requests sent and not yet answered."""
    batches_per_second: float = 0.0
    """Batches whose sending finished (the weights of the per-batch means below)."""
    send_encode_seconds: float = 0.0
    """Mean per batch: serialising and compressing it."""
    send_loop_wait_seconds: float = 0.0
    """Mean per batch: the event loop ran other work while the send waited for it."""
    send_network_seconds: float = 0.0
    """Mean per batch: its HTTP attempts, network and receiver."""
    shard_utilisation: float = 0.0
    """Share of the time the shards had a batch to send (0–1)."""


@dataclass(frozen=True, slots=True)
class CredentialsSnapshot:
    """The cloud credential source of a sigv4/azuread endpoint; never a secret value."""

    source: str
    """Empty until the first fetch."""
    expires_at: float | None = None
    """Unix time; None: the credentials do not expire."""
    last_error: str | None = None
    """The last refresh failure, cleared by a success."""


@dataclass(frozen=True, slots=True)
class ShardHour:
    """Desired shards over one hour of one endpoint, kept across restarts."""

    start: float
    """Unix time of the first point."""
    seconds: float
    """How much of the hour the points cover."""
    p90: float
    """90th percentile of the desired shards in that time."""


@dataclass(frozen=True, slots=True)
class EndpointSnapshot:
    """One endpoint's queue: state, counters, WAL positions and its last hour."""

    name: str
    url: str
    """With any password replaced by ``<secret>``."""
    protocol: int
    status: str
    paused: bool
    last_error: str
    last_error_time: float
    last_status: int | None
    shards: int
    shards_desired: float
    queue_config: dict[str, bool | int | float]
    pending_samples: float
    samples_total: float
    samples_failed: float
    samples_retried: float
    samples_dropped: float
    exemplars_total: float
    histograms_total: float
    bytes_total: float
    lag_seconds: float
    read_position: Position
    delivered_position: Position
    live: bool
    history: tuple[HistoryPoint, ...]
    credentials: CredentialsSnapshot | None = None
    samples_accepted: float = 0.0
    """Samples the receiver accepted (``samples_total`` counts every attempt)."""
    shard_hours: tuple[ShardHour, ...] = ()
    """Hourly desired-shard summaries of the last days, oldest first (persisted)."""
    protocol_state: str = ""
    """The remote-write version sent now ("2.0", or "1.0 (receiver refused 2.0 …)")."""
    loss_at_budget_per_second: float = 0.0
    """Samples per second this endpoint would lose if the WAL reached its budget now
    (what comes in faster than it sends; 0 when the WAL has no ``drop_oldest`` budget)."""
    requests_in_flight: int = 0
    """Remote-write requests sent and not yet answered, now."""
    shards_reason: str = ""
    """What the last desired-shards calculation was made of and why that many run."""
    spool_batches: int = 0
    """Batches encoded ahead and waiting in the endpoint's spool (``rwconsole.remote.spool``)."""
    spool_bytes: int = 0
    """Size of the endpoint's spool file."""


@dataclass(frozen=True, slots=True)
class WalDiskSnapshot:
    """The WAL's disk use against its budget and the free space of its filesystem."""

    size_bytes: int
    """Segments and checkpoint."""
    limit_bytes: int
    """``[wal] max_size``; 0 = no budget."""
    on_full: str
    free_bytes: int | None
    """Free space of the WAL's filesystem (None: unknown)."""
    growth_bytes_per_second: float
    """How fast the WAL grows (negative: shrinks), smoothed."""
    seconds_to_full: float | None
    """At the current growth, when the budget or the filesystem is full (None: not growing)."""
    full_by: str
    """``budget`` or ``filesystem``: which one ``seconds_to_full`` is about."""
    append_error: str = ""
    """Why appends fail right now (``WAL disk full: <path>``); empty when they work."""
    append_failures: float = 0.0
    """Commits refused since the start."""
    samples_dropped: float = 0.0
    """WAL samples the budget truncated before every endpoint had them (each counted once)."""

    @property
    def alarming(self) -> bool:
        """Appends fail, or the budget or disk is full within ``FULL_WARNING_SECONDS``."""
        soon = self.seconds_to_full is not None and self.seconds_to_full < FULL_WARNING_SECONDS
        return bool(self.append_error) or soon


FULL_WARNING_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class LogEntry:
    time: float
    level: str
    message: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class ScrapeTargetSnapshot:
    """One discovered scrape target: scraped (``health`` up/down/unknown) or dropped."""

    job: str
    url: str
    health: str
    """``up``, ``down``, ``unknown`` (not scraped yet) or ``dropped``."""
    labels: dict[str, str]
    """The labels its series get (empty for a dropped target)."""
    discovered_labels: dict[str, str]
    last_scrape: float | None = None
    last_duration: float = 0.0
    last_samples: int = 0
    last_error: str = ""
    dropped_by: str = ""
    """For a dropped target: the rule that dropped it, or why it could not be made."""
    scrape_interval: float = 0.0
    scrape_timeout: float = 0.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The engine's whole state as the console shows it, rebuilt once per second."""

    time: float
    running: bool
    wal_dir: str
    wal_position: Position
    samples_in_total: float
    samples_in_per_second: float
    endpoints: tuple[EndpointSnapshot, ...]
    sources: tuple[SourceStatus, ...]
    demo: DemoStats | None
    logs: tuple[LogEntry, ...]
    metrics_address: str
    rate_window_seconds: float = 1.0
    """The window the console averages rates over: two source intervals, at least 10 s."""
    disk: WalDiskSnapshot | None = None
    targets: tuple[ScrapeTargetSnapshot, ...] = ()
    read_only: bool = False
    """True when the console watches a forwarder it does not operate (commands are refused)."""
    source_kind: str = ""
    """What is watched: ``Prometheus agent at http://host:9090/metrics`` (empty: this engine)."""

    def endpoint(self, name: str) -> EndpointSnapshot | None:
        return next((e for e in self.endpoints if e.name == name), None)


EMPTY_SNAPSHOT = Snapshot(
    time=0.0,
    running=False,
    wal_dir="",
    wal_position=(0, 0),
    samples_in_total=0.0,
    samples_in_per_second=0.0,
    endpoints=(),
    sources=(),
    demo=None,
    logs=(),
    metrics_address="",
)


class EngineControl(Protocol):
    """What a console may ask of the engine. Commands are thread-safe and return futures;
    a user error (unknown endpoint, invalid value) is the future's exception, with a
    message fit to show."""

    @property
    def running(self) -> bool: ...

    def snapshot(self) -> Snapshot: ...

    def apply_queue_config(
        self, endpoint: str, changes: dict[str, Any], *, save: bool = False
    ) -> concurrent.futures.Future[Any]:
        """Change queue_config fields of a running endpoint (``save``: in the file too)."""
        ...

    def pause(self, endpoint: str) -> concurrent.futures.Future[None]: ...

    def resume(self, endpoint: str) -> concurrent.futures.Future[None]: ...

    def set_fault(self, mode: str, **options: Any) -> concurrent.futures.Future[None]:
        """Set the demo receiver's fault (one of ``FAULT_MODES``)."""
        ...

    def reload(self, config: Any = None) -> concurrent.futures.Future[ReloadReport]:
        """Apply a new config in place: ``None`` re-reads the config file, a path reads
        that file, a ``Config`` is used as is. A failure is the report, not an exception."""
        ...


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """The outcome of a config reload; a failed one changed nothing it names."""

    ok: bool
    changes: tuple[str, ...] = ()
    """One line per change applied."""
    restart_needed: tuple[str, ...] = ()
    """Keys that changed but apply only after a restart (left as they run)."""
    error: str = ""

    def summary(self) -> str:
        if not self.ok:
            return f"config reload failed; the running configuration is kept: {self.error}"
        lines = list(self.changes) or ["no changes"]
        if self.restart_needed:
            lines.append(f"needs a restart, not applied: {', '.join(self.restart_needed)}")
        return "config reloaded: " + "; ".join(lines)


# ---- serialisation -----------------------------------------------------------------------


class SnapshotFormatError(ValueError):
    """Data that is not a snapshot of this version; the message names the key."""


def to_dict(snapshot: Snapshot) -> dict[str, Any]:
    """``snapshot`` as JSON-ready data (lists, dicts with string keys) with its version."""
    data = _plain(snapshot)
    data["version"] = SNAPSHOT_VERSION
    return data


def from_dict(data: Mapping[str, Any]) -> Snapshot:
    """The snapshot ``to_dict`` made (also after a JSON round trip).

    Keys this version does not know are ignored: fields added later keep the version.
    """
    if not isinstance(data, Mapping):
        raise SnapshotFormatError(f"a snapshot is an object, not {type(data).__name__}")
    version = data.get("version")
    if version != SNAPSHOT_VERSION:
        raise SnapshotFormatError(
            f"version: snapshot version {version!r} is not the supported {SNAPSHOT_VERSION}"
        )
    result: Snapshot = _build(Snapshot, data, "")
    return result


def to_plain(value: Any) -> Any:
    """Any value built of dataclasses, tuples, lists, dicts and scalars, as JSON-ready data."""
    return _plain(value)


def from_plain(kind: Any, data: Any) -> Any:
    """``data`` (from ``to_plain``, also after JSON) as type ``kind``; errors name the key."""
    return _build(kind, data, "")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _build(kind: Any, value: Any, path: str) -> Any:
    """``value`` (plain data) as type ``kind``; SnapshotFormatError names ``path``."""
    where = path or "snapshot"
    origin = get_origin(kind)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, Mapping):
            raise SnapshotFormatError(f"{where}: expected an object")
        hints = _hints(kind)
        fields: dict[str, Any] = {}
        for field in dataclasses.fields(kind):
            inner = f"{path}.{field.name}" if path else field.name
            if field.name in value:
                fields[field.name] = _build(hints[field.name], value[field.name], inner)
            elif (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                raise SnapshotFormatError(f"{inner}: missing")
        return kind(**fields)
    if origin is Union or origin is types.UnionType:
        if value is None and type(None) in get_args(kind):
            return None
        problems = []
        for option in get_args(kind):
            if option is type(None):
                continue
            try:
                return _build(option, value, path)
            except SnapshotFormatError as err:
                problems.append(str(err))
        raise SnapshotFormatError(problems[0] if len(problems) == 1 else f"{where}: bad value")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SnapshotFormatError(f"{where}: expected a list")
        args = get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise SnapshotFormatError(f"{where}: expected {len(args)} items")
        return tuple(
            _build(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is list:
        if not isinstance(value, list | tuple):
            raise SnapshotFormatError(f"{where}: expected a list")
        (item_kind,) = get_args(kind)
        return [_build(item_kind, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise SnapshotFormatError(f"{where}: expected an object")
        key_kind, item_kind = get_args(kind)
        return {
            _key(key_kind, k, where): _build(item_kind, v, f"{path}[{k!r}]")
            for k, v in value.items()
        }
    if kind is Any:
        return value
    return _scalar(kind, value, where)


def _key(kind: Any, key: Any, where: str) -> Any:
    if kind is int and isinstance(key, str):
        try:
            return int(key)
        except ValueError:
            raise SnapshotFormatError(f"{where}: key {key!r} is not an integer") from None
    return _scalar(kind, key, where)


def _scalar(kind: Any, value: Any, where: str) -> Any:
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError:
            raise SnapshotFormatError(f"{where}: {value!r} is not a {kind.__name__}") from None
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise SnapshotFormatError(f"{where}: expected {kind.__name__}, not {type(value).__name__}")
