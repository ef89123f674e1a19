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
from dataclasses import dataclass
from typing import Any, Protocol, Union, get_args, get_origin, get_type_hints

from rwconsole.demo.receiver import DemoStats
from rwconsole.model import SourceStatus

SNAPSHOT_VERSION = 1
"""Raised when a field is removed or changes meaning; new fields keep the version."""

Position = tuple[int, int]
"""``(segment index, byte offset)`` in the WAL."""


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


@dataclass(frozen=True, slots=True)
class LogEntry:
    time: float
    level: str
    message: str
    endpoint: str


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
        """Set the demo receiver's fault (``rwconsole.demo.receiver.FAULT_MODES``)."""
        ...


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
