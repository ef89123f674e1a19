"""Remote-write input source: accepts POST /api/v1/write and writes into the Appender.

Both protocol versions are accepted (the decoder tells them apart by
Content-Type). A request is decoded and validated completely before anything
is appended, and committed once, so a bad request leaves nothing behind: it is
answered 400 with the reason (415 for an unsupported content type or
encoding, 413 beyond the body limit, 401 without accepted credentials, 404
off the write path); the rules are in ``write_validation``. Success is 204; a
v2 request also gets the ``X-Prometheus-Remote-Write-*-Written`` headers.

Metadata is kept per metric family, also from requests that carry no series
(Prometheus sends its metadata that way): it is attached to the family's
series as they arrive and so reaches the WAL as metadata records. The
receiver counts requests by status and items received and rejected by reason
in ``rwconsole_receiver_*`` metrics, and logs rejections (client address and
reason) at most once per ``LOG_INTERVAL`` seconds. TLS, mutual TLS and
basic/bearer authentication come from ``[receiver]``.

The request plumbing shared with the demo receiver (``decode_write``,
``written_headers``, ``is_v2``) lives here too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rwconsole.http.server import DEFAULT_MAX_BODY, HttpServer, Request, Response
from rwconsole.http.server_auth import ServerAuth
from rwconsole.http.tls import reloading_server_ssl_context
from rwconsole.labels import Labels, metric_name
from rwconsole.metrics import Counter, Registry
from rwconsole.model import (
    Appender,
    Exemplar,
    HistogramSample,
    MetricMetadata,
    MetricType,
    SourceStatus,
    WalAppendError,
)
from rwconsole.protocol.decode import UnsupportedMediaType, decode_write_request
from rwconsole.protocol.encode import (
    EXEMPLARS_WRITTEN_HEADER,
    HISTOGRAMS_WRITTEN_HEADER,
    PROTOBUF_MESSAGE_V2,
    SAMPLES_WRITTEN_HEADER,
)
from rwconsole.sources import write_validation as rules

log = logging.getLogger("rwconsole.receiver")

WRITE_PATH = "/api/v1/write"
LOG_INTERVAL = 10.0
_MAX_FAMILIES = 100_000
KINDS = ("samples", "exemplars", "histograms", "metadata")
WAL_RETRY_AFTER_SECONDS = 5
"""What a 503 for a refused WAL append asks senders to wait before retrying."""

DecodeFn = Callable[[bytes, str, str], Any]
"""``decode(body, content_type, content_encoding) -> DecodedRequest``."""


class WriteRejected(Exception):
    """A write request is answered with ``status`` and ``reason`` and nothing is written."""

    def __init__(self, status: int, reason: str, code: str = rules.REASON_DECODE) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.code = code
        """A short reason for metrics labels."""


def default_decode() -> DecodeFn:
    return decode_write_request


def is_v2(decoded: Any) -> bool:
    """Whether a decoded request came in protocol 2.0 (it is then owed Written headers)."""
    return getattr(decoded, "protocol", "") == PROTOBUF_MESSAGE_V2


def written_headers(samples: int, histograms: int, exemplars: int) -> dict[str, str]:
    return {
        SAMPLES_WRITTEN_HEADER: str(samples),
        HISTOGRAMS_WRITTEN_HEADER: str(histograms),
        EXEMPLARS_WRITTEN_HEADER: str(exemplars),
    }


def check_write_request(request: Request) -> None:
    """Raise WriteRejected unless ``request`` is a POST to the write path."""
    if request.path != WRITE_PATH:
        raise WriteRejected(
            404,
            f"not found: {request.path[:100]}; remote write is POST {WRITE_PATH}",
            rules.REASON_NOT_FOUND,
        )
    if request.method != "POST":
        raise WriteRejected(
            405, f"method {request.method} not allowed; use POST", rules.REASON_METHOD
        )


def decode_write(decode: DecodeFn, request: Request) -> Any:
    """Decode a write request body; raise WriteRejected (400/415) with the decoder's reason."""
    content_type = request.header("content-type")
    encoding = request.header("content-encoding")
    try:
        return decode(request.body, content_type, encoding)
    except Exception as exc:  # any decoder failure is the request's fault, never a crash
        if isinstance(exc, UnsupportedMediaType):
            return _raise(415, str(exc) or type(exc).__name__, rules.REASON_MEDIA_TYPE)
        return _raise(400, str(exc) or type(exc).__name__, rules.REASON_DECODE)


def _raise(status: int, reason: str, code: str) -> Any:
    raise WriteRejected(status, reason, code)


def exemplar_parts(exemplar: Any) -> tuple[Labels, float, int]:
    """(labels, value, timestamp) of a decoded exemplar (object or tuple)."""
    if isinstance(exemplar, tuple):
        labels, value, timestamp = exemplar
        return labels, value, timestamp
    return exemplar.labels, exemplar.value, exemplar.timestamp


@dataclass(slots=True)
class _Batch:
    """A fully validated request, ready to append in one go."""

    labels: list[Labels] = field(default_factory=list)
    sample_series: list[int] = field(default_factory=list)
    sample_ts: list[int] = field(default_factory=list)
    sample_values: list[float] = field(default_factory=list)
    sample_starts: list[int] | None = None
    """Start timestamps (0 = none) aligned with ``sample_ts``; None when no sample has one."""
    exemplars: list[tuple[int, int, float, Labels]] = field(default_factory=list)
    histograms: list[tuple[int, int, Any, int]] = field(default_factory=list)
    metadata: list[tuple[int, MetricType, str, str]] = field(default_factory=list)
    metadata_sent: int = 0
    """Metadata entries the request carried (the rest of ``metadata`` was kept from before)."""


def _metadata_fields(meta: Any) -> tuple[MetricType, str, str] | None:
    if meta is None:
        return None
    kind = MetricType(int(getattr(meta, "type", 0)))
    help_text = getattr(meta, "help", "") or ""
    unit = getattr(meta, "unit", "") or ""
    if kind == MetricType.UNKNOWN and not help_text and not unit:
        return None
    return kind, unit, help_text


Fields = tuple[MetricType, str, str]


def _family_metadata(decoded: Any) -> dict[str, tuple[MetricType, str, str]]:
    """v1 request-level metadata by metric family name."""
    result: dict[str, tuple[MetricType, str, str]] = {}
    for entry in getattr(decoded, "metadata", None) or ():
        name, meta = entry
        fields = _metadata_fields(meta)
        if name and fields is not None:
            result[name] = fields
    return result


_FAMILY_SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created", "_info", "_gsum", "_gcount")


def _family_of(name: str, families: dict[str, tuple[MetricType, str, str]]) -> str | None:
    if name in families:
        return name
    for suffix in _FAMILY_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in families:
            return name[: -len(suffix)]
    return None


class FamilyMetadata:
    """Metadata by metric family, remembered across requests (bounded)."""

    def __init__(self) -> None:
        self.families: dict[str, Fields] = {}
        self._by_name: dict[str, str | None] = {}

    def update(self, families: dict[str, Fields]) -> None:
        known = self.families
        if any(name not in known for name in families):
            self._by_name.clear()
            if len(known) + len(families) > _MAX_FAMILIES:
                known.clear()
        known.update(families)

    def lookup(self, name: str) -> Fields | None:
        by_name = self._by_name
        if name in by_name:
            family = by_name[name]
        else:
            if len(by_name) >= _MAX_FAMILIES:
                by_name.clear()
            family = by_name[name] = _family_of(name, self.families)
        return self.families.get(family) if family is not None else None


def build_batch(
    decoded: Any,
    validator: rules.SeriesValidator | None = None,
    known: FamilyMetadata | None = None,
) -> _Batch:
    """Validate and flatten a decoded request; raise WriteRejected(400) on bad series.

    ``known`` remembers metadata across requests (it is updated with this
    request's metadata first); without it only this request's metadata is used.
    """
    batch = _Batch()
    families = _family_metadata(decoded)
    batch.metadata_sent = len(getattr(decoded, "metadata", None) or ())
    if known is None:
        known = FamilyMetadata()
    if families:
        known.update(families)
    lookup = known.lookup if known.families else None
    for index, series in enumerate(decoded.series):
        labels = series.labels  # the decoder guarantees sorted, unique, non-empty labels
        if validator is not None:
            try:
                validator.check(labels, f"series {index}")
            except rules.InvalidSeries as exc:
                raise WriteRejected(400, exc.message, exc.reason) from None
        elif not labels:
            raise WriteRejected(400, f"series {index} has no labels", rules.REASON_EMPTY)
        batch.labels.append(labels)
        samples = series.samples
        if samples:
            batch.sample_series.extend([index] * len(samples))
            batch.sample_ts.extend([t for t, _ in samples])
            batch.sample_values.extend([v for _, v in samples])
            starts = getattr(series, "start_timestamps", None)
            if (starts and any(starts)) or batch.sample_starts is not None:
                _add_starts(batch, len(samples), starts)
        for exemplar in series.exemplars or ():
            ex_labels, value, timestamp = exemplar_parts(exemplar)
            batch.exemplars.append((index, timestamp, value, tuple(ex_labels)))
        histogram_starts = getattr(series, "histogram_start_timestamps", None) or ()
        for i, (timestamp, histogram) in enumerate(series.histograms or ()):
            st = histogram_starts[i] if i < len(histogram_starts) else 0
            batch.histograms.append((index, timestamp, histogram, st))
        fields = _metadata_fields(getattr(series, "metadata", None))
        if fields is not None:
            batch.metadata_sent += 1
        elif lookup is not None:
            fields = lookup(metric_name(labels))
        if fields is not None:
            batch.metadata.append((index, *fields))
    return batch


def _add_starts(batch: _Batch, added: int, starts: Sequence[int] | None) -> None:
    """Keep ``sample_starts`` aligned after ``added`` samples (``starts`` theirs, or None)."""
    column = batch.sample_starts
    if column is None:
        column = batch.sample_starts = [0] * (len(batch.sample_ts) - added)
    column.extend(starts if starts else [0] * added)


def append_batch(appender: Appender, batch: _Batch) -> None:
    """Append a validated batch and commit once."""
    refs = appender.series_refs(batch.labels)
    if batch.sample_series:
        sample_refs = [refs[i] for i in batch.sample_series]
        if batch.sample_starts is not None:
            appender.append_samples(
                sample_refs, batch.sample_ts, batch.sample_values, batch.sample_starts
            )
        else:
            appender.append_samples(sample_refs, batch.sample_ts, batch.sample_values)
    if batch.exemplars:
        appender.append_exemplars(
            [Exemplar(refs[i], t, v, labels) for i, t, v, labels in batch.exemplars]
        )
    if batch.histograms:
        appender.append_histograms(
            [HistogramSample(refs[i], t, h, st) for i, t, h, st in batch.histograms]
        )
    if batch.metadata:
        appender.append_metadata(
            [MetricMetadata(refs[i], kind, unit, text) for i, kind, unit, text in batch.metadata]
        )
    appender.commit()


@dataclass(frozen=True, slots=True)
class ReceiverStats:
    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    samples: int = 0
    exemplars: int = 0
    histograms: int = 0
    metadata: int = 0
    bytes: int = 0
    last_error: str = ""


def parse_listen_address(address: str) -> tuple[str, int]:
    """``host:port`` (IPv6 hosts in brackets) → (host, port); ValueError with the reason."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise ValueError(f"listen_address {address!r} is not host:port")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)


class _ReceiverMetrics:
    """The ``rwconsole_receiver_*`` families of one receiver."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._requests = registry.counter(
            "rwconsole_receiver_requests_total",
            "Remote-write requests the receiver answered, by HTTP status code.",
            ("code",),
        )
        received = registry.counter(
            "rwconsole_receiver_received_total",
            "Items in requests the receiver accepted, by kind (metadata: entries sent).",
            ("kind",),
        )
        self.received = [received.labels(kind) for kind in KINDS]
        self._rejected = registry.counter(
            "rwconsole_receiver_rejected_total",
            "Items in requests the receiver refused, by kind and reason.",
            ("kind", "reason"),
        )
        self._reasons = registry.counter(
            "rwconsole_receiver_rejected_requests_total",
            "Requests the receiver refused, by reason.",
            ("reason",),
        )

    def request(self, status: int) -> None:
        child = self._requests.labels(str(status))
        assert isinstance(child, Counter)
        child.inc()

    def rejected(self, reason: str, counts: Sequence[int]) -> None:
        self._reasons.labels(reason).inc()  # type: ignore[union-attr]
        for kind, n in zip(KINDS, counts, strict=False):
            if n:
                self._rejected.labels(kind, reason).inc(n)  # type: ignore[union-attr]


def _decoded_counts(decoded: Any) -> tuple[int, int, int, int]:
    """(samples, exemplars, histograms, metadata) in a decoded request."""
    samples = exemplars = histograms = metadata = 0
    for series in decoded.series:
        samples += len(series.samples)
        exemplars += len(series.exemplars or ())
        histograms += len(series.histograms or ())
        metadata += getattr(series, "metadata", None) is not None
    return samples, exemplars, histograms, metadata + len(getattr(decoded, "metadata", ()) or ())


class RemoteWriteReceiver:
    """The ``[receiver]`` source: an HTTP server writing pushed series into an Appender."""

    def __init__(
        self,
        appender: Appender,
        listen_address: str = "127.0.0.1:9201",
        *,
        decode: DecodeFn | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        max_concurrency: int = 16,
        config: Any = None,
        registry: Registry | None = None,
    ) -> None:
        """``config`` is the ``[receiver]`` block (TLS and authentication come from it).

        Raises ``ConnectivityConfigError`` for TLS settings that cannot work and
        ``AuthError`` for an unreadable password or token.
        """
        self._appender = appender
        self._address = parse_listen_address(listen_address)
        self._decode = decode
        tls = getattr(config, "tls_config", None)
        ssl_context = reloading_server_ssl_context(tls, key="receiver.tls_config") if tls else None
        self._tls = ssl_context is not None
        self._auth = ServerAuth(
            getattr(config, "basic_auth_users", None) or {},
            getattr(config, "bearer_tokens", None) or [],
        )
        self._server = HttpServer(
            self._handle,
            max_body=max_body,
            max_concurrency=max_concurrency,
            ssl_context=ssl_context,
        )
        self._lock = threading.Lock()
        self._by_status: dict[int, int] = {}
        self._counts = [0, 0, 0, 0, 0, 0]  # requests, samples, exemplars, histograms, meta, bytes
        self._last_error = ""
        self._validator = rules.SeriesValidator()
        self._families = FamilyMetadata()
        self._metrics = _ReceiverMetrics(registry if registry is not None else Registry())
        self._logged_at = -LOG_INTERVAL
        self._not_logged = 0

    @classmethod
    def from_config(cls, config: Any, appender: Appender, **kwargs: Any) -> RemoteWriteReceiver:
        return cls(appender, config.listen_address, config=config, **kwargs)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def url(self) -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self.host}:{self.port}{WRITE_PATH}"

    async def start(self) -> None:
        if self._decode is None:
            self._decode = default_decode()
        await self._server.start(*self._address)

    async def stop(self) -> None:
        await self._server.stop()

    def status(self) -> SourceStatus:
        stats = self.stats()
        return SourceStatus.of("receiver", stats, last_error=stats.last_error)

    def forget_series(self, refs: set[int]) -> None:
        """Nothing to forget: each request resolves its series' refs anew."""

    def stats(self) -> ReceiverStats:
        with self._lock:
            requests, samples, exemplars, histograms, metadata, size = self._counts
            return ReceiverStats(
                requests,
                dict(self._by_status),
                samples,
                exemplars,
                histograms,
                metadata,
                size,
                self._last_error,
            )

    def _count(self, status: int, size: int, counts: Sequence[int] | None, error: str = "") -> None:
        self._metrics.request(status)
        with self._lock:
            self._by_status[status] = self._by_status.get(status, 0) + 1
            totals = self._counts
            totals[0] += 1
            totals[5] += size
            if counts is not None:
                for i, n in enumerate(counts):
                    totals[1 + i] += n
            if error:
                self._last_error = error
        if counts is not None:
            for child, n in zip(self._metrics.received, counts, strict=True):
                if n:
                    child.inc(n)

    def _reject(self, request: Request, exc: WriteRejected, decoded: Any) -> Response:
        counts = _decoded_counts(decoded) if decoded is not None else ()
        self._metrics.rejected(exc.code, counts)
        self._count(exc.status, len(request.body), None, exc.reason)
        now = time.monotonic()
        if now - self._logged_at >= LOG_INTERVAL:
            self._logged_at = now
            more = (
                f" ({self._not_logged} more refused since the last line)"
                if self._not_logged
                else ""
            )
            self._not_logged = 0
            log.warning(
                "receiver: refused a request from %s with HTTP %d: %s%s",
                request.peer,
                exc.status,
                exc.reason[:500],
                more,
            )
        else:
            self._not_logged += 1
        headers = {"WWW-Authenticate": 'Basic realm="rwconsole"'} if exc.status == 401 else {}
        return Response(exc.status, exc.reason.encode("utf-8", "replace") + b"\n", headers)

    async def _handle(self, request: Request) -> Response:
        decoded = None
        try:
            check_write_request(request)
            refused = self._auth.check(request.header("authorization"))
            if refused is not None:
                raise WriteRejected(401, f"unauthorized: {refused}", rules.REASON_AUTH)
            assert self._decode is not None
            decoded = decode_write(self._decode, request)
            batch = build_batch(decoded, self._validator, self._families)
            append_batch(self._appender, batch)
        except WriteRejected as exc:
            return self._reject(request, exc, decoded)
        except WalAppendError as exc:  # nothing was kept: the sender retries later
            self._count(503, len(request.body), None, str(exc))
            retry = {"Retry-After": str(WAL_RETRY_AFTER_SECONDS)}
            return Response(503, str(exc).encode("utf-8", "replace") + b"\n", headers=retry)
        counts = (
            len(batch.sample_values),
            len(batch.exemplars),
            len(batch.histograms),
            batch.metadata_sent,
        )
        self._count(204, len(request.body), counts)
        headers: dict[str, str] = {}
        if is_v2(decoded):
            headers = written_headers(
                len(batch.sample_values), len(batch.histograms), len(batch.exemplars)
            )
        return Response(204, headers=headers)


__all__: Sequence[str] = (
    "WRITE_PATH",
    "FamilyMetadata",
    "ReceiverStats",
    "RemoteWriteReceiver",
    "WriteRejected",
    "append_batch",
    "build_batch",
    "check_write_request",
    "decode_write",
    "default_decode",
    "is_v2",
    "parse_listen_address",
    "written_headers",
)
