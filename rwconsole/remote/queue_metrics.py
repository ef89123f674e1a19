"""The ``prometheus_remote_storage_*`` metric families and a per-queue handle.

Names, types and labels follow Alloy's ``prometheus.remote_write`` (which uses
Prometheus' queue manager): per-queue families carry ``remote_name`` and
``url``; ``*_dropped_total`` adds ``reason``. ``QueueMetrics`` holds the
children of one queue so the hot path increments attributes, not dict lookups.

The ``rwconsole_remote_*`` families are this project's own: how a queue's
sends spend their time (``SEND_PHASES``), how many requests are in flight and
how busy the shards are (``TimeIntegral``: level × seconds, whose rate is the
mean level).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rwconsole.metrics import Counter, Gauge, Histogram, Registry

PREFIX = "prometheus_remote_storage_"
QUEUE_LABELS = ("remote_name", "url")
KINDS = ("samples", "exemplars", "histograms", "metadata")

DROP_TOO_OLD = "too_old"
DROP_DROPPED_SERIES = "dropped_series"
DROP_UNKNOWN_SERIES = "unintentionally_dropped_series"
DROP_NHCB_V1 = "nhcb_in_rw1_not_supported"
DROP_HISTOGRAMS_DISABLED = "native_histograms_disabled"
DROP_WAL_TRUNCATED = "wal_truncated_max_keepalive"
PROTOCOL_METRIC = "rwconsole_remote_write_protocol"
PARTIAL_WRITES_METRIC = "rwconsole_remote_write_partial_writes_total"
IN_FLIGHT_METRIC = "rwconsole_remote_requests_in_flight"
IN_FLIGHT_SECONDS_METRIC = "rwconsole_remote_requests_in_flight_seconds_total"
SHARD_BUSY_METRIC = "rwconsole_remote_shard_busy_seconds_total"
SEND_PHASE_METRIC = "rwconsole_remote_send_phase_seconds_total"
SEND_BATCHES_METRIC = "rwconsole_remote_send_batches_total"
SPOOL_BYTES_METRIC = "rwconsole_remote_spool_bytes"
SPOOL_BATCHES_METRIC = "rwconsole_remote_spool_batches"
SPOOL_REFUSED_METRIC = "rwconsole_remote_spool_refused_total"
DROP_SPOOL_UNREADABLE = "spool_unreadable"
SEND_PHASES = ("encode", "loop_wait", "network", "backoff")
"""Where a batch's sending time goes: ``encode`` (serialising and compressing it),
``loop_wait`` (the event loop ran other work while the send waited for a turn),
``network`` (the HTTP attempts: network and receiver), ``backoff`` (retry sleeps
and pauses)."""


class TimeIntegral(Counter):
    """A counter of level × seconds: how many things were busy, summed over time.

    ``change`` moves the level; ``value`` is read lazily, so the time since the
    last change counts too. Its rate is the mean level over the rate's window
    (requests in flight, busy shards).
    """

    __slots__ = ("_clock", "_done", "_since", "level")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._done = 0.0
        self._since = clock()
        self.level = 0

    def change(self, delta: int) -> None:
        now = self._clock()
        self._done += self.level * (now - self._since)
        self._since = now
        self.level += delta

    @property  # type: ignore[override]
    def value(self) -> float:
        return self._done + self.level * (self._clock() - self._since)

    @value.setter
    def value(self, _: float) -> None:
        """Counter.__init__ sets a value; the integral starts at 0 regardless."""


def _define(registry: Registry) -> None:
    for kind in KINDS:
        registry.counter(
            f"{PREFIX}{kind}_total",
            f"Total number of {kind} sent to remote storage.",
            QUEUE_LABELS,
        )
        registry.counter(
            f"{PREFIX}{kind}_failed_total",
            f"Total number of {kind} which failed on send to remote storage, "
            "non-recoverable errors.",
            QUEUE_LABELS,
        )
        registry.counter(
            f"{PREFIX}{kind}_retried_total",
            f"Total number of {kind} which failed on send to remote storage but were retried.",
            QUEUE_LABELS,
        )
        registry.counter(
            f"{PREFIX}{kind}_dropped_total",
            f"Total number of {kind} which were dropped before being sent to remote storage.",
            (*QUEUE_LABELS, "reason"),
        )
        registry.gauge(
            f"{PREFIX}{kind}_pending",
            f"The number of {kind} pending in the queue's shards to be sent to remote storage.",
            QUEUE_LABELS,
        )
        registry.counter(
            f"{PREFIX}{kind}_in_total",
            f"Number of {kind} appended to the WAL and handed to remote storage.",
        )
    registry.counter(
        f"{PREFIX}bytes_total",
        "The total number of bytes of data (not metadata) sent by the queue after compression.",
        QUEUE_LABELS,
    )
    registry.counter(
        f"{PREFIX}metadata_bytes_total",
        "The total number of bytes of metadata sent by the queue after compression.",
        QUEUE_LABELS,
    )
    registry.counter(
        f"{PREFIX}enqueue_retries_total",
        "Total number of times enqueue has failed because a shard's queue was full.",
        QUEUE_LABELS,
    )
    registry.histogram(
        f"{PREFIX}sent_batch_duration_seconds",
        "Duration of send calls to the remote storage.",
        QUEUE_LABELS,
    )
    for name, help_text in (
        (
            "highest_sent_timestamp_seconds",
            "Timestamp from a WAL sample, the highest timestamp successfully sent by this queue.",
        ),
        (
            "queue_highest_sent_timestamp_seconds",
            "Timestamp from a WAL sample, the highest timestamp successfully sent by this queue.",
        ),
        (
            "queue_highest_timestamp_seconds",
            "Highest timestamp that was enqueued, in seconds since epoch.",
        ),
        ("shard_capacity", "The capacity of each shard of the queue used for parallel sending."),
        ("shards", "The number of shards used for parallel sending to the remote storage."),
        ("shards_desired", "The number of shards that the queues shard calculation wants to run."),
        ("shards_max", "The maximum number of shards that the queue is allowed to run."),
        ("shards_min", "The minimum number of shards that the queue is allowed to run."),
        ("max_samples_per_send", "The maximum number of samples to be sent, in a single request."),
    ):
        registry.gauge(f"{PREFIX}{name}", help_text, QUEUE_LABELS)
    registry.gauge(
        PROTOCOL_METRIC,
        "1 for the remote-write protocol version the queue sends now, 0 for the other.",
        (*QUEUE_LABELS, "version"),
    )
    registry.counter(
        PARTIAL_WRITES_METRIC,
        "Items a receiver did not confirm in a successful response (its Written headers "
        "counted fewer than were sent); they are not retried.",
        (*QUEUE_LABELS, "kind"),
    )
    registry.gauge(
        IN_FLIGHT_METRIC,
        "Remote-write requests sent and not yet answered.",
        QUEUE_LABELS,
    )
    registry.counter(
        IN_FLIGHT_SECONDS_METRIC,
        "Requests in flight integrated over time; its rate is the mean number in flight.",
        QUEUE_LABELS,
    )
    registry.counter(
        SHARD_BUSY_METRIC,
        "Seconds the queue's shards spent on a batch (encoding, waiting, sending, backing "
        "off), summed over shards; its rate divided by the shards is their utilisation.",
        QUEUE_LABELS,
    )
    registry.counter(
        SEND_PHASE_METRIC,
        "Wall time of finished batch sends by phase: encode (serialise and compress), "
        "loop_wait (the event loop ran other work while the send waited for it), network "
        "(HTTP attempts: network and receiver), backoff (retry sleeps and pauses).",
        (*QUEUE_LABELS, "phase"),
    )
    registry.counter(
        SEND_BATCHES_METRIC,
        "Batches whose sending finished (sent, or given up as non-recoverable); "
        "divides the send phase seconds into means per batch.",
        QUEUE_LABELS,
    )
    registry.gauge(
        SPOOL_BYTES_METRIC,
        "Bytes of the queue's spool file: request bodies encoded ahead while the queue is "
        "behind, waiting to be sent (a copy of WAL data; the WAL keeps it until delivered).",
        QUEUE_LABELS,
    )
    registry.gauge(
        SPOOL_BATCHES_METRIC,
        "Encoded batches waiting in the queue's spool.",
        QUEUE_LABELS,
    )
    registry.counter(
        SPOOL_REFUSED_METRIC,
        "Batches the spool did not take (its size budget, the free-space reserve, a write "
        "error): the queue then waits for room, reading the rest from the WAL later.",
        QUEUE_LABELS,
    )
    registry.gauge(
        f"{PREFIX}highest_timestamp_in_seconds",
        "Highest timestamp that has come into the remote storage via the WAL, in seconds.",
    )


def define_global(registry: Registry) -> tuple[Counter, Counter, Counter, Counter, Gauge]:
    """Return (samples_in, exemplars_in, histograms_in, metadata_in, highest_timestamp_in)."""
    _define(registry)
    samples, exemplars, histograms, metadata = (
        registry.get(f"{PREFIX}{kind}_in_total").labels()  # type: ignore[union-attr]
        for kind in KINDS
    )
    highest = registry.get(f"{PREFIX}highest_timestamp_in_seconds").labels()  # type: ignore[union-attr]
    return samples, exemplars, histograms, metadata, highest  # type: ignore[return-value]


class QueueMetrics:
    """The children of every per-queue family for one (remote_name, url)."""

    def __init__(self, registry: Registry, remote_name: str, url: str) -> None:
        _define(registry)
        self._registry = registry
        self._key = (remote_name, url)

        def child(name: str) -> Counter | Gauge | Histogram:
            family = registry.get(PREFIX + name)
            assert family is not None
            return family.labels(*self._key)

        def counter(name: str) -> Counter:
            found = child(name)
            assert isinstance(found, Counter)
            return found

        def gauge(name: str) -> Gauge:
            found = child(name)
            assert isinstance(found, Gauge)
            return found

        self.sent = {k: counter(f"{k}_total") for k in KINDS}
        self.failed = {k: counter(f"{k}_failed_total") for k in KINDS}
        self.retried = {k: counter(f"{k}_retried_total") for k in KINDS}
        # Not exposed: *_total counts every attempt (Prometheus' meaning), so what the
        # receiver accepted is counted apart, for the console's "sent" and "out".
        self.accepted = {k: Counter() for k in KINDS}
        self.pending = {k: gauge(f"{k}_pending") for k in KINDS}
        self.bytes_total = counter("bytes_total")
        self.metadata_bytes_total = counter("metadata_bytes_total")
        self.enqueue_retries = counter("enqueue_retries_total")
        batch_duration = child("sent_batch_duration_seconds")
        assert isinstance(batch_duration, Histogram)
        self.batch_duration = batch_duration
        self.highest_sent = gauge("highest_sent_timestamp_seconds")
        self.queue_highest_sent = gauge("queue_highest_sent_timestamp_seconds")
        self.queue_highest_enqueued = gauge("queue_highest_timestamp_seconds")
        self.shard_capacity = gauge("shard_capacity")
        self.shards = gauge("shards")
        self.shards_desired = gauge("shards_desired")
        self.shards_max = gauge("shards_max")
        self.shards_min = gauge("shards_min")
        self.max_samples_per_send = gauge("max_samples_per_send")
        self.in_flight = self._labelled_gauge(IN_FLIGHT_METRIC)
        self.in_flight_time = self._integral(IN_FLIGHT_SECONDS_METRIC)
        self.shard_busy_time = self._integral(SHARD_BUSY_METRIC)
        self.spool_bytes = self._labelled_gauge(SPOOL_BYTES_METRIC)
        self.spool_batches = self._labelled_gauge(SPOOL_BATCHES_METRIC)
        refused_family = self._registry.get(SPOOL_REFUSED_METRIC)
        assert refused_family is not None
        refused = refused_family.labels(*self._key)
        assert isinstance(refused, Counter)
        self.spool_refused: Counter = refused
        self.send_phase: dict[str, Counter] = {}
        for phase in SEND_PHASES:
            found = self._labelled(SEND_PHASE_METRIC, phase)
            assert isinstance(found, Counter)
            self.send_phase[phase] = found
        batches = registry.get(SEND_BATCHES_METRIC)
        assert batches is not None
        found_batches = batches.labels(*self._key)
        assert isinstance(found_batches, Counter)
        self.send_batches = found_batches

    def _labelled_gauge(self, name: str) -> Gauge:
        family = self._registry.get(name)
        assert family is not None
        found = family.labels(*self._key)
        assert isinstance(found, Gauge)
        return found

    def _integral(self, name: str) -> TimeIntegral:
        family = self._registry.get(name)
        assert family is not None
        existing = family.children.get(self._key)
        if isinstance(existing, TimeIntegral):
            return existing
        integral = TimeIntegral()
        family.children[self._key] = integral
        return integral

    def dropped(self, kind: str, reason: str) -> Counter:
        family = self._registry.get(f"{PREFIX}{kind}_dropped_total")
        assert family is not None
        found = family.labels(*self._key, reason)
        assert isinstance(found, Counter)
        return found

    def total_dropped(self, kind: str) -> float:
        return self._registry.total(
            f"{PREFIX}{kind}_dropped_total", remote_name=self._key[0], url=self._key[1]
        )

    def protocol(self, version: str) -> Gauge:
        """The child of ``rwconsole_remote_write_protocol`` for ``version`` ("1.0"/"2.0")."""
        found = self._labelled(PROTOCOL_METRIC, version)
        assert isinstance(found, Gauge)
        return found

    def partial(self, kind: str) -> Counter:
        found = self._labelled(PARTIAL_WRITES_METRIC, kind)
        assert isinstance(found, Counter)
        return found

    def _labelled(self, name: str, extra: str) -> Counter | Gauge | Histogram:
        family = self._registry.get(name)
        assert family is not None
        return family.labels(*self._key, extra)

    def unregister(self) -> None:
        for family in self._registry.families():
            if family.label_names[:2] == QUEUE_LABELS:
                for key in [k for k in family.children if k[:2] == self._key]:
                    family.children.pop(key, None)
