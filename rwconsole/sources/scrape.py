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
import os
import time
import weakref
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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
from rwconsole.relabel import Rule, compile_rules, relabel
from rwconsole.sources.discovery.common import ADDRESS_LABEL, TargetGroup
from rwconsole.sources.discovery.manager import DEFAULT_THROTTLE, DiscoveryManager
from rwconsole.sources.scrape_cache import DROPPED, CacheState, Steady
from rwconsole.sources.scrape_limits import (
    BodyError,
    BodyReader,
    LimitExceeded,
    ScrapeLimits,
    check_label_limits,
    limits_of,
)
from rwconsole.sources.steady import SteadyShape
from rwconsole.sources.targets import DroppedTarget, Made, Target, build_targets
from rwconsole.sources.textparse import (
    Format,
    ParseError,
    Payload,
    format_for,
    parse,
    start_time_sources,
)

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
"""Payloads larger than this are fully parsed in a worker thread so the loop stays responsive
(when the process may use more than one CPU).

One at a time per event loop: the parse holds the GIL, so running several at once
gains nothing, while each full parse briefly needs a few KB per series of its target
(the first scrapes of many large targets would otherwise all peak together)."""
_READ_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
_RELEARN_EVERY = 8
"""Once two learned shapes in a row did not fit the next body, learn only on every
this many full-path scrapes (until a shape fits again)."""


def static_target(config: Any, address: str) -> Target:
    """The target ``address`` of ``config`` without its ``relabel_configs``.

    For a loop made directly (not by the manager), a timeout longer than the
    interval is kept as given.
    """
    timeout = config.scrape_timeout
    made = build_targets(config, [TargetGroup("targets", [{ADDRESS_LABEL: address}])], ())
    if not made.active:
        raise ValueError(f"target {address!r}: {made.dropped[0].reason}")
    return replace(made.active[0], timeout=float(timeout))


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
    start_sources: tuple[list[int], list[int]] | None = None
    """With ``start_timestamps``: the ``_created`` sample of each sample that has one."""


class ScrapeLoop:
    """Scrapes one target on the job's interval and writes into an Appender."""

    def __init__(
        self,
        config: Any,
        target: str | Target,
        appender: Appender,
        client: httpx.AsyncClient,
        *,
        authenticator: Any = None,
        offset: float = 0.0,
        clock: Callable[[], float] = time.time,
        on_result: Callable[[bool, bool], None] | None = None,
        limits: ScrapeLimits | None = None,
        metric_rules: Sequence[Rule] | None = None,
    ) -> None:
        if isinstance(target, str):
            target = static_target(config, target)
        self.config = config
        self.target = target
        self._appender = appender
        self._client = client
        self._auth = authenticator
        self._offset = offset
        self._clock = clock
        self._on_result = on_result
        self._target_labels = target.series_labels
        self._url = target.url
        self._params = list(target.params)
        self.limits = limits if limits is not None else limits_of(config, None)
        self._rules = (
            compile_rules(config.metric_relabel_configs) if metric_rules is None else metric_rules
        )
        self.forced_error = ""
        """When set, scrapes fail with it without fetching (a job over its target_limit)."""
        self._state = CacheState()
        self._task: asyncio.Task[None] | None = None
        self._status = TargetStatus(config.job_name, target.instance, target.full_url)
        self._stopped = False
        self._forgets = 0
        # With one CPU a worker thread parses no faster: it only takes the GIL from
        # the loop in 5 ms slices, and every loop iteration (each send, each read)
        # waits for one, so the queue starves while a new target is parsed.
        self._parse_off_loop = len(os.sched_getaffinity(0)) > 1

    @property
    def url(self) -> str:
        return self._url

    def status(self) -> TargetStatus:
        return self._status

    def family_metadata(self) -> dict[str, tuple[int, str, str]]:
        """Metric family name → (type, unit, help) as the target last described them."""
        return dict(self._state.family_meta)

    def take_state(self, other: ScrapeLoop) -> None:
        """Continue where ``other`` (the same target before a reload) left off."""
        self._state = other._state
        self._status = replace(other._status, url=self.target.full_url)
        if other.limits != self.limits:  # cached series were checked against the old limits
            self._state.forget_keys()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    def same_target_labels(self, other: ScrapeLoop) -> bool:
        """Whether ``other`` labels its series exactly as this loop does (cache reusable)."""
        return (
            self._target_labels == other._target_labels
            and bool(self.config.honor_labels) == bool(other.config.honor_labels)
            and list(self._rules) == list(other._rules)
        )

    def forget_series(self, refs: set[int]) -> None:
        """Drop cached refs the WAL has collected; their series are created anew when seen."""
        self._forgets += 1
        self._state.forget(refs)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.target.interval
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
        error = self.forced_error
        parse_error = False
        timeout = self.target.timeout
        try:
            if not error:
                # The timeout bounds fetching and decompressing the body. The parse is
                # not abandoned at the deadline: a full parse in a worker thread cannot
                # be stopped, so abandoning it would only throw its CPU away, and the
                # next scrape would pay it again (with many large new targets, every
                # scrape queued behind the others' parses and none got through).
                async with asyncio.timeout(timeout):
                    body, content_type = await self._fetch()
                result = await self._read(body, content_type)
        except TimeoutError:
            error = f"scrape timed out after {timeout:g}s"
        except ParseError as exc:
            error = f"parse error at line {exc.line}: {exc.reason}"
            parse_error = True
        except (httpx.HTTPError, OSError) as exc:
            error = _describe(exc)
        except (_ScrapeFailed, BodyError) as exc:
            error = str(exc)
        duration = time.perf_counter() - t0
        append_failed = False
        try:
            try:
                samples = self._store(timestamp, result, duration)
            except LimitExceeded as exc:  # nothing of the payload was appended
                error = str(exc)
                result = None
                samples = self._store(timestamp, None, duration)
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

    async def _read(self, body: bytes, content_type: str) -> _Parsed | list[float]:
        fmt = format_for(content_type)
        # A steady body only has its values converted: quicker on the loop than
        # the hand-over to a thread, which would hold the GIL all the same.
        result: _Parsed | list[float] | None = self._read_steady(body, fmt)
        if result is None and len(body) > _THREAD_PARSE_BYTES and self._parse_off_loop:
            async with _read_gate():
                forgets = self._forgets
                result = await asyncio.to_thread(self._read_full, body, fmt)
            if self._forgets != forgets:  # series collected meanwhile may be in the result
                result = self._read_full(body, fmt)
        elif result is None:
            result = self._read_full(body, fmt)
        return result

    def _read_steady(self, body: bytes, fmt: Format) -> list[float] | None:
        """The values alone when ``body`` has the steady shape, else None."""
        steady = self._state.steady
        if steady is None or steady.start_timestamps != self._start_timestamps():
            return None  # learned under another start_timestamps setting (a reload)
        return steady.shape.values(body, fmt)

    def _start_timestamps(self) -> bool:
        return bool(getattr(self.config, "start_timestamps", False))

    def _read_full(self, body: bytes, fmt: Format) -> _Parsed:
        """A full parse of ``body``, with the shape to recognise the next one.

        May run in a worker thread: reads the state, changes nothing.
        """
        state = self._state
        known = state.known()
        payload = parse(body, fmt, known)
        learn = state.misses < 2 or (state.full_scrapes + 1) % _RELEARN_EVERY == 0
        shape = SteadyShape.learn(body, fmt, payload) if learn else None
        sources = None
        if fmt is Format.OPENMETRICS and self._start_timestamps():
            sources = start_time_sources(payload)
        return _Parsed(payload, shape, None if known is state.refs_kept() else known, sources)

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
        refs = self._append(timestamp, result.payload, duration, result.start_sources)
        if result.shape is not None and _metadata_settled(result.payload):
            keep = _first_occurrences(refs) if len(state.tracked) != len(refs) else None
            if keep is not None:
                refs = list(map(refs.__getitem__, keep))
            if refs and state.tracked == set(refs):  # every sample line is tracked for staleness
                state.steady = Steady(
                    result.shape,
                    refs,
                    keep,
                    start_timestamps=self._start_timestamps(),
                    start_sources=result.start_sources,
                )
                # At once rather than at the first steady scrape: what the first scrape
                # of a target leaves is then reused by the next target's first scrape
                # instead of all of it being live together.
                state.lean()
        return len(result.payload.keys)

    async def _fetch(self) -> tuple[bytes, str]:
        """The (decompressed) body and its content type; the caller bounds the time."""
        timeout = self.target.timeout
        headers = {
            "Accept": ACCEPT_HEADER,
            "Accept-Encoding": "gzip",
            "User-Agent": USER_AGENT,
            "X-Prometheus-Scrape-Timeout-Seconds": f"{timeout:g}",
        }
        request = self._client.build_request(
            "GET", self._url, params=self._params, headers=headers, timeout=timeout
        )
        if self._auth is not None:
            await self._auth.apply(request)
        response = await redirect.follow(
            request, self._send_streaming, _status_and_headers, enabled=self._redirects()
        )
        try:
            if response.status_code != 200:
                raise _ScrapeFailed(
                    f"server returned HTTP status {response.status_code} {response.reason_phrase}"
                )
            encoding = response.headers.get("content-encoding", "").strip().lower()
            reader = BodyReader(encoding, self.limits.body_size_limit)
            async for chunk in response.aiter_raw():
                reader.feed(chunk)
            return reader.finish(), response.headers.get("content-type", "")
        finally:
            await response.aclose()

    def _redirects(self) -> bool:
        return bool(getattr(self.config, "follow_redirects", True))

    async def _send_streaming(self, request: httpx.Request) -> httpx.Response:
        """Send once; a redirect's body is read and dropped, any other is left to stream."""
        response = await self._client.send(request, stream=True)
        if self._redirects() and redirect.location(*_status_and_headers(response)):
            await response.aclose()
        return response

    def _append(
        self,
        timestamp: int,
        payload: Payload | None,
        duration: float,
        start_sources: tuple[list[int], list[int]] | None = None,
    ) -> list[int]:
        """Append a full parse (None: a failed scrape); return the refs of its samples."""
        app = self._appender
        state = self._state
        added = 0
        scraped = 0
        tracked: set[int] = set()
        resolved: list[int] = []
        post = 0
        if payload is not None:
            refs, added = self._resolve(payload)
            resolved = refs
            scraped = len(refs)
            values = payload.values
            explicit = payload.timestamps if self.config.honor_timestamps else {}
            starts = _start_column(start_sources, values) if start_sources else None
            tracked = set(refs)
            tracked.discard(DROPPED)
            if len(tracked) != len(refs):
                refs, values, explicit, starts = _drop_duplicates(refs, values, explicit, starts)
            post = len(refs)
            if refs:
                if explicit:
                    stamps = [timestamp] * len(refs)
                    for index, ts in explicit.items():
                        stamps[index] = ts
                    _append_samples(app, refs, stamps, values, starts)
                else:
                    _append_samples(app, refs, timestamp, values, starts)
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
        report = [1.0 if up else 0.0, duration, float(scraped), float(post), float(added)]
        app.append_samples(self._report_refs(), timestamp, report)
        app.commit()
        return resolved

    def _append_steady(self, timestamp: int, values: list[float], duration: float) -> int:
        """Append a body of the steady shape: same series as last time, nothing goes stale."""
        steady = self._state.steady
        assert steady is not None
        app = self._appender
        scraped = len(values)
        limit = self.limits.sample_limit
        if limit and len(steady.refs) > limit:  # a reload lowered the limit
            raise LimitExceeded("sample limit exceeded")
        starts = _start_column(steady.start_sources, values) if steady.start_sources else None
        if steady.keep is not None:
            values = list(map(values.__getitem__, steady.keep))
            if starts is not None:
                starts = list(map(starts.__getitem__, steady.keep))
        if starts is not None:  # prepared batches carry no start timestamps
            app.append_samples(steady.refs, timestamp, values, starts)
        else:
            self._append_prepared(steady, timestamp, values)
        report = [1.0, duration, float(scraped), float(len(values)), 0.0]
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
        """Refs for every sample line, creating series for keys not seen before.

        ``metric_relabel_configs`` run here, once per new series: a dropped series
        is cached as ``DROPPED``. A violated limit raises ``LimitExceeded`` before
        any series is created.
        """
        cache = self._state.refs
        new = payload.new_series
        keys: list[str] = []
        labels: list[Labels] = []
        dropped: list[str] = []
        if new:
            honor = bool(self.config.honor_labels)
            target = self._target_labels
            rules = self._rules
            limits = self.limits
            check = limits.label_limit or limits.name_length or limits.value_length
            for key, scraped in new.items():
                merged: Labels | None = merge_labels(scraped, target, honor)
                if rules:
                    merged = relabel(merged, rules)  # type: ignore[arg-type]
                    if merged is None:
                        dropped.append(key)
                        continue
                if check:
                    check_label_limits(merged, limits)  # type: ignore[arg-type]
                keys.append(key)
                labels.append(merged)  # type: ignore[arg-type]
        limit = self.limits.sample_limit
        if limit:
            gone = set(dropped)
            kept = sum(1 for k in payload.keys if k not in gone and cache.get(k) != DROPPED)
            if kept > limit:
                raise LimitExceeded("sample limit exceeded")
        if labels:
            cache.update(zip(keys, self._appender.series_refs(labels), strict=True))
        cache.update(dict.fromkeys(dropped, DROPPED))
        refs = [cache[key] for key in payload.keys]
        if len(cache) > len(refs) + len(new):  # forget series that are gone
            self._state.refs = dict(zip(payload.keys, refs, strict=True))
        return refs, len(labels)

    def _append_exemplars(self, payload: Payload, timestamp: int) -> None:
        if not payload.exemplars:
            return
        cache = self._state.refs
        last = self._state.exemplars
        batch: list[Exemplar] = []
        for ex in payload.exemplars:
            ref = cache[payload.keys[ex.index]]
            if ref == DROPPED:
                continue
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
                    if ref == DROPPED:
                        continue
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
    """The position of each ref's first occurrence, in order (dropped series left out)."""
    first: dict[int, int] = {}
    for index, ref in enumerate(refs):
        first.setdefault(ref, index)
    first.pop(DROPPED, None)
    return sorted(first.values())


def _metadata_settled(payload: Payload) -> bool:
    """Whether appending ``payload`` again would write no metadata.

    True unless two described families with samples share a name (each would
    rewrite the other's metadata on every scrape).
    """
    names = [f.name for f in payload.families if f.explicit and f.start < f.end]
    return len(set(names)) == len(names)


def _drop_duplicates(
    refs: list[int],
    values: list[float],
    explicit: dict[int, int],
    starts: list[int] | None = None,
) -> tuple[list[int], list[float], dict[int, int], list[int] | None]:
    """Keep the first sample of a series that a payload exposes more than once."""
    seen: set[int] = set()
    keep_refs: list[int] = []
    keep_values: list[float] = []
    keep_ts: dict[int, int] = {}
    keep_starts: list[int] | None = [] if starts is not None else None
    for index, ref in enumerate(refs):
        if ref in seen or ref == DROPPED:
            continue
        seen.add(ref)
        if index in explicit:
            keep_ts[len(keep_refs)] = explicit[index]
        keep_refs.append(ref)
        keep_values.append(values[index])
        if keep_starts is not None:
            keep_starts.append(starts[index])  # type: ignore[index]
    return keep_refs, keep_values, keep_ts, keep_starts


_MAX_START_SECONDS = 9.2e15
"""Start times beyond this many seconds do not fit an int64 of milliseconds."""


def _start_column(
    sources: tuple[list[int], list[int]], values: Sequence[float]
) -> list[int] | None:
    """Each sample's start timestamp in ms (0 = none) from its ``_created`` sample's
    value (seconds); None when no sample has a usable one."""
    column = [0] * len(values)
    for index, source in zip(*sources, strict=True):
        seconds = values[source]
        if 0 < seconds < _MAX_START_SECONDS:  # NaN, Inf and negative values give none
            column[index] = round(seconds * 1000)
    return column if any(column) else None


def _append_samples(
    app: Appender,
    refs: list[int],
    timestamps: list[int] | int,
    values: list[float],
    starts: list[int] | None,
) -> None:
    """``append_samples``, with start timestamps only when there are any."""
    if starts is None:
        app.append_samples(refs, timestamps, values)
    else:
        app.append_samples(refs, timestamps, values, starts)


# --- manager --------------------------------------------------------------------------------


def stagger_offset(job: str, target: str, interval: float) -> float:
    """A stable start offset within the interval, so targets do not scrape in lockstep."""
    return (zlib.crc32(f"{job}/{target}".encode()) / 2**32) * interval


@dataclass(slots=True, eq=False)
class _Job:
    config: Any
    client: httpx.AsyncClient
    authenticator: Any
    limits: ScrapeLimits
    target_rules: list[Rule] = field(default_factory=list)
    metric_rules: list[Rule] = field(default_factory=list)
    error: str = ""
    discovery: DiscoveryManager | None = None
    discovered: list[TargetGroup] = field(default_factory=list)
    """The groups the job's discovery (other than its static groups) delivered last."""
    dropped: list[DroppedTarget] = field(default_factory=list)
    made: Made = field(default_factory=dict)
    """What the job's last target groups made (``build_targets`` reuses it)."""
    forced_error: str = ""
    """Set while the job has more targets than its ``target_limit``."""


_LoopKey = tuple[str, Labels]
"""(job, ``Target.identity``): the target's labels after relabelling, schedule aside."""


class ScrapeManager:
    """Runs a ScrapeLoop per target that a ``[[scrape]]`` job's discovery and relabelling yield.

    ``apply(configs)`` sets the jobs; each job's static groups take effect at
    once, discovered groups as its ``DiscoveryManager`` delivers them, both
    through ``apply_groups``: new targets start, targets gone stop (their
    series marked stale), unchanged targets keep running untouched.
    """

    def __init__(
        self,
        appender: Appender,
        *,
        stagger: bool = True,
        clock: Callable[[], float] = time.time,
        defaults: Any = None,
        discovery_throttle: float = DEFAULT_THROTTLE,
    ) -> None:
        self._appender = appender
        self._stagger = stagger
        self._clock = clock
        self._defaults = defaults
        self._throttle = discovery_throttle
        self._loops: dict[_LoopKey, ScrapeLoop] = {}
        self._jobs: dict[str, _Job] = {}
        self._broken: dict[_LoopKey, tuple[Target, TargetStatus]] = {}
        self._changing = asyncio.Lock()
        """Held while loops are started and stopped: a reload and a discovery update wait
        for each other instead of interleaving."""
        self._scrapes = 0
        self._failures = 0
        self._parse_errors = 0

    def _record(self, up: bool, parse_error: bool) -> None:
        self._scrapes += 1
        if not up:
            self._failures += 1
        if parse_error:
            self._parse_errors += 1

    async def apply(self, configs: Sequence[Any], *, defaults: Any = None) -> None:
        """Run exactly the jobs ``configs`` (``defaults``: the ``[scrape_defaults]`` limits)."""
        async with self._changing:
            await self._apply(configs, defaults)

    async def _apply(self, configs: Sequence[Any], defaults: Any) -> None:
        if defaults is not None:
            self._defaults = defaults
        jobs: dict[str, _Job] = {}
        for config in configs:
            old = self._jobs.get(config.job_name)
            limits = limits_of(config, self._defaults)
            # A job that failed to build is built again: its files may be there now.
            if old is not None and old.config == config and old.limits == limits and not old.error:
                jobs[config.job_name] = old
            else:
                jobs[config.job_name] = _build_job(config, limits)
        previous, self._jobs = self._jobs, jobs
        for name, job in previous.items():
            if jobs.get(name) is not job:
                await _stop_discovery(job)
                if name not in jobs:
                    await self._stop_job_loops(name)
        for name, job in jobs.items():
            old = previous.get(name)
            if old is job:
                continue
            # A changed job keeps its discovered targets until its discovery reports again.
            if old is not None and _discovers(job.config):
                job.discovered = old.discovered
            await self._apply_groups(name, _static_groups(job) + job.discovered)
            self._start_discovery(job)
        for name, job in previous.items():
            if jobs.get(name) is not job:
                await _close_job(job)

    async def apply_groups(self, job_name: str, groups: Sequence[TargetGroup]) -> None:
        """Make the job's loops match ``groups`` (its full current set of target groups)."""
        async with self._changing:
            await self._apply_groups(job_name, groups)

    async def _apply_groups(self, job_name: str, groups: Sequence[TargetGroup]) -> None:
        job = self._jobs.get(job_name)
        if job is None:
            return
        made = build_targets(job.config, groups, job.target_rules, job.made)
        job.made = made.made
        job.dropped = made.dropped
        limit = job.limits.target_limit
        count = len(made.active)
        job.forced_error = (
            f"target_limit exceeded (number of targets: {count}, limit: {limit})"
            if limit and count > limit
            else ""
        )
        pairs = zip(made.identities, made.active, strict=True)
        wanted = {(job_name, identity): target for identity, target in pairs}
        for key in [k for k in self._loops if k[0] == job_name and k not in wanted]:
            await self._loops.pop(key).stop(stale=True)
        for key in [k for k in self._broken if k[0] == job_name and k not in wanted]:
            del self._broken[key]
        for key, target in wanted.items():
            loop = self._loops.get(key)
            if loop is not None and loop._client is job.client and loop.target == target:
                loop.forced_error = job.forced_error
                continue
            if job.error:
                if loop is not None:
                    await self._loops.pop(key).stop(stale=True)
                status = TargetStatus(
                    job_name, target.instance, target.full_url, "down", last_error=job.error
                )
                self._broken[key] = (target, status)
                continue
            self._broken.pop(key, None)
            self._start_loop(job, key, target, loop)
            if loop is not None:
                new_loop = self._loops[key]
                if new_loop.same_target_labels(loop):
                    await loop.stop(stale=False)
                    new_loop.take_state(loop)
                else:  # other series labels: other series; the old ones end here
                    await loop.stop(stale=True)
                new_loop.start()

    def _start_loop(self, job: _Job, key: _LoopKey, target: Target, old: ScrapeLoop | None) -> None:
        address = dict(target.labels).get(ADDRESS_LABEL, "")
        offset = stagger_offset(key[0], address, target.interval) if self._stagger else 0.0
        loop = ScrapeLoop(
            job.config,
            target,
            self._appender,
            job.client,
            authenticator=job.authenticator,
            offset=offset,
            clock=self._clock,
            on_result=self._record,
            limits=job.limits,
            metric_rules=job.metric_rules,
        )
        loop.forced_error = job.forced_error
        self._loops[key] = loop
        if old is None:
            loop.start()

    def _start_discovery(self, job: _Job) -> None:
        if job.error or not _discovers(job.config):
            return
        from rwconsole.sources.discovery.providers import STATIC_PROVIDER, build_discoverers

        name = job.config.job_name
        try:
            providers = build_discoverers(job.config)
        except ValueError as exc:
            job.error = f"job {name!r}: {exc}"
            return
        providers.pop(STATIC_PROVIDER, None)  # applied at once by ``apply``

        async def deliver(groups: list[TargetGroup]) -> None:
            async with self._changing:
                if self._jobs.get(name) is job:
                    job.discovered = groups
                    await self._apply_groups(name, _static_groups(job) + groups)

        job.discovery = DiscoveryManager(providers, deliver, throttle=self._throttle)
        job.discovery.start()

    async def _stop_job_loops(self, name: str) -> None:
        for key in [k for k in self._loops if k[0] == name]:
            await self._loops.pop(key).stop(stale=True)
        for key in [k for k in self._broken if k[0] == name]:
            del self._broken[key]

    async def stop(self, *, stale: bool = False) -> None:
        """Stop every loop and close clients; with ``stale`` mark all their series stale."""
        for job in self._jobs.values():
            await _stop_discovery(job)
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

    def job_names(self) -> list[str]:
        return list(self._jobs)

    def job_errors(self) -> dict[str, str]:
        """Jobs that could not be built (settings, TLS files, discovery) → why."""
        return {name: job.error for name, job in self._jobs.items() if job.error}

    def targets(self) -> list[TargetStatus]:
        statuses = [loop.status() for loop in self._loops.values()]
        statuses.extend(status for _target, status in self._broken.values())
        return sorted(statuses, key=lambda s: (s.job, s.instance))

    def active_targets(self) -> list[tuple[Target, TargetStatus]]:
        """Every scraped target with its status, by job in discovery order."""
        pairs = [(loop.target, loop.status()) for loop in self._loops.values()]
        pairs.extend(self._broken.values())
        return sorted(pairs, key=lambda p: p[0].job)

    def dropped_targets(self) -> list[DroppedTarget]:
        return [d for job in self._jobs.values() for d in job.dropped]

    def target_metadata(self) -> list[tuple[Target, dict[str, tuple[int, str, str]]]]:
        """Each target's metric families as last scraped: name → (type, unit, help)."""
        return [(loop.target, loop.family_metadata()) for loop in self._loops.values()]

    def discovery_errors(self) -> dict[str, str]:
        """``job/provider`` → why its last discovery refresh failed."""
        errors: dict[str, str] = {}
        for name, job in self._jobs.items():
            if job.discovery is not None:
                for provider, error in job.discovery.errors().items():
                    errors[f"{name}/{provider}"] = error
        return errors

    def counters(self) -> ScrapeCounters:
        return ScrapeCounters(self._scrapes, self._failures, self._parse_errors)

    def status(self) -> SourceStatus:
        errors = self.discovery_errors()
        last_error = "; ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
        return SourceStatus.of(
            "scrape", self.counters(), last_error=last_error, targets=tuple(self.targets())
        )


def _discovers(config: Any) -> bool:
    """Whether the job has discovery beyond its static targets."""
    return any(
        getattr(config, key)
        for key in ("file_sd_configs", "http_sd_configs", "dns_sd_configs", "kubernetes_sd_configs")
    )


def _static_groups(job: _Job) -> list[TargetGroup]:
    from rwconsole.sources.discovery.providers import static_groups

    return static_groups(job.config)


def _build_job(config: Any, limits: ScrapeLimits) -> _Job:
    """HTTP client with the job's auth, TLS and proxy settings (errors kept, not raised)."""
    try:
        target_rules = compile_rules(config.relabel_configs)
        metric_rules = compile_rules(config.metric_relabel_configs)
    except ValueError as exc:
        return _Job(
            config, httpx.AsyncClient(), None, limits, error=f"job {config.job_name!r}: {exc}"
        )
    try:
        transport = build_transport(config, http2=config.enable_http2)
        authenticator = build_authenticator(config, timeout=float(config.scrape_timeout))
        headers = custom_headers(config)
        # redirects are followed by ``_fetch`` with the one policy of ``rwconsole.http``
        client = httpx.AsyncClient(transport=transport, headers=headers, trust_env=False)
        return _Job(config, client, authenticator, limits, target_rules, metric_rules)
    except ValueError as exc:  # ConnectivityConfigError and friends name the setting
        return _Job(
            config,
            httpx.AsyncClient(),
            None,
            limits,
            target_rules,
            metric_rules,
            error=f"job {config.job_name!r}: {exc}",
        )


def _status_and_headers(response: httpx.Response) -> tuple[int, list[tuple[bytes, bytes]]]:
    return response.status_code, response.headers.raw


async def _stop_discovery(job: _Job) -> None:
    if job.discovery is not None:
        await job.discovery.stop()
        job.discovery = None


async def _close_job(job: _Job) -> None:
    await job.client.aclose()
    if job.authenticator is not None and hasattr(job.authenticator, "aclose"):
        await job.authenticator.aclose()
