"""The queue manager: one per endpoint, from WAL chunks to HTTP batches.

It owns the per-endpoint pipeline after the WAL: the series cache (external
labels, write relabelling, ``__`` label removal, labels encoded once per
series), the shards (a series always goes to ``ref % shards`` so its samples
stay in order), batching by ``max_samples_per_send`` / ``batch_send_deadline``,
the retry loop with backoff and Retry-After, ``sample_age_limit``, dynamic
resharding (send durations without the time the shared loop made a send wait,
see ``resharding.LoopLag``), pause/resume, live ``queue_config`` changes, and the delivered
position (the WAL position up to which every item is finished) that makes a
restart resume without loss.

Everything runs on one asyncio loop. Chunks come from a ``ChunkSource``; HTTP
attempts go through a ``SendClient``; both are injected, so this module knows
neither files nor sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress, filterfalse, repeat
from operator import eq, mod
from typing import Any, NamedTuple, Protocol, TypeVar

from rwconsole.config.schema import QueueConfig
from rwconsole.labels import Labels
from rwconsole.model import CUSTOM_BUCKETS_SCHEMA
from rwconsole.protocol import decode, encode
from rwconsole.remote.ahead import AheadLog, BatchItems, DeliveredAhead, pack_items, unpack_items
from rwconsole.remote.chunks import ITEM_KINDS, Chunk, Position
from rwconsole.remote.negotiation import VERSION_NAMES, ProtocolNegotiation
from rwconsole.remote.queue_metrics import (
    DROP_DROPPED_SERIES,
    DROP_HISTOGRAMS_DISABLED,
    DROP_NHCB_V1,
    DROP_SPOOL_UNREADABLE,
    DROP_TOO_OLD,
    DROP_UNKNOWN_SERIES,
    QueueMetrics,
)
from rwconsole.remote.resharding import (
    BULK_MAX_SHARDS,
    SHARD_UPDATE_INTERVAL,
    EwmaRate,
    LoopLag,
    desired_shards,
)
from rwconsole.remote.spool import Spool, SpoolError, SpoolRef

log = logging.getLogger("rwconsole.queue")


RESHARD_DISABLED_NO_SEND_SECONDS = 10.0
PARK_AFTER_LAG_SECONDS = 10.0
"""Lag from which a full shard of a failing queue parks batches rather than stopping
the reader: a burst that fills a shard for a moment is no outage."""
PROBE_SECONDS = 0.1
"""How soon one shard tries again after an attempt nothing answered (the receiver is
down): the others back off as usual and are woken by its first success."""
DRAIN_SHARDS = BULK_MAX_SHARDS
"""Shards a queue widens to (within max_shards) before it parks its first batch: a
parked batch stays with the shard that built it, so this is how many requests the
drain can have in flight."""
READ_RETRY_MIN_SECONDS = 1.0
READ_RETRY_MAX_SECONDS = 30.0
"""A read of the WAL that failed is tried again after 1 s, doubling up to this."""
_MISSING = object()
_THREAD_COMPRESS_BYTES = 64 * 1024
"""Request bodies this large are compressed in a worker thread (about 60 µs of
snappy and more, against some 30 µs of loop time to hand it over)."""
_T = TypeVar("_T")
_Columns = tuple[Sequence[int], Sequence[Any], Sequence[int], Sequence[float], Sequence[int] | None]
"""Samples still to place: refs, series keys, timestamps, values, start timestamps (or None)."""


class SendResultLike(Protocol):
    outcome: str
    status: int | None
    retry_after: float | None
    reason: str
    duration: float
    written: tuple[int, int, int] | None


class SendClient(Protocol):
    async def send(
        self, body: bytes, *, protocol: int, attempt: int, items: int, retry_on_http_429: bool
    ) -> SendResultLike: ...


class ChunkSource(Protocol):
    async def next_chunk(self) -> Chunk:
        """The next chunk in WAL order (waits until one is available)."""
        ...


class _Parked(NamedTuple):
    """Where a parked batch's body is, its counts (``ITEM_KINDS``), timestamp span and the
    body's protocol. The frame also holds the batch's items (``ahead.pack_items``)."""

    ref: SpoolRef
    counts: tuple[int, int, int]
    lowest: int
    highest: int
    protocol: int


@dataclass
class _Batch:
    refs: list[int] = field(default_factory=list)
    series: list[Any] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    exemplars: list[tuple[Any, Any]] = field(default_factory=list)
    histograms: list[tuple[Any, int, Any, int]] = field(default_factory=list)
    """(series key, timestamp, histogram, start timestamp) per histogram."""
    exemplar_refs: list[int] = field(default_factory=list)
    histogram_refs: list[int] = field(default_factory=list)
    count: int = 0
    first_seq: int = 0
    """Sequence number of the chunk of the batch's first item (a lower bound for all)."""
    last_seq: int = 0
    """Sequence number of the newest chunk the batch took from (an upper bound for all)."""
    starts: dict[int, int] | None = None
    """Start timestamps of float samples by index in ``values``, the nonzero ones only:
    None (nothing to keep) is the common case, and costs nothing per sample."""
    parked: _Parked | None = None
    """Set when the batch's encoded body is parked in the spool (``_park``); its columns
    are then empty and this holds what the rest of the queue asks of them."""

    def note_starts(self, first: int, starts: Iterable[int]) -> None:
        """Keep the nonzero ``starts`` of the samples placed from index ``first`` on."""
        found = {i: st for i, st in enumerate(starts, first) if st}
        if found:
            if self.starts is None:
                self.starts = found
            else:
                self.starts.update(found)

    def start_column(self) -> list[int] | None:
        """Start timestamps aligned with ``values`` (0 = none), or None without any."""
        if not self.starts:
            return None
        column = [0] * len(self.values)
        for i, st in self.starts.items():
            column[i] = st
        return column

    def items(self) -> BatchItems:
        """Which WAL items the batch holds (not for a parked batch: its frame has them)."""
        return (
            (self.refs, self.timestamps),
            (self.exemplar_refs, [e.timestamp for _, e in self.exemplars]),
            (self.histogram_refs, [h[1] for h in self.histograms]),
        )

    def counts(self) -> tuple[int, int, int]:
        if self.parked is not None:
            return self.parked.counts
        return len(self.values), len(self.exemplars), len(self.histograms)

    def lowest_timestamp(self) -> int:
        if self.parked is not None:
            return self.parked.lowest
        candidates = [min(self.timestamps)] if self.timestamps else []
        candidates += [e.timestamp for _, e in self.exemplars]
        candidates += [h[1] for h in self.histograms]
        return min(candidates) if candidates else 0

    def highest_timestamp(self) -> int:
        if self.parked is not None:
            return self.parked.highest
        candidates = [max(self.timestamps)] if self.timestamps else []
        candidates += [e.timestamp for _, e in self.exemplars]
        candidates += [h[1] for h in self.histograms]
        return max(candidates) if candidates else 0


class _Interrupted(Exception):
    """A reshard stopped a shard between two attempts; its batch stays unfinished."""


async def _wait_or_stop(event: asyncio.Event, stop: asyncio.Event, timeout: float | None) -> None:
    """Wait for ``event`` (or ``timeout``); raise ``_Interrupted`` as soon as ``stop`` is set."""
    if stop.is_set():
        raise _Interrupted
    waiters = [asyncio.ensure_future(stop.wait())]
    if event is not stop:
        waiters.append(asyncio.ensure_future(event.wait()))
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    if stop.is_set():
        raise _Interrupted


class _Shard:
    __slots__ = (
        "done",
        "flushing",
        "full",
        "inflight",
        "max_full",
        "max_per_send",
        "park",
        "parked",
        "partial",
        "space",
        "stop",
        "task",
        "wakeup",
    )

    def __init__(
        self, max_per_send: int, capacity: int, park: Callable[[_Batch], bool] | None = None
    ) -> None:
        self.max_per_send = max_per_send
        self.max_full = max(1, capacity // max_per_send)
        self.partial = _Batch()
        self.full: deque[_Batch] = deque()
        self.parked: deque[_Batch] = deque()
        """Full batches whose bodies wait in the spool: all newer than those in ``full``."""
        self.park = park
        self.inflight: _Batch | None = None
        self.done = 0
        self.flushing = False
        self.wakeup = asyncio.Event()
        self.space = asyncio.Event()
        self.stop = asyncio.Event()
        """Set by a reshard: finish the current HTTP attempt, then exit."""
        self.task: asyncio.Task[None] | None = None

    def seal(self) -> bool:
        """Move a full partial batch to the full queue if there is room, else park it
        in the spool if the queue has one that takes it.

        Once a batch is parked, the next ones are parked too until the parked ones
        are sent, so batches leave in the order they were built."""
        if self.partial.count < self.max_per_send:
            return False
        if not self.parked and len(self.full) < self.max_full:
            self.full.append(self.partial)
        elif self.park is not None and self.park(self.partial):
            self.parked.append(self.partial)
        else:
            return False
        self.partial = _Batch()
        self.wakeup.set()
        return True

    def take(self, include_partial: bool) -> _Batch | None:
        if self.full:
            batch = self.full.popleft()
            self.seal()
            return batch
        if self.parked:
            batch = self.parked.popleft()
            self.seal()
            return batch
        if include_partial and self.partial.count:
            batch, self.partial = self.partial, _Batch()
            return batch
        return None

    def oldest_seq(self) -> int | None:
        """Chunk sequence of the oldest unfinished item in this shard, if any."""
        if self.inflight is not None:
            return self.inflight.first_seq
        if self.full:
            return self.full[0].first_seq
        if self.parked:
            return self.parked[0].first_seq
        if self.partial.count:
            return self.partial.first_seq
        return None

    def unfinished(self) -> list[_Batch]:
        """Every unfinished batch, oldest first."""
        batches = [self.inflight] if self.inflight is not None else []
        batches.extend(self.full)
        batches.extend(self.parked)
        if self.partial.count:
            batches.append(self.partial)
        return batches


def _shed(batch: _Batch, cutoff: int) -> BatchItems:
    """Take the items older than ``cutoff`` (ms) out of ``batch``: which went."""
    return _take_out(
        batch,
        [i for i, t in enumerate(batch.timestamps) if t >= cutoff],
        [i for i, (_, e) in enumerate(batch.exemplars) if e.timestamp >= cutoff],
        [i for i, h in enumerate(batch.histograms) if h[1] >= cutoff],
    )


def _v1_histograms(batch: _Batch) -> list[int]:
    """Indices of the batch's histograms that have a 1.0 form (not custom buckets)."""
    return [i for i, h in enumerate(batch.histograms) if h[2].schema != CUSTOM_BUCKETS_SCHEMA]


def _take_out(
    batch: _Batch, keep: Sequence[int], keep_ex: Sequence[int], keep_h: Sequence[int]
) -> BatchItems:
    """Keep only the items at these indices (ascending) of ``batch``, in place: the
    others, which went."""
    gone = sorted(set(range(len(batch.values))).difference(keep))
    gone_ex = sorted(set(range(len(batch.exemplars))).difference(keep_ex))
    gone_h = sorted(set(range(len(batch.histograms))).difference(keep_h))
    taken: BatchItems = (
        ([batch.refs[i] for i in gone], [batch.timestamps[i] for i in gone]),
        (
            [batch.exemplar_refs[i] for i in gone_ex],
            [batch.exemplars[i][1].timestamp for i in gone_ex],
        ),
        ([batch.histogram_refs[i] for i in gone_h], [batch.histograms[i][1] for i in gone_h]),
    )
    starts = batch.starts
    batch.refs = [batch.refs[i] for i in keep]
    batch.series = [batch.series[i] for i in keep]
    batch.timestamps = [batch.timestamps[i] for i in keep]
    batch.values = [batch.values[i] for i in keep]
    batch.exemplars = [batch.exemplars[i] for i in keep_ex]
    batch.exemplar_refs = [batch.exemplar_refs[i] for i in keep_ex]
    batch.histograms = [batch.histograms[i] for i in keep_h]
    batch.histogram_refs = [batch.histogram_refs[i] for i in keep_h]
    batch.starts = None
    if starts:
        batch.note_starts(0, [starts.get(i, 0) for i in keep])
    batch.count = len(keep) + len(keep_ex) + len(keep_h)
    return taken


class QueueManager:
    """Forwards one endpoint's share of the WAL."""

    def __init__(
        self,
        *,
        name: str,
        url: str,
        settings: QueueConfig,
        client: SendClient,
        source: ChunkSource,
        lookup: Callable[[int], Labels | None],
        metrics: QueueMetrics,
        data_in: EwmaRate,
        highest_timestamp_in: Callable[[], float],
        start_position: Position,
        protocol: int = 1,
        external_labels: Labels = (),
        relabel: Callable[[Labels], Labels | None] | None = None,
        metadata_lookup: Callable[[int], Any] | None = None,
        metadata_changes: Callable[[int], tuple[int, list[int] | None]] | None = None,
        send_exemplars: bool = True,
        send_native_histograms: bool = False,
        flush_deadline: float = 60.0,
        update_interval: float = SHARD_UPDATE_INTERVAL,
        clock: Callable[[], float] = time.time,
        protocol_reprobe_interval: float = 3600.0,
        spool: Spool | None = None,
        park_after_lag: float = PARK_AFTER_LAG_SECONDS,
        delivered_ahead: DeliveredAhead | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.settings = settings
        self.protocol = protocol
        self.send_exemplars = send_exemplars
        self.send_native_histograms = send_native_histograms
        self.flush_deadline = flush_deadline
        self.metrics = metrics
        self.read_position: Position = start_position
        self.delivered_position: Position = start_position
        self.on_delivered: Callable[[Position], None] | None = None
        self.delivered_ahead: DeliveredAhead | None = None
        """Set at stop: the items finished beyond ``delivered_position`` (with the
        ``delivered_ahead`` it started with, while the position has not passed it), or
        None. The one it started with is read, never changed."""
        self.last_error = ""
        self.last_error_time = 0.0
        self.last_status: int | None = None
        self._log = logging.LoggerAdapter(log, {"endpoint": name})
        self._client = client
        self._source = source
        self._lookup = lookup
        self._external = external_labels
        self._relabel = relabel
        self._metadata_lookup = metadata_lookup
        self._metadata_changes = metadata_changes if protocol == 2 else None
        """(version, refs changed since) of the metadata source: 2.0 series keys carry
        metadata, and metadata can arrive after a series was first read."""
        self._metadata_seen = metadata_changes(0)[0] if self._metadata_changes else 0
        self._clock = clock
        self._data_in = data_in
        self._highest_in = highest_timestamp_in
        self._series: dict[int, Any] = {}
        """Ref -> series key, or None for a series relabelling dropped."""
        self._dropped_series = 0
        """How many values of ``_series`` are None."""
        self._shards: list[_Shard] = []
        self._legacy: list[_Shard] = []
        """Shards replaced while they held parked batches: they send all they hold, in
        order, and the shards that replaced them start sending only after them."""
        self._spool = spool
        self._park_after_lag = park_after_lag
        self._park_estimate = 0
        """Size of the last parked body: what the next one is checked against first."""
        self._widening: asyncio.Task[None] | None = None
        """The reshard to ``DRAIN_SHARDS`` that comes before parking, while it runs."""
        self._tasks: list[asyncio.Task[None]] = []
        # (sequence, end position) of chunks not yet known to be delivered.
        self._marks: deque[tuple[int, Position]] = deque()
        self._ahead: AheadLog[SpoolRef] = AheadLog()
        """Batches finished beyond the delivered position (a parked one by its frame)."""
        self._resumed_ahead = (
            delivered_ahead
            if delivered_ahead is not None and start_position < delivered_ahead.until
            else None
        )
        """Items delivered before the stop this queue resumes from: handed on whole at a
        stop before the position passes them (what is skipped is not delivered again)."""
        self._skipping = self._resumed_ahead.copy() if self._resumed_ahead is not None else None
        """What of ``_resumed_ahead`` is still to skip, while reading up to its ``until``."""
        self._skipped = 0
        self._read_end_seen: Position = start_position
        """End of the last chunk taken from the source (placed whole or not)."""
        self._parked_waiting = 0
        """Parked batches not yet finished."""
        self._next_seq = 1
        self._delivered_seq = 0
        """Sequence number of the chunk the delivered position is the end of."""
        self._reading_seq: int | None = None
        self._resume = asyncio.Event()
        self._resume.set()
        self._gate = asyncio.Event()
        self._gate.set()
        self._reshard_lock = asyncio.Lock()
        self._update_interval = update_interval
        self._data_out = EwmaRate(update_interval)
        self._data_dropped = EwmaRate(update_interval)
        self._data_out_duration = EwmaRate(update_interval)
        self._data_out_wait = EwmaRate(update_interval)
        """Nanoseconds sends waited for the loop (``_SendPhases`` loop_wait)."""
        self._loop_lag: LoopLag | None = None
        self._reshard_disabled_until = 0.0
        self._last_send_time = 0.0
        self._last_ok_wall = 0.0
        self._retrying = 0
        self._jitter = random.Random()
        self._probing = False
        """Whether a shard waits ``PROBE_SECONDS`` rather than its backoff (see ``_send_batch``)."""
        self._recovered = asyncio.Event()
        """Set (and replaced) when a send succeeds while others wait to retry."""
        self._first_enqueued_s = 0.0
        self._stopped = False
        self._reading_stopped = False
        self.negotiation = ProtocolNegotiation(
            protocol, reprobe_interval=protocol_reprobe_interval, clock=clock
        )
        self._partial_logged = 0.0
        self.shards_reason = ""
        """Why desired shards is what it is (``ShardDecision.explain``), for the console."""
        self._compress_off_loop = len(os.sched_getaffinity(0)) > 1
        """A worker thread compresses only while another CPU can run it: on one CPU it
        would only add the hand-over and waits for the GIL to a send."""

    # ---- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        s = self.settings
        self._publish_settings()
        self._publish_protocol()
        self.metrics.shards_desired.set(s.min_shards)
        self._loop_lag = LoopLag.acquire()
        self._shards = self._new_shards(s.min_shards)
        self._tasks = [
            asyncio.create_task(self._read_loop(), name=f"queue-{self.name}-read"),
            asyncio.create_task(self._reshard_loop(), name=f"queue-{self.name}-reshard"),
        ]

    async def stop(self, deadline: float | None = None) -> None:
        """Send what is buffered within ``deadline`` seconds, then cancel the rest.

        Items still unsent when the deadline passes are not lost: the delivered
        position does not cover them, so they are read again after a restart.
        """
        if self._stopped:
            return
        self._stopped = True
        if self._widening is not None:
            await self._cancel([self._widening])
        loop = asyncio.get_running_loop()
        until = loop.time() + (self.flush_deadline if deadline is None else deadline)
        read_task, *others = self._tasks or [None]
        await self._cancel(others)
        for shard in self._shards:
            if shard.stop.is_set():
                self._resume_stopped(shard)
        if read_task is not None:
            await self._stop_reading(read_task, until)
        self._reading_seq = None
        every = [*self._legacy, *self._shards]
        for shard in every:
            shard.flushing = True
            shard.wakeup.set()
        tasks = [s.task for s in every if s.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, until - loop.time()))
            await self._cancel(pending)
            if pending:
                self._log.warning(
                    "queue %s: %d shard(s) still sending at shutdown; their data stays in the "
                    "WAL and is sent after a restart",
                    self.name,
                    len(pending),
                )
        if self._loop_lag is not None:
            await self._loop_lag.release()
            self._loop_lag = None
        self._advance_delivered()
        self._collect_delivered_ahead()
        if self._spool is not None:
            # What is parked and unsent stays undelivered in the WAL for the next start.
            self._spool.close()
            self._parked_waiting = 0
            self._publish_spool()

    def _resume_stopped(self, shard: _Shard) -> None:
        """A shard that a reshard cancelled by the stop had stopped sends again, so the
        stop flushes it: a task still in its HTTP attempt goes on, an ended one is
        started again with the batch it was interrupted in first."""
        shard.stop.clear()
        if shard.task is not None and not shard.task.done():
            return
        if shard.inflight is not None:
            shard.full.appendleft(shard.inflight)
            shard.inflight = None
        shard.task = asyncio.create_task(self._run_shard(shard), name=f"queue-{self.name}-shard")

    async def _stop_reading(self, read_task: asyncio.Task[None], until: float) -> None:
        """End the read loop at a chunk boundary (within the deadline).

        A chunk cut off half placed has no mark, so the delivered position would
        stay before it although its placed part is sent at shutdown, and a
        restart would send that part again.
        """
        self._reading_stopped = True
        if self._reading_seq is not None:
            timeout = max(0.0, until - asyncio.get_running_loop().time())
            await asyncio.wait([read_task], timeout=timeout)
        await self._cancel([read_task])

    async def _cancel(self, tasks: Iterable[asyncio.Task[None]]) -> None:
        """Cancel ``tasks`` and wait for them. One that had failed is logged, not raised,
        so a stop still goes on to flush, save the delivered position and hand on what
        was delivered ahead."""
        tasks = list(tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception as error:
                self._log.error("queue %s: a task failed: %s", self.name, error, exc_info=error)

    def _publish_settings(self) -> None:
        s = self.settings
        self.metrics.shard_capacity.set(s.capacity)
        self.metrics.shards_max.set(s.max_shards)
        self.metrics.shards_min.set(s.min_shards)
        self.metrics.max_samples_per_send.set(s.max_samples_per_send)

    def _new_shards(self, n: int) -> list[_Shard]:
        s = self.settings
        park = self._park if self._spool is not None else None
        shards = [_Shard(s.max_samples_per_send, s.capacity, park) for _ in range(n)]
        before = [shard.task for shard in self._legacy if shard.task is not None]
        for i, shard in enumerate(shards):
            shard.task = asyncio.create_task(
                self._run_shard(shard, before), name=f"queue-{self.name}-shard-{i}"
            )
        self.metrics.shards.set(n)
        return shards

    # ---- commands ------------------------------------------------------------------

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    async def apply_settings(self, new: QueueConfig) -> None:
        """Change queue_config live: no restart, no loss, no reordering.

        ``new`` has passed ``queue_config_problems`` at the engine's command boundary.
        """
        old = self.settings
        self.settings = new
        self._publish_settings()
        current = len(self._shards)
        target = max(new.min_shards, min(new.max_shards, current))
        if (
            target != current
            or new.capacity != old.capacity
            or new.max_samples_per_send != old.max_samples_per_send
        ):
            await self._reshard(target)
        for shard in self._shards:
            shard.wakeup.set()
            shard.space.set()

    def forget_series(self, refs: Sequence[int]) -> None:
        series = self._series
        for ref in refs:
            if series.pop(ref, _MISSING) is None:
                self._dropped_series -= 1

    def replace_client(self, client: SendClient) -> None:
        """Send from the next attempt on with ``client`` (a reload changed auth/TLS/headers)."""
        self._client = client

    def relabel_series(
        self,
        external_labels: Labels,
        relabel: Callable[[Labels], Labels | None] | None,
        *,
        send_exemplars: bool,
        send_native_histograms: bool,
    ) -> None:
        """New labelling for items read from now on; batches already placed keep theirs."""
        self._external = external_labels
        self._relabel = relabel
        self.send_exemplars = send_exemplars
        self.send_native_histograms = send_native_histograms
        self._series.clear()
        self._dropped_series = 0

    # ---- reading and enqueueing ----------------------------------------------------

    async def _read_loop(self) -> None:
        pause = READ_RETRY_MIN_SECONDS
        while not self._reading_stopped:
            try:
                chunk = await self._source.next_chunk()
            except Exception as err:
                # Reading the WAL failed (an I/O error, say): nothing was taken from it,
                # so the same read is tried again, less often while it keeps failing.
                self.last_error = f"reading the WAL: {err}"
                self.last_error_time = self._clock()
                self._log.error(
                    "queue %s: reading the WAL failed (%s); trying again in %.0fs",
                    self.name,
                    err,
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(2 * pause, READ_RETRY_MAX_SECONDS)
                continue
            pause = READ_RETRY_MIN_SECONDS
            if self._skipping is not None:
                chunk = self._skip_delivered(chunk, self._skipping)
            self._read_end_seen = chunk.end
            seq = self._next_seq
            self._next_seq += 1
            self._reading_seq = seq
            if self._metadata_changes is not None:
                self._refresh_metadata(self._metadata_changes)
            await self._enqueue_chunk(chunk, seq)
            self._marks.append((seq, chunk.end))
            self._reading_seq = None
            self.read_position = chunk.end
            self._advance_delivered()
            if self._parked_waiting:
                # Chunks come without a pause while the queue parks them: the shards'
                # sends get a turn of the loop after each.
                await asyncio.sleep(0)

    def _skip_delivered(self, chunk: Chunk, skipping: DeliveredAhead) -> Chunk:
        """``chunk`` without the items delivered before the stop this queue resumes from."""
        chunk, skipped = skipping.skip(chunk)
        self._skipped += skipped
        if chunk.end < skipping.until:
            return chunk
        # What is left lay in chunks before the saved position: a batch's items are kept
        # until the position passes its newest chunk.
        self._log.info(
            "queue %s: skipped %d items delivered before the restart beyond its saved position",
            self.name,
            self._skipped,
        )
        self._skipping = None
        return chunk

    def _resolve(self, ref: int) -> Any:
        labels = self._lookup(ref)
        if labels is None:
            return _MISSING
        if self._external:
            present = {name for name, _ in labels}
            extra = [pair for pair in self._external if pair[0] not in present]
            if extra:
                labels = tuple(sorted((*labels, *extra)))
        if self._relabel is not None:
            relabelled = self._relabel(labels)
            if relabelled is None:
                return self._drop(ref)
            labels = relabelled
        labels = tuple(
            pair for pair in labels if not pair[0].startswith("__") or pair[0] == "__name__"
        )
        if not labels:
            return self._drop(ref)
        key: Any
        if self.protocol == 1:
            key = encode.encode_series_v1(labels)
        else:
            # Remote write 2.0 carries the series' metadata with every entry.
            meta = self._metadata_lookup(ref) if self._metadata_lookup is not None else None
            key = (labels, meta)
        self._series[ref] = key
        return key

    def _refresh_metadata(self, changes: Callable[[int], tuple[int, list[int] | None]]) -> None:
        """Give cached 2.0 series keys the metadata that changed since they were made.

        Items placed before keep the key they had; the next ones carry the new value.
        """
        version, refs = changes(self._metadata_seen)
        if version == self._metadata_seen:
            return
        self._metadata_seen = version
        series = self._series
        lookup = self._metadata_lookup
        if lookup is None:
            return
        for ref in list(series) if refs is None else set(refs):
            key = series.get(ref)
            if key is None:  # not cached, or dropped by relabelling
                continue
            meta = lookup(ref)
            if meta is not key[1]:
                series[ref] = (key[0], meta)

    def _drop(self, ref: int) -> None:
        """Remember that relabelling (or an empty label set) drops this series."""
        self._series[ref] = None
        self._dropped_series += 1

    async def _wait_for_space(self, shard: _Shard) -> None:
        """Wait until ``shard`` took a batch; with a spool, at most a second, so a reader
        held up by an outage tries again to park once the lag has grown."""
        self.metrics.enqueue_retries.inc()
        shard.space.clear()
        shard.wakeup.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0 if self._spool is not None else None):
                await shard.space.wait()
        await self._gate.wait()

    async def _enqueue_chunk(self, chunk: Chunk, seq: int) -> None:
        await self._gate.wait()
        limit = self.settings.sample_age_limit
        cutoff_ms = int((self._clock() - limit) * 1000) if limit > 0 else None
        if chunk.refs:
            await self._enqueue_samples(chunk, seq, cutoff_ms)
        if chunk.exemplars and self.send_exemplars:
            await self._enqueue_items(
                "exemplars",
                chunk.exemplars,
                seq,
                cutoff_ms,
                lambda e: e.timestamp,
                lambda batch, key, e: batch.exemplars.append((key, e)),
            )
        if chunk.histograms:
            await self._enqueue_histograms(chunk, seq, cutoff_ms)

    def _count_drops(self, kind: str, dropped_series: int, unknown: int, too_old: int) -> None:
        if dropped_series:
            self.metrics.dropped(kind, DROP_DROPPED_SERIES).inc(dropped_series)
            self._data_dropped.add(dropped_series)
        if unknown:
            self.metrics.dropped(kind, DROP_UNKNOWN_SERIES).inc(unknown)
            self._data_dropped.add(unknown)
        if too_old:
            self.metrics.dropped(kind, DROP_TOO_OLD).inc(too_old)

    def _note_enqueued(self, kind: str, kept: int, highest_ms: int) -> None:
        if not kept:
            return
        highest = highest_ms // 1000
        if highest > self.metrics.queue_highest_enqueued.value:
            self.metrics.queue_highest_enqueued.set(highest)
        if not self._first_enqueued_s:
            self._first_enqueued_s = highest

    async def _enqueue_samples(self, chunk: Chunk, seq: int, cutoff_ms: int | None) -> None:
        """The hot path: whole runs of samples moved into shard batches by slices."""
        refs, timestamps, values = chunk.refs, chunk.timestamps, chunk.values
        n = len(refs)
        # Counted as pending before the first item can be sent, so the gauge never dips.
        self.metrics.pending["samples"].inc(n)
        dropped_series = dropped_unknown = too_old = 0
        # Looked up once per chunk: a chunk blocked by a full shard goes on after each
        # sent batch, and looking its remainder up again each time would cost more
        # than placing it.
        series = self._series
        keys: list[Any] = []
        try:
            keys = list(map(series.__getitem__, refs))
            unknown = False
        except KeyError:
            # New series (a target's first scrapes create thousands at once): resolved
            # here, and the chunk still goes in bulk unless one is unknown or dropped.
            for ref in dict.fromkeys(filterfalse(series.__contains__, refs)):
                self._resolve(ref)
            try:
                keys = list(map(series.__getitem__, refs))
                unknown = False
            except KeyError:
                unknown = True
        needs_decision = (
            unknown
            or (self._dropped_series > 0 and None in keys)
            or (cutoff_ms is not None and n > 0 and min(timestamps) < cutoff_ms)
        )
        rest: _Columns = (refs, keys, timestamps, values, chunk.start_timestamps)
        while True:
            # The shards are looked up afresh after each wait: a reshard may have
            # happened meanwhile.
            if needs_decision or len(self._shards) > BULK_MAX_SHARDS:
                rest_refs, _, rest_timestamps, rest_values, rest_starts = rest
                dropped_series, dropped_unknown, too_old = await self._enqueue_samples_each(
                    rest_refs, rest_timestamps, rest_values, rest_starts, seq, cutoff_ms
                )
                break
            left = await self._enqueue_samples_bulk(*rest, seq)
            if left is None:
                break
            rest = left
        kept = n - dropped_series - dropped_unknown - too_old
        self.metrics.pending["samples"].dec(n - kept)
        self._note_enqueued("samples", kept, max(timestamps) if kept else 0)
        self._count_drops("samples", dropped_series, dropped_unknown, too_old)

    async def _enqueue_samples_bulk(
        self,
        refs: Sequence[int],
        keys: Sequence[Any],
        timestamps: Sequence[int],
        values: Sequence[float],
        starts: Sequence[int] | None,
        seq: int,
    ) -> _Columns | None:
        """Place samples of known series, waiting for room in full shards: None when
        everything is placed, or what is left when a reshard changed the shards
        meanwhile (to be dealt out to the new ones)."""
        shards = self._shards
        pending = [deque(pieces) for pieces in _shard_positions(refs, len(shards))]
        while True:
            blocked: _Shard | None = None
            for shard, pieces in zip(shards, pending, strict=True):
                while pieces:
                    piece = pieces[0]
                    placed = self._fill_shard(
                        shard, piece, refs, keys, timestamps, values, starts, seq
                    )
                    if placed < len(piece):
                        pieces[0] = piece[placed:]
                        blocked = blocked or shard
                        break
                    pieces.popleft()
            if blocked is None:
                return None
            # A blocked shard's own pieces wait where they are (no re-split per wait).
            await self._wait_for_space(blocked)
            if self._shards is not shards:
                left = sorted(i for pieces in pending for piece in pieces for i in piece)
                if len(shards) == 1:
                    start = left[0]
                    return (
                        refs[start:],
                        keys[start:],
                        timestamps[start:],
                        values[start:],
                        starts[start:] if starts is not None else None,
                    )
                return (
                    list(map(refs.__getitem__, left)),
                    list(map(keys.__getitem__, left)),
                    list(map(timestamps.__getitem__, left)),
                    list(map(values.__getitem__, left)),
                    list(map(starts.__getitem__, left)) if starts is not None else None,
                )

    def _fill_shard(
        self,
        shard: _Shard,
        indexes: Sequence[int],
        refs: Sequence[int],
        keys: Sequence[Any],
        timestamps: Sequence[int],
        values: Sequence[float],
        starts: Sequence[int] | None,
        seq: int,
    ) -> int:
        """Append ``indexes``' samples to the shard's batches; how many fitted.

        A ``range`` (also a strided one) is taken by slices, a list item by item."""
        contiguous = isinstance(indexes, range)
        step = indexes.step if isinstance(indexes, range) else 1
        max_per_send = self.settings.max_samples_per_send
        placed, total = 0, len(indexes)
        while placed < total:
            batch = shard.partial
            if batch.count >= max_per_send:
                if not shard.seal():
                    break  # the shard is full: the caller waits for room
                batch = shard.partial
            if not batch.count:
                batch.first_seq = seq
            batch.last_seq = seq
            take = min(max_per_send - batch.count, total - placed)
            if contiguous:
                start = indexes[placed]
                part = slice(start, start + take * step, step)
                batch.refs.extend(refs[part])
                batch.series.extend(keys[part])
                batch.timestamps.extend(timestamps[part])
                if starts is not None:
                    batch.note_starts(len(batch.values), starts[part])
                batch.values.extend(values[part])
            else:
                picked = indexes[placed : placed + take]
                batch.refs.extend(map(refs.__getitem__, picked))
                batch.series.extend(map(keys.__getitem__, picked))
                batch.timestamps.extend(map(timestamps.__getitem__, picked))
                if starts is not None:
                    batch.note_starts(len(batch.values), map(starts.__getitem__, picked))
                batch.values.extend(map(values.__getitem__, picked))
            batch.count += take
            placed += take
            if batch.count >= max_per_send:
                shard.seal()
        return placed

    async def _enqueue_samples_each(
        self,
        refs: Sequence[int],
        timestamps: Sequence[int],
        values: Sequence[float],
        starts: Sequence[int] | None,
        seq: int,
        cutoff_ms: int | None,
    ) -> tuple[int, int, int]:
        """Sample by sample, waiting for room; returns (dropped series, unknown, too old)."""
        series = self._series
        dropped_series = dropped_unknown = too_old = 0
        i, n = 0, len(refs)
        while True:
            shards = self._shards
            n_shards = len(shards)
            max_per_send = self.settings.max_samples_per_send
            blocked: _Shard | None = None
            while i < n:
                ref = refs[i]
                key = series.get(ref, _MISSING)
                if key is _MISSING:
                    key = self._resolve(ref)
                    if key is _MISSING:
                        dropped_unknown += 1
                        i += 1
                        continue
                if key is None:
                    dropped_series += 1
                    i += 1
                    continue
                t = timestamps[i]
                if cutoff_ms is not None and t < cutoff_ms:
                    too_old += 1
                    i += 1
                    continue
                shard = shards[ref % n_shards]
                batch = shard.partial
                if batch.count >= max_per_send:
                    if not shard.seal():
                        blocked = shard
                        break
                    batch = shard.partial
                if not batch.count:
                    batch.first_seq = seq
                batch.last_seq = seq
                batch.refs.append(ref)
                batch.series.append(key)
                batch.timestamps.append(t)
                if starts is not None and starts[i]:
                    batch.note_starts(len(batch.values), (starts[i],))
                batch.values.append(values[i])
                batch.count += 1
                if batch.count >= max_per_send:
                    shard.seal()
                i += 1
            if blocked is None:
                break
            await self._wait_for_space(blocked)
        return dropped_series, dropped_unknown, too_old

    async def _enqueue_items(
        self,
        kind: str,
        items: Sequence[Any],
        seq: int,
        cutoff_ms: int | None,
        timestamp_of: Callable[[Any], int],
        add: Callable[[_Batch, Any, Any], None],
    ) -> None:
        dropped_series = dropped_unknown = too_old = kept = 0
        highest = 0
        self.metrics.pending[kind].inc(len(items))
        refs_attr = "exemplar_refs" if kind == "exemplars" else "histogram_refs"
        for item in items:
            key = self._series.get(item.ref, _MISSING)
            if key is _MISSING:
                key = self._resolve(item.ref)
            if key is _MISSING:
                dropped_unknown += 1
                continue
            if key is None:
                dropped_series += 1
                continue
            t = timestamp_of(item)
            if cutoff_ms is not None and t < cutoff_ms:
                too_old += 1
                continue
            while True:
                shard = self._shards[item.ref % len(self._shards)]
                if shard.partial.count < self.settings.max_samples_per_send or shard.seal():
                    break
                await self._wait_for_space(shard)
            batch = shard.partial
            if not batch.count:
                batch.first_seq = seq
            batch.last_seq = seq
            add(batch, key, item)
            getattr(batch, refs_attr).append(item.ref)
            batch.count += 1
            kept += 1
            highest = max(highest, t)
            if batch.count >= self.settings.max_samples_per_send:
                shard.seal()
        self.metrics.pending[kind].dec(len(items) - kept)
        self._note_enqueued(kind, kept, highest)
        self._count_drops(kind, dropped_series, dropped_unknown, too_old)

    async def _enqueue_histograms(self, chunk: Chunk, seq: int, cutoff_ms: int | None) -> None:
        histograms = chunk.histograms
        if not self.send_native_histograms:
            self.metrics.dropped("histograms", DROP_HISTOGRAMS_DISABLED).inc(len(histograms))
            return
        if self.protocol == 1:
            custom = sum(1 for h in histograms if h.histogram.schema == CUSTOM_BUCKETS_SCHEMA)
            if custom:
                self.metrics.dropped("histograms", DROP_NHCB_V1).inc(custom)
                histograms = [h for h in histograms if h.histogram.schema != CUSTOM_BUCKETS_SCHEMA]
        await self._enqueue_items(
            "histograms",
            histograms,
            seq,
            cutoff_ms,
            lambda h: h.timestamp,
            lambda batch, key, h: batch.histograms.append(
                (key, h.timestamp, h.histogram, h.start_timestamp)
            ),
        )

    # ---- the spool -----------------------------------------------------------------

    def _park(self, batch: _Batch) -> bool:
        """Encode a full batch now and park its body in the spool (a full shard's next
        batch, instead of stopping the reader): whether the spool took it.

        Nothing is parked while ``sample_age_limit`` is set: a parked body is not
        shed item by item. A body goes in the protocol negotiated now; a 2.0 body
        that meets a receiver speaking only 1.0 is decoded again (``_unparked``)."""
        spool = self._spool
        if spool is None or not spool.enabled or self.settings.sample_age_limit > 0:
            return False
        starting = not self._holds_parked()
        if self._stopped or (starting and not self._worth_parking()):
            return False
        if not spool.has_room(self._park_estimate):
            self.metrics.spool_refused.inc()
            return False
        if starting:
            lanes = min(self.settings.max_shards, DRAIN_SHARDS)
            widening = self._widening is not None and not self._widening.done()
            if len(self._shards) < lanes or widening:
                self._widen(lanes)
                return False
        protocol = self.negotiation.current
        # After a fallback to 1.0 the batch still has 2.0 series keys: encoded as 1.0.
        encoded = batch if protocol == self.protocol else self._as_v1(batch)
        body = encode.compress(self._serialize(encoded, protocol))
        self._park_estimate = len(body)
        ref = spool.put(body, pack_items(batch.items()))
        if ref is None:
            self.metrics.spool_refused.inc()
            return False
        self._parked_waiting += 1
        batch.count = encoded.count  # without what 1.0 cannot carry (counted as dropped)
        batch.parked = _Parked(
            ref, encoded.counts(), encoded.lowest_timestamp(), encoded.highest_timestamp(), protocol
        )
        batch.refs, batch.series, batch.timestamps, batch.values = [], [], [], []
        batch.exemplars, batch.exemplar_refs = [], []
        batch.histograms, batch.histogram_refs = [], []
        batch.starts = None
        self._publish_spool()
        return True

    def _worth_parking(self) -> bool:
        """Whether to start parking: the receiver does not accept (its last answer was a
        failure) and the queue lags ``park_after_lag``. A queue behind because the loop
        is out of CPU does not park: parking would take the reader's backpressure away
        and spend the CPU the sends need on encoding ahead."""
        failing = self.last_error_time > self._last_ok_wall or self._retrying > 0
        return failing and self.lag_seconds() >= self._park_after_lag

    def _widen(self, n: int) -> None:
        """Reshard to ``n`` shards in the background (the reader waits meanwhile)."""
        if self._widening is None or self._widening.done():
            self._widening = asyncio.create_task(
                self._reshard(max(n, len(self._shards))), name=f"queue-{self.name}-widen"
            )

    def _note_recovered(self) -> None:
        """Log the first success after failures, and what waits to go out."""
        parked = self._parked_waiting
        waiting = f"; {parked} batches wait in the spool" if parked else ""
        since = (
            f"{max(0.0, self._clock() - self._last_ok_wall):.1f}s of failures"
            if self._last_ok_wall
            else "failures since the start"
        )
        self._log.info("queue %s: the receiver accepts again after %s%s", self.name, since, waiting)

    def _publish_spool(self) -> None:
        spool = self._spool
        if spool is not None:
            self.metrics.spool_bytes.set(spool.size)
            self.metrics.spool_batches.set(self._parked_waiting)

    def _drop_unreadable(self, batch: _Batch, err: SpoolError) -> None:
        """A parked body that cannot be read back: counted as dropped, loudly."""
        counts = batch.counts()
        self._log.error(
            "queue %s: dropping %d samples, %d exemplars, %d histograms: %s",
            self.name,
            *counts,
            err,
        )
        for kind, n in zip(ITEM_KINDS, counts, strict=True):
            if n:
                self.metrics.dropped(kind, DROP_SPOOL_UNREADABLE).inc(n)
                self.metrics.pending[kind].dec(n)

    def _holds_parked(self) -> bool:
        if self._legacy:
            return True
        return any(
            shard.parked or (shard.inflight is not None and shard.inflight.parked is not None)
            for shard in self._shards
        )

    # ---- delivered position --------------------------------------------------------

    def _advance_delivered(self) -> None:
        """Move the delivered position to the last chunk with no unfinished item."""
        marks = self._marks
        if not marks:
            return
        oldest_mark = marks[0][0]
        low = self._reading_seq if self._reading_seq is not None else self._next_seq
        if low <= oldest_mark:
            return
        for shard in (*self._legacy, *self._shards) if self._legacy else self._shards:
            oldest = shard.oldest_seq()
            if oldest is not None and oldest < low:
                if oldest <= oldest_mark:
                    return  # it holds the position where it is
                low = oldest
        while marks and marks[0][0] < low:
            self._delivered_seq, self.delivered_position = marks.popleft()
        if self._ahead:
            self._release(self._ahead.prune(self._delivered_seq))
        if self.on_delivered is not None:
            self.on_delivered(self.delivered_position)

    def _note_finished(self, batch: _Batch, delivered: bool) -> None:
        """Keep a finished batch's items until the delivered position passes them: a stop
        before then hands them on (``delivered_ahead``), so a restart skips them.

        A parked batch whose body could not be read back (not ``delivered``) is
        not kept: it was counted as dropped (``_drop_unreadable``), and the WAL's
        copy goes out again only if a restart comes before the delivered position
        passes it."""
        # Every chunk the batch took from has a sequence number below this one.
        bound = batch.last_seq + 1
        if batch.parked is None:
            self._ahead.add(bound, batch.items())
            return
        self._parked_waiting -= 1
        if delivered:
            self._ahead.add(bound, token=batch.parked.ref)
            self._publish_spool()
        else:
            self._release([batch.parked.ref])

    def _release(self, refs: list[SpoolRef]) -> None:
        if refs and self._spool is not None:
            for ref in refs:
                self._spool.done(ref)
            self._publish_spool()

    def _collect_delivered_ahead(self) -> None:
        """At stop: what was finished beyond the delivered position, for the next start."""
        ahead = self._ahead.collect(self._read_end_seen, self._delivered_seq, self._parked_items)
        resumed = self._resumed_ahead
        if resumed is not None and self.delivered_position < resumed.until:
            ahead = ahead.merged(resumed)
        self.delivered_ahead = ahead if ahead.total() else None

    def _parked_items(self, ref: SpoolRef) -> BatchItems | None:
        if self._spool is None:
            return None
        try:
            return unpack_items(self._spool.get_extra(ref))
        except (SpoolError, ValueError) as err:
            self._log.warning(
                "queue %s: which items a delivered parked batch held cannot be read back "
                "(%s); they are sent again after a restart",
                self.name,
                err,
            )
            return None

    # ---- sending -------------------------------------------------------------------

    async def _run_shard(self, shard: _Shard, after: Sequence[asyncio.Task[None]] = ()) -> None:
        if after and not await _wait_all_or(after, shard.stop):
            return
        last_send = time.monotonic()
        while not shard.stop.is_set():
            batch = shard.take(include_partial=shard.flushing)
            if batch is None:
                if shard.flushing:
                    return
                remaining = last_send + self.settings.batch_send_deadline - time.monotonic()
                if remaining > 0:
                    shard.wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(remaining):
                            await shard.wakeup.wait()
                    continue
                batch = shard.take(include_partial=True)
                if batch is None:
                    last_send = time.monotonic()
                    continue
            shard.inflight = batch
            shard.space.set()
            busy = self.metrics.shard_busy_time
            busy.change(1)
            delivered = True
            try:
                await self._send_batch(batch, shard.stop)
            except _Interrupted:
                return
            except SpoolError as err:
                self._drop_unreadable(batch, err)
                delivered = False
            finally:
                busy.change(-1)
            shard.inflight = None
            self._note_finished(batch, delivered)
            last_send = time.monotonic()
            shard.done += batch.count
            shard.space.set()
            self._advance_delivered()

    async def _encode(
        self, batch: _Batch, protocol: int | None = None, phases: _SendPhases | None = None
    ) -> bytes:
        started = time.monotonic()
        if batch.parked is not None and self._spool is not None:
            body = self._spool.get(batch.parked.ref)
            if phases is not None:
                phases.on_loop(time.monotonic() - started)
            return body
        body = self._serialize(batch, protocol)
        if len(body) >= _THREAD_COMPRESS_BYTES and self._compress_off_loop:
            if phases is None:
                return await asyncio.to_thread(encode.compress, body)
            phases.on_loop(time.monotonic() - started)
            # Snappy releases the GIL: on another core the loop goes on meanwhile.
            return await phases.off_loop(asyncio.to_thread(encode.compress, body))
        body = encode.compress(body)
        if phases is not None:
            phases.on_loop(time.monotonic() - started)
        return body

    def _serialize(self, batch: _Batch, protocol: int | None = None) -> bytes:
        if (protocol or self.protocol) == 1:
            body = encode.encode_write_request_v1(
                batch.series,
                batch.timestamps,
                batch.values,
                exemplars=batch.exemplars,
                histograms=[(key, t, h) for key, t, h, _ in batch.histograms],
            )
        else:
            body = encode.encode_write_request_v2(
                [key[0] for key in batch.series],
                batch.timestamps,
                batch.values,
                start_timestamps=batch.start_column(),
                metadata=[key[1] for key in batch.series],
                exemplars=[(key[0], e, key[1]) for key, e in batch.exemplars],
                histograms=[(key[0], t, h, st, key[1]) for key, t, h, st in batch.histograms],
            )
        return body

    def _shed_too_old(self, batch: _Batch, held: _Batch | None = None) -> bool:
        """Drop items older than sample_age_limit from a batch that waited too long, in
        place: whether any were dropped. ``held`` is the batch the shard holds when
        ``batch`` is its 1.0 form: it loses the same items, counted once, so a reshard
        that deals it out again (or carries it) does not shed and count them again.
        What went is finished: kept as delivered ahead (``_note_dropped``)."""
        limit = self.settings.sample_age_limit
        if limit <= 0 or batch.parked is not None:
            # A parked body goes whole: parking is off while a limit is set, so only
            # batches parked before a live change to it get here.
            return False
        cutoff = int((self._clock() - limit) * 1000)
        lowest = batch.lowest_timestamp()
        if lowest <= 0 or lowest >= cutoff:
            return False
        shed = _shed(batch, cutoff)
        for kind, (refs, _) in zip(ITEM_KINDS, shed, strict=True):
            if refs:
                self.metrics.dropped(kind, DROP_TOO_OLD).inc(len(refs))
                self.metrics.pending[kind].dec(len(refs))
        if held is not None and held is not batch and held.parked is None:
            _shed(held, cutoff)
        self._note_dropped(batch, shed)
        return True

    def _note_dropped(self, batch: _Batch, items: BatchItems) -> None:
        """Items dropped from ``batch`` while it waits to be sent are finished: kept like a
        finished batch's, so a stop before the delivered position passes them hands them
        on and a restart does not read, drop and count them again."""
        self._ahead.add(batch.last_seq + 1, items)

    async def _send_batch(self, batch: _Batch, stop: asyncio.Event) -> None:
        """Send one batch until it succeeds or fails for good (retrying forever).

        A parked batch whose body cannot be read back raises ``SpoolError``.

        ``stop`` interrupts it between attempts (while paused or backing off),
        never during an HTTP attempt, so a reshard does not send a batch twice.
        """
        metrics = self.metrics
        original = batch.counts()
        held = batch  # what the shard holds, and a reshard carries
        backoff = self.settings.min_backoff
        attempt = 0
        protocol = self._protocol_for_batch()
        phases = _SendPhases(self._loop_lag)
        if batch.parked is not None and not (batch.parked.protocol == 2 and protocol == 1):
            protocol = batch.parked.protocol  # as parked (a 1.0 body is taken by all)
        elif protocol != self.protocol:
            batch = self._sent_as_v1(batch)
        body = await self._encode(batch, protocol, phases)
        # Timed from here: encoding is this loop's own CPU work, which more shards
        # could not spread, so it is no part of the receiver's time per sample.
        started = time.monotonic()
        lag = self._loop_lag
        lag_started = lag.seconds() if lag is not None else 0.0
        result: SendResultLike | None = None
        # Backoff sleeps and pauses are not the receiver's time per sample either: after
        # an outage they would read as a receiver taking minutes per batch.
        not_sending = 0.0
        while True:
            if self._shed_too_old(batch, held) and batch.count:
                body = await self._encode(batch, protocol, phases)
            if batch.count == 0:
                break
            if not self._resume.is_set():
                paused_at = self._send_clock()
                while not self._resume.is_set():
                    await _wait_or_stop(self._resume, stop, None)
                not_sending += self._send_clock() - paused_at
            if stop.is_set():
                raise _Interrupted
            if protocol != self.negotiation.current and protocol == 2:
                # Another shard found the receiver speaks only 1.0.
                protocol, batch = 1, self._sent_as_v1(batch)
                body = await self._encode(batch, protocol, phases)
                continue
            counts = batch.counts()
            for kind, n in zip(ITEM_KINDS, counts, strict=True):
                if n:
                    metrics.sent[kind].inc(n)
            metrics.in_flight.inc()
            metrics.in_flight_time.change(1)
            began = phases.begin()
            try:
                result = await self._client.send(
                    body,
                    protocol=protocol,
                    attempt=attempt,
                    items=batch.count,
                    retry_on_http_429=self.settings.retry_on_http_429,
                )
            finally:
                phases.sent(began)
                metrics.in_flight.dec()
                metrics.in_flight_time.change(-1)
            metrics.batch_duration.observe(result.duration)
            self.last_status = result.status
            if self._refuses_v2(result, protocol, batch.count):
                for kind, n in zip(ITEM_KINDS, counts, strict=True):
                    if n:
                        metrics.retried[kind].inc(n)
                protocol, batch = 1, self._sent_as_v1(batch)
                body = await self._encode(batch, protocol, phases)
                attempt = 0
                continue
            if result.outcome == "ok":
                self._note_partial(result, counts)
                break
            self.last_error = _describe(result)
            self.last_error_time = self._clock()
            if result.outcome != "recoverable":
                self._log.error(
                    "queue %s: non-recoverable error, dropping %d samples, %d exemplars, "
                    "%d histograms: %s",
                    self.name,
                    *counts,
                    self.last_error,
                )
                break
            asked = result.retry_after if result.retry_after and result.retry_after > 0 else 0.0
            # Between half and all of the backoff (never under min_backoff): shards that
            # fail together (an outage) spread out over the interval, so one of them finds
            # the receiver back soon and its success ends the others' wait.
            low = max(self.settings.min_backoff, backoff / 2)
            sleep = asked or low + (backoff - low) * self._jitter.random()
            probing = not asked and result.status is None and not self._probing
            if probing and sleep > PROBE_SECONDS:
                # Nothing answered (refused, reset, timed out): costs the receiver nothing,
                # so one shard at a time tries again soon, and its success wakes the rest.
                sleep = PROBE_SECONDS
                self._probing = True
            else:
                probing = False
            # The longest wait of any shard counts: a probe's short one must not end it.
            self._reshard_disabled_until = max(
                self._reshard_disabled_until, time.monotonic() + 2 * sleep
            )
            self._log.warning(
                "queue %s: recoverable error, retrying in %.3fs: %s",
                self.name,
                sleep,
                self.last_error,
            )
            self._retrying += 1
            slept_at = self._send_clock()
            try:
                # Another shard's success ends a backoff (the receiver is back), not a
                # wait the receiver asked for with Retry-After.
                wake = stop if asked else self._recovered
                await _wait_or_stop(wake, stop, sleep)
            finally:
                self._retrying -= 1
                if probing:
                    self._probing = False
                not_sending += self._send_clock() - slept_at
            for kind, n in zip(ITEM_KINDS, counts, strict=True):
                if n:
                    metrics.retried[kind].inc(n)
            backoff = min(2 * (asked or backoff), self.settings.max_backoff)
            attempt += 1
        if result is not None:
            metrics.bytes_total.inc(len(body))
            highest = batch.highest_timestamp() // 1000
            if highest > metrics.queue_highest_sent.value:
                metrics.queue_highest_sent.set(highest)
                metrics.highest_sent.set(highest)
            final = batch.counts()
            for kind, n, lost in zip(ITEM_KINDS, final, _failed_counts(result, final), strict=True):
                if lost:
                    metrics.failed[kind].inc(lost)
                if result.outcome == "ok" and n > lost:
                    metrics.accepted[kind].inc(n - lost)
            if result.outcome == "ok":
                self._last_send_time = time.monotonic()
                if self.last_error_time > self._last_ok_wall:
                    self._note_recovered()
                self._last_ok_wall = self._clock()
                if self._retrying:
                    self._recovered.set()
                    self._recovered = asyncio.Event()
        for kind, n in zip(ITEM_KINDS, batch.counts(), strict=True):
            if n:
                metrics.pending[kind].dec(n)
        self._data_out.add(sum(original))
        # Time the loop ran other work while this send waited is not the receiver's:
        # counting it would make a busy CPU look like a slow receiver.
        waited_for_loop = lag.seconds() - lag_started if lag is not None else 0.0
        busy = time.monotonic() - started - waited_for_loop - not_sending
        self._data_out_duration.add(max(0.0, busy) * 1e9)
        self._data_out_wait.add(phases.finish(metrics, not_sending) * 1e9)

    def _send_clock(self) -> float:
        """Wall time less the loop's lateness so far: the stretch between two readings
        that a send spent waiting, lateness excluded (that is subtracted separately)."""
        lag = self._loop_lag
        return time.monotonic() - (lag.seconds() if lag is not None else 0.0)

    # ---- protocol negotiation ------------------------------------------------------

    def _publish_protocol(self) -> None:
        current = VERSION_NAMES[self.negotiation.current]
        for version in {VERSION_NAMES[self.protocol], current}:
            self.metrics.protocol(version).set(1 if version == current else 0)

    def _protocol_for_batch(self) -> int:
        """The protocol a new batch goes in: 1.0 after a fallback, until the re-probe."""
        negotiation = self.negotiation
        if negotiation.reprobe_due():
            self._log.info(
                "queue %s: trying remote write 2.0 again (1.0 since %.0fs)",
                self.name,
                self._clock() - (negotiation.fallback_since or 0.0),
            )
            self._publish_protocol()
        return negotiation.current

    def _refuses_v2(self, result: SendResultLike, protocol: int, items: int) -> bool:
        """Whether ``result`` says the receiver does not speak 2.0; falls back if so."""
        if not ProtocolNegotiation.refused(protocol, result.status, result.written, items):
            return False
        reason = f"HTTP {result.status}" + (
            " without any Written header" if result.status != 415 else ""
        )
        if self.negotiation.fall_back(reason):
            self._log.warning(
                "queue %s: the receiver does not accept remote write 2.0 (%s); sending 1.0 "
                "(this batch again, and all that follows) and trying 2.0 again in %.0fs",
                self.name,
                reason,
                self.negotiation.reprobe_interval,
            )
            self._publish_protocol()
        return True

    def _sent_as_v1(self, batch: _Batch) -> _Batch:
        """``_as_v1`` of the batch a shard holds. What 1.0 cannot carry goes from the
        held batch too: a reshard deals that batch out again, and its new shards would
        drop and count it a second time."""
        converted = self._as_v1(batch)
        if batch.parked is None and len(converted.histograms) < len(batch.histograms):
            keep_h = _v1_histograms(batch)
            taken = _take_out(batch, range(len(batch.values)), range(len(batch.exemplars)), keep_h)
            self._note_dropped(batch, taken)
        return converted

    def _as_v1(self, batch: _Batch) -> _Batch:
        """A 2.0 batch (series keys are (labels, metadata)) as a 1.0 batch.

        Native histograms with custom buckets have no 1.0 form: they are dropped
        and counted as Prometheus counts them.
        """
        if batch.parked is not None:
            batch = self._unparked(batch)
        memo: dict[int, bytes] = {}

        def v1(key: Any) -> bytes:
            found = memo.get(id(key))
            if found is None:
                found = memo[id(key)] = encode.encode_series_v1(key[0])
            return found

        keep_h = _v1_histograms(batch)
        dropped = len(batch.histograms) - len(keep_h)
        if dropped:
            self.metrics.dropped("histograms", DROP_NHCB_V1).inc(dropped)
            self.metrics.pending["histograms"].dec(dropped)
        return _Batch(
            refs=batch.refs,
            series=[v1(key) for key in batch.series],
            timestamps=batch.timestamps,
            values=batch.values,
            exemplars=[(v1(key), e) for key, e in batch.exemplars],
            exemplar_refs=batch.exemplar_refs,
            histograms=[(v1(batch.histograms[i][0]), *batch.histograms[i][1:]) for i in keep_h],
            histogram_refs=[batch.histogram_refs[i] for i in keep_h],
            count=batch.count - dropped,
            first_seq=batch.first_seq,
            last_seq=batch.last_seq,
        )

    def _unparked(self, batch: _Batch) -> _Batch:
        """A parked 2.0 batch as columns again, decoded from its body (rare: the receiver
        turned out to speak only 1.0 after the batch was parked); raises SpoolError."""
        assert self._spool is not None and batch.parked is not None
        try:
            request = decode.decode_message(
                decode.decompress(self._spool.get(batch.parked.ref)), encode.PROTOBUF_MESSAGE_V2
            )
        except (decode.InvalidRequest, ValueError) as err:
            raise SpoolError(f"a parked 2.0 body does not decode: {err}") from err
        columns = _Batch(first_seq=batch.first_seq, last_seq=batch.last_seq)
        for series in request.series:
            key = (series.labels, series.metadata)
            starts = series.start_timestamps
            if any(starts):
                columns.note_starts(len(columns.values), starts)
            for t, v in series.samples:
                columns.series.append(key)
                columns.timestamps.append(t)
                columns.values.append(v)
            columns.exemplars.extend((key, e) for e in series.exemplars)
            hstarts = series.histogram_start_timestamps or [0] * len(series.histograms)
            columns.histograms.extend(
                (key, t, h, st) for (t, h), st in zip(series.histograms, hstarts, strict=True)
            )
        columns.refs = [0] * len(columns.values)
        columns.exemplar_refs = [0] * len(columns.exemplars)
        columns.histogram_refs = [0] * len(columns.histograms)
        columns.count = sum(columns.counts())
        return columns

    def _note_partial(self, result: SendResultLike, counts: tuple[int, int, int]) -> None:
        """Count (and log, at most once a minute) what a 2xx did not confirm."""
        written = result.written
        if written is None:
            return
        confirmed = _written_by_kind(written)
        missing = [(kind, c - w) for kind, c, w in zip(ITEM_KINDS, counts, confirmed, strict=True)]
        missing = [(kind, n) for kind, n in missing if n > 0]
        if not missing:
            return
        for kind, n in missing:
            self.metrics.partial(kind).inc(n)
        now = time.monotonic()
        if now - self._partial_logged >= 60.0:
            self._partial_logged = now
            self._log.warning(
                "queue %s: partial write, the receiver did not write %s%s",
                self.name,
                ", ".join(f"{n} {kind}" for kind, n in missing),
                f": {result.reason}" if result.reason else "",
            )

    # ---- resharding ----------------------------------------------------------------

    async def _reshard_loop(self) -> None:
        idle, wall = self._loop_idle(), time.monotonic()
        while True:
            await asyncio.sleep(self._update_interval)
            self._data_out.tick()
            self._data_dropped.tick()
            self._data_out_duration.tick()
            self._data_out_wait.tick()
            idle_was, wall_was = idle, wall
            idle, wall = self._loop_idle(), time.monotonic()
            loop_busy = None
            if idle is not None and idle_was is not None and wall > wall_was:
                loop_busy = max(0.0, 1.0 - (idle - idle_was) / (wall - wall_was))
            decision = desired_shards(
                current=len(self._shards),
                min_shards=self.settings.min_shards,
                max_shards=self.settings.max_shards,
                rate_in=self._data_in.rate,
                rate_out=self._data_out.rate,
                rate_dropped=self._data_dropped.rate,
                rate_out_duration_ns=self._data_out_duration.rate,
                delay_seconds=self.lag_seconds(),
                rate_out_wait_ns=self._data_out_wait.rate,
                loop_busy=loop_busy,
            )
            if decision is None:
                self.shards_reason = "no samples sent in the last interval: nothing to measure"
                continue
            self.shards_reason = decision.explain()
            self.metrics.shards_desired.set(decision.desired_raw)
            if self._should_reshard(decision.shards):
                await self._reshard(decision.shards)

    def _loop_idle(self) -> float | None:
        return self._loop_lag.idle_seconds() if self._loop_lag is not None else None

    def _should_reshard(self, target: int) -> bool:
        if target == len(self._shards):
            return False
        if self._holds_parked():
            # Parked bodies stay with the shard that built them: more shards would only
            # wait for the parked ones to go first.
            self.shards_reason += "; not resharding while encoded batches wait in the spool"
            return False
        now = time.monotonic()
        if now - self._last_send_time > RESHARD_DISABLED_NO_SEND_SECONDS:
            return False
        return now >= self._reshard_disabled_until

    async def _reshard(self, n: int) -> None:
        """Replace the shards by ``n`` new ones without sending or losing anything.

        The old shards finish the HTTP attempt they are in (if it fails, its
        batch is carried over) and stop; retries waiting for their backoff stop
        at once. Their unfinished batches, oldest first, are dealt out to the
        new shards by ``ref % n``. Each series' items came from one old shard in
        order and go to one new shard in the same order, so per-series order
        holds; the delivered position only uses lower bounds, so it never skips
        an unfinished item.
        """
        async with self._reshard_lock:
            if self._stopped:
                return
            if self._holds_parked():
                self._reshard_behind_parked(n)
                return
            self._gate.clear()
            try:
                old = self._shards
                for shard in old:
                    shard.stop.set()
                    shard.wakeup.set()
                    shard.space.set()
                tasks = [s.task for s in old if s.task is not None]
                if tasks:
                    _, running = await asyncio.wait(tasks, timeout=self.flush_deadline)
                    # An attempt still running after the deadline is cancelled; its batch
                    # is sent again, which a receiver may see twice.
                    await self._cancel(running)
                if self._stopped:
                    # A stop came meanwhile and saw the old shards: their unfinished
                    # batches stay with them, before the delivered position it saved.
                    return
                carried = [batch for shard in old for batch in shard.unfinished()]
                self._shards = self._new_shards(n)
                self._redistribute(carried)
            finally:
                self._gate.set()
            self._log.info("queue %s: resharded from %d to %d shards", self.name, len(old), n)

    def _reshard_behind_parked(self, n: int) -> None:
        """Reshard while shards hold parked batches, which cannot be dealt out again.

        The old shards send everything they hold (in flight, full, parked, the
        partial batch) in order and stop; the ``n`` new ones take what is read from
        now on and start sending once every old shard is done, so each series'
        items still leave in order. The reader is not held up meanwhile (new
        shards fill, and park, as usual).
        """
        old = self._shards
        for shard in old:
            shard.flushing = True
            shard.wakeup.set()
            shard.space.set()
            if shard.task is not None:
                shard.task.add_done_callback(lambda _, s=shard: self._retire(s))
        self._legacy.extend(old)
        self._shards = self._new_shards(n)
        self._log.info(
            "queue %s: resharding from %d to %d shards behind %d encoded batches in the spool",
            self.name,
            len(old),
            n,
            sum(len(shard.parked) for shard in old),
        )

    def _retire(self, shard: _Shard) -> None:
        """An old shard's task ended. It leaves once it holds nothing unsent: a task
        cancelled by a stop (the receiver still down) keeps its batches, and they keep
        the delivered position before them."""
        if shard.oldest_seq() is None:
            with contextlib.suppress(ValueError):
                self._legacy.remove(shard)
        self._advance_delivered()

    def _redistribute(self, batches: list[_Batch]) -> None:
        shards = self._shards
        n = len(shards)
        max_per_send = self.settings.max_samples_per_send
        for old in batches:
            for kind_refs, adder in (
                (old.refs, lambda b, i, o=old: _move_sample(b, i, o)),
                (
                    old.exemplar_refs,
                    lambda b, i, o=old: (
                        b.exemplars.append(o.exemplars[i]),
                        b.exemplar_refs.append(o.exemplar_refs[i]),
                    ),
                ),
                (
                    old.histogram_refs,
                    lambda b, i, o=old: (
                        b.histograms.append(o.histograms[i]),
                        b.histogram_refs.append(o.histogram_refs[i]),
                    ),
                ),
            ):
                for i, ref in enumerate(kind_refs):
                    shard = shards[ref % n]
                    batch = shard.partial
                    if batch.count >= max_per_send:
                        # Over capacity is allowed here: carried items must not wait.
                        shard.full.append(batch)
                        shard.partial = batch = _Batch()
                    if not batch.count:
                        batch.first_seq = old.first_seq
                    else:
                        batch.first_seq = min(batch.first_seq, old.first_seq)
                    batch.last_seq = max(batch.last_seq, old.last_seq)
                    adder(batch, i)
                    batch.count += 1
        for shard in shards:
            if shard.partial.count >= max_per_send:
                shard.full.append(shard.partial)
                shard.partial = _Batch()
            _lower_first_seqs(shard)
            shard.wakeup.set()

    # ---- state for the console -----------------------------------------------------

    def lag_seconds(self) -> float:
        """Newest timestamp appended minus newest timestamp this queue sent."""
        highest = self._highest_in()
        if highest <= 0:
            return 0.0
        sent = self.metrics.queue_highest_sent.value or self._first_enqueued_s
        return max(0.0, highest - sent) if sent else 0.0

    @property
    def shard_count(self) -> int:
        return len(self._shards)

    def status(self) -> str:
        if self.paused:
            return "paused"
        if self._retrying:
            return "retrying"
        if self.last_error_time and self.last_error_time > self._last_ok_wall:
            return "failing"
        return "healthy"

    def pending_items(self) -> int:
        return int(sum(self.metrics.pending[k].value for k in ITEM_KINDS))

    def out_rate(self) -> float:
        return self._data_out.rate


def _lower_first_seqs(shard: _Shard) -> None:
    """Give each of the shard's batches the lowest first chunk of itself and every batch
    after it. Carried batches are dealt out one old shard after another, not oldest
    first, so a batch can hold items older than the one before it; the shard's oldest
    item is read from its first batch (``oldest_seq``). A lower first chunk is still a
    lower bound."""
    batches = [*shard.full, shard.partial] if shard.partial.count else list(shard.full)
    low: int | None = None
    for batch in reversed(batches):
        if low is not None and low < batch.first_seq:
            batch.first_seq = low
        else:
            low = batch.first_seq


def _move_sample(batch: _Batch, i: int, old: _Batch) -> None:
    """Append sample ``i`` of ``old`` (with its start timestamp) to ``batch``."""
    batch.series.append(old.series[i])
    batch.timestamps.append(old.timestamps[i])
    if old.starts and i in old.starts:
        batch.note_starts(len(batch.values), (old.starts[i],))
    batch.values.append(old.values[i])
    batch.refs.append(old.refs[i])


_RUN_MIN = 256
"""Below this many samples a stretch of a chunk is split item by item."""


def _shard_positions(refs: Sequence[int], n_shards: int) -> list[list[Sequence[int]]]:
    """For each shard, the chunk positions of its samples (``ref % n_shards``) in order.

    Where refs run consecutively (a scrape's series get consecutive refs when they
    are created, so its commits mostly do), a shard's positions in the run are a
    strided ``range``, taken by slices without a step per sample; elsewhere they
    are lists picked with C-level passes, one per shard.
    """
    parts: list[list[Sequence[int]]] = [[] for _ in range(n_shards)]
    if n_shards == 1:
        parts[0].append(range(len(refs)))
        return parts

    def split(a: int, b: int) -> None:
        first = refs[a]
        if refs[b - 1] - first == b - 1 - a and refs[a:b] == list(range(first, first + b - a)):
            for s in range(n_shards):
                start = a + (s - first) % n_shards
                if start < b:
                    parts[s].append(range(start, b, n_shards))
            return
        if b - a <= _RUN_MIN:
            homes = list(map(mod, refs[a:b], repeat(n_shards)))
            for s in range(n_shards):
                picked = list(compress(range(a, b), map(eq, homes, repeat(s))))
                if picked:
                    parts[s].append(picked)
            return
        middle = (a + b) // 2
        split(a, middle)
        split(middle, b)

    if refs:
        split(0, len(refs))
    return parts


class _SendPhases:
    """Where one batch's sending time went (``queue_metrics.SEND_PHASES``).

    Encoding on the loop is timed directly; the loop's lateness (``LoopLag``)
    during the send, less what that encoding itself held the loop, is
    ``loop_wait``; compression in a worker thread and each HTTP attempt count
    their wall time less the lateness seen meanwhile.
    """

    __slots__ = ("_lag", "_own", "_started_lag", "encoding", "sending")

    def __init__(self, lag: LoopLag | None) -> None:
        self._lag = lag
        self._started_lag = lag.seconds() if lag is not None else 0.0
        self._own = 0.0
        self.encoding = 0.0
        self.sending = 0.0

    def _lateness(self) -> float:
        return self._lag.seconds() if self._lag is not None else 0.0

    def begin(self) -> tuple[float, float]:
        """Mark the start of a step timed off the loop (``off_loop``, ``sent``)."""
        return time.monotonic(), self._lateness()

    def _since(self, began: tuple[float, float]) -> float:
        started, late = began
        return max(0.0, (time.monotonic() - started) - (self._lateness() - late))

    def on_loop(self, seconds: float) -> None:
        """Encoding work done on the loop (it made the loop late itself)."""
        self.encoding += seconds
        self._own += seconds

    async def off_loop(self, step: Awaitable[_T]) -> _T:
        began = self.begin()
        result = await step
        self.encoding += self._since(began)
        return result

    def sent(self, began: tuple[float, float]) -> None:
        """An HTTP attempt that began at ``began`` ended. (Timed around the attempt
        rather than by awaiting it through here: a send is resumed several times, and
        each resume goes through every coroutine frame above it.)"""
        self.sending += self._since(began)

    def finish(self, metrics: QueueMetrics, backoff: float) -> float:
        """Count the phases; returns the seconds the send waited for the loop."""
        phase = metrics.send_phase
        phase["encode"].inc(self.encoding)
        phase["network"].inc(self.sending)
        waited = max(0.0, self._lateness() - self._started_lag - self._own)
        phase["loop_wait"].inc(waited)
        phase["backoff"].inc(max(0.0, backoff))
        metrics.send_batches.inc()
        return waited


async def _wait_all_or(tasks: Sequence[asyncio.Task[None]], stop: asyncio.Event) -> bool:
    """Wait until every task is done (True) or ``stop`` is set (False)."""
    pending: set[asyncio.Future[Any]] = {task for task in tasks if not task.done()}
    if not pending:
        return not stop.is_set()
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while pending and not stop.is_set():
            _, left = await asyncio.wait({*pending, stopping}, return_when=asyncio.FIRST_COMPLETED)
            pending = left - {stopping}
    finally:
        stopping.cancel()
    return not stop.is_set()


def _describe(result: SendResultLike) -> str:
    status = f"HTTP {result.status}" if result.status is not None else "network error"
    reason = result.reason.strip()
    return f"{status}: {reason}" if reason else status


def _written_by_kind(written: tuple[int, int, int]) -> tuple[int, int, int]:
    """Written counts (samples, histograms, exemplars) in ITEM_KINDS order."""
    return written[0], written[2], written[1]


def _failed_counts(result: SendResultLike, counts: tuple[int, int, int]) -> tuple[int, int, int]:
    if result.outcome not in ("fatal", "ok"):
        return (0, 0, 0)
    if result.written is None:
        return counts if result.outcome == "fatal" else (0, 0, 0)
    written = _written_by_kind(result.written)
    return tuple(max(0, c - w) for c, w in zip(counts, written, strict=True))  # type: ignore[return-value]
