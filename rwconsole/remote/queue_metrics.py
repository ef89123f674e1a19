"""The ``prometheus_remote_storage_*`` metric families and a per-queue handle.

Names, types and labels follow Alloy's ``prometheus.remote_write`` (which uses
Prometheus' queue manager): per-queue families carry ``remote_name`` and
``url``; ``*_dropped_total`` adds ``reason``. ``QueueMetrics`` holds the
children of one queue so the hot path increments attributes, not dict lookups.
"""

from __future__ import annotations

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
