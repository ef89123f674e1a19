"""Decode remote-write request bodies (protocol 1.0 and 2.0) into plain Python data.

This module owns the receiving side of the wire format, shared by the embedded
demo receiver and the remote-write input source: snappy block decompression,
choosing the protocol from ``Content-Type``, parsing with the reference
protobuf modules, validating what the specification requires of senders, and
returning ``DecodedRequest`` made of ``Labels`` tuples and the shared model
types. Errors come as two exceptions a receiver maps to HTTP statuses:
``UnsupportedMediaType`` (415) and ``InvalidRequest`` (400), each with a
``reason`` meant to be sent back verbatim. Arbitrary bytes never raise
anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import snappy
from google.protobuf.message import DecodeError

from rwconsole.labels import METRIC_NAME, Labels
from rwconsole.model import Exemplar, Histogram, MetricMetadata, MetricType, ResetHint
from rwconsole.protocol.encode import PROTOBUF_MESSAGE_V1, PROTOBUF_MESSAGE_V2
from rwconsole.protocol.proto import remote_v1_pb2, remote_v2_pb2

DEFAULT_MAX_DECOMPRESSED_SIZE = 64 * 1024 * 1024
_SNAPPY_FRAMED_MAGIC = b"\xff\x06\x00\x00sNaPpY"
_MEDIA_TYPE = "application/x-protobuf"
_MAX_WARNINGS = 10


class UnsupportedMediaType(Exception):
    """The content type or encoding is not a remote-write one (answer 415)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidRequest(Exception):
    """The body is not a valid remote-write request (answer 400 with ``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class DecodedSeries:
    """One TimeSeries entry of a request (a series may appear in several)."""

    labels: Labels
    samples: list[tuple[int, float]] = field(default_factory=list)
    exemplars: list[Exemplar] = field(default_factory=list)
    histograms: list[tuple[int, Histogram]] = field(default_factory=list)
    metadata: MetricMetadata | None = None
    # v2 only, aligned with ``samples`` / ``histograms`` (0 = unset); empty for v1.
    start_timestamps: list[int] = field(default_factory=list)
    histogram_start_timestamps: list[int] = field(default_factory=list)


@dataclass(slots=True)
class DecodedRequest:
    """A decoded request: series entries in wire order plus totals."""

    protocol: str  # PROTOBUF_MESSAGE_V1 or PROTOBUF_MESSAGE_V2
    series: list[DecodedSeries]
    metadata: list[tuple[str, MetricMetadata]]  # v1 family metadata
    samples: int
    exemplars: int
    histograms: int
    symbols: list[str] = field(default_factory=list)  # v2 only
    series_without_name: int = 0
    warnings: list[str] = field(default_factory=list)


def protocol_for(content_type: str | None) -> str:
    """The protobuf message a ``Content-Type`` announces, or ``UnsupportedMediaType``.

    A missing content type means protocol 1.0, as Prometheus' receiver assumes.
    """
    if not content_type or not content_type.strip():
        return PROTOBUF_MESSAGE_V1
    media_type, *params = content_type.split(";")
    if media_type.strip().lower() != _MEDIA_TYPE:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {content_type!r}; expected {_MEDIA_TYPE!r} "
            f"optionally with ';proto={PROTOBUF_MESSAGE_V1}' or ';proto={PROTOBUF_MESSAGE_V2}'"
        )
    proto = PROTOBUF_MESSAGE_V1
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "proto":
            proto = value.strip().strip('"')
    if proto not in (PROTOBUF_MESSAGE_V1, PROTOBUF_MESSAGE_V2):
        raise UnsupportedMediaType(
            f"unsupported protobuf message {proto!r} in Content-Type; expected "
            f"{PROTOBUF_MESSAGE_V1!r} or {PROTOBUF_MESSAGE_V2!r}"
        )
    return proto


def decompress(body: bytes, max_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE) -> bytes:
    """Snappy block-format decompression with clear errors (``InvalidRequest``)."""
    if body.startswith(_SNAPPY_FRAMED_MAGIC):
        raise InvalidRequest(
            "body is in the snappy framed (stream) format; remote write requires the block format"
        )
    size = 0
    for i in range(min(len(body), 10)):
        size |= (body[i] & 0x7F) << (7 * i)
        if body[i] < 0x80:
            break
    else:
        raise InvalidRequest("snappy: corrupt input (bad length header)")
    if size > max_size:
        raise InvalidRequest(
            f"snappy: decompressed size {size} bytes exceeds the limit of {max_size} bytes"
        )
    try:
        return snappy.uncompress(body)
    except Exception as exc:  # the C library raises several types
        raise InvalidRequest(f"snappy: corrupt input ({exc})") from None


def decode_write_request(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    *,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
) -> DecodedRequest:
    """Decode an HTTP remote-write body (compressed, as received)."""
    proto = protocol_for(content_type)
    encoding = (content_encoding or "").strip().lower()
    if encoding not in ("", "snappy"):
        raise UnsupportedMediaType(
            f"unsupported Content-Encoding {content_encoding!r}; remote write uses 'snappy'"
        )
    raw = decompress(bytes(body), max_decompressed_size)
    return decode_message(raw, proto)


def decode_message(raw: bytes, protocol: str) -> DecodedRequest:
    """Decode uncompressed protobuf bytes of ``protocol`` (a PROTOBUF_MESSAGE_* name)."""
    if protocol == PROTOBUF_MESSAGE_V2:
        return _decode_v2(_parse(remote_v2_pb2.Request(), raw), len(raw))
    return _decode_v1(_parse(remote_v1_pb2.WriteRequest(), raw), len(raw))


def _parse(message: Any, raw: bytes) -> Any:
    try:
        message.ParseFromString(raw)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise InvalidRequest(
            f"protobuf: cannot parse {message.DESCRIPTOR.full_name}: {exc}"
        ) from None
    return message


# --- shared validation -------------------------------------------------------


def _check_labels(pairs: list[tuple[str, str]], where: str) -> Labels:
    previous = None
    for name, value in pairs:
        if not name:
            raise InvalidRequest(f"{where}: empty label name")
        if not value:
            raise InvalidRequest(f"{where}: label {name!r} has an empty value")
        if previous is not None and name <= previous:
            if name == previous:
                raise InvalidRequest(f"{where}: duplicate label name {name!r}")
            raise InvalidRequest(
                f"{where}: labels not sorted by name ({name!r} after {previous!r})"
            )
        previous = name
    return tuple(pairs)


def _metric_type(value: int, where: str) -> MetricType:
    try:
        return MetricType(value)
    except ValueError:
        raise InvalidRequest(f"{where}: unknown metric type {value}") from None


def _histogram(h: Any, where: str) -> Histogram:
    count_kind = h.WhichOneof("count")
    zero_kind = h.WhichOneof("zero_count")
    is_float = count_kind == "count_float" or (
        count_kind is None and zero_kind == "zero_count_float"
    )
    if is_float:
        mixed = zero_kind == "zero_count_int" or h.positive_deltas or h.negative_deltas
    else:
        mixed = zero_kind == "zero_count_float" or h.positive_counts or h.negative_counts
    if mixed:
        raise InvalidRequest(f"{where}: histogram mixes integer and float counts")
    try:
        reset_hint = ResetHint(h.reset_hint)
    except ValueError:
        raise InvalidRequest(f"{where}: unknown histogram reset hint {h.reset_hint}") from None
    positive_spans = tuple((s.offset, s.length) for s in h.positive_spans)
    negative_spans = tuple((s.offset, s.length) for s in h.negative_spans)
    if is_float:
        positive: tuple[float, ...] = tuple(h.positive_counts)
        negative: tuple[float, ...] = tuple(h.negative_counts)
    else:
        positive = tuple(h.positive_deltas)
        negative = tuple(h.negative_deltas)
    for side, spans, buckets in (
        ("positive", positive_spans, positive),
        ("negative", negative_spans, negative),
    ):
        if sum(length for _, length in spans) != len(buckets):
            raise InvalidRequest(
                f"{where}: histogram {side} spans cover {sum(n for _, n in spans)} buckets "
                f"but {len(buckets)} bucket counts are given"
            )
    return Histogram(
        schema=h.schema,
        zero_threshold=h.zero_threshold,
        zero_count=h.zero_count_float if is_float else h.zero_count_int,
        count=h.count_float if is_float else h.count_int,
        sum=h.sum,
        positive_spans=positive_spans,
        negative_spans=negative_spans,
        positive_buckets=positive,
        negative_buckets=negative,
        reset_hint=reset_hint,
        is_float=is_float,
        custom_values=tuple(h.custom_values),
    )


class _Report:
    """Collects series without ``__name__`` (reported, not rejected)."""

    def __init__(self) -> None:
        self.without_name = 0
        self.warnings: list[str] = []

    def check_name(self, labels: Labels, where: str) -> None:
        if not any(name == METRIC_NAME for name, _ in labels):
            self.without_name += 1
            self.warn(f"{where}: series has no {METRIC_NAME} label")

    def warn(self, text: str) -> None:
        if len(self.warnings) < _MAX_WARNINGS:
            self.warnings.append(text)


# --- protocol 1.0 ------------------------------------------------------------


def _decode_v1(request: Any, raw_size: int) -> DecodedRequest:
    report = _Report()
    series: list[DecodedSeries] = []
    samples = exemplars = histograms = 0
    for i, ts in enumerate(request.timeseries):
        where = f"timeseries[{i}]"
        labels = _check_labels([(lab.name, lab.value) for lab in ts.labels], where)
        report.check_name(labels, where)
        entry = DecodedSeries(labels)
        entry.samples = [(s.timestamp, s.value) for s in ts.samples]
        for j, ex in enumerate(ts.exemplars):
            ex_labels = _check_labels(
                [(lab.name, lab.value) for lab in ex.labels], f"{where}.exemplars[{j}]"
            )
            entry.exemplars.append(Exemplar(0, ex.timestamp, ex.value, ex_labels))
        entry.histograms = [
            (h.timestamp, _histogram(h, f"{where}.histograms[{j}]"))
            for j, h in enumerate(ts.histograms)
        ]
        samples += len(entry.samples)
        exemplars += len(entry.exemplars)
        histograms += len(entry.histograms)
        series.append(entry)
    metadata = [
        (
            m.metric_family_name,
            MetricMetadata(0, _metric_type(m.type, f"metadata[{i}]"), m.unit, m.help),
        )
        for i, m in enumerate(request.metadata)
    ]
    if raw_size and not series and not metadata:
        report.warn(
            f"{raw_size} bytes decoded as an empty {PROTOBUF_MESSAGE_V1}; "
            f"is it a {PROTOBUF_MESSAGE_V2} sent with a 1.0 Content-Type?"
        )
    return DecodedRequest(
        protocol=PROTOBUF_MESSAGE_V1,
        series=series,
        metadata=metadata,
        samples=samples,
        exemplars=exemplars,
        histograms=histograms,
        series_without_name=report.without_name,
        warnings=report.warnings,
    )


# --- protocol 2.0 ------------------------------------------------------------


def _resolve_refs(refs: Any, symbols: list[str], where: str) -> list[tuple[str, str]]:
    if len(refs) % 2:
        raise InvalidRequest(f"{where}: labels_refs has odd length {len(refs)}")
    count = len(symbols)
    pairs = []
    for k in range(0, len(refs), 2):
        name_ref, value_ref = refs[k], refs[k + 1]
        if name_ref >= count or value_ref >= count:
            bad = name_ref if name_ref >= count else value_ref
            raise InvalidRequest(
                f"{where}: labels_refs[{k if bad == name_ref else k + 1}] = {bad} is out of "
                f"range for {count} symbols"
            )
        pairs.append((symbols[name_ref], symbols[value_ref]))
    return pairs


def _symbol(symbols: list[str], ref: int, where: str) -> str:
    if ref >= len(symbols):
        raise InvalidRequest(f"{where} = {ref} is out of range for {len(symbols)} symbols")
    return symbols[ref]


def _decode_v2(request: Any, raw_size: int) -> DecodedRequest:
    symbols = list(request.symbols)
    if symbols and symbols[0] != "":
        raise InvalidRequest(f"symbols[0] must be the empty string, got {symbols[0]!r}")
    report = _Report()
    series: list[DecodedSeries] = []
    samples = exemplars = histograms = 0
    for i, ts in enumerate(request.timeseries):
        where = f"timeseries[{i}]"
        labels = _check_labels(_resolve_refs(ts.labels_refs, symbols, where), where)
        report.check_name(labels, where)
        if ts.samples and ts.histograms:
            raise InvalidRequest(f"{where}: has both samples and histograms")
        entry = DecodedSeries(labels)
        entry.samples = [(s.timestamp, s.value) for s in ts.samples]
        entry.start_timestamps = [s.start_timestamp for s in ts.samples]
        for j, h in enumerate(ts.histograms):
            entry.histograms.append((h.timestamp, _histogram(h, f"{where}.histograms[{j}]")))
            entry.histogram_start_timestamps.append(h.start_timestamp)
        for j, ex in enumerate(ts.exemplars):
            ex_where = f"{where}.exemplars[{j}]"
            ex_labels = _check_labels(_resolve_refs(ex.labels_refs, symbols, ex_where), ex_where)
            entry.exemplars.append(Exemplar(0, ex.timestamp, ex.value, ex_labels))
        if ts.HasField("metadata"):
            m = ts.metadata
            entry.metadata = MetricMetadata(
                0,
                _metric_type(m.type, f"{where}.metadata"),
                _symbol(symbols, m.unit_ref, f"{where}.metadata.unit_ref"),
                _symbol(symbols, m.help_ref, f"{where}.metadata.help_ref"),
            )
        samples += len(entry.samples)
        exemplars += len(entry.exemplars)
        histograms += len(entry.histograms)
        series.append(entry)
    return DecodedRequest(
        protocol=PROTOBUF_MESSAGE_V2,
        series=series,
        metadata=[],
        samples=samples,
        exemplars=exemplars,
        histograms=histograms,
        symbols=symbols,
        series_without_name=report.without_name,
        warnings=report.warnings,
    )
