"""Feeds one queue with chunks in WAL order: from memory when caught up, from files otherwise.

After every commit the engine offers the committed data (already in columns)
to each follower together with the WAL positions before and after it. A
follower that is caught up keeps the chunk in a small buffer — the memory
fast path, no re-reading or decoding. When the buffer would pass its bound (a
few shards' capacity: the queue takes chunks more slowly than they come), the
follower falls behind: it still hands over what it buffered, then ignores
offers and reads the WAL segments from there, with a tail reader, until it
reaches the newest committed position, and switches back to memory. When its
queue stops taking chunks altogether (an outage filled the shards, a pause),
it gives the buffer up as well, so an outage holds nothing in memory whatever
its length; the price is decoding those records again from the files.

Readers never go past the last successful commit (``wal_end``, which the
engine moves only when a commit succeeded): a commit the WAL refused may leave
complete records in the file until it is cut back, and none of them is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable

from rwconsole.metrics import Counter, Gauge, Registry
from rwconsole.remote.chunks import Chunk, Position
from rwconsole.remote.queue_metrics import QUEUE_LABELS
from rwconsole.wal import records
from rwconsole.wal.segment import CorruptionError, TailReader, WalRecord

log = logging.getLogger("rwconsole.follower")

MIN_BUFFERED_ITEMS = 100_000
"""The least a follower's memory buffer holds before it falls back to reading files.

The buffered chunks are the very lists the engine built for the commit (shared
by every follower), but while they are buffered they stay alive: about 50
bytes per sample."""

BUFFER_SHARD_CAPACITIES = 4
"""The buffer's bound in shard capacities (``queue_config.capacity``), if above the minimum."""

STALL_SECONDS = 1.0
"""A queue that took no chunk for this long while chunks wait in the buffer has stopped
consuming (its shards are full): the buffer is given up at the next offer (a queue
that only takes chunks more slowly than they come keeps it)."""


def buffer_limit(capacity: int) -> int:
    """Items a follower buffers for a queue whose shards hold ``capacity`` each."""
    return max(MIN_BUFFERED_ITEMS, BUFFER_SHARD_CAPACITIES * capacity)


MAX_CHUNK_ITEMS = 20_000
"""Records read from files are merged into chunks of about this many items."""

READ_AHEAD_RECORDS = 256
"""Records taken from the files per read while behind (one 4 MiB read holds about
this many scrape records); those not yet merged into a chunk wait in memory, so a
segment is read once rather than once per chunk."""

POLL_SECONDS = 1.0


class FollowerGauges:
    """What a follower holds in memory, per queue, for /metrics (set by ``publish``)."""

    def __init__(self, registry: Registry, remote_name: str, url: str) -> None:
        buffered = registry.gauge(
            "rwconsole_remote_follower_buffered_items",
            "Committed items the queue's WAL follower holds in memory for it: the memory "
            "fast path (at most max(100000, 4 x capacity), given up when the queue stops "
            "taking them) or, while behind, the next chunk decoded from the files.",
            QUEUE_LABELS,
        )
        ahead = registry.gauge(
            "rwconsole_remote_follower_read_ahead_bytes",
            "Bytes of WAL records the queue's follower read from the segments and has not "
            "handed over yet (while behind).",
            QUEUE_LABELS,
        )
        fallbacks = registry.counter(
            "rwconsole_remote_follower_fallbacks_total",
            "Times the queue's WAL follower fell behind and went back to reading the WAL "
            "segments (the queue took chunks more slowly than they came, or stopped "
            "taking them).",
            QUEUE_LABELS,
        )
        reread = registry.counter(
            "rwconsole_remote_follower_items_reread_total",
            "Items of memory buffers given up because the queue stopped taking chunks, "
            "read and decoded again from the WAL segments.",
            QUEUE_LABELS,
        )
        items, size = buffered.labels(remote_name, url), ahead.labels(remote_name, url)
        assert isinstance(items, Gauge) and isinstance(size, Gauge)
        given_up, again = fallbacks.labels(remote_name, url), reread.labels(remote_name, url)
        assert isinstance(given_up, Counter) and isinstance(again, Counter)
        self.buffered: Gauge = items
        self.read_ahead: Gauge = size
        self.fallbacks: Counter = given_up
        self.items_reread: Counter = again
        self._seen: tuple[WalFollower | None, int, int] = (None, 0, 0)

    def publish(self, follower: WalFollower) -> None:
        self.buffered.set(follower.buffered_items + follower.read_ahead_items)
        self.read_ahead.set(follower.read_ahead_bytes)
        seen, fallbacks, items = self._seen
        if seen is not follower:  # a new follower (the queue was rebuilt) counts from 0
            fallbacks = items = 0
        self.fallbacks.inc(follower.fallbacks - fallbacks)
        self.items_reread.inc(follower.items_given_up - items)
        self._seen = (follower, follower.fallbacks, follower.items_given_up)


class WalFollower:
    """A ``ChunkSource`` for ``QueueManager`` over a WAL directory.

    ``layouts`` (the WAL's ``sample_layouts``) lets records of prepared batches
    decode by their known layout when reading files. ``shard_capacity`` gives
    the queue's ``capacity``, which sizes the memory buffer (``buffer_limit``).
    ``wal_end`` is the end of the last successful commit; offers move it on.
    """

    def __init__(
        self,
        wal_dir: str | os.PathLike[str],
        start: Position,
        wal_end: Position,
        *,
        on_corruption: Callable[[CorruptionError], None] | None = None,
        on_skipped_segments: Callable[[list[int]], None] | None = None,
        layouts: records.SampleLayouts | None = None,
        shard_capacity: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dir = wal_dir
        self._shard_capacity = shard_capacity
        self._clock = clock
        self._taken_at = clock()
        """When the queue last took a chunk (or began waiting for one)."""
        self._layouts = layouts
        self._handed: Position = start
        self._wal_end: Position = wal_end
        self._buffer: deque[Chunk] = deque()
        self._buffered_items = 0
        self._live = start == wal_end
        self._reader: TailReader | None = None
        self._ahead: deque[WalRecord] = deque()
        self._ready: Chunk | None = None
        """The next chunk from the files, decoded while the queue was busy with the last."""
        self._prefetching = False
        self._wakeup = asyncio.Event()
        self._on_corruption = on_corruption
        self._on_skipped = on_skipped_segments
        self.fallbacks = 0
        """How often the follower fell behind and went back to the files."""
        self.items_given_up = 0
        """Items of given-up buffers (read again from the files)."""
        self._cut_before = 0
        """Segments before this one were cut from the WAL (``drop_before`` and
        ``drop_read_ahead_before`` say so): what the buffer holds from them is kept."""

    @property
    def live(self) -> bool:
        return self._live

    @property
    def handed(self) -> Position:
        """The end of the last chunk handed to the queue: what the queue has taken."""
        return self._handed

    @property
    def in_memory_until(self) -> Position:
        """What the WAL holds before this position the queue has (or has buffered) already."""
        if self._live:
            return self._wal_end
        return self._buffer[-1].end if self._buffer else self._handed

    @property
    def max_buffered_items(self) -> int:
        """The buffer's bound now (the queue's capacity may change live)."""
        return buffer_limit(self._shard_capacity())

    @property
    def buffered_items(self) -> int:
        """Items of committed chunks held in the memory buffer."""
        return self._buffered_items

    @property
    def read_ahead_items(self) -> int:
        """Items decoded from the files ahead of the queue (the next chunk), not handed over."""
        return self._ready.item_count if self._ready is not None else 0

    @property
    def read_ahead_bytes(self) -> int:
        """Bytes of WAL records read from the files and not yet handed over."""
        return sum(len(record.data) for record in self._ahead)

    def drop_before(self, segment: int) -> int:
        """Forget buffered chunks and read-ahead records before ``segment`` (cut from the
        WAL); returns the buffered chunks' samples. Read-ahead records lie after
        ``in_memory_until``, so the caller counted them with the rest of the cut."""
        dropped = 0
        while self._buffer and self._buffer[0].end[0] < segment:
            chunk = self._buffer.popleft()
            self._buffered_items -= chunk.item_count
            self._handed = chunk.end
            dropped += len(chunk.refs)
        self.drop_read_ahead_before(segment)
        return dropped

    def drop_read_ahead_before(self, segment: int) -> None:
        """Forget read-ahead records and the decoded next chunk before ``segment`` (an age
        cut keeps the buffer, which the queue still sends; the read-ahead lies after
        ``in_memory_until``, where the caller counts the cut as lost)."""
        self._cut_before = max(self._cut_before, segment)
        while self._ahead and self._ahead[0].segment < segment:
            self._ahead.popleft()
        if self._ready is not None and self._ready.end[0] < segment:
            self._ready = None  # never spanning segments: all cut

    def offer(self, start: Position, chunk: Chunk) -> None:
        """Called after each commit, on the engine's loop, with the committed data."""
        self._wal_end = chunk.end
        if not self._live:
            if self._stalled():
                self._give_up_buffer()  # kept when it fell behind, and now not taken
            self._wakeup.set()
            return
        expected = self._buffer[-1].end if self._buffer else self._handed
        stalled = self._stalled()
        if (
            stalled
            or start != expected
            or self._buffered_items + chunk.item_count > self.max_buffered_items
        ):
            self._fall_back(give_up=stalled)
            return
        self._buffer.append(chunk)
        self._buffered_items += chunk.item_count
        self._wakeup.set()

    def _fall_back(self, *, give_up: bool) -> None:
        # A queue that is only slower than the commits takes the buffer soon: reading
        # it again from the files would cost it more CPU just when it is behind. A
        # queue that stopped taking chunks would hold the buffer for as long as its
        # receiver is down: given up, everything after the last chunk handed over is
        # read from the files again, in the same order.
        if give_up:
            self._give_up_buffer()
        self._live = False
        self._reader = None
        self._ready = None
        self.fallbacks += 1
        self._wakeup.set()

    def _stalled(self) -> bool:
        """Chunks wait in the buffer and the queue took none for ``STALL_SECONDS``."""
        return bool(self._buffer) and self._clock() - self._taken_at >= STALL_SECONDS

    def _give_up_buffer(self) -> None:
        # Chunks that start in a segment a truncation already cut cannot be read again:
        # they stay (the cut counted them as held by the queue, to go out).
        start, kept = self._handed, 0
        for chunk in self._buffer:
            if start[0] >= self._cut_before:
                break
            start = chunk.end
            kept += 1
        while len(self._buffer) > kept:
            chunk = self._buffer.pop()
            self._buffered_items -= chunk.item_count
            self.items_given_up += chunk.item_count

    async def next_chunk(self) -> Chunk:
        for _ in iter(int, 1):  # runs until a chunk is available; each pass waits or reads
            if self._buffer:
                chunk = self._buffer.popleft()
                self._buffered_items -= chunk.item_count
                self._handed = chunk.end
                self._taken_at = self._clock()
                return chunk
            if not self._live:
                chunk, self._ready = self._ready, None
                if chunk is None:
                    try:
                        chunk = self._read_files()
                    except Exception:
                        self._reader = None  # the next read starts again from what was handed
                        raise
                if chunk is not None:
                    self._handed = chunk.end
                    self._schedule_prefetch()
                    return chunk
                if self._handed >= self._wal_end:
                    self._live = True
                    self._reader = None
                    continue
            self._taken_at = self._clock()  # waiting for data: the queue consumes
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._wakeup.wait()
        raise AssertionError("unreachable")

    def _schedule_prefetch(self) -> None:
        """Decode the next chunk once the loop has run what the last one woke.

        The queue places a chunk, then waits while its shard encodes and sends;
        a prefetch that ran first would delay that send by the decoding. Going
        round the loop once more puts it behind the shard's turn, into the time
        the request is out (a single shard leaves the loop idle then).
        """
        if self._prefetching:
            return
        self._prefetching = True
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, self._prefetch)

    def _prefetch(self) -> None:
        self._prefetching = False
        if self._live or self._ready is not None or self._buffer:
            return  # the files are read from the buffer's end, once it is handed over
        try:
            self._ready = self._read_files()
        except Exception:
            # Left to the queue's own read, which raises where it is awaited.
            log.exception("reading the WAL ahead for a queue failed; reading again")
            self._reader = None

    def _read_files(self) -> Chunk | None:
        """Read the next records from files, merged into one chunk (None if nothing new)."""
        if self._reader is None:
            self._reader = TailReader(self._dir, self._handed, limit=self._committed_end)
            self._ahead.clear()
        reader = self._reader
        if not self._ahead:
            failed = self._read_ahead(reader)
            if failed is not None:
                return failed
        return self._merge_ahead(reader)

    def _committed_end(self) -> Position:
        return self._wal_end

    def _read_ahead(self, reader: TailReader) -> Chunk | None:
        """Fill the read-ahead; a chunk to hand over when a corrupt segment was skipped."""
        try:
            self._ahead.extend(reader.read(max_records=READ_AHEAD_RECORDS))
        except CorruptionError as err:
            log.error("WAL corruption while reading for a queue: %s; skipping the segment", err)
            if self._on_corruption is not None:
                self._on_corruption(err)
            reader.skip_segment()
            return Chunk(end=reader.position)
        if reader.skipped:
            log.warning("WAL segments %s were removed before this queue read them", reader.skipped)
            if self._on_skipped is not None:
                self._on_skipped(list(reader.skipped))
            reader.skipped.clear()
        return None

    def _merge_ahead(self, reader: TailReader) -> Chunk | None:
        """Decode read-ahead records into one chunk of about ``MAX_CHUNK_ITEMS`` items."""
        ahead = self._ahead
        chunk: Chunk | None = None
        # A chunk never spans segments: a cut drops a decoded chunk whole (``drop_before``).
        while ahead and (
            chunk is None
            or (chunk.item_count < MAX_CHUNK_ITEMS and ahead[0].segment == chunk.end[0])
        ):
            record = ahead.popleft()
            end = (record.segment, record.end)
            if chunk is None:
                chunk = Chunk(end=end)
            try:
                _decode_into(chunk, record.data, self._layouts)
            except records.RecordDecodeError as err:
                log.error(
                    "undecodable WAL record in segment %d at %d: %s; skipped",
                    record.segment,
                    record.start,
                    err,
                )
            chunk.end = end
        if chunk is None and reader.position > self._handed:
            # Only padding or series records: still progress.
            return Chunk(end=reader.position)
        return chunk


def _decode_into(chunk: Chunk, data: bytes, layouts: records.SampleLayouts | None) -> None:
    kind = records.record_type(data)
    if kind in records.SAMPLE_TYPES:
        if kind == records.RecordType.SAMPLES:
            samples = records.decode_samples(data, layouts)
        else:
            samples = records.decode_samples_v2(data)
        chunk.refs.extend(samples.refs)
        chunk.timestamps.extend(samples.timestamps)
        chunk.values.extend(samples.values)
        starts = samples.start_timestamps
        chunk.add_starts(len(samples.refs), starts if starts and any(starts) else None)
    elif kind == records.RecordType.EXEMPLARS:
        chunk.exemplars.extend(records.decode_exemplars(data).exemplars)
    elif kind in records.HISTOGRAM_TYPES:
        chunk.histograms.extend(records.decode_histograms(data).histograms)
