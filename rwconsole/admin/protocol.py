"""The admin API's wire format: paths, the snapshot stream's messages, WAL tool results.

HTTP/1.1 with JSON bodies. ``GET /v1/snapshot/stream`` is newline-delimited
JSON: the first message is ``{"kind": "full", ...}`` with the whole snapshot
(every endpoint's hour of history and the buffered log lines); each later
one, once a second, is ``{"kind": "delta", ...}``: the new snapshot whose
``history`` and ``logs`` hold only the points and lines added since the
previous message. When a delta cannot express the change (an endpoint came
or went, the history was reset), a full message is sent instead.
``SnapshotMerger`` turns the messages back into whole snapshots.
"""

from __future__ import annotations

import dataclasses
import json
from collections import deque
from collections.abc import Sequence
from typing import Any, TypeVar

from rwconsole.snapshot import (
    EndpointSnapshot,
    HistoryPoint,
    LogEntry,
    Snapshot,
    from_dict,
    to_dict,
)

SOCKET_NAME = "rwconsole.sock"
"""The admin socket's file name in the data directory."""
API = "/v1"
COMMANDS = ("apply_queue_config", "pause", "resume", "reload", "set_fault")
WAL_TOOLS = ("inspect", "verify", "series", "dump")
STREAM_INTERVAL = 1.0

T = TypeVar("T")


def encode_line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def full_message(snapshot: Snapshot, history_limit: int, log_limit: int) -> dict[str, Any]:
    return {
        "kind": "full",
        "limits": {"history": history_limit, "logs": log_limit},
        "snapshot": to_dict(snapshot),
    }


def delta_message(previous: Snapshot, snapshot: Snapshot) -> dict[str, Any] | None:
    """``snapshot`` with only what is new since ``previous``; None: send a full one."""
    if [e.name for e in previous.endpoints] != [e.name for e in snapshot.endpoints]:
        return None
    endpoints = []
    for old, new in zip(previous.endpoints, snapshot.endpoints, strict=True):
        points = added_items(old.history, new.history)
        if points is None:
            return None
        endpoints.append(dataclasses.replace(new, history=points))
    logs = added_items(previous.logs, snapshot.logs)
    if logs is None:
        return None
    thin = dataclasses.replace(snapshot, endpoints=tuple(endpoints), logs=logs)
    return {"kind": "delta", "snapshot": to_dict(thin)}


def added_items(old: tuple[T, ...], new: tuple[T, ...]) -> tuple[T, ...] | None:
    """The items of ``new`` after the last item of ``old``; None if it is gone.

    The engine appends the same objects to bounded buffers, so the last item
    already sent is found by identity, from the end, in a few steps.
    """
    if not old:
        return new
    last = old[-1]
    for index in range(len(new) - 1, -1, -1):
        if new[index] is last:
            return new[index + 1 :]
    return None


class SnapshotMerger:
    """Rebuilds whole snapshots from the stream's messages (client side)."""

    def __init__(self) -> None:
        self._history: dict[str, deque[HistoryPoint]] = {}
        self._logs: deque[LogEntry] = deque()
        self._limits = (3600, 2000)

    def apply(self, message: dict[str, Any]) -> Snapshot:
        """The snapshot ``message`` describes; ``SnapshotFormatError``/``ValueError`` if bad."""
        kind = message.get("kind")
        snapshot = from_dict(message.get("snapshot", {}))
        if kind == "full":
            limits = message.get("limits") or {}
            self._limits = (int(limits.get("history", 3600)), int(limits.get("logs", 2000)))
            self._history = {
                e.name: deque(e.history, maxlen=self._limits[0]) for e in snapshot.endpoints
            }
            self._logs = deque(snapshot.logs, maxlen=self._limits[1])
            return snapshot
        if kind != "delta":
            raise ValueError(f"kind: unknown stream message kind {kind!r}")
        endpoints: list[EndpointSnapshot] = []
        for endpoint in snapshot.endpoints:
            history = self._history.get(endpoint.name)
            if history is None:
                history = self._history[endpoint.name] = deque(maxlen=self._limits[0])
            history.extend(endpoint.history)
            endpoints.append(dataclasses.replace(endpoint, history=tuple(history)))
        self._logs.extend(snapshot.logs)
        return dataclasses.replace(snapshot, endpoints=tuple(endpoints), logs=tuple(self._logs))


def wal_result_type(tool: str) -> Any:
    """The type a WAL tool's JSON answer decodes to (``snapshot.from_plain``)."""
    from rwconsole.wal import browse as walview
    from rwconsole.wal import tools

    types: dict[str, Any] = {
        "inspect": tools.InspectReport,
        "verify": tools.VerifyReport,
        "series": walview.SeriesBrowse,
        "dump": tuple[list[tools.DumpItem], int, list[str]],
    }
    return types[tool]


def labels_param(labels: Sequence[tuple[str, str]]) -> str:
    return json.dumps([list(pair) for pair in labels])


def parse_labels_param(text: str) -> tuple[tuple[str, str], ...]:
    """The ``labels`` query parameter; ValueError naming it when malformed."""
    try:
        data = json.loads(text)
        labels = tuple((str(name), str(value)) for name, value in data)
    except (ValueError, TypeError):
        raise ValueError("labels: expected a JSON list of [name, value] pairs") from None
    return labels


def matchers_param(selector: Any) -> str:
    """A ``rwconsole.selector.Selector`` (or None) as the ``matchers`` query parameter."""
    matchers = [] if selector is None else [[m.name, m.op, m.value] for m in selector.matchers]
    return json.dumps(matchers)


def parse_matchers_param(text: str) -> Any:
    """The ``matchers`` query parameter as a Selector (None: every series)."""
    from rwconsole.regex import RegexError
    from rwconsole.selector import Selector, make_matcher

    try:
        data = json.loads(text) if text else []
        parts = [(str(name), str(op), str(value)) for name, op, value in data]
    except (ValueError, TypeError):
        raise ValueError("matchers: expected a JSON list of [name, op, value]") from None
    if not parts:
        return None
    try:
        if any(op not in ("=", "!=", "=~", "!~") for _n, op, _v in parts):
            raise ValueError("matchers: op must be one of =, !=, =~, !~")
        return Selector(tuple(make_matcher(*part) for part in parts))
    except RegexError as err:
        raise ValueError(f"matchers: {err}") from None
