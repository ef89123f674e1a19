"""The forwarder engine: config → sources → WAL → queues, in a worker thread.

The engine owns one asyncio loop in its own thread. Everything that touches
the WAL, the queues or the sources runs on that loop; other threads (the
console, the headless runner's signal handling) talk to it only through

* ``snapshot()`` — the latest immutable ``rwconsole.snapshot.Snapshot``,
  rebuilt once per second on the loop and swapped in by reference, so reading
  it never blocks either side; and
* ``submit(coro_fn)`` and the commands of ``rwconsole.snapshot.EngineControl``
  (``apply_queue_config``, ``pause``, ``resume``, ``set_fault``, ``reload``) —
  thread-safe, returning a ``concurrent.futures.Future``.

The engine also owns the fan-out after each WAL commit (the memory fast path
to every queue's follower), the delivery-progress file, WAL truncation driven
by the slowest endpoint, the periodic fsync, the /metrics endpoint and the
history the console charts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import gc
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rwconsole import __version__
from rwconsole.config import schema
from rwconsole.config.secrets import redact_url
from rwconsole.config.validate import queue_config_problems
from rwconsole.datadir import DataDirLock, DataDirLocked
from rwconsole.diskwatch import DiskWatch
from rwconsole.http import tls
from rwconsole.http.errors import AuthError, ConnectivityConfigError
from rwconsole.labels import Labels, make_labels
from rwconsole.logcollapse import Collapser, message
from rwconsole.metrics import Registry
from rwconsole.model import (
    Exemplar,
    HistogramSample,
    MetricMetadata,
    Source,
    SourceStatus,
    WalAppendError,
)
from rwconsole.remote import queue_metrics
from rwconsole.remote.chunks import Chunk, Position
from rwconsole.remote.follower import FollowerGauges, WalFollower
from rwconsole.remote.metadata import MetadataSender
from rwconsole.remote.progress import ProgressStore
from rwconsole.remote.queue import QueueManager
from rwconsole.remote.resharding import SHARD_UPDATE_INTERVAL, EwmaRate
from rwconsole.remote.spool import Spool, SpoolBudget, budget_bytes
from rwconsole.remote.spool import clear_directory as clear_spool_directory
from rwconsole.shardhistory import ShardHistory
from rwconsole.snapshot import (
    EMPTY_SNAPSHOT,
    CredentialsSnapshot,
    EndpointSnapshot,
    HistoryPoint,
    LogEntry,
    ReloadReport,
    ScrapeTargetSnapshot,
    Snapshot,
    WalDiskSnapshot,
)

if TYPE_CHECKING:
    from rwconsole.admin.server import AdminServer
    from rwconsole.demo.receiver import DemoReceiver
    from rwconsole.http.credential_cache import CredentialStatus
    from rwconsole.http.server import HttpServer
    from rwconsole.remote.client import RemoteWriteClient
    from rwconsole.sources.receiver import RemoteWriteReceiver
    from rwconsole.sources.scrape import ScrapeManager
    from rwconsole.wal.storage import PreparedSamples, TruncateReport, WalStorage

log = logging.getLogger("rwconsole.engine")

T = TypeVar("T")

USER_AGENT = f"rwconsole/{__version__}"
SNAPSHOT_INTERVAL = 1.0
SYNC_INTERVAL = 1.0
PROGRESS_INTERVAL = 0.1
"""How often advanced delivery progress is written; see ``_progress_loop``."""
GC_FIRST_FREEZE = 20.0
GC_FREEZE_INTERVAL = 60.0
"""How often what survives a full collection is frozen; see ``_gc_loop``."""
HISTORY_SECONDS = 3600
MIN_RATE_WINDOW = 10.0
DROP_WAL_SIZE_LIMIT = "wal_size_limit"
LOG_LINES = 2000


class EngineError(Exception):
    """The engine cannot start with this configuration (message says why)."""


class _LogBuffer(logging.Handler):
    """Keeps the newest log records for the console, repeats collapsed (thread-safe)."""

    def __init__(self, size: int = LOG_LINES) -> None:
        super().__init__(level=logging.INFO)
        self._entries: deque[LogEntry] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._collapser = Collapser()

    def emit(self, record: logging.LogRecord) -> None:
        self._keep(self._collapser.admit(record))

    def _keep(self, records: list[logging.LogRecord]) -> None:
        for admitted in records:
            endpoint = getattr(admitted, "endpoint", "")
            entry = LogEntry(admitted.created, admitted.levelname, message(admitted), endpoint)
            with self._lock:
                self._entries.append(entry)

    def entries(self) -> tuple[LogEntry, ...]:
        # Repeats that ended get their summary line even when nothing else is logged.
        self._keep(self._collapser.flush(time.time()))
        with self._lock:
            return tuple(self._entries)


# ---- the appender every source writes into -----------------------------------------------


class _FanoutAppender:
    """The ``Appender`` sources use: writes the WAL, then hands the commit to the queues."""

    def __init__(self, engine: Engine) -> None:
        assert engine.wal is not None
        self._engine = engine
        self._wal = engine.wal
        self._reset()

    def _reset(self) -> None:
        self._refs: list[int] = []
        self._timestamps: list[int] = []
        self._values: list[float] = []
        self._exemplars: list[Exemplar] = []
        self._histograms: list[HistogramSample] = []
        self._starts: list[int] | None = None

    def series_refs(self, labels: Sequence[Labels]) -> list[int]:
        return self._wal.series_refs(labels)

    def append_samples(
        self,
        refs: Sequence[int],
        timestamps: Sequence[int] | int,
        values: Sequence[float],
        start_timestamps: Sequence[int] | None = None,
    ) -> None:
        if not refs:
            return
        if start_timestamps is not None and not any(start_timestamps):
            start_timestamps = None
        self._wal.append_samples(refs, timestamps, values, start_timestamps)
        self._offer_samples(refs, timestamps, values, start_timestamps)

    def prepare_samples(self, refs: Sequence[int]) -> PreparedSamples:
        return self._wal.prepare_samples(refs)

    def append_prepared(
        self, batch: PreparedSamples, timestamp: int, values: Sequence[float]
    ) -> None:
        self._wal.append_prepared(batch, timestamp, values)
        self._offer_samples(batch.refs, timestamp, values)

    def _offer_samples(
        self,
        refs: Sequence[int],
        timestamps: Sequence[int] | int,
        values: Sequence[float],
        starts: Sequence[int] | None = None,
    ) -> None:
        """Add appended samples to the columns the next commit offers the queues."""
        self._refs.extend(refs)
        if isinstance(timestamps, int):
            self._timestamps.extend([timestamps] * len(refs))
        else:
            self._timestamps.extend(timestamps)
        self._values.extend(values)
        if starts is not None or self._starts is not None:
            # The start-timestamp column exists once a sample of the commit had one.
            column = self._starts
            if column is None:
                column = self._starts = [0] * (len(self._refs) - len(refs))
            column.extend(starts if starts is not None else [0] * len(refs))

    def append_exemplars(self, exemplars: Sequence[Exemplar]) -> None:
        if exemplars:
            self._wal.append_exemplars(exemplars)
            self._exemplars.extend(exemplars)

    def append_histograms(self, histograms: Sequence[HistogramSample]) -> None:
        if histograms:
            self._wal.append_histograms(histograms)
            self._histograms.extend(histograms)

    def append_metadata(self, entries: Sequence[MetricMetadata]) -> None:
        if entries:
            self._wal.append_metadata(entries)
            self._engine.metadata_in.inc(len(entries))

    def commit(self) -> None:
        try:
            self._wal.commit()
        except WalAppendError as err:
            self._reset()  # the WAL dropped the commit: so do the queues' columns
            self._engine.append_failures.labels(err.reason).inc()
            raise
        chunk = Chunk(
            end=self._wal.position(),
            refs=self._refs,
            timestamps=self._timestamps,
            values=self._values,
            exemplars=self._exemplars,
            histograms=self._histograms,
            start_timestamps=self._starts,
        )
        self._reset()
        self._engine._on_commit(chunk)


# ---- one endpoint ------------------------------------------------------------------------


@dataclass
class _Endpoint:
    index: int
    config: schema.EndpointConfig
    queue: QueueManager
    follower: WalFollower
    client: RemoteWriteClient
    follower_gauges: FollowerGauges
    metadata_sender: MetadataSender | None = None
    history: deque[HistoryPoint] = field(default_factory=lambda: deque(maxlen=HISTORY_SECONDS))
    last_counters: dict[str, float] = field(default_factory=dict)


# ---- the engine ----------------------------------------------------------------------------


class Engine:
    """Runs the forwarder in a worker thread. Start with ``start()``, end with ``stop()``."""

    def __init__(
        self,
        config: schema.Config,
        *,
        config_path: str | Path | None = None,
        data_dir: str | Path | None = None,
        flush_deadline: float = 5.0,
        serve_metrics: bool = True,
        serve_admin: bool = True,
    ) -> None:
        self.config = config
        self.config_path = Path(config_path) if config_path else None
        self.data_dir = Path(data_dir if data_dir is not None else config.storage.path)
        self.wal_dir = self.data_dir / "wal"
        self.spool_dir = self.data_dir / "spool"
        self.spool_budget = SpoolBudget(0, 0)
        self._spools_made = 0
        self.flush_deadline = flush_deadline
        self.serve_metrics = serve_metrics
        self.registry = Registry()
        (
            self.samples_in,
            self.exemplars_in,
            self.histograms_in,
            self.metadata_in,
            self.highest_timestamp_in,
        ) = queue_metrics.define_global(self.registry)
        self.data_in = EwmaRate()
        self.wal: WalStorage | None = None
        self._dir_lock: DataDirLock | None = None
        self.progress: ProgressStore | None = None
        self.shard_history: ShardHistory | None = None
        self.appender: _FanoutAppender | None = None
        self.endpoints: list[_Endpoint] = []
        self.sources: list[Source] = []
        self.demo_receiver: DemoReceiver | None = None
        self.metrics_server: HttpServer | None = None
        self._log_buffer = _LogBuffer()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._stop_requested: asyncio.Event | None = None
        self._snapshot: Snapshot = EMPTY_SNAPSHOT
        self._tasks: list[asyncio.Task[Any]] = []
        self._last_in_total = 0.0
        self._in_rate = 0.0
        self._last_commit_end: Position = (0, 0)
        self._cut_held: dict[str, deque[tuple[Position, int, str]]] = {}
        """Per queue: (end, samples, drop reason) of records it took from WAL segments
        a truncation cut, not delivered yet (they are in its memory only)."""
        self._restart_cut_lost = 0
        self.demo_endpoints: list[schema.EndpointConfig] = []
        self.reload_lock = asyncio.Lock()
        from rwconsole.engine_reload import define_reload_metrics

        self.reload_successful, self.reload_success_time = define_reload_metrics(self.registry)
        for family in (tls.RELOADS, tls.RELOAD_FAILURES):
            self.registry.include(family)
        self.append_failures = self.registry.counter(
            "rwconsole_wal_append_failures_total",
            "Commits the WAL refused, by reason (disk_full, quota, io_error, write_error, "
            "size_limit); their data was given back to the source.",
            ["reason"],
        )
        self.disk_watch: DiskWatch | None = None
        self._fsync_failing = False
        self.serve_admin = serve_admin
        self.admin_server: AdminServer | None = None

    # ---- thread plumbing ---------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Start the worker thread and wait until the pipeline runs (or failed to)."""
        logging.getLogger("rwconsole").addHandler(self._log_buffer)
        self._thread = threading.Thread(
            target=self._thread_main, name="rwconsole-engine", daemon=True
        )
        self._thread.start()
        if not self._started.wait(timeout):
            raise EngineError(f"the engine did not start within {timeout:.0f}s")
        if self._start_error is not None:
            self._thread.join(timeout=10)
            raise EngineError(str(self._start_error)) from self._start_error

    def stop(self, timeout: float = 60.0) -> None:
        """Flush, persist progress, close everything; returns when the thread ended."""
        loop = self._loop
        if loop is not None and self._stop_requested is not None and loop.is_running():
            loop.call_soon_threadsafe(self._stop_requested.set)
        if self._thread is not None:
            self._thread.join(timeout)
        logging.getLogger("rwconsole").removeHandler(self._log_buffer)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the engine thread to end; True if it did."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as err:  # reported to start() or logged; the thread must end
            if not self._started.is_set():
                self._start_error = err
                self._started.set()
            else:
                log.exception("engine stopped by an unexpected error")
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            gc.unfreeze()

    def submit(self, fn: Callable[[], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Run ``fn()`` on the engine's loop; thread-safe."""
        if self._loop is None or not self._loop.is_running():
            raise EngineError("the engine is not running")

        async def call() -> T:
            return await fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # ---- commands (thread-safe) ----------------------------------------------------------

    def apply_queue_config(
        self, endpoint: str, changes: dict[str, Any], *, save: bool = False
    ) -> concurrent.futures.Future[schema.QueueConfig]:
        """Change queue_config fields of a running endpoint (optionally saving the file)."""
        return self.submit(lambda: self._apply_queue_config(endpoint, changes, save))

    def pause(self, endpoint: str) -> concurrent.futures.Future[None]:
        return self.submit(lambda: self._set_paused(endpoint, True))

    def resume(self, endpoint: str) -> concurrent.futures.Future[None]:
        return self.submit(lambda: self._set_paused(endpoint, False))

    def set_fault(self, mode: str, **options: Any) -> concurrent.futures.Future[None]:
        async def call() -> None:
            if self.demo_receiver is None:
                raise EngineError("there is no demo receiver in this pipeline")
            self.demo_receiver.set_fault(mode, **options)

        return self.submit(call)

    def reload(
        self, config: schema.Config | str | Path | None = None
    ) -> concurrent.futures.Future[ReloadReport]:
        """Apply a new config in place (``None``: re-read the config file); see engine_reload."""
        from rwconsole.engine_reload import reload_engine

        return self.submit(lambda: reload_engine(self, config))

    def _find(self, name: str) -> _Endpoint:
        for endpoint in self.endpoints:
            if endpoint.queue.name == name:
                return endpoint
        raise EngineError(f"no endpoint named {name!r}")

    async def _set_paused(self, name: str, paused: bool) -> None:
        queue = self._find(name).queue
        if paused:
            queue.pause()
        else:
            queue.resume()
        log.info(
            "endpoint %s %s", name, "paused" if paused else "resumed", extra={"endpoint": name}
        )

    async def _apply_queue_config(
        self, name: str, changes: dict[str, Any], save: bool
    ) -> schema.QueueConfig:
        endpoint = self._find(name)
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(schema.QueueConfig)})
        if unknown:
            raise EngineError(f"unknown queue_config field(s): {', '.join(unknown)}")
        new_config = dataclasses.replace(endpoint.config.queue_config, **changes)
        problems = queue_config_problems(new_config)
        if problems:
            raise EngineError("; ".join(f"queue_config.{p.describe()}" for p in problems))
        await endpoint.queue.apply_settings(new_config)
        endpoint.config = dataclasses.replace(endpoint.config, queue_config=new_config)
        endpoints = list(self.config.endpoint)
        endpoints[endpoint.index] = endpoint.config
        self.config = dataclasses.replace(self.config, endpoint=endpoints)
        log.info(
            "endpoint %s: queue_config changed: %s",
            name,
            ", ".join(f"{k}={v}" for k, v in sorted(changes.items())),
            extra={"endpoint": name},
        )
        if save:
            if self.config_path is None:
                raise EngineError("there is no config file to save to (demo pipeline)")
            from rwconsole.config.save import update_config_file

            await asyncio.to_thread(
                update_config_file,
                self.config_path,
                {("endpoint", endpoint.index, "queue_config", k): v for k, v in changes.items()},
            )
        return new_config

    # ---- startup and shutdown ------------------------------------------------------------

    async def _main(self) -> None:
        self._stop_requested = asyncio.Event()
        try:
            await self._startup()
        except BaseException as err:
            self._start_error = err
            self._started.set()
            await self._shutdown()
            return
        self._started.set()
        await self._stop_requested.wait()
        await self._shutdown()

    async def _startup(self) -> None:
        from rwconsole.wal.storage import WalStorage

        cfg = self.config
        try:
            self._dir_lock = DataDirLock.acquire(self.data_dir)
        except DataDirLocked as err:
            raise EngineError(str(err)) from None
        except OSError as err:
            raise EngineError(
                f"cannot create or lock the data directory {self.data_dir}: {err}"
            ) from None
        self.wal = WalStorage.open(
            self.wal_dir,
            segment_size=cfg.wal.segment_size,
            compress=cfg.wal.compression,
            max_size=cfg.wal.max_size,
            reject_when_full=cfg.wal.on_full == "reject",
        )
        self.disk_watch = DiskWatch(self.wal, cfg.wal.on_full)
        self.registry.add_collector(self.wal.metrics)
        self._last_commit_end = self.wal.position()
        self.progress = ProgressStore(self.data_dir)
        self.shard_history = ShardHistory(self.data_dir)
        self.spool_budget = self._make_spool_budget(cfg.wal)
        self.appender = _FanoutAppender(self)
        if cfg.demo.enabled:
            await self._start_demo_receiver()
        for index, endpoint_config in enumerate(self.config.endpoint):
            self.endpoints.append(self._make_endpoint(index, endpoint_config))
        # Each endpoint lost a tail of the same cut: the disk figure counts it once.
        self.disk_watch.samples_dropped += self._restart_cut_lost
        # The input rate ticks before the queues' first desired-shards calculation
        # (timers of equal period fire in start order), as Prometheus' storage-wide
        # rate does; the other way round the first calculation sees no input and
        # reports 0 desired shards for a whole interval.
        self._tasks = [asyncio.create_task(self._rate_loop(), name="_rate_loop")]
        for endpoint in self.endpoints:
            endpoint.queue.start()
            if endpoint.metadata_sender is not None:
                endpoint.metadata_sender.start()
        self.progress.save(force=True)
        await self._start_sources()
        if self.serve_metrics:
            await self._start_metrics_server()
        if self.serve_admin:
            await self._start_admin_server()
        loop_tasks: list[Callable[[], Awaitable[None]]] = [
            self._snapshot_loop,
            self._sync_loop,
            self._progress_loop,
            self._truncate_loop,
            self._gc_loop,
        ]
        self._tasks += [asyncio.create_task(fn(), name=fn.__name__) for fn in loop_tasks]
        self.reload_successful.set(1)
        self.reload_success_time.set(time.time())
        self._refresh_snapshot()
        log.info(
            "engine started: WAL %s, %d endpoint(s), %d source(s)",
            self.wal_dir,
            len(self.endpoints),
            len(self.sources),
        )

    def _make_spool_budget(self, wal: schema.WALConfig) -> SpoolBudget:
        """The spools' shared budget; spool files of an earlier run are removed (what
        they held is undelivered in the WAL and read from there)."""
        removed = clear_spool_directory(self.spool_dir)
        if removed:
            log.info("removed %d spool file(s) of the previous run", removed)
        try:
            stat = os.statvfs(self.data_dir)
            total = stat.f_blocks * stat.f_frsize
        except OSError:
            total = 0
        return SpoolBudget(budget_bytes(wal), max(2 * wal.segment_size, total // 10))

    def _new_spool(self) -> Spool:
        self._spools_made += 1
        return Spool(self.spool_dir / f"queue-{self._spools_made}.spool", self.spool_budget)

    def _make_endpoint(
        self,
        index: int,
        config: schema.EndpointConfig,
        client: RemoteWriteClient | None = None,
    ) -> _Endpoint:
        from rwconsole.remote.client import RemoteWriteClient

        name = config.queue_name()
        url = redact_url(config.url)
        start, wal_end = self._start_position(name, url, config)
        if client is None:
            client = RemoteWriteClient(config, user_agent=USER_AGENT)
        queues: list[QueueManager] = []  # the follower sizes its buffer by the queue's capacity
        follower = WalFollower(
            self.wal_dir,
            start,
            wal_end,
            layouts=self.wal.sample_layouts,
            shard_capacity=lambda: queues[0].settings.capacity if queues else 0,
        )
        queue = QueueManager(
            name=name,
            url=url,
            settings=config.queue_config,
            client=client,
            source=follower,
            lookup=self.wal.lookup,
            metrics=queue_metrics.QueueMetrics(self.registry, name, url),
            data_in=self.data_in,
            highest_timestamp_in=lambda: self.highest_timestamp_in.value,
            start_position=start,
            protocol=2 if config.protobuf_message == schema.PROTOBUF_V2 else 1,
            external_labels=make_labels(self.config.external_labels),
            relabel=relabel_function(config),
            metadata_lookup=self.wal.metadata,
            metadata_changes=self.wal.metadata_changes,
            send_exemplars=config.send_exemplars,
            send_native_histograms=config.send_native_histograms,
            flush_deadline=self.flush_deadline,
            protocol_reprobe_interval=config.protocol_reprobe_interval,
            spool=self._new_spool(),
            delivered_ahead=self.progress.delivered_ahead(name),
        )
        queues.append(queue)
        queue.on_delivered = functools.partial(self._on_delivered, name)
        self._count_cut_before_restart(queue, start)
        metadata_sender = None
        if config.metadata_config.send:
            metadata_sender = MetadataSender(
                name=name,
                client=client,
                metrics=queue.metrics,
                entries=self.wal.metadata_entries,
                send_interval=config.metadata_config.send_interval,
                max_per_send=config.metadata_config.max_samples_per_send,
                min_backoff=config.queue_config.min_backoff,
                max_backoff=config.queue_config.max_backoff,
                retry_on_http_429=config.queue_config.retry_on_http_429,
                active=lambda: queue.negotiation.current == 1,
            )
        return _Endpoint(
            index=index,
            config=config,
            queue=queue,
            follower=follower,
            client=client,
            follower_gauges=FollowerGauges(self.registry, name, url),
            metadata_sender=metadata_sender,
        )

    def _on_delivered(self, name: str, position: Position) -> None:
        assert self.progress is not None
        self.progress.set(name, position)
        held = self._cut_held.get(name)
        if held:
            while held and held[0][0] <= position:
                held.popleft()
            self._publish_cut_held(name)

    def _publish_cut_held(self, name: str) -> None:
        """Persist what the queue holds from truncated segments, by drop reason."""
        assert self.progress is not None
        counts: dict[str, int] = {}
        for _, samples, reason in self._cut_held.get(name, ()):
            counts[reason] = counts.get(reason, 0) + samples
        self.progress.set_cut_undelivered(name, counts)

    def _count_cut_before_restart(self, queue: QueueManager, start: Position) -> None:
        """Count what the last run had taken from since-truncated segments and not delivered.

        Those samples were in the queue's memory only: the WAL no longer holds
        them, so resuming from the saved position cannot send them.
        """
        assert self.progress is not None and self.wal is not None
        name = queue.name
        pending = self.progress.cut_undelivered(name)
        if not pending:
            return
        self.progress.set_cut_undelivered(name, {})
        segments = [s.index for s in self.wal.segments_info()]
        if segments and start[0] >= segments[0]:
            return  # the saved position's segment is still there: nothing was lost
        for reason, samples in pending.items():
            queue.metrics.dropped("samples", reason).inc(samples)
            log.error(
                "endpoint %s: %d samples taken from WAL segments truncated before the restart "
                "(%s) were not delivered and are lost",
                name,
                samples,
                reason,
                extra={"endpoint": name},
            )
        if self.disk_watch is not None:
            lost = pending.get(DROP_WAL_SIZE_LIMIT, 0)
            self._restart_cut_lost = max(self._restart_cut_lost, lost)

    def _start_position(
        self, name: str, url: str, config: schema.EndpointConfig
    ) -> tuple[Position, Position]:
        """Where the queue starts reading, and the WAL end.

        A known endpoint resumes at its saved position; a new one starts at the
        WAL end, or at the oldest retained record with ``backfill``.
        """
        assert self.progress is not None
        wal_end = self.wal.position()
        saved = self.progress.resolve(
            name,
            url=url,
            message=config.protobuf_message,
            legacy_name=config.legacy_queue_name(),
            taken={e.queue_name() for e in self.config.endpoint},
        )
        extra = {"endpoint": name}
        if saved is not None and saved > wal_end:
            log.warning(
                "endpoint %s: saved position %s is past the WAL end %s (WAL data lost in a "
                "crash?); resuming at the WAL end",
                name,
                saved,
                wal_end,
                extra=extra,
            )
            saved = wal_end
        if saved is not None:
            self._check_delivered_ahead(name, saved, wal_end)
            start = saved
            if saved != wal_end:
                log.info(
                    "endpoint %s resumes from WAL position %s (WAL end %s)",
                    name,
                    saved,
                    wal_end,
                    extra=extra,
                )
        else:
            segments = [s for s in self.wal.segments_info() if s.size]
            oldest: Position = (segments[0].index, 0) if segments else wal_end
            if config.backfill:
                start = oldest
                log.info(
                    "new endpoint %s: backfill from the oldest retained WAL record %s "
                    "(%d segment(s))",
                    name,
                    oldest,
                    len(segments),
                    extra=extra,
                )
            else:
                start = wal_end
                if segments and oldest < wal_end:
                    log.info(
                        "new endpoint %s starts at the WAL end %s, skipping %d retained WAL "
                        "segment(s) (%s bytes); set backfill = true to send them",
                        name,
                        wal_end,
                        len(segments),
                        f"{sum(s.size for s in segments if s.index < wal_end[0]) + wal_end[1]:,}",
                        extra=extra,
                    )
        self.progress.set(name, start)
        return start, wal_end

    def _check_delivered_ahead(self, name: str, saved: Position, wal_end: Position) -> None:
        """Forget the items saved as delivered beyond ``saved`` unless the WAL still holds
        the records they came from: after a lost WAL tail or a truncation past the
        saved position, other records would be read where they lay."""
        assert self.progress is not None and self.wal is not None
        ahead = self.progress.delivered_ahead(name)
        if ahead is None:
            return
        segments = [s.index for s in self.wal.segments_info()]
        if ahead.until > wal_end or not segments or saved[0] < segments[0]:
            log.warning(
                "endpoint %s: the WAL no longer holds the records up to %s that %d items "
                "delivered before the restart came from; they are not skipped",
                name,
                ahead.until,
                ahead.total(),
                extra={"endpoint": name},
            )
            self.progress.set_delivered_ahead(name, None)

    async def _start_demo_receiver(self) -> None:
        from rwconsole.demo.receiver import DemoReceiver

        receiver = self.demo_receiver = DemoReceiver("127.0.0.1:0")
        await receiver.start()
        url = receiver.url
        demo_endpoints = [
            schema.EndpointConfig(url=url, name="demo-v1"),
            schema.EndpointConfig(
                url=url,
                name="demo-v2",
                protobuf_message=schema.PROTOBUF_V2,
                queue_config=schema.QueueConfig(max_shards=10, batch_send_deadline=1.0),
            ),
        ]
        self.demo_endpoints = demo_endpoints
        self.config = dataclasses.replace(
            self.config, endpoint=[*self.config.endpoint, *demo_endpoints]
        )

    async def _start_sources(self) -> None:
        cfg = self.config
        assert self.appender is not None
        if cfg.synthetic is not None:
            from rwconsole.sources.synthetic import SyntheticSource

            synthetic = SyntheticSource.from_config(cfg.synthetic, self.appender)
            synthetic.start()
            self.sources.append(synthetic)
        if cfg.scrape:
            from rwconsole.sources.scrape import ScrapeManager

            manager = ScrapeManager(self.appender, defaults=cfg.scrape_defaults)
            await manager.apply(cfg.scrape)
            self.sources.append(manager)
        if cfg.receiver is not None:
            receiver = self.make_receiver(cfg.receiver)
            try:
                await receiver.start()
            except OSError as err:
                raise EngineError(
                    f"receiver.listen_address: cannot listen on "
                    f"{cfg.receiver.listen_address}: {err.strerror or err}"
                ) from None
            self.sources.append(receiver)

    def make_receiver(self, config: schema.ReceiverConfig) -> RemoteWriteReceiver:
        """The ``[receiver]`` source, not started; ``EngineError`` for its TLS or auth settings."""
        from rwconsole.sources.receiver import RemoteWriteReceiver

        assert self.appender is not None
        try:
            return RemoteWriteReceiver.from_config(config, self.appender, registry=self.registry)
        except (ConnectivityConfigError, AuthError) as err:
            raise EngineError(f"receiver: {err}") from None

    def check_tls_files(self) -> list[str]:
        """Look at every TLS file in use now (a reload); one line per change or problem."""
        return tls.check_rotated_files()

    def _source_status(self) -> tuple[SourceStatus, ...]:
        statuses = []
        for source in self.sources:
            try:
                statuses.append(source.status())
            except Exception:  # a broken status must not stop the snapshots
                log.exception("reading the status of %s failed", type(source).__name__)
        return tuple(statuses)

    async def _start_metrics_server(self) -> None:
        from rwconsole.http.server import HttpServer, Request, Response
        from rwconsole.sources.receiver import parse_listen_address

        async def handle(request: Request) -> Response:
            if request.path == "/metrics" and request.method in ("GET", "HEAD"):
                return Response(
                    status=200,
                    body=self.registry.expose().encode(),
                    headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
                )
            if request.path in ("/-/healthy", "/-/ready"):
                return Response(status=200, body=b"ok\n")
            if request.path == "/-/reload":
                from rwconsole.engine_reload import lifecycle_reload

                status, body = await lifecycle_reload(self, request.method)
                return Response(status=status, body=body.encode())
            if request.path.startswith("/api/v1/targets") and request.method == "GET":
                from rwconsole.sources import targets_api

                manager = targets_api.find_manager(self.sources)
                status, body = targets_api.api_response(request.path, request.query, manager)
                return Response(
                    status=status, body=body, headers={"Content-Type": "application/json"}
                )
            return Response(status=404, body=b"not found\n")

        server = HttpServer(handle)
        try:
            await server.start(*parse_listen_address(self.config.http.listen_address))
        except (OSError, ValueError) as err:
            raise EngineError(
                f"http.listen_address: cannot listen on {self.config.http.listen_address}: "
                f"{getattr(err, 'strerror', None) or err}"
            ) from None
        self.metrics_server = server

    async def _start_admin_server(self) -> None:
        from rwconsole.admin.server import AdminConfigError, AdminServer

        server = AdminServer(
            self, self.config.admin, history_limit=HISTORY_SECONDS, log_limit=LOG_LINES
        )
        try:
            await server.start()
        except AdminConfigError as err:
            await server.stop()
            raise EngineError(str(err)) from None
        self.admin_server = server

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for source in reversed(self.sources):
            await _stop_logged(source.stop(), f"stopping {type(source).__name__}")
        await asyncio.gather(
            *(e.metadata_sender.stop() for e in self.endpoints if e.metadata_sender is not None),
            *(e.queue.stop(self.flush_deadline) for e in self.endpoints),
            return_exceptions=True,
        )
        if self.progress is not None:
            for endpoint in self.endpoints:
                queue = endpoint.queue
                self.progress.set(queue.name, queue.delivered_position)
                self.progress.set_delivered_ahead(queue.name, queue.delivered_ahead)
            self.progress.save(force=True)
        if self.shard_history is not None:
            self.shard_history.save()
        for endpoint in self.endpoints:
            await _stop_logged(
                endpoint.client.aclose(), f"closing the client of {endpoint.queue.name}"
            )
        if self.demo_receiver is not None:
            await _stop_logged(self.demo_receiver.stop(), "stopping the demo receiver")
        if self.metrics_server is not None:
            await _stop_logged(self.metrics_server.stop(), "stopping the metrics server")
        if self.admin_server is not None:
            await _stop_logged(self.admin_server.stop(), "stopping the admin API")
        self._refresh_snapshot(running=False)
        if self.wal is not None:
            self.wal.close()
        if self._dir_lock is not None:
            self._dir_lock.release()
        log.info("engine stopped")

    # ---- data path -----------------------------------------------------------------------

    def _on_commit(self, chunk: Chunk) -> None:
        start, self._last_commit_end = self._last_commit_end, chunk.end
        items = chunk.item_count
        if not items and start == chunk.end:
            return
        if chunk.refs:
            self.samples_in.inc(len(chunk.refs))
            highest = max(chunk.timestamps) // 1000
            if highest > self.highest_timestamp_in.value:
                self.highest_timestamp_in.set(highest)
        if chunk.exemplars:
            self.exemplars_in.inc(len(chunk.exemplars))
        if chunk.histograms:
            self.histograms_in.inc(len(chunk.histograms))
            highest = max(h.timestamp for h in chunk.histograms) // 1000
            if highest > self.highest_timestamp_in.value:
                self.highest_timestamp_in.set(highest)
        self.data_in.add(items)
        for endpoint in self.endpoints:
            endpoint.follower.offer(start, chunk)

    # ---- periodic work -------------------------------------------------------------------

    async def _rate_loop(self) -> None:
        while True:
            await asyncio.sleep(SHARD_UPDATE_INTERVAL)
            self.data_in.tick()

    async def _gc_loop(self) -> None:
        """Keep Python's full garbage collections short.

        The series tables and caches are millions of long-lived objects, and an
        automatic full collection walks all of them with the GIL held: 55–110 ms
        every few seconds at 200k series, stalling forwarding and the console
        alike. Collecting once and freezing what survived (it lives as long as
        its series) leaves later collections only the newer objects. Frozen
        objects are still freed by reference counting; the engine unfreezes
        everything when it stops.
        """
        await asyncio.sleep(GC_FIRST_FREEZE)
        while True:
            gc.collect()
            gc.freeze()
            await asyncio.sleep(GC_FREEZE_INTERVAL)

    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(SYNC_INTERVAL)
            try:
                self.wal.sync()
                if self._fsync_failing:
                    log.warning("WAL fsync works again")
                self._fsync_failing = False
            except OSError as err:
                if not self._fsync_failing:  # once per incident, not every second
                    log.error("WAL fsync failed: %s (logged again only after it recovers)", err)
                self._fsync_failing = True
            try:
                self._free_space()
            except Exception:
                log.exception("freeing WAL space failed; it is tried again in a second")
            if self.progress is not None:
                await asyncio.to_thread(self.progress.save)

    async def _progress_loop(self) -> None:
        """Write advanced delivery progress every ``PROGRESS_INTERVAL``.

        After a kill -9 the queues re-send what was delivered after the last
        write, so the interval bounds the duplicates (0.1 s of traffic). Writing
        a tiny file and renaming it costs about 0.1 ms; the rename survives a
        crashed process without an fsync, so the fsync (for power loss) is left
        to ``_sync_loop``, once a second like the WAL's own.
        """
        assert self.progress is not None
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            self.progress.save(durable=False)

    def _forget_truncated_series(self, report: TruncateReport) -> None:
        """Sources drop refs of collected series (they ask for new ones when the series
        come back); queues drop their caches of series gone from the WAL for good."""
        if report.collected_refs:
            collected = set(report.collected_refs)
            for source in self.sources:
                source.forget_series(collected)
        if report.removed_refs:
            for endpoint in self.endpoints:
                endpoint.queue.forget_series(report.removed_refs)

    async def _truncate_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.wal.truncate_frequency)
            try:
                self.truncate_wal()
            except Exception:
                log.exception("WAL truncation failed; it is tried again next round")

    def _free_space(self) -> None:
        """Truncate now, not at the next round, when appends fail or the WAL is over budget."""
        assert self.wal is not None and self.disk_watch is not None
        cut = self.disk_watch.budget_cut() if self.disk_watch.drops_oldest else None
        if cut is not None:
            self.truncate_wal(budget_before=cut)
        elif self.wal.append_error is not None:
            self.truncate_wal(eager=True)

    def truncate_wal(
        self, now: float | None = None, *, budget_before: int | None = None, eager: bool = False
    ) -> TruncateReport:
        """One truncation round (on the loop): keep what the slowest endpoint needs.

        Segments are folded into a checkpoint only below every endpoint's
        delivered position, unless their data is older than max_keepalive_time;
        then unsent samples in them that no queue holds in memory are lost,
        counted per endpoint in
        ``*_samples_dropped_total{reason="wal_truncated_max_keepalive"}`` and logged
        (what a queue holds is still sent, or counted by the next start).
        ``eager`` folds every delivered segment (appends are failing: free
        space now). ``budget_before`` folds the segments before it whatever
        was delivered (``[wal] max_size`` with ``drop_oldest``): what no queue
        holds in memory yet is lost, counted with ``reason="wal_size_limit"``;
        what a queue took from the cut segments is still sent, or counted by
        the next start if the process stops before (``_count_cut_before_restart``).
        """
        wal_cfg = self.config.wal
        now_ms = int((time.time() if now is None else now) * 1000)
        sent = [e.queue.metrics.queue_highest_sent.value for e in self.endpoints]
        lowest_sent_ms = int(min(sent) * 1000) if sent and min(sent) > 0 else 0
        floor = now_ms - int(wal_cfg.max_keepalive_time * 1000)
        mint = max(lowest_sent_ms - int(wal_cfg.min_keepalive_time * 1000), floor, 0)
        current = self.wal.position()[0]
        needed = min((e.queue.delivered_position[0] for e in self.endpoints), default=current)
        if eager:
            needed = min((self._first_needed(e, current) for e in self.endpoints), default=current)
        before = max(needed, self._segments_older_than(floor, needed))
        reason = queue_metrics.DROP_WAL_TRUNCATED
        if budget_before is not None and budget_before > before:
            before = budget_before
            reason = DROP_WAL_SIZE_LIMIT
        # Lost is what no queue holds in memory yet: from where each queue's memory ends
        # in the files. For a budget cut, what a follower buffered from the cut segments
        # is dropped too (``drop_before`` below counts it); an age cut leaves memory alone.
        starts = {e.queue.name: e.follower.in_memory_until for e in self.endpoints}
        at_risk = {
            name: self._samples_per_segment(start, before)
            for name, start in starts.items()
            if start[0] < before
        }
        # What queues hold from the segments to cut and have not delivered stays in their
        # memory and goes out; only a restart before that loses it (then it is counted).
        held = {
            e.queue.name: self.wal.samples_per_record(
                e.queue.delivered_position,
                min(
                    e.follower.handed if reason == DROP_WAL_SIZE_LIMIT else starts[e.queue.name],
                    (before, 0),
                ),
            )
            for e in self.endpoints
            if e.queue.delivered_position[0] < before
        }
        to_free = eager or reason == DROP_WAL_SIZE_LIMIT
        report = self.wal.truncate(
            before_segment=before,
            mint_ms=mint,
            all_before=to_free,
            # Freeing space: the checkpoint keeps series, not the samples folded away.
            samples_mint_ms=self._max_time_before(before) + 1 if to_free else None,
        )
        self._forget_truncated_series(report)
        folded = set(report.folded_segments)
        for name, records in held.items():
            taken = [(end, n, reason) for end, n in records if end[0] in folded]
            if taken:
                self._cut_held.setdefault(name, deque()).extend(taken)
                self._publish_cut_held(name)
        cut_from_wal = 0  # distinct WAL samples: each endpoint loses a tail of the same cut
        for endpoint in self.endpoints:
            counts = at_risk.get(endpoint.queue.name, {})
            lost = sum(n for index, n in counts.items() if index in folded)
            if folded and reason == DROP_WAL_SIZE_LIMIT:
                # Buffered data of the cut goes too: the WAL size, not memory, is the budget.
                lost += endpoint.follower.drop_before(max(folded) + 1)
            elif folded:
                # Counted as lost above: it must not go out after all.
                endpoint.follower.drop_read_ahead_before(max(folded) + 1)
            if not lost:
                continue
            endpoint.queue.metrics.dropped("samples", reason).inc(lost)
            if reason == DROP_WAL_SIZE_LIMIT:
                cut_from_wal = max(cut_from_wal, lost)
                log.error(
                    "endpoint %s: %d unsent samples were truncated from the WAL to keep it "
                    "within max_size (%d bytes)",
                    endpoint.queue.name,
                    lost,
                    wal_cfg.max_size,
                    extra={"endpoint": endpoint.queue.name},
                )
                continue
            log.error(
                "endpoint %s: %d unsent samples were older than max_keepalive_time (%ss) and "
                "were truncated from the WAL",
                endpoint.queue.name,
                lost,
                wal_cfg.max_keepalive_time,
                extra={"endpoint": endpoint.queue.name},
            )
        if cut_from_wal:
            assert self.disk_watch is not None
            self.disk_watch.samples_dropped += cut_from_wal
        return report

    def _segments_older_than(self, floor_ms: int, needed: int) -> int:
        """First segment from ``needed`` on whose data is not all older than ``floor_ms``."""
        result = needed
        active = self.wal.position()[0]
        for info in self.wal.segments_info():
            if info.index < needed:
                continue
            if info.index < active and info.max_time_ms is not None and info.max_time_ms < floor_ms:
                result = info.index + 1
            else:
                break
        return result

    def _first_needed(self, endpoint: _Endpoint, active: int) -> int:
        """The endpoint's delivered segment, or the next one when it has sent all of it.

        A finished segment whose samples are all delivered can go even though
        the delivered position still points into it (at its last record).
        """
        segment, offset = endpoint.queue.delivered_position
        if segment < active and not any(
            self._samples_per_segment((segment, offset), segment + 1).values()
        ):
            return segment + 1
        return segment

    def _max_time_before(self, before_segment: int) -> int:
        """Newest sample time (ms) in the segments before ``before_segment``."""
        times = [
            info.max_time_ms
            for info in self.wal.segments_info()
            if info.index < before_segment and info.max_time_ms is not None
        ]
        return max(times, default=-1)

    def _samples_per_segment(self, start: Position, before_segment: int) -> dict[int, int]:
        """Samples per segment from ``start`` up to ``before_segment`` (exclusive)."""
        return self.wal.samples_per_segment(start, before_segment)

    async def _snapshot_loop(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_INTERVAL)
            self._record_history()
            self._refresh_snapshot()

    def _record_history(self) -> None:
        now = time.time()
        total_in = self.samples_in.value
        self._in_rate = max(0.0, total_in - self._last_in_total) / SNAPSHOT_INTERVAL
        self._last_in_total = total_in
        for endpoint in self.endpoints:
            endpoint.follower_gauges.publish(endpoint.follower)
            m = endpoint.queue.metrics
            counters = {
                "out": m.sent["samples"].value,
                "accepted": m.accepted["samples"].value,
                "retried": m.retried["samples"].value,
                "failed": m.failed["samples"].value,
                "dropped": m.total_dropped("samples"),
                "dur_sum": m.batch_duration.sum,
                "dur_count": float(m.batch_duration.count),
                "in_flight": m.in_flight_time.value,
                "busy": m.shard_busy_time.value,
                "batches": m.send_batches.value,
                **{phase: m.send_phase[phase].value for phase in queue_metrics.SEND_PHASES},
            }
            last = endpoint.last_counters or counters
            delta = {k: counters[k] - last.get(k, 0.0) for k in counters}
            endpoint.last_counters = counters
            latency = delta["dur_sum"] / delta["dur_count"] if delta["dur_count"] else 0.0
            batches = delta["batches"]
            shards = m.shards.value
            endpoint.history.append(
                HistoryPoint(
                    time=now,
                    shards=m.shards.value,
                    shards_desired=m.shards_desired.value,
                    shards_min=m.shards_min.value,
                    shards_max=m.shards_max.value,
                    lag_seconds=endpoint.queue.lag_seconds(),
                    samples_in_per_second=self._in_rate,
                    samples_out_per_second=delta["out"] - delta["retried"],
                    retried_per_second=delta["retried"],
                    failed_per_second=delta["failed"],
                    dropped_per_second=delta["dropped"],
                    pending=m.pending["samples"].value,
                    send_latency_seconds=latency,
                    accepted_per_second=delta["accepted"],
                    requests_in_flight=delta["in_flight"] / SNAPSHOT_INTERVAL,
                    batches_per_second=batches / SNAPSHOT_INTERVAL,
                    send_encode_seconds=delta["encode"] / batches if batches else 0.0,
                    send_loop_wait_seconds=delta["loop_wait"] / batches if batches else 0.0,
                    send_network_seconds=delta["network"] / batches if batches else 0.0,
                    shard_utilisation=min(1.0, delta["busy"] / (shards * SNAPSHOT_INTERVAL))
                    if shards
                    else 0.0,
                )
            )
            if self.shard_history is not None:
                self.shard_history.add(endpoint.queue.name, m.shards_desired.value, now)
        if self.shard_history is not None:
            self.shard_history.maybe_save(now)

    def _refresh_snapshot(self, running: bool = True) -> None:
        endpoints = []
        for endpoint in self.endpoints:
            queue = endpoint.queue
            m = queue.metrics
            endpoints.append(
                EndpointSnapshot(
                    name=queue.name,
                    url=queue.url,
                    protocol=queue.protocol,
                    status=queue.status(),
                    paused=queue.paused,
                    last_error=queue.last_error,
                    last_error_time=queue.last_error_time,
                    last_status=queue.last_status,
                    shards=queue.shard_count,
                    shards_desired=m.shards_desired.value,
                    queue_config=dataclasses.asdict(endpoint.config.queue_config),
                    pending_samples=m.pending["samples"].value,
                    samples_total=m.sent["samples"].value,
                    samples_failed=m.failed["samples"].value,
                    samples_retried=m.retried["samples"].value,
                    samples_dropped=m.total_dropped("samples"),
                    exemplars_total=m.sent["exemplars"].value,
                    histograms_total=m.sent["histograms"].value,
                    bytes_total=m.bytes_total.value,
                    lag_seconds=queue.lag_seconds(),
                    read_position=queue.read_position,
                    delivered_position=queue.delivered_position,
                    live=endpoint.follower.live,
                    history=tuple(endpoint.history),
                    credentials=_credentials(endpoint.client.credential_status()),
                    samples_accepted=m.accepted["samples"].value,
                    shard_hours=self.shard_history.hours(queue.name)
                    if self.shard_history is not None
                    else (),
                    protocol_state=queue.negotiation.describe(),
                    loss_at_budget_per_second=self._loss_at_budget(endpoint),
                    requests_in_flight=int(m.in_flight.value),
                    shards_reason=queue.shards_reason,
                    spool_batches=int(m.spool_batches.value),
                    spool_bytes=int(m.spool_bytes.value),
                )
            )
        sources = self._source_status()
        demo = None
        if self.demo_receiver is not None:
            with contextlib.suppress(Exception):
                demo = self.demo_receiver.stats()
        address = ""
        if self.metrics_server is not None:
            address = f"{self.metrics_server.host}:{self.metrics_server.port}"
        self._snapshot = Snapshot(
            time=time.time(),
            running=running,
            wal_dir=str(self.wal_dir),
            wal_position=self.wal.position() if self.wal is not None else (0, 0),
            samples_in_total=self.samples_in.value,
            samples_in_per_second=self._in_rate,
            endpoints=tuple(endpoints),
            sources=sources,
            demo=demo,
            logs=self._log_buffer.entries(),
            metrics_address=address,
            rate_window_seconds=rate_window(self.config),
            disk=self._disk_snapshot(),
            targets=_scrape_targets(self.sources),
        )

    def _disk_snapshot(self) -> WalDiskSnapshot | None:
        if self.disk_watch is None or self.wal is None:
            return None
        failures = self.registry.total("rwconsole_wal_append_failures_total")
        try:
            return self.disk_watch.sample(time.monotonic(), failures)
        except (OSError, RuntimeError):  # the WAL is closed or its directory unreadable
            return None

    def _loss_at_budget(self, endpoint: _Endpoint) -> float:
        """Samples/s the endpoint would lose at the budget: what comes in faster than it sends."""
        if self.disk_watch is None or not self.disk_watch.drops_oldest or not endpoint.history:
            return 0.0
        last = endpoint.history[-1]
        return max(0.0, last.samples_in_per_second - last.samples_out_per_second)


async def _stop_logged(step: Awaitable[Any], what: str) -> None:
    """Run one shutdown step; a failure is logged and shutdown goes on."""
    try:
        await step
    except Exception:
        log.exception("%s failed during shutdown", what)


def rate_window(config: schema.Config) -> float:
    """Seconds the console averages rates over: two intervals of the slowest source, >= 10 s.

    Over a shorter window a scrape every 5 s reads as 0/s most seconds.
    """
    intervals = [job.scrape_interval for job in config.scrape]
    if config.synthetic is not None:
        intervals.append(config.synthetic.interval)
    return max([MIN_RATE_WINDOW, *(2 * i for i in intervals)])


def _scrape_targets(sources: list[Any]) -> tuple[Any, ...]:
    from rwconsole.sources import targets_api

    try:
        return _snapshot_targets(targets_api.find_manager(sources))
    except Exception:  # a broken status must not stop the snapshots
        log.exception("reading the scrape targets failed")
        return ()


def _credentials(status: CredentialStatus | None) -> CredentialsSnapshot | None:
    if status is None:
        return None
    return CredentialsSnapshot(status.source, status.expires_at, status.last_error)


def relabel_function(config: schema.EndpointConfig) -> Callable[[Labels], Labels | None] | None:
    """The endpoint's write_relabel_config as the function its queue applies (None: no rules)."""
    from rwconsole.relabel import compile_rules, relabel

    rules = compile_rules(config.write_relabel_config)
    return (lambda labels: relabel(labels, rules)) if rules else None


def _snapshot_targets(manager: ScrapeManager | None) -> tuple[ScrapeTargetSnapshot, ...]:
    """Every active target, then every dropped one, by job."""
    if manager is None:
        return ()
    active = [
        ScrapeTargetSnapshot(
            target.job,
            target.full_url,
            status.health,
            dict(target.series_labels),
            dict(target.discovered),
            status.last_scrape,
            status.last_duration,
            status.last_samples,
            status.last_error,
            "",
            target.interval,
            target.timeout,
        )
        for target, status in manager.active_targets()
    ]
    dropped = [
        ScrapeTargetSnapshot(d.job, "", "dropped", {}, dict(d.discovered), dropped_by=d.reason)
        for d in manager.dropped_targets()
    ]
    return tuple(active + dropped)
