"""Replay: ships an existing WAL, read-only, to one endpoint through the queue machinery.

It owns reading a finished WAL (a dead Prometheus agent's, Alloy's or
rwconsole's, checkpoint first) as a ``ChunkSource`` for one ``QueueManager``
(so shards, retries, auth, relabelling and external labels behave as in the
forwarder), the time-range filter, the sample rate limit, the resumable
progress file that lives beside the WAL (never in it), and the summary.

The WAL is only ever opened for reading: no repair, no gap fill, no
checkpoint. Damage ends the reading; what precedes it is shipped and the
summary names the segment and byte offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path
from typing import Any

from rwconsole.config import schema
from rwconsole.config.secrets import redact_url
from rwconsole.labels import Labels, make_labels
from rwconsole.metrics import Registry
from rwconsole.model import MetricMetadata
from rwconsole.remote import queue_metrics
from rwconsole.remote.ahead import DeliveredAhead
from rwconsole.remote.chunks import Chunk, Position
from rwconsole.remote.queue import QueueManager, SendResultLike
from rwconsole.remote.resharding import EwmaRate
from rwconsole.wal import records
from rwconsole.wal.segment import (
    CorruptionError,
    WalFile,
    WalRecord,
    iter_segment,
    missing_files,
    wal_files,
)

log = logging.getLogger("rwconsole.replay")

PROGRESS_VERSION = 1
MAX_CHUNK_ITEMS = 20_000
_SAVE_INTERVAL = 0.5
_MIN_TIME = -(1 << 63)
_MAX_TIME = (1 << 63) - 1
_DROP_REASONS = (
    queue_metrics.DROP_DROPPED_SERIES,
    queue_metrics.DROP_UNKNOWN_SERIES,
    queue_metrics.DROP_TOO_OLD,
    queue_metrics.DROP_NHCB_V1,
    queue_metrics.DROP_HISTOGRAMS_DISABLED,
)


class ReplayError(Exception):
    """The replay cannot start (bad progress file, no such endpoint); the message says why."""


def default_progress_path(directory: str | os.PathLike[str], endpoint: str) -> Path:
    """``<parent>/<name>.replay-<endpoint>.json`` beside the directory given."""
    base = Path(directory).resolve()
    return base.parent / f"{base.name}.replay-{endpoint}.json"


@dataclass(slots=True)
class ReplayOptions:
    start_ms: int | None = None
    end_ms: int | None = None
    rate: float | None = None
    """Samples per second (None: as fast as the endpoint takes them)."""
    restart: bool = False
    flush_deadline: float = 60.0


@dataclass(slots=True)
class ReplaySummary:
    """What a replay did; ``ok`` only when everything selected was accepted."""

    read: Counter[str] = field(default_factory=Counter)
    """Items handed to the queue, by kind (samples, exemplars, histograms)."""
    accepted: int = 0
    """Items in requests the endpoint accepted."""
    failed: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    skipped_time: Counter[str] = field(default_factory=Counter)
    """Items outside ``--from``/``--to``, by kind."""
    undecodable: list[str] = field(default_factory=list)
    damage: str | None = None
    missing: list[str] = field(default_factory=list)
    """Segment files absent from the WAL's numbering: what they held cannot be sent."""
    interrupted: bool = False
    already_done: bool = False
    unfinished: int = 0

    @property
    def ok(self) -> bool:
        return (
            not self.failed
            and not self.damage
            and not self.missing
            and not self.undecodable
            and not self.interrupted
            and not self.dropped.get(queue_metrics.DROP_UNKNOWN_SERIES)
            and not self.unfinished
        )


# ---------------------------------------------------------------------------
# progress file


def load_progress(path: Path, files: list[WalFile]) -> tuple[Position, bool]:
    """The saved position (as an index into ``files`` and offset) and whether it was done."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return (0, 0), False
    except (OSError, ValueError) as exc:
        raise ReplayError(f"{path}: unreadable progress file ({exc}); use --restart") from None
    if not isinstance(raw, dict) or raw.get("version") != PROGRESS_VERSION:
        raise ReplayError(f"{path}: not a replay progress file (version); use --restart")
    name, offset = raw.get("file"), raw.get("offset")
    if not isinstance(offset, int) or offset < 0:
        raise ReplayError(f"{path}: key 'offset' must be a non-negative integer")
    if name is None:
        return (0, 0), bool(raw.get("finished"))
    names = [f.name for f in files]
    if name not in names:
        raise ReplayError(
            f"{path}: the WAL no longer has file {name!r} named by key 'file'; use --restart"
        )
    return (names.index(name), offset), bool(raw.get("finished"))


def load_delivered_ahead(path: Path, files: list[WalFile]) -> DeliveredAhead | None:
    """Items the last run delivered beyond its saved position (``rwconsole.remote.ahead``).

    A damaged entry is reported and left out: those items are sent again, nothing
    is lost."""
    try:
        entry = json.loads(path.read_text()).get("delivered_ahead")
    except (OSError, ValueError, AttributeError):
        return None  # load_progress reports an unreadable file
    if entry is None:
        return None
    try:
        if not isinstance(entry, dict):
            raise ValueError(f"expected an object, not {type(entry).__name__}")
        until = entry.get("until")
        names = [f.name for f in files]
        if not (isinstance(until, list) and len(until) == 2 and until[0] in names):
            raise ValueError(f"until: expected [a file of the WAL, offset], not {until!r}")
        return DeliveredAhead.from_json({**entry, "until": [names.index(until[0]), until[1]]})
    except ValueError as err:
        log.warning("%s: delivered_ahead: %s; the items it records are sent again", path, err)
        return None


def save_progress(
    path: Path,
    files: list[WalFile],
    position: Position,
    *,
    finished: bool,
    wal_dir: Path,
    ahead: DeliveredAhead | None = None,
) -> None:
    """Write the progress atomically (a temporary file renamed over the old one)."""
    index, offset = position
    data: dict[str, Any] = {
        "version": PROGRESS_VERSION,
        "wal": str(wal_dir),
        "file": files[index].name if files and index < len(files) else None,
        "offset": offset,
        "finished": finished,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if ahead is not None and position < ahead.until and ahead.until[0] < len(files):
        data["delivered_ahead"] = {
            **ahead.to_json(),
            "until": [files[ahead.until[0]].name, ahead.until[1]],
        }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# reading


class TokenBucket:
    """Samples per second with a burst of one second's worth; ``clock``/``sleep`` injectable."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._tokens = rate
        self._last = clock()

    async def take(self, n: int) -> None:
        now = self._clock()
        self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= n
        if self._tokens < 0:
            await self._sleep(-self._tokens / self.rate)


class WalReplaySource:
    """A ``ChunkSource`` over a finished WAL, read once from ``resume`` to the end.

    Positions are (index into ``files``, byte offset after a record). Records
    at or before ``resume`` are read only for their series and metadata.
    When the end (or damage) is reached ``finished`` is set and ``end`` is the
    position of the last chunk handed out.
    """

    def __init__(
        self,
        files: list[WalFile],
        resume: Position,
        options: ReplayOptions,
        summary: ReplaySummary,
    ) -> None:
        self.files = files
        self.summary = summary
        self.series: dict[int, Labels] = {}
        self.metadata: dict[int, MetricMetadata] = {}
        self._metadata_set: list[int] = []
        """Refs in the order their metadata records were read (see ``metadata_changes``)."""
        self.end: Position = resume
        self.finished = asyncio.Event()
        self.bytes_total = sum(f.size for f in files[resume[0] :]) - resume[1]
        self.bytes_done = 0
        self._resume = resume
        self._lo = options.start_ms if options.start_ms is not None else _MIN_TIME
        self._hi = options.end_ms if options.end_ms is not None else _MAX_TIME
        self._filter = options.start_ms is not None or options.end_ms is not None
        self._bucket = TokenBucket(options.rate) if options.rate else None
        # Small chunks under a rate limit, so the bucket paces records, not the whole WAL.
        self._chunk_items = (
            max(1, min(MAX_CHUNK_ITEMS, int(options.rate / 4))) if options.rate else MAX_CHUNK_ITEMS
        )
        self._records = self._iter_records()

    @property
    def samples_done(self) -> int:
        """Samples handed to the queue by this run."""
        return self.summary.read["samples"]

    def _iter_records(self) -> Iterator[tuple[int, WalRecord]]:
        for index, wal_file in enumerate(self.files):
            try:
                for record in iter_segment(
                    wal_file.path, wal_file.index, checkpoint=wal_file.checkpoint
                ):
                    yield index, record
            except CorruptionError as exc:
                self.summary.damage = (
                    f"{wal_file.name}: {exc.reason} at byte offset {exc.offset}; "
                    "nothing after it was sent"
                )
                return
            except OSError as exc:
                self.summary.damage = f"{wal_file.name}: {exc}"
                return

    def metadata_changes(self, since: int) -> tuple[int, list[int] | None]:
        """(version, refs whose metadata was read after version ``since``), for the queue."""
        return len(self._metadata_set), self._metadata_set[since:]

    async def next_chunk(self) -> Chunk:
        while not self.finished.is_set():
            chunk = self._read()
            if chunk is not None:
                if self._bucket is not None and chunk.refs:
                    await self._bucket.take(len(chunk.refs))
                read = self.summary.read
                read["samples"] += len(chunk.refs)
                read["exemplars"] += len(chunk.exemplars)
                read["histograms"] += len(chunk.histograms)
                return chunk
        await asyncio.Event().wait()  # the end: the queue's reader waits until stopped
        raise AssertionError("unreachable")

    def _read(self) -> Chunk | None:
        chunk: Chunk | None = None
        for index, record in self._records:
            position = (index, record.end)
            if position <= self._resume:
                # Sent by an earlier run: only its series and metadata are needed. No
                # chunk for it, so the delivered position never moves back before the resume.
                self._take(index, record, None)
                continue
            self.bytes_done += record.end - record.start
            chunk = chunk or Chunk(end=position)
            self._take(index, record, chunk)
            chunk.end = position
            self.end = position
            if chunk.item_count >= self._chunk_items:
                return chunk
        self.finished.set()
        return chunk

    def _take(self, index: int, record: WalRecord, chunk: Chunk | None) -> None:
        """Decode one record into ``chunk`` (None: keep only series and metadata)."""
        data = record.data
        kind = records.record_type(data)
        if kind not in _WANTED or (chunk is None and kind not in _ALWAYS):
            return
        try:
            decoded = records.decode(data)
        except records.RecordDecodeError as exc:
            where = self.files[index].name
            self.summary.undecodable.append(f"{where} record at byte {record.start}: {exc}")
            return
        if isinstance(decoded, records.SeriesRecord):
            self.series.update(decoded.series)
        elif isinstance(decoded, records.MetadataRecord):
            for meta in decoded.entries:
                self.metadata[meta.ref] = meta
                self._metadata_set.append(meta.ref)
        elif chunk is None:
            return
        elif isinstance(decoded, records.SamplesRecord):
            self._take_samples(decoded, chunk)
        elif isinstance(decoded, records.ExemplarsRecord):
            kept = [e for e in decoded.exemplars if self._lo <= e.timestamp <= self._hi]
            self.summary.skipped_time["exemplars"] += len(decoded.exemplars) - len(kept)
            chunk.exemplars.extend(kept)
        elif isinstance(decoded, records.HistogramsRecord):
            keep = [h for h in decoded.histograms if self._lo <= h.timestamp <= self._hi]
            self.summary.skipped_time["histograms"] += len(decoded.histograms) - len(keep)
            chunk.histograms.extend(keep)

    def _take_samples(self, decoded: records.SamplesRecord, chunk: Chunk) -> None:
        ts = decoded.timestamps
        starts = decoded.start_timestamps
        if starts is not None and not any(starts):
            starts = None
        if self._filter and ts and (min(ts) < self._lo or max(ts) > self._hi):
            lo, hi = self._lo, self._hi
            keep = [lo <= t <= hi for t in ts]
            kept = sum(keep)
            self.summary.skipped_time["samples"] += len(ts) - kept
            chunk.refs.extend(compress(decoded.refs, keep))
            chunk.timestamps.extend(compress(ts, keep))
            chunk.values.extend(compress(decoded.values, keep))
            chunk.add_starts(kept, compress(starts, keep) if starts else None)
            return
        chunk.refs.extend(decoded.refs)
        chunk.timestamps.extend(ts)
        chunk.values.extend(decoded.values)
        chunk.add_starts(len(ts), starts)


_ALWAYS = frozenset({records.RecordType.SERIES, records.RecordType.METADATA})
_WANTED = frozenset(
    {*_ALWAYS, *records.SAMPLE_TYPES, records.RecordType.EXEMPLARS, *records.HISTOGRAM_TYPES}
)


# ---------------------------------------------------------------------------
# sending


class _CountingClient:
    """Wraps the endpoint's client to count the items of failed requests by reason."""

    def __init__(self, inner: Any, summary: ReplaySummary) -> None:
        self._inner = inner
        self._summary = summary

    async def send(
        self, body: bytes, *, protocol: int, attempt: int, items: int, retry_on_http_429: bool
    ) -> SendResultLike:
        result: SendResultLike = await self._inner.send(
            body,
            protocol=protocol,
            attempt=attempt,
            items=items,
            retry_on_http_429=retry_on_http_429,
        )
        if result.outcome == "ok":
            self._summary.accepted += items
        elif result.outcome == "fatal":
            status = f"HTTP {result.status}" if result.status is not None else "error"
            self._summary.failed[f"{status}: {result.reason[:200].strip()}"] += items
        return result


class Replay:
    """One replay of ``wal_dir`` to ``endpoint``; ``run()`` on an asyncio loop."""

    def __init__(
        self,
        wal_dir: Path,
        endpoint: schema.EndpointConfig,
        progress_path: Path,
        options: ReplayOptions,
        *,
        external_labels: dict[str, str] | None = None,
        user_agent: str = "rwconsole",
    ) -> None:
        self.wal_dir = wal_dir
        self.endpoint = endpoint
        self.progress_path = progress_path
        self.options = options
        self.summary = ReplaySummary()
        self.files = wal_files(wal_dir)
        self.summary.missing = missing_files(self.files)
        if options.restart:
            resume, done = (0, 0), False
        else:
            resume, done = load_progress(progress_path, self.files)
        self.summary.already_done = done
        ahead = None if options.restart else load_delivered_ahead(progress_path, self.files)
        self._ahead = ahead if ahead is not None and resume < ahead.until else None
        """Items the last run delivered beyond ``resume``: skipped, and kept in the
        progress file until the position passes them."""
        self.source = WalReplaySource(self.files, resume, options, self.summary)
        self._external = make_labels(external_labels or {})
        self._user_agent = user_agent
        self._stop = asyncio.Event()
        self._last_save = 0.0

    def stop(self) -> None:
        """Ask a running replay to finish early (progress is kept)."""
        self._stop.set()

    async def run(self) -> ReplaySummary:
        from rwconsole.relabel import compile_rules, relabel
        from rwconsole.remote.client import RemoteWriteClient

        summary = self.summary
        if summary.already_done:
            return summary
        config = self.endpoint
        client = RemoteWriteClient(config, user_agent=self._user_agent)
        rules = compile_rules(config.write_relabel_config)
        source = self.source
        start = source.end
        queue = QueueManager(
            name=config.queue_name(),
            url=redact_url(config.url),
            # Old data is the point of a replay: --from/--to select it, not the age limit.
            settings=dataclasses.replace(config.queue_config, sample_age_limit=0.0),
            client=_CountingClient(client, summary),
            source=source,
            lookup=source.series.get,
            metrics=queue_metrics.QueueMetrics(
                Registry(), config.queue_name(), redact_url(config.url)
            ),
            data_in=EwmaRate(),
            highest_timestamp_in=time.time,
            start_position=start,
            protocol=2 if config.protobuf_message == schema.PROTOBUF_V2 else 1,
            external_labels=self._external,
            relabel=(lambda labels: relabel(labels, rules)) if rules else None,
            metadata_lookup=source.metadata.get,
            metadata_changes=source.metadata_changes,
            send_exemplars=config.send_exemplars,
            send_native_histograms=config.send_native_histograms,
            flush_deadline=self.options.flush_deadline,
            delivered_ahead=self._ahead,
        )
        queue.on_delivered = self._delivered
        queue.start()
        try:
            await self._wait_for_end(queue)
        except asyncio.CancelledError:
            self._stop.set()
            raise
        finally:
            stopping = self._stop.is_set()
            await queue.stop(min(5.0, self.options.flush_deadline) if stopping else None)
            await client.aclose()
            self._finish(queue)
        return summary

    def _finish(self, queue: QueueManager) -> None:
        """Fill in the summary from the queue's counters and save the final progress."""
        summary = self.summary
        source = self.source
        position = queue.delivered_position
        summary.interrupted = self._stop.is_set()
        finished = source.finished.is_set() and position >= source.end and not summary.interrupted
        if not finished and not summary.interrupted:
            summary.unfinished = 1
        metrics = queue.metrics
        for kind in queue_metrics.KINDS:
            for reason in _DROP_REASONS:
                n = int(metrics.dropped(kind, reason).value)
                if n:
                    summary.dropped[reason] += n
        save_progress(
            self.progress_path,
            self.files,
            position,
            finished=finished and not summary.damage,
            wal_dir=self.wal_dir,
            ahead=queue.delivered_ahead,
        )

    async def _wait_for_end(self, queue: QueueManager) -> None:
        source = self.source
        for _ in iter(int, 1):  # until everything read is delivered, or a stop
            if self._stop.is_set():
                return
            if source.finished.is_set() and queue.delivered_position >= source.end:
                return
            stop = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait([stop], timeout=0.1)
            stop.cancel()

    def _delivered(self, position: Position) -> None:
        now = time.monotonic()
        if now - self._last_save >= _SAVE_INTERVAL:
            self._last_save = now
            with contextlib.suppress(OSError):  # the final save reports a failure
                save_progress(
                    self.progress_path,
                    self.files,
                    position,
                    finished=False,
                    wal_dir=self.wal_dir,
                    ahead=self._ahead,
                )
