"""Metric metadata for remote write 1.0: sent on its own every ``send_interval``.

Prometheus sends metadata with 1.0 from its scrape targets; Alloy never does
(it has no scrape manager to ask). rwconsole sends it from the WAL's metadata
records: every ``metadata_config.send_interval`` the latest metadata of every
metric family with a live series is sent in requests of at most
``metadata_config.max_samples_per_send`` entries, with the same retry rules as
samples. The WAL keeps metadata per family, so a send costs one entry per
family, however many series there are. With remote write 2.0 metadata
travels with each series instead (see the queue), so this sender stays
idle unless the endpoint fell back from 2.0 to 1.0 (``active``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from rwconsole.labels import Labels, metric_name
from rwconsole.model import MetricMetadata
from rwconsole.protocol import encode
from rwconsole.remote.queue import SendClient
from rwconsole.remote.queue_metrics import QueueMetrics
from rwconsole.wal.families import family_of

log = logging.getLogger("rwconsole.metadata")


def family_name(labels: Labels, meta: MetricMetadata) -> str:
    """The metric family a series belongs to (``x`` for ``x_bucket`` of a histogram)."""
    return family_of(metric_name(labels), meta.type)


def families(entries: Sequence[tuple[Labels, MetricMetadata]]) -> list[tuple[str, MetricMetadata]]:
    """One (family name, metadata) per family, sorted by name."""
    by_family: dict[str, MetricMetadata] = {}
    for labels, meta in entries:
        name = family_name(labels, meta)
        if name:
            by_family[name] = meta
    return sorted(by_family.items())


class MetadataSender:
    """Sends metadata-only v1 requests for one endpoint.

    ``entries`` gives series labels with their metadata; ``families`` reduces
    them to one per family (``WalStorage.metadata_entries`` already gives one
    per family, so this costs the number of families).
    """

    def __init__(
        self,
        *,
        name: str,
        client: SendClient,
        metrics: QueueMetrics,
        entries: Callable[[], Sequence[tuple[Labels, MetricMetadata]]],
        send_interval: float,
        max_per_send: int,
        min_backoff: float,
        max_backoff: float,
        retry_on_http_429: bool,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self.name = name
        self._client = client
        self._metrics = metrics
        self._entries = entries
        self.send_interval = send_interval
        self.max_per_send = max_per_send
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._retry_on_429 = retry_on_http_429
        self._active = active
        self._task: asyncio.Task[None] | None = None
        self.last_error = ""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"metadata-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def replace_client(self, client: SendClient) -> None:
        """Send with ``client`` from the next request on (a reload swapped the endpoint's)."""
        self._client = client

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.send_interval)
            if self._active():
                await self.send_once()

    async def send_once(self) -> int:
        """Send every family's metadata now; returns the entries sent successfully."""
        items = families(self._entries())
        sent = 0
        for start in range(0, len(items), self.max_per_send):
            batch = items[start : start + self.max_per_send]
            if await self._send(batch):
                sent += len(batch)
        return sent

    async def _send(self, batch: list[tuple[str, MetricMetadata]]) -> bool:
        body = encode.compress(encode.encode_write_request_v1((), (), (), metadata=batch))
        backoff = self._min_backoff
        attempt = 0
        metrics = self._metrics
        while True:
            result = await self._client.send(
                body, protocol=1, attempt=attempt, items=0, retry_on_http_429=self._retry_on_429
            )
            if result.outcome == "ok":
                metrics.sent["metadata"].inc(len(batch))
                metrics.metadata_bytes_total.inc(len(body))
                return True
            self.last_error = result.reason
            if result.outcome != "recoverable":
                metrics.failed["metadata"].inc(len(batch))
                log.error(
                    "endpoint %s: metadata request failed for good (HTTP %s): %s",
                    self.name,
                    result.status,
                    result.reason,
                )
                return False
            sleep = result.retry_after if result.retry_after else backoff
            await asyncio.sleep(sleep)
            metrics.retried["metadata"].inc(len(batch))
            backoff = min(2 * sleep, self._max_backoff)
            attempt += 1
