"""Metrics pages shaped like Prometheus 2.42's (agent mode), written for one test state."""

from __future__ import annotations

from dataclasses import dataclass

LABELS = 'remote_name="{name}",url="{url}"'
BUCKETS = ("0.005", "0.01", "0.1", "1", "+Inf")


@dataclass
class Queue:
    name: str = "recv"
    url: str = "http://127.0.0.1:9201/api/v1/write"
    shards: float = 2
    desired: float = 1.5
    shards_min: float = 1
    shards_max: float = 7
    capacity: float = 2500
    max_per_send: float = 500
    pending: float = 10
    samples: float = 0
    retried: float = 0
    failed: float = 0
    dropped: float = 0
    sent_seconds: float = 0
    sends: float = 0
    highest_sent: float = 0
    segment: float = 3

    def lines(self, extra: str = "") -> list[str]:
        labels = LABELS.format(name=self.name, url=self.url) + extra
        gauges = {
            "shards": self.shards,
            "shards_desired": self.desired,
            "shards_min": self.shards_min,
            "shards_max": self.shards_max,
            "shard_capacity": self.capacity,
            "max_samples_per_send": self.max_per_send,
            "samples_pending": self.pending,
            "samples_total": self.samples,
            "samples_retried_total": self.retried,
            "samples_failed_total": self.failed,
            "queue_highest_sent_timestamp_seconds": self.highest_sent,
            "bytes_total": 1234,
        }
        out = [f"prometheus_remote_storage_{k}{{{labels}}} {v}" for k, v in gauges.items()]
        # Newer versions split drops by reason: the console sums them.
        out.append(
            f'prometheus_remote_storage_samples_dropped_total{{{labels},reason="too_old"}} '
            f"{self.dropped / 2}"
        )
        out.append(
            f'prometheus_remote_storage_samples_dropped_total{{{labels},reason="dropped_series"}} '
            f"{self.dropped / 2}"
        )
        name = "prometheus_remote_storage_sent_batch_duration_seconds"
        out.append(f"# TYPE {name} histogram")
        for le in BUCKETS:
            out.append(f'{name}_bucket{{{labels},le="{le}"}} {self.sends}')
        out.append(f"{name}_sum{{{labels}}} {self.sent_seconds}")
        out.append(f"{name}_count{{{labels}}} {self.sends}")
        out.append(
            f'prometheus_wal_watcher_current_segment{{consumer="{self.name}"}} {self.segment}'
        )
        return out


def page(*queues: Queue, samples_in: float = 0, highest_in: float = 0, agent: bool = True) -> bytes:
    lines = ["# HELP prometheus_remote_storage_samples_in_total Samples in.",
             "# TYPE prometheus_remote_storage_samples_in_total counter",
             f"prometheus_remote_storage_samples_in_total {samples_in}",
             f"prometheus_remote_storage_highest_timestamp_in_seconds {highest_in}"]  # fmt: skip
    if agent:
        lines.append("prometheus_agent_active_series 10")
    for queue in queues:
        lines.extend(queue.lines())
    return ("\n".join(lines) + "\n").encode()
