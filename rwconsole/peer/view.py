"""A peer's queues over time: rates from the deltas between polls, the last hour of history.

Pure bookkeeping on ``Reading``s and the times they were taken, so tests drive
it with their own clock. Counter resets (the peer restarted) count from zero.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from rwconsole.config.secrets import redact_url
from rwconsole.peer.readings import QueueKey, QueueReading, Reading
from rwconsole.snapshot import EndpointSnapshot, HistoryPoint, LogEntry, Snapshot

HISTORY_SECONDS = 3600.0
MAX_LOGS = 200
STATUS_SECONDS = 10.0
QUEUE_CONFIG_GAUGES = {
    # queue_config key → the gauge the peer sets from it at queue start
    "min_shards": "shards_min",
    "max_shards": "shards_max",
    "capacity": "shard_capacity",
    "max_samples_per_send": "max_samples_per_send",
}
_RATES = (
    "samples_total",
    "samples_retried_total",
    "samples_failed_total",
    "samples_dropped_total",
    "sent_batch_duration_seconds_sum",
    "sent_batch_duration_seconds_count",
)


@dataclass(slots=True)
class _Queue:
    name: str
    reading: QueueReading
    time: float
    history: collections.deque[HistoryPoint] = field(default_factory=collections.deque)
    status: str = "healthy"
    unsent_since: float | None = None
    """The highest timestamp in when the console first saw the queue waiting, never sent."""

    def lag(self, new: QueueReading, reading: Reading) -> float:
        """Highest timestamp in minus highest sent; before the first send, at least the
        time since the console first saw samples waiting."""
        values = new.values
        highest = values.get("queue_highest_timestamp_seconds", reading.highest_in or 0.0)
        sent = values.get("queue_highest_sent_timestamp_seconds", 0.0)
        if sent > 0:
            self.unsent_since = None
            return max(highest - sent, 0.0)
        if values.get("samples_pending", 0.0) <= 0:
            return 0.0
        if self.unsent_since is None:
            self.unsent_since = highest
        return max(highest - self.unsent_since, 0.0)


def _delta(new: float, old: float) -> float:
    return new if new < old else new - old


class PeerView:
    """What the console shows of one peer, updated by each poll."""

    def __init__(self, url: str, wal_dir: str = "", history_seconds: float = HISTORY_SECONDS):
        self.url = redact_url(url)
        self.wal_dir = wal_dir
        self.history_seconds = history_seconds
        self.kind = "forwarder"
        self._queues: dict[QueueKey, _Queue] = {}
        self._samples_in: tuple[float, float] | None = None
        """(value, time) of the peer-wide input counter at the last poll."""
        self._in_rate = 0.0
        self._logs: collections.deque[LogEntry] = collections.deque(maxlen=MAX_LOGS)
        self._error = ""
        self._error_time = 0.0

    @property
    def source_kind(self) -> str:
        return f"{self.kind} at {self.url}"

    def log(self, now: float, level: str, message: str, endpoint: str = "") -> None:
        self._logs.append(LogEntry(now, level, message, endpoint))

    def failed(self, now: float, message: str) -> None:
        """A poll that got no reading: shown as each queue's last error until the next one."""
        if message != self._error:
            self.log(now, "ERROR", f"reading {self.url}: {message}")
        self._error, self._error_time = message, now

    def update(self, reading: Reading, now: float) -> None:
        if self._error:
            self.log(now, "INFO", f"reading {self.url} again")
            self._error = ""
        self.kind = reading.kind
        self._in_rate = 0.0
        if reading.samples_in is not None:
            if self._samples_in is not None and now > self._samples_in[1]:
                old, then = self._samples_in
                self._in_rate = _delta(reading.samples_in, old) / (now - then)
            self._samples_in = (reading.samples_in, now)
        names = _names(reading.queues.values())
        for key, queue_reading in reading.queues.items():
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(names[key], queue_reading, now)
                queue.lag(queue_reading, reading)
                self.log(now, "INFO", f"found remote-write queue {names[key]}", names[key])
                continue
            if now > queue.time:
                point = self._point(queue, queue_reading, reading, now)
                queue.history.append(point)
                while queue.history and queue.history[0].time < now - self.history_seconds:
                    queue.history.popleft()
                queue.status = _status(queue.history, now)
            queue.reading, queue.time, queue.name = queue_reading, now, names[key]
        for key in [k for k in self._queues if k not in reading.queues]:
            self.log(now, "WARNING", f"remote-write queue {self._queues[key].name} is gone")
            del self._queues[key]

    def _point(
        self, queue: _Queue, new: QueueReading, reading: Reading, now: float
    ) -> HistoryPoint:
        seconds = now - queue.time
        rate = {
            name: _delta(new.values.get(name, 0.0), queue.reading.values.get(name, 0.0)) / seconds
            for name in _RATES
        }
        sends = rate["sent_batch_duration_seconds_count"]
        latency = rate["sent_batch_duration_seconds_sum"] / sends if sends > 0 else 0.0
        values = new.values
        out = rate["samples_total"] - rate["samples_retried_total"] - rate["samples_failed_total"]
        return HistoryPoint(
            time=now,
            shards=values.get("shards", 0.0),
            shards_desired=values.get("shards_desired", 0.0),
            shards_min=values.get("shards_min", 0.0),
            shards_max=values.get("shards_max", 0.0),
            lag_seconds=queue.lag(new, reading),
            samples_in_per_second=self._in_rate,
            samples_out_per_second=max(out, 0.0),
            retried_per_second=rate["samples_retried_total"],
            failed_per_second=rate["samples_failed_total"],
            dropped_per_second=rate["samples_dropped_total"],
            pending=values.get("samples_pending", 0.0),
            send_latency_seconds=latency,
        )

    def snapshot(self, now: float) -> Snapshot:
        endpoints = tuple(
            self._endpoint(queue) for queue in sorted(self._queues.values(), key=lambda q: q.name)
        )
        return Snapshot(
            time=now,
            running=True,
            wal_dir=self.wal_dir,
            wal_position=(0, 0),
            samples_in_total=self._samples_in[0] if self._samples_in else 0.0,
            samples_in_per_second=self._in_rate,
            endpoints=endpoints,
            sources=(),
            demo=None,
            logs=tuple(self._logs),
            metrics_address="",
            read_only=True,
            source_kind=self.source_kind,
        )

    def _endpoint(self, queue: _Queue) -> EndpointSnapshot:
        values = queue.reading.values
        segment = int(queue.reading.watcher_segment or 0)
        return EndpointSnapshot(
            name=queue.name,
            url=redact_url(queue.reading.url),
            protocol=1,
            status="no data" if self._error else queue.status,
            paused=False,
            last_error=self._error,
            last_error_time=self._error_time,
            last_status=None,
            shards=int(values.get("shards", 0.0)),
            shards_desired=values.get("shards_desired", 0.0),
            queue_config={
                key: int(values[gauge])
                for key, gauge in QUEUE_CONFIG_GAUGES.items()
                if gauge in values
            },
            pending_samples=values.get("samples_pending", 0.0),
            samples_total=values.get("samples_total", 0.0),
            samples_failed=values.get("samples_failed_total", 0.0),
            samples_retried=values.get("samples_retried_total", 0.0),
            samples_dropped=values.get("samples_dropped_total", 0.0),
            exemplars_total=values.get("exemplars_total", 0.0),
            histograms_total=values.get("histograms_total", 0.0),
            bytes_total=values.get("bytes_total", 0.0),
            lag_seconds=queue.history[-1].lag_seconds if queue.history else 0.0,
            read_position=(segment, 0),
            delivered_position=(segment, 0),
            live=True,
            history=tuple(queue.history),
        )


def _status(history: collections.deque[HistoryPoint], now: float) -> str:
    """From the last ``STATUS_SECONDS``: retries (backoff sleeps) leave gaps between polls."""
    recent = list(itertools.takewhile(lambda p: p.time >= now - STATUS_SECONDS, reversed(history)))
    if any(p.failed_per_second > 0 for p in recent):
        return "failing"
    if any(p.retried_per_second > 0 for p in recent):
        return "retrying"
    return "healthy"


def _names(queues: Iterable[QueueReading]) -> dict[QueueKey, str]:
    """Each queue's name: its ``remote_name`` (or URL), qualified when two share one."""
    result: dict[QueueKey, str] = {}
    for queue in queues:
        labels = dict(queue.key)
        result[queue.key] = labels.get("remote_name") or redact_url(labels.get("url", ""))
    counts = collections.Counter(result.values())
    for key, name in list(result.items()):
        if counts[name] > 1:
            extra = ",".join(f"{k}={v}" for k, v in key if k not in ("remote_name", "url"))
            result[key] = f"{name} ({extra})" if extra else name
    return result
