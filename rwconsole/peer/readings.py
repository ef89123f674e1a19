"""One scrape of a peer's metrics page, reduced to its remote-write queues.

Only the families the console shows are kept: per queue (the series with a
``remote_name`` or ``url`` label) every ``prometheus_remote_storage_*`` value,
summed over labels that split a queue further (``reason``); the histogram's
``_sum`` and ``_count``, not its buckets; and the peer-wide input counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rwconsole.labels import METRIC_NAME, Labels
from rwconsole.sources import textparse

PREFIX = "prometheus_remote_storage_"
WATCHER_SEGMENT = "prometheus_wal_watcher_current_segment"
SAMPLES_IN = (
    # Newest first: the deprecated remote-storage counter, then the WAL appenders'.
    "prometheus_remote_storage_samples_in_total",
    "prometheus_agent_samples_appended_total",
    "prometheus_tsdb_head_samples_appended_total",
    "prometheus_remote_write_wal_samples_appended_total",
)
HIGHEST_IN = "prometheus_remote_storage_highest_timestamp_in_seconds"
_SPLIT_LABELS = frozenset({METRIC_NAME, "le", "reason", "quantile"})
_KINDS = (
    ("alloy_build_info", "Alloy"),
    ("prometheus_agent_", "Prometheus agent"),
    ("prometheus_tsdb_", "Prometheus server"),
)

QueueKey = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class QueueReading:
    """One remote-write queue: its metric values by name without ``PREFIX``."""

    key: QueueKey
    values: dict[str, float] = field(default_factory=dict)
    watcher_segment: float | None = None

    @property
    def remote_name(self) -> str:
        return dict(self.key).get("remote_name", "")

    @property
    def url(self) -> str:
        return dict(self.key).get("url", "")


@dataclass(slots=True)
class Reading:
    queues: dict[QueueKey, QueueReading] = field(default_factory=dict)
    samples_in: float | None = None
    highest_in: float | None = None
    kind: str = "forwarder"
    """``Prometheus agent``, ``Prometheus server``, ``Alloy`` …, from the families present."""


def read(body: bytes, content_type: str | None = None) -> Reading:
    """The queues on a metrics page; raises ``textparse.ParseError`` (with its line)."""
    payload = textparse.parse(body, textparse.format_for(content_type))
    reading = Reading()
    samples_in: dict[str, float] = {}
    segments: dict[str, float] = {}
    kinds: set[str] = set()
    for key, value in zip(payload.keys, payload.values, strict=True):
        for prefix, kind in _KINDS:
            if key.startswith(prefix):
                kinds.add(kind)
        if key.startswith(SAMPLES_IN):
            name = dict(payload.new_series[key])[METRIC_NAME]
            samples_in[name] = samples_in.get(name, 0.0) + value
        elif key.startswith(PREFIX):
            _add(reading, payload.new_series[key], value)
        elif key.startswith(WATCHER_SEGMENT):
            consumer = dict(payload.new_series[key]).get("consumer", "")
            segments[consumer] = value
    for name in SAMPLES_IN:
        if name in samples_in:
            reading.samples_in = samples_in[name]
            break
    for queue in reading.queues.values():
        queue.watcher_segment = segments.get(queue.remote_name)
    reading.kind = next((kind for _prefix, kind in _KINDS if kind in kinds), "forwarder")
    return reading


def _add(reading: Reading, labels: Labels, value: float) -> None:
    name = dict(labels)[METRIC_NAME][len(PREFIX) :]
    if name.endswith("_bucket"):
        return
    key: QueueKey = tuple((k, v) for k, v in labels if k not in _SPLIT_LABELS)
    if not any(k in ("remote_name", "url") for k, _v in key):
        if name == HIGHEST_IN[len(PREFIX) :]:
            reading.highest_in = value
        return
    queue = reading.queues.get(key)
    if queue is None:
        queue = reading.queues[key] = QueueReading(key)
    queue.values[name] = queue.values.get(name, 0.0) + value
