"""Scraping: one asyncio ``ScrapeLoop`` per target and the ``ScrapeManager`` over them.

A scrape GETs the target (Accept negotiates OpenMetrics 1.0.0 first, then text
0.0.4, as Prometheus does), parses the whole payload before appending anything,
and then in one synchronous block appends series, samples, exemplars and
metadata, the report series (``up``, ``scrape_duration_seconds``,
``scrape_samples_scraped``, ``scrape_samples_post_metric_relabeling``,
``scrape_series_added``) and staleness markers, and commits once.

Semantics follow Prometheus: target labels (``job``, ``instance`` and the job's
``labels``) are added to every series; with ``honor_labels = false`` a clashing
scraped label is kept as ``exported_<name>``; explicit timestamps are used only
with ``honor_timestamps`` (and such series are not tracked for staleness); a
series that disappears gets a stale marker at the next scrape; a failed or
unparsable scrape sets ``up`` to 0, appends nothing from the payload and marks
every series of the previous scrape stale; a stopped target marks all its
series (report series too) stale. Stopping the whole manager (a shutdown)
marks nothing: its series are still live and a restart scrapes them again.

The scrape cache maps the series text of a line to its WAL ref, so a steady
target costs no label parsing and no label-set construction per scrape. On top
of it, a target that answers with the same series lines as last time, values
aside (the usual case), skips parsing altogether: the body is matched against
the previous body's ``SteadyShape``, its values are converted in bulk and
appended with the refs resolved last time, as a batch the appender prepared
once (``prepare_samples`` / ``append_prepared``) when it offers that.
Anything else takes the full path. While the shape holds, the loop keeps no
key → ref map and no staleness set beside it: both follow from the shape's
keys and its refs, and are rebuilt when the full path needs them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx

from rwconsole import __version__
from rwconsole.http import redirect
from rwconsole.http.auth import build_authenticator
from rwconsole.http.options import custom_headers
from rwconsole.http.transport import build_transport
from rwconsole.labels import METRIC_NAME, Labels, make_labels
from rwconsole.model import (
    STALE_NAN,
    Appender,
    Exemplar,
    MetricMetadata,
    SourceStatus,
    StalePreparedError,
    TargetStatus,
    WalAppendError,
)
from rwconsole.sources.scrape_cache import CacheState, Steady
from rwconsole.sources.steady import SteadyShape
from rwconsole.sources.textparse import Format, ParseError, Payload, format_for, parse

log = logging.getLogger(__name__)

ACCEPT_HEADER = (
    "application/openmetrics-text;version=1.0.0,"
    "application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
USER_AGENT = f"rwconsole/{__version__}"
REPORT_NAMES = (
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
)
_THREAD_PARSE_BYTES = 512 * 1024
"""Payloads larger than this are fully parsed in a worker thread so the loop stays responsive.

One at a time per event loop: the parse holds the GIL, so running several at once
gains nothing, while each full parse briefly needs a few KB per series of its target
(the first scrapes of many large targets would otherwise all peak together)."""
_READ_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
_RELEARN_EVERY = 8
"""Once two learned shapes in a row did not fit the next body, learn only on every
this many full-path scrapes (until a shape fits again)."""


def target_labels(config: Any, target: str) -> Labels:
    """``job``, ``instance`` and the job's extra labels (which may override both)."""
    pairs = {"job": config.job_name, "instance": target}
    pairs.update(config.labels)
    return make_labels(pairs)


def merge_labels(scraped: Labels, target: Labels, honor_labels: bool) -> Labels:
    """Apply target labels to a scraped label set (Prometheus' honor_labels rules)."""
    result = dict(scraped)
    if honor_labels:
        for name, value in target:
            if name not in result:
                result[name] = value
    else:
        for name, value in target:
            if name in result:
                exported = "exported_" + name
                while exported in result:
                    exported = "exported_" + exported
                result[exported] = result.pop(name)
            result[name] = value
    return make_labels(result)


def scrape_url(config: Any, target: str) -> str:
    scheme = config.scheme
    path = config.metrics_path
    if not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{target}{path}"


def _params(config: Any) -> list[tuple[str, str]]:
    return [(name, value) for name, values in config.params.items() for value in values]


@dataclass(frozen=True, slots=True)
class ScrapeCounters:
    scrapes_total: int = 0
    scrape_failures_total: int = 0
    parse_errors_total: int = 0


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A full parse, and the body's shape when it may become steady."""

    payload: Payload
    shape: SteadyShape | None
    known: dict[str, int] | None = None
    """The refs the parse was given when they had to be rebuilt for it."""


class ScrapeLoop:
    """Scrapes one target on the job's interval and writes into an Appender."""

    def __init__(
        self,
        config: Any,
        target: str,
        appender: Appender,
        client: httpx.AsyncClient,
        *,
        authenticator: Any = None,
        offset: float = 0.0,
        clock: Callable[[], float] = time.time,
        on_result: Callable[[bool, bool], None] | None = None,
    ) -> None:
        self.config = config
        self.target = target
        self._appender = appender
        self._client = client
        self._auth = authenticator
        self._offset = offset
        self._clock = clock
        self._on_result = on_result
        self._target_labels = target_labels(config, target)
        self._url = scrape_url(config, target)
        self._params = _params(config)
        self._state = CacheState()
        self._task: asyncio.Task[None] | None = None
        self._status = TargetStatus(config.job_name, target, self._url)
        self._stopped = False
        self._forgets = 0

    @property
    def url(self) -> str:
        return self._url

    def status(self) -> TargetStatus:
        return self._status

    def take_state(self, other: ScrapeLoop) -> None:
        """Continue where ``other`` (the same target before a reload) left off."""
        self._state = other._state
        self._status = replace(other._status, url=self._url)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    def same_target_labels(self, other: ScrapeLoop) -> bool:
        """Whether ``other`` labels its series exactly as this loop does (cache reusable)."""
        return self._target_labels == other._target_labels and bool(
            self.config.honor_labels
        ) == bool(other.config.honor_labels)

    def forget_series(self, refs: set[int]) -> None:
        """Drop cached refs the WAL has collected; their series are created anew when seen."""
        self._forgets += 1
        self._state.forget(refs)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = float(self.config.scrape_interval)
        await asyncio.sleep(self._offset)
        next_at = loop.time()
        while not self._stopped:
            await self.scrape_once()
            next_at += interval
            delay = next_at - loop.time()
            if delay < 0:  # a slow scrape: skip the missed slots instead of bursting
                next_at = loop.time()
                delay = 0.0
            await asyncio.sleep(delay)

    async def stop(self, *, stale: bool = True) -> None:
        """Stop scraping; with ``stale`` mark every series of this target stale."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        if stale:
            self._end_of_run_staleness()

    # --- one scrape ----------------------------------------------------------------------

    async def scrape_once(self) -> bool:
        """Scrape, append and commit once; return whether the target was up."""
        started = self._clock()
        timestamp = int(started * 1000)
        t0 = time.perf_counter()
        result: _Parsed | list[float] | None = None
        error = ""
        parse_error = False
        try:
            body, content_type = await self._fetch()
            fmt = format_for(content_type)
            # A steady body only has its values converted: quicker on the loop than
            # the hand-over to a thread, which would hold the GIL all the same.
            result = self._read_steady(body, fmt)
            if result is None and len(body) > _THREAD_PARSE_BYTES:
                async with _read_gate():
                    forgets = self._forgets
                    result = await asyncio.to_thread(self._read_full, body, fmt)
                if self._forgets != forgets:  # series collected meanwhile may be in the result
                    result = self._read_full(body, fmt)
            elif result is None:
                result = self._read_full(body, fmt)
        except ParseError as exc:
            error = f"parse error at line {exc.line}: {exc.reason}"
            parse_error = True
        except (httpx.HTTPError, OSError) as exc:
            error = _describe(exc)
        except _ScrapeFailed as exc:
            error = str(exc)
        duration = time.perf_counter() - t0
        append_failed = False
        try:
            samples = self._store(timestamp, result, duration)
        except WalAppendError as exc:  # disk full or budget: the scrape is lost, counted
            self._state.steady = None
            error = str(exc)
            append_failed = True
            result = None
            samples = 0
        except Exception as exc:  # the appender refused otherwise: report, keep going
            log.exception("appending the scrape of %s failed", self._url)
            self._state.steady = None
            error = error or f"append failed: {exc}"
            result = None
            samples = 0
        up = result is not None
        s = self._status
        self._status = TargetStatus(
            s.job,
            s.instance,
            s.url,
            "up" if up else "down",
            started,
            duration,
            samples,
            error,
            s.scrapes + 1,
            s.failures + (0 if up else 1),
            s.parse_errors + (1 if parse_error else 0),
            self._state.tracked_count() if up else 0,
            s.append_failures + append_failed,
        )
        if error:
            log.debug("scrape of %s failed: %s", self._url, error)
        if self._on_result is not None:
            self._on_result(up, parse_error)
        return up

    def _read_steady(self, body: bytes, fmt: Format) -> list[float] | None:
        """The values alone when ``body`` has the steady shape, else None."""
        steady = self._state.steady
        return None if steady is None else steady.shape.values(body, fmt)

    def _read_full(self, body: bytes, fmt: Format) -> _Parsed:
        """A full parse of ``body``, with the shape to recognise the next one.

        May run in a worker thread: reads the state, changes nothing.
        """
        state = self._state
        known = state.known()
        payload = parse(body, fmt, known)
        learn = state.misses < 2 or (state.full_scrapes + 1) % _RELEARN_EVERY == 0
        shape = SteadyShape.learn(body, fmt, payload) if learn else None
        return _Parsed(payload, shape, None if known is state.refs_kept() else known)

    def _store(self, timestamp: int, result: _Parsed | list[float] | None, duration: float) -> int:
        """Append what ``_read`` returned (None: the scrape failed); return the sample count."""
        state = self._state
        if isinstance(result, list):
            state.full_scrapes = 0
            state.misses = 0
            samples = self._append_steady(timestamp, result, duration)
            state.lean()
            return samples
        if result is not None and state.steady is not None:
            state.misses += 1
            if result.known is not None and state.refs_kept() is None:
                state.refs = result.known  # rebuilt by _read already
        state.steady = None
        state.full_scrapes += 1
        if result is None:
            self._append(timestamp, None, duration)
            return 0
        refs = self._append(timestamp, result.payload, duration)
        if result.shape is not None and _metadata_settled(result.payload):
            keep = _first_occurrences(refs) if len(state.tracked) != len(refs) else None
            if keep is not None:
                refs = list(map(refs.__getitem__, keep))
            if state.tracked == set(refs):  # every sample line is tracked for staleness
                state.steady = Steady(result.shape, refs, keep)
                # At once rather than at the first steady scrape: what the first scrape
                # of a target leaves is then reused by the next target's first scrape
                # instead of all of it being live together.
                state.lean()
        return len(result.payload.keys)

    async def _fetch(self) -> tuple[bytes, str]:
        timeout = float(self.config.scrape_timeout)
        headers = {
            "Accept": ACCEPT_HEADER,
            "User-Agent": USER_AGENT,
            "X-Prometheus-Scrape-Timeout-Seconds": f"{timeout:g}",
        }
        request = self._client.build_request(
            "GET", self._url, params=self._params, headers=headers, timeout=timeout
        )
        if self._auth is not None:
            await self._auth.apply(request)
        try:
            async with asyncio.timeout(timeout):
                response = await redirect.follow(
                    request,
                    self._client.send,
                    _status_and_headers,
                    enabled=bool(getattr(self.config, "follow_redirects", True)),
                )
        except TimeoutError:
            raise _ScrapeFailed(f"scrape timed out after {timeout:g}s") from None
        if response.status_code != 200:
            raise _ScrapeFailed(
                f"server returned HTTP status {response.status_code} {response.reason_phrase}"
            )
        return response.content, response.headers.get("content-type", "")

    def _append(self, timestamp: int, payload: Payload | None, duration: float) -> list[int]:
        """Append a full parse (None: a failed scrape); return the refs of its samples."""
        app = self._appender
        state = self._state
        added = 0
        scraped = 0
        tracked: set[int] = set()
        resolved: list[int] = []
        if payload is not None:
            refs, added = self._resolve(payload)
            resolved = refs
            scraped = len(refs)
            values = payload.values
            explicit = payload.timestamps if self.config.honor_timestamps else {}
            tracked = set(refs)
            if len(tracked) != len(refs):
                refs, values, explicit = _drop_duplicates(refs, values, explicit)
            if refs:
                if explicit:
                    stamps = [timestamp] * len(refs)
                    for index, ts in explicit.items():
                        stamps[index] = ts
                    app.append_samples(refs, stamps, values)
                else:
                    app.append_samples(refs, timestamp, values)
            if explicit:
                tracked.difference_update(refs[i] for i in explicit)
            self._append_exemplars(payload, timestamp)
            self._append_metadata(payload)
        gone = state.tracked - tracked
        if gone:
            stale = sorted(gone)
            app.append_samples(stale, timestamp, [STALE_NAN] * len(stale))
        state.tracked = tracked
        up = payload is not None
        report = [1.0 if up else 0.0, duration, float(scraped), float(scraped), float(added)]
        app.append_samples(self._report_refs(), timestamp, report)
        app.commit()
        return resolved

    def _append_steady(self, timestamp: int, values: list[float], duration: float) -> int:
        """Append a body of the steady shape: same series as last time, nothing goes stale."""
        steady = self._state.steady
        assert steady is not None
        app = self._appender
        scraped = len(values)
        if steady.keep is not None:
            values = list(map(values.__getitem__, steady.keep))
        self._append_prepared(steady, timestamp, values)
        report = [1.0, duration, float(scraped), float(scraped), 0.0]
        app.append_samples(self._report_refs(), timestamp, report)
        app.commit()
        return scraped

    def _append_prepared(self, steady: Steady, timestamp: int, values: list[float]) -> None:
        """Append through the batch the appender prepared for ``steady.refs``, if it does."""
        app = self._appender
        if steady.prepared is None:
            steady.prepared = app.prepare_samples(steady.refs)
            if steady.prepared is None:  # no faster path in this appender
                app.append_samples(steady.refs, timestamp, values)
                return
            shared = steady.prepared.refs
            if isinstance(shared, tuple) and shared == tuple(steady.refs):
                steady.refs = shared  # one copy of the refs, not two
        try:
            app.append_prepared(steady.prepared, timestamp, values)
        except StalePreparedError as exc:
            # Series of the batch were collected: this scrape fails, the next one
            # takes the full path and creates them anew. The report series went
            # quiet at the same time, so they are looked up again as well.
            self.forget_series(set(exc.refs))
            self._state.report_refs = None
            raise

    def _resolve(self, payload: Payload) -> tuple[list[int], int]:
        """Refs for every sample line, creating series for keys not seen before."""
        cache = self._state.refs
        new = payload.new_series
        if new:
            keys = list(new)
            honor = bool(self.config.honor_labels)
            target = self._target_labels
            labels = [merge_labels(new[key], target, honor) for key in keys]
            cache.update(zip(keys, self._appender.series_refs(labels), strict=True))
        refs = [cache[key] for key in payload.keys]
        if len(cache) > len(refs) + len(new):  # forget series that are gone
            self._state.refs = dict(zip(payload.keys, refs, strict=True))
        return refs, len(new)

    def _append_exemplars(self, payload: Payload, timestamp: int) -> None:
        if not payload.exemplars:
            return
        cache = self._state.refs
        last = self._state.exemplars
        batch: list[Exemplar] = []
        for ex in payload.exemplars:
            ref = cache[payload.keys[ex.index]]
            ts = ex.timestamp if ex.timestamp is not None else timestamp
            seen = (ex.labels, ex.value, ts)
            if ex.timestamp is not None and last.get(ref) == seen:
                continue  # the same exemplar exposed again: already written
            last[ref] = seen
            batch.append(Exemplar(ref, ts, ex.value, ex.labels))
        if batch:
            self._appender.append_exemplars(batch)

    def _append_metadata(self, payload: Payload) -> None:
        known = self._state.family_meta
        cache = self._state.refs
        new = payload.new_series
        entries: dict[int, MetricMetadata] = {}
        keys = payload.keys
        for family in payload.families:
            if not family.explicit or family.start >= family.end:
                continue
            meta = (int(family.type), family.unit, family.help)
            changed = known.get(family.name) != meta
            known[family.name] = meta
            if not changed and not new:
                continue
            for index in range(family.start, family.end):
                key = keys[index]
                if changed or key in new:
                    ref = cache[key]
                    entries[ref] = MetricMetadata(ref, family.type, family.unit, family.help)
        if entries:
            self._appender.append_metadata(list(entries.values()))

    def _report_refs(self) -> list[int]:
        state = self._state
        if state.report_refs is None:
            labels = [
                make_labels([*self._target_labels, (METRIC_NAME, name)]) for name in REPORT_NAMES
            ]
            state.report_refs = self._appender.series_refs(labels)
        return state.report_refs

    def _end_of_run_staleness(self) -> None:
        state = self._state
        refs = sorted(state.tracked)
        if state.report_refs is not None:
            refs.extend(state.report_refs)
        if not refs:
            return
        timestamp = int(self._clock() * 1000)
        try:
            self._appender.append_samples(refs, timestamp, [STALE_NAN] * len(refs))
            self._appender.commit()
        except WalAppendError as exc:
            log.warning("staleness markers for %s were not written: %s", self._url, exc)
        except Exception:
            log.exception("writing staleness markers for %s failed", self._url)
        state.tracked = set()


class _ScrapeFailed(Exception):
    pass


def _read_gate() -> asyncio.Lock:
    """The running event loop's lock for reads in a worker thread."""
    loop = asyncio.get_running_loop()
    gate = _READ_GATES.get(loop)
    if gate is None:
        gate = _READ_GATES[loop] = asyncio.Lock()
    return gate


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first_occurrences(refs: list[int]) -> list[int]:
    """The position of each ref's first occurrence, in order."""
    first: dict[int, int] = {}
    for index, ref in enumerate(refs):
        first.setdefault(ref, index)
    return sorted(first.values())


def _metadata_settled(payload: Payload) -> bool:
    """Whether appending ``payload`` again would write no metadata.

    True unless two described families with samples share a name (each would
    rewrite the other's metadata on every scrape).
    """
    names = [f.name for f in payload.families if f.explicit and f.start < f.end]
    return len(set(names)) == len(names)


def _drop_duplicates(
    refs: list[int], values: list[float], explicit: dict[int, int]
) -> tuple[list[int], list[float], dict[int, int]]:
    """Keep the first sample of a series that a payload exposes more than once."""
    seen: set[int] = set()
    keep_refs: list[int] = []
    keep_values: list[float] = []
    keep_ts: dict[int, int] = {}
    for index, ref in enumerate(refs):
        if ref in seen:
            continue
        seen.add(ref)
        if index in explicit:
            keep_ts[len(keep_refs)] = explicit[index]
        keep_refs.append(ref)
        keep_values.append(values[index])
    return keep_refs, keep_values, keep_ts


# --- manager --------------------------------------------------------------------------------


def stagger_offset(job: str, target: str, interval: float) -> float:
    """A stable start offset within the interval, so targets do not scrape in lockstep."""
    return (zlib.crc32(f"{job}/{target}".encode()) / 2**32) * interval


@dataclass(slots=True)
class _Job:
    config: Any
    client: httpx.AsyncClient
    authenticator: Any
    error: str = ""


class ScrapeManager:
    """Runs a ScrapeLoop per (job, target) of the ``[[scrape]]`` configs."""

    def __init__(
        self,
        appender: Appender,
        *,
        stagger: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._appender = appender
        self._stagger = stagger
        self._clock = clock
        self._loops: dict[tuple[str, str], ScrapeLoop] = {}
        self._jobs: dict[str, _Job] = {}
        self._broken: dict[tuple[str, str], TargetStatus] = {}
        self._scrapes = 0
        self._failures = 0
        self._parse_errors = 0

    def _record(self, up: bool, parse_error: bool) -> None:
        self._scrapes += 1
        if not up:
            self._failures += 1
        if parse_error:
            self._parse_errors += 1

    async def apply(self, configs: Sequence[Any]) -> None:
        """Start, restart or stop loops so that exactly ``configs`` are scraped."""
        wanted: dict[tuple[str, str], Any] = {}
        for config in configs:
            for target in config.targets:
                wanted[(config.job_name, target)] = config
        for key in [k for k in self._loops if k not in wanted]:
            await self._loops.pop(key).stop(stale=True)
        self._broken = {k: v for k, v in self._broken.items() if k in wanted}
        jobs: dict[str, _Job] = {}
        for config in configs:
            old = self._jobs.get(config.job_name)
            if old is not None and old.config == config:
                jobs[config.job_name] = old
            else:
                jobs[config.job_name] = _build_job(config)
        for key, config in wanted.items():
            job = jobs[config.job_name]
            loop = self._loops.get(key)
            if loop is not None and loop.config == config and loop._client is job.client:
                continue
            if job.error:
                if loop is not None:
                    await self._loops.pop(key).stop(stale=True)
                self._broken[key] = TargetStatus(
                    key[0], key[1], scrape_url(config, key[1]), "down", last_error=job.error
                )
                continue
            self._broken.pop(key, None)
            offset = stagger_offset(key[0], key[1], config.scrape_interval) if self._stagger else 0
            new_loop = ScrapeLoop(
                config,
                key[1],
                self._appender,
                job.client,
                authenticator=job.authenticator,
                offset=offset,
                clock=self._clock,
                on_result=self._record,
            )
            if loop is not None:
                if new_loop.same_target_labels(loop):
                    await loop.stop(stale=False)
                    new_loop.take_state(loop)
                else:  # other target labels: other series; the old ones end here
                    await loop.stop(stale=True)
            self._loops[key] = new_loop
            new_loop.start()
        for name, job in self._jobs.items():
            if jobs.get(name) is not job:
                await _close_job(job)
        self._jobs = jobs

    async def stop(self, *, stale: bool = False) -> None:
        """Stop every loop and close clients; with ``stale`` mark all their series stale."""
        for loop in self._loops.values():
            await loop.stop(stale=stale)
        self._loops.clear()
        for job in self._jobs.values():
            await _close_job(job)
        self._jobs.clear()

    def forget_series(self, refs: set[int]) -> None:
        """Called after WAL truncation with the refs it collected."""
        for loop in self._loops.values():
            loop.forget_series(refs)

    def targets(self) -> list[TargetStatus]:
        statuses = [loop.status() for loop in self._loops.values()]
        statuses.extend(self._broken.values())
        return sorted(statuses, key=lambda s: (s.job, s.instance))

    def counters(self) -> ScrapeCounters:
        return ScrapeCounters(self._scrapes, self._failures, self._parse_errors)

    def status(self) -> SourceStatus:
        return SourceStatus.of("scrape", self.counters(), targets=tuple(self.targets()))


def _build_job(config: Any) -> _Job:
    """HTTP client with the job's auth, TLS and proxy settings (errors kept, not raised)."""
    try:
        transport = build_transport(config, http2=config.enable_http2)
        authenticator = build_authenticator(config, timeout=float(config.scrape_timeout))
        headers = custom_headers(config)
        # redirects are followed by ``_fetch`` with the one policy of ``rwconsole.http``
        client = httpx.AsyncClient(transport=transport, headers=headers, trust_env=False)
        return _Job(config, client, authenticator)
    except ValueError as exc:  # ConnectivityConfigError and friends name the setting
        return _Job(config, httpx.AsyncClient(), None, f"job {config.job_name!r}: {exc}")


def _status_and_headers(response: httpx.Response) -> tuple[int, list[tuple[bytes, bytes]]]:
    return response.status_code, response.headers.raw


async def _close_job(job: _Job) -> None:
    await job.client.aclose()
    if job.authenticator is not None and hasattr(job.authenticator, "aclose"):
        await job.authenticator.aclose()
