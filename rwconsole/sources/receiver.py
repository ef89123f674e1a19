"""Remote-write input source: accepts POST /api/v1/write and writes into the Appender.

Both protocol versions are accepted (the decoder tells them apart by
Content-Type). A request is decoded and validated completely before anything
is appended, and committed once, so a bad request leaves nothing behind: it is
answered 400 with the reason (415 for an unsupported content type or
encoding, 413 beyond the body limit). Success is 204; a v2 request also gets
the ``X-Prometheus-Remote-Write-*-Written`` headers.

The request plumbing shared with the demo receiver (``decode_write``,
``written_headers``, ``is_v2``) lives here too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rwconsole.http.server import DEFAULT_MAX_BODY, HttpServer, Request, Response
from rwconsole.labels import METRIC_NAME, Labels
from rwconsole.model import (
    Appender,
    Exemplar,
    HistogramSample,
    MetricMetadata,
    MetricType,
    SourceStatus,
    WalAppendError,
)
from rwconsole.remote.decode import UnsupportedMediaType, decode_write_request
from rwconsole.remote.encode import (
    EXEMPLARS_WRITTEN_HEADER,
    HISTOGRAMS_WRITTEN_HEADER,
    PROTOBUF_MESSAGE_V2,
    SAMPLES_WRITTEN_HEADER,
)

WRITE_PATH = "/api/v1/write"
WAL_RETRY_AFTER_SECONDS = 5
"""What a 503 for a refused WAL append asks senders to wait before retrying."""

DecodeFn = Callable[[bytes, str, str], Any]
"""``decode(body, content_type, content_encoding) -> DecodedRequest``."""


class WriteRejected(Exception):
    """A write request is answered with ``status`` and ``reason`` and nothing is written."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


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
        raise WriteRejected(404, f"not found: {request.path[:100]}; remote write is {WRITE_PATH}")
    if request.method != "POST":
        raise WriteRejected(405, f"method {request.method} not allowed; use POST")


def decode_write(decode: DecodeFn, request: Request) -> Any:
    """Decode a write request body; raise WriteRejected (400/415) with the decoder's reason."""
    content_type = request.header("content-type")
    encoding = request.header("content-encoding")
    try:
        return decode(request.body, content_type, encoding)
    except Exception as exc:  # any decoder failure is the request's fault, never a crash
        status = 415 if isinstance(exc, UnsupportedMediaType) else 400
        return _raise(status, str(exc) or type(exc).__name__)


def _raise(status: int, reason: str) -> Any:
    raise WriteRejected(status, reason)


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
    exemplars: list[tuple[int, int, float, Labels]] = field(default_factory=list)
    histograms: list[tuple[int, int, Any]] = field(default_factory=list)
    metadata: list[tuple[int, MetricType, str, str]] = field(default_factory=list)


def _metadata_fields(meta: Any) -> tuple[MetricType, str, str] | None:
    if meta is None:
        return None
    kind = MetricType(int(getattr(meta, "type", 0)))
    help_text = getattr(meta, "help", "") or ""
    unit = getattr(meta, "unit", "") or ""
    if kind == MetricType.UNKNOWN and not help_text and not unit:
        return None
    return kind, unit, help_text


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


def build_batch(decoded: Any) -> _Batch:
    """Validate and flatten a decoded request; raise WriteRejected(400) on bad series."""
    batch = _Batch()
    families = _family_metadata(decoded)
    for index, series in enumerate(decoded.series):
        labels = series.labels  # the decoder guarantees sorted, unique, non-empty labels
        if not labels:
            raise WriteRejected(400, f"series {index} has no labels")
        batch.labels.append(labels)
        samples = series.samples
        if samples:
            batch.sample_series.extend([index] * len(samples))
            batch.sample_ts.extend([t for t, _ in samples])
            batch.sample_values.extend([v for _, v in samples])
        for exemplar in series.exemplars or ():
            ex_labels, value, timestamp = exemplar_parts(exemplar)
            batch.exemplars.append((index, timestamp, value, tuple(ex_labels)))
        for timestamp, histogram in series.histograms or ():
            batch.histograms.append((index, timestamp, histogram))
        fields = _metadata_fields(getattr(series, "metadata", None))
        if fields is None and families:
            family = _family_of(dict(labels).get(METRIC_NAME, ""), families)
            fields = families.get(family) if family else None
        if fields is not None:
            batch.metadata.append((index, *fields))
    return batch


def append_batch(appender: Appender, batch: _Batch) -> None:
    """Append a validated batch and commit once."""
    refs = appender.series_refs(batch.labels)
    if batch.sample_series:
        appender.append_samples(
            [refs[i] for i in batch.sample_series], batch.sample_ts, batch.sample_values
        )
    if batch.exemplars:
        appender.append_exemplars(
            [Exemplar(refs[i], t, v, labels) for i, t, v, labels in batch.exemplars]
        )
    if batch.histograms:
        appender.append_histograms([HistogramSample(refs[i], t, h) for i, t, h in batch.histograms])
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
    ) -> None:
        self._appender = appender
        self._address = parse_listen_address(listen_address)
        self._decode = decode
        self._server = HttpServer(self._handle, max_body=max_body, max_concurrency=max_concurrency)
        self._lock = threading.Lock()
        self._by_status: dict[int, int] = {}
        self._counts = [0, 0, 0, 0, 0, 0]  # requests, samples, exemplars, histograms, meta, bytes
        self._last_error = ""

    @classmethod
    def from_config(cls, config: Any, appender: Appender, **kwargs: Any) -> RemoteWriteReceiver:
        return cls(appender, config.listen_address, **kwargs)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def host(self) -> str:
        return self._server.host

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

    def _count(self, status: int, size: int, batch: _Batch | None, error: str = "") -> None:
        with self._lock:
            self._by_status[status] = self._by_status.get(status, 0) + 1
            counts = self._counts
            counts[0] += 1
            counts[5] += size
            if batch is not None:
                counts[1] += len(batch.sample_values)
                counts[2] += len(batch.exemplars)
                counts[3] += len(batch.histograms)
                counts[4] += len(batch.metadata)
            if error:
                self._last_error = error

    async def _handle(self, request: Request) -> Response:
        try:
            check_write_request(request)
            assert self._decode is not None
            decoded = decode_write(self._decode, request)
            batch = build_batch(decoded)
            append_batch(self._appender, batch)
        except WriteRejected as exc:
            self._count(exc.status, len(request.body), None, exc.reason)
            return Response(exc.status, exc.reason.encode("utf-8", "replace") + b"\n")
        except WalAppendError as exc:  # nothing was kept: the sender retries later
            self._count(503, len(request.body), None, str(exc))
            retry = {"Retry-After": str(WAL_RETRY_AFTER_SECONDS)}
            return Response(503, str(exc).encode("utf-8", "replace") + b"\n", headers=retry)
        self._count(204, len(request.body), batch)
        headers: dict[str, str] = {}
        if is_v2(decoded):
            headers = written_headers(
                len(batch.sample_values), len(batch.histograms), len(batch.exemplars)
            )
        return Response(204, headers=headers)


__all__: Sequence[str] = (
    "WRITE_PATH",
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
