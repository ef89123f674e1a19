"""WAL record codecs (Prometheus ``tsdb/record``): bytes in, plain data out.

Knows nothing about files: ``rwconsole.wal.segment`` hands over whole records.
Types 1–13 are decoded: 11–13 (SamplesV2, HistogramSamplesV2,
FloatHistogramSamplesV2, written by Prometheus 3.11+ with start-timestamp
storage) decode into the same forms as 2, 7 and 8, with each entry's start
timestamp (0 = none). Anything else (and the empty record) is an
``UnknownRecord``. Malformed input raises ``RecordDecodeError`` with the byte
offset inside the record, never another exception, and never loops without
consuming input.

Float samples travel as columns (refs, timestamps, values). The sample codec is
the hot path, so it works on whole columns: values are packed with one
``struct`` call, one-byte deltas are filled into a strided ``bytearray``, and
other deltas come from a precomputed varint table and are joined once.
Float bit patterns (staleness marker, NaN payloads, -0.0) are kept exactly.
"""

from __future__ import annotations

import operator
import re
import struct
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from rwconsole.labels import Labels
from rwconsole.model import (
    CUSTOM_BUCKETS_SCHEMA,
    Exemplar,
    Histogram,
    HistogramSample,
    MetricMetadata,
    MetricType,
    ResetHint,
)


class RecordType(IntEnum):
    SERIES = 1
    SAMPLES = 2
    TOMBSTONES = 3
    EXEMPLARS = 4
    MMAP_MARKERS = 5
    METADATA = 6
    HISTOGRAM_SAMPLES = 7
    FLOAT_HISTOGRAM_SAMPLES = 8
    CUSTOM_BUCKETS_HISTOGRAM_SAMPLES = 9
    CUSTOM_BUCKETS_FLOAT_HISTOGRAM_SAMPLES = 10
    SAMPLES_V2 = 11
    HISTOGRAM_SAMPLES_V2 = 12
    FLOAT_HISTOGRAM_SAMPLES_V2 = 13


HISTOGRAM_TYPES = frozenset({7, 8, 9, 10, 12, 13})
SAMPLE_TYPES = frozenset({2, 11})
NEWER_TYPES = frozenset({11, 12, 13})
"""Types only Prometheus 3.11+ writes (entries carry start timestamps)."""
_ST_NONE, _ST_SAME = 0, 1
"""Start-timestamp markers of later entries in types 11–13; any other byte: a varint follows."""
_MASK64 = (1 << 64) - 1


class RecordDecodeError(ValueError):
    """A record's bytes do not decode; ``offset`` is the byte inside the record."""

    def __init__(self, record_type: int | None, offset: int, reason: str) -> None:
        self.record_type = record_type
        self.offset = offset
        self.reason = reason
        name = _type_name(record_type)
        super().__init__(f"{name} record: {reason} at byte {offset}")


def _type_name(code: int | None) -> str:
    try:
        return RecordType(code).name.lower() if code is not None else "empty"
    except ValueError:
        return f"type {code}"


# ---------------------------------------------------------------------------
# decoded forms


@dataclass(slots=True)
class SeriesRecord:
    series: list[tuple[int, Labels]]


@dataclass(slots=True)
class SamplesRecord:
    refs: list[int]
    timestamps: list[int]
    values: list[float]
    start_timestamps: list[int] | None = None
    """Per sample (0 = none), only for type 11 records; None for type 2."""

    def __len__(self) -> int:
        return len(self.refs)


@dataclass(slots=True)
class TombstonesRecord:
    intervals: list[tuple[int, int, int]]  # (ref, mint, maxt)


@dataclass(slots=True)
class ExemplarsRecord:
    exemplars: list[Exemplar]


@dataclass(slots=True)
class MmapMarkersRecord:
    markers: list[tuple[int, int]]  # (ref, chunk ref)


@dataclass(slots=True)
class MetadataRecord:
    entries: list[MetricMetadata]


@dataclass(slots=True)
class HistogramsRecord:
    type: int
    histograms: list[HistogramSample]
    start_timestamps: list[int] | None = None
    """Per histogram (0 = none), only for types 12 and 13; None for 7–10."""


@dataclass(slots=True)
class UnsupportedRecord:
    """A type this tool recognises but does not decode (none at present)."""

    type: int
    size: int


@dataclass(slots=True)
class UnknownRecord:
    """An unknown type code, or an empty record (``type`` None)."""

    type: int | None
    size: int


Record = (
    SeriesRecord
    | SamplesRecord
    | TombstonesRecord
    | ExemplarsRecord
    | MmapMarkersRecord
    | MetadataRecord
    | HistogramsRecord
    | UnsupportedRecord
    | UnknownRecord
)


# ---------------------------------------------------------------------------
# varints


def _uvarint_bytes(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_UVARINT_SMALL = [_uvarint_bytes(n) for n in range(1 << 14)]
"""Varints of the values below 2**14 (lengths, counts): looked up, not built."""


def uvarint(value: int) -> bytes:
    if value < 0:
        raise ValueError("uvarint of a negative number")
    if value < 16384:
        return _UVARINT_SMALL[value]
    return _uvarint_bytes(value)


def varint(value: int) -> bytes:
    return _uvarint_bytes(value << 1 if value >= 0 else (-value << 1) - 1)


_DELTA_SPAN = 8192  # signed deltas in [-8192, 8191] have 1- or 2-byte varints
_SVARINT = [varint(d - _DELTA_SPAN) for d in range(2 * _DELTA_SPAN)]
_SVARINT_ZERO = [b + b"\x00" for b in _SVARINT]  # the same followed by a zero time delta
_UNZIGZAG = [(z >> 1) ^ -(z & 1) for z in range(1 << 14)]


class _Buf:
    """Cursor over one record; every read checks bounds and raises RecordDecodeError."""

    __slots__ = ("data", "end", "pos", "rtype")

    def __init__(self, data: bytes, rtype: int | None, pos: int = 1) -> None:
        self.data = data
        self.end = len(data)
        self.pos = pos
        self.rtype = rtype

    def fail(self, reason: str, at: int | None = None) -> RecordDecodeError:
        return RecordDecodeError(self.rtype, self.pos if at is None else at, reason)

    def more(self) -> bool:
        return self.pos < self.end

    def left(self) -> int:
        return self.end - self.pos

    def byte(self) -> int:
        if self.pos >= self.end:
            raise self.fail("unexpected end of record")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def be64(self) -> int:
        if self.pos + 8 > self.end:
            raise self.fail("unexpected end of record (need 8 bytes)")
        (v,) = _U64.unpack_from(self.data, self.pos)
        self.pos += 8
        return v

    def be64i(self) -> int:
        if self.pos + 8 > self.end:
            raise self.fail("unexpected end of record (need 8 bytes)")
        (v,) = _I64.unpack_from(self.data, self.pos)
        self.pos += 8
        return v

    def f64(self) -> float:
        if self.pos + 8 > self.end:
            raise self.fail("unexpected end of record (need 8 bytes)")
        (v,) = _F64.unpack_from(self.data, self.pos)
        self.pos += 8
        return v

    def uvarint(self) -> int:
        data = self.data
        pos = self.pos
        result = 0
        shift = 0
        for i in range(10):
            if pos >= self.end:
                raise self.fail("unexpected end of record in varint")
            b = data[pos]
            pos += 1
            if b < 0x80:
                if i == 9 and b > 1:
                    raise self.fail("varint overflows 64 bits")
                self.pos = pos
                return result | (b << shift)
            result |= (b & 0x7F) << shift
            shift += 7
        raise self.fail("varint overflows 64 bits")

    def varint(self) -> int:
        z = self.uvarint()
        return (z >> 1) ^ -(z & 1)

    def string(self) -> str:
        n = self.uvarint()
        if n > self.end - self.pos:
            raise self.fail(f"string of {n} bytes runs past the end of the record")
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", "replace")

    def count(self, min_item_size: int) -> int:
        """An item count, checked against the bytes left (so no huge allocations)."""
        at = self.pos
        n = self.uvarint()
        if n * min_item_size > self.end - self.pos:
            raise self.fail(f"count {n} larger than the record", at)
        return n

    def labels(self) -> Labels:
        n = self.count(2)
        pairs = [(self.string(), self.string()) for _ in range(n)]
        if any(pairs[i][0] > pairs[i + 1][0] for i in range(len(pairs) - 1)):
            pairs.sort()
        return tuple(pairs)


_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")
_SAMPLE_HEADER = struct.Struct(">Qq")


def _wrap_ref(value: int) -> int:
    return value & _MASK64


def _wrap_i64(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


# ---------------------------------------------------------------------------
# decoding


def record_type(data: bytes) -> int | None:
    """Type code of a record (None for the empty record)."""
    return data[0] if data else None


def decode(data: bytes) -> Record:
    """Decode one record; raise ``RecordDecodeError`` when its bytes are malformed."""
    if not data:
        return UnknownRecord(None, 0)
    code = data[0]
    decoder = _DECODERS.get(code)
    if decoder is not None:
        return decoder(data)
    if code in NEWER_TYPES:
        return UnsupportedRecord(code, len(data))
    return UnknownRecord(code, len(data))


def decode_series(data: bytes) -> SeriesRecord:
    buf = _Buf(data, 1)
    out = []
    while buf.more():
        ref = buf.be64()
        out.append((ref, buf.labels()))
    return SeriesRecord(out)


def decode_samples(data: bytes, layouts: SampleLayouts | None = None) -> SamplesRecord:
    """Decode a samples record into three columns (bulk where the layout allows).

    With ``layouts``, a record one of them could have written is unpacked by
    it; the result is the same either way, only faster.
    """
    if len(data) <= 1:
        return SamplesRecord([], [], [])
    if len(data) < 17:
        raise RecordDecodeError(2, len(data), "unexpected end of record in header")
    base_ref, base_t = _SAMPLE_HEADER.unpack_from(data, 1)
    if layouts is not None:
        layout = layouts.get(len(data), base_ref)
        if layout is not None:
            known = layout.decode(data)
            if known is not None:
                return known
    fast = _decode_samples_strided(data, base_ref, base_t)
    if fast is not None:
        return fast
    return _decode_samples_general(data, base_ref, base_t)


def _decode_samples_strided(data: bytes, base_ref: int, base_t: int) -> SamplesRecord | None:
    """Entries of one fixed size (1- or 2-byte ref delta, 1-byte time delta)."""
    body = memoryview(data)[17:]
    size = len(body)
    if size == 0:
        return SamplesRecord([], [], [])
    for width in (1, 2):
        stride = width + 9
        if size % stride:
            continue
        n = size // stride
        if width == 1:
            zref = body[0::stride]
            if max(zref) >= 0x80:
                continue
            zt = body[1::stride]
            if max(zt) >= 0x80:
                continue
            un = _UNZIGZAG
            refs = [base_ref + un[z] for z in zref]
        else:
            lo = body[0::stride]
            hi = body[1::stride]
            zt = body[2::stride]
            if min(lo) < 0x80 or max(hi) >= 0x80 or max(zt) >= 0x80:
                continue
            un = _UNZIGZAG
            refs = [base_ref + un[(a & 0x7F) | (b << 7)] for a, b in zip(lo, hi, strict=True)]
        ts = [base_t + un[z] for z in zt]
        packed = bytearray(8 * n)
        for k in range(8):
            packed[k::8] = body[width + 1 + k :: stride]
        values = list(struct.unpack(f">{n}d", packed))
        return _wrapped(SamplesRecord(refs, ts, values))
    return None


def _decode_samples_general(data: bytes, base_ref: int, base_t: int) -> SamplesRecord:
    zrefs: list[int] = []
    zts: list[int] = []
    value_offsets: list[int] = []
    add_ref = zrefs.append
    add_t = zts.append
    add_off = value_offsets.append
    end = len(data)
    pos = 17
    try:
        while pos < end:
            b = data[pos]
            if b < 0x80:
                pos += 1
                add_ref(b)
            else:
                c = data[pos + 1]
                if c < 0x80:
                    add_ref((b & 0x7F) | (c << 7))
                    pos += 2
                else:
                    z, pos = _slow_uvarint(data, pos)
                    add_ref(z)
            b = data[pos]
            if b < 0x80:
                pos += 1
                add_t(b)
            else:
                c = data[pos + 1]
                if c < 0x80:
                    add_t((b & 0x7F) | (c << 7))
                    pos += 2
                else:
                    z, pos = _slow_uvarint(data, pos)
                    add_t(z)
            add_off(pos)
            pos += 8
    except IndexError:
        raise RecordDecodeError(
            2, end, f"unexpected end of record after {len(value_offsets)} samples"
        ) from None
    if pos > end:
        raise RecordDecodeError(
            2, end, f"unexpected end of record after {len(value_offsets) - 1} samples"
        )
    refs = _undelta(zrefs, base_ref)
    ts = _undelta(zts, base_t)
    packed = b"".join([data[o : o + 8] for o in value_offsets])
    values = list(struct.unpack(f">{len(value_offsets)}d", packed))
    return _wrapped(SamplesRecord(refs, ts, values))


def _undelta(zigzags: list[int], base: int) -> list[int]:
    if max(zigzags) < len(_UNZIGZAG):
        un = _UNZIGZAG
        return [base + un[z] for z in zigzags]
    return [base + ((z >> 1) ^ -(z & 1)) for z in zigzags]


def _slow_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    for i in range(10):
        b = data[pos]
        pos += 1
        if b < 0x80:
            if i == 9 and b > 1:
                raise RecordDecodeError(2, pos - 1, "varint overflows 64 bits")
            return result | (b << shift), pos
        result |= (b & 0x7F) << shift
        shift += 7
    raise RecordDecodeError(2, pos - 1, "varint overflows 64 bits")


def _wrapped(rec: SamplesRecord) -> SamplesRecord:
    # Go does these sums in 64-bit arithmetic; only hostile input needs wrapping.
    if rec.refs and (min(rec.refs) < 0 or max(rec.refs) > _MASK64):
        rec.refs = [_wrap_ref(r) for r in rec.refs]
    if rec.timestamps and (min(rec.timestamps) < -(1 << 63) or max(rec.timestamps) >= 1 << 63):
        rec.timestamps = [_wrap_i64(t) for t in rec.timestamps]
    return rec


def decode_tombstones(data: bytes) -> TombstonesRecord:
    buf = _Buf(data, 3)
    out = []
    while buf.more():
        ref = buf.be64()
        out.append((ref, buf.varint(), buf.varint()))
    return TombstonesRecord(out)


def decode_exemplars(data: bytes) -> ExemplarsRecord:
    buf = _Buf(data, 4)
    out: list[Exemplar] = []
    if not buf.more():
        return ExemplarsRecord(out)
    base_ref = buf.be64()
    base_t = buf.be64i()
    while buf.more():
        ref = _wrap_ref(base_ref + buf.varint())
        t = _wrap_i64(base_t + buf.varint())
        value = buf.f64()
        out.append(Exemplar(ref, t, value, buf.labels()))
    return ExemplarsRecord(out)


def decode_mmap_markers(data: bytes) -> MmapMarkersRecord:
    buf = _Buf(data, 5)
    out = []
    while buf.more():
        ref = buf.be64()
        out.append((ref, buf.be64()))
    return MmapMarkersRecord(out)


def decode_metadata(data: bytes) -> MetadataRecord:
    buf = _Buf(data, 6)
    out = []
    while buf.more():
        ref = buf.uvarint()
        code = buf.byte()
        fields = buf.count(2)
        unit = help_text = ""
        for _ in range(fields):
            name = buf.string()
            value = buf.string()
            if name == "UNIT":
                unit = value
            elif name == "HELP":
                help_text = value
        mtype = MetricType(code) if code <= 7 else MetricType.UNKNOWN
        out.append(MetricMetadata(ref, mtype, unit, help_text))
    return MetadataRecord(out)


def decode_samples_v2(data: bytes) -> SamplesRecord:
    """Decode a SamplesV2 record (type 11): per-entry start timestamps, previous-ref deltas."""
    buf = _Buf(data, 11)
    refs: list[int] = []
    ts: list[int] = []
    sts: list[int] = []
    values: list[float] = []
    if not buf.more():
        return SamplesRecord(refs, ts, values, sts)
    ref = _wrap_ref(buf.varint())
    first_t = buf.varint()
    first_st = st = buf.varint()
    refs.append(ref)
    ts.append(first_t)
    sts.append(st)
    values.append(buf.f64())
    while buf.more():
        ref = _wrap_ref(ref + buf.varint())
        refs.append(ref)
        ts.append(_wrap_i64(first_t + buf.varint()))
        st = _read_st(buf, st, first_st)
        sts.append(st)
        values.append(buf.f64())
    return SamplesRecord(refs, ts, values, sts)


def _read_st(buf: _Buf, previous: int, first: int) -> int:
    marker = buf.byte()
    if marker == _ST_NONE:
        return 0
    if marker == _ST_SAME:
        return previous
    return _wrap_i64(first + buf.varint())


def decode_histograms(data: bytes) -> HistogramsRecord:
    code = data[0]
    if code in NEWER_TYPES:
        return _decode_histograms_v2(data)
    is_float = code in (8, 10)
    buf = _Buf(data, code)
    out: list[HistogramSample] = []
    if not buf.more():
        return HistogramsRecord(code, out)
    base_ref = buf.be64()
    base_t = buf.be64i()
    while buf.more():
        ref = _wrap_ref(base_ref + buf.varint())
        t = _wrap_i64(base_t + buf.varint())
        out.append(HistogramSample(ref, t, _decode_histogram(buf, is_float)))
    return HistogramsRecord(code, out)


def _decode_histograms_v2(data: bytes) -> HistogramsRecord:
    """Types 12 and 13: the SamplesV2 framing with a histogram body in place of the value."""
    code = data[0]
    is_float = code == RecordType.FLOAT_HISTOGRAM_SAMPLES_V2
    buf = _Buf(data, code)
    out: list[HistogramSample] = []
    sts: list[int] = []
    if not buf.more():
        return HistogramsRecord(code, out, sts)
    ref = _wrap_ref(buf.varint())
    first_t = t = buf.varint()
    first_st = st = buf.varint()
    out.append(HistogramSample(ref, t, _decode_histogram(buf, is_float), st))
    sts.append(st)
    while buf.more():
        ref = _wrap_ref(ref + buf.varint())
        t = _wrap_i64(first_t + buf.varint())
        st = _read_st(buf, st, first_st)
        out.append(HistogramSample(ref, t, _decode_histogram(buf, is_float), st))
        sts.append(st)
    return HistogramsRecord(code, out, sts)


def _decode_histogram(buf: _Buf, is_float: bool) -> Histogram:
    at = buf.pos
    hint = buf.byte()
    if hint > 3:
        raise buf.fail(f"invalid counter reset hint {hint}", at)
    schema = buf.varint()
    zero_threshold = buf.f64()
    if is_float:
        zero_count: float = buf.f64()
        count: float = buf.f64()
    else:
        zero_count = buf.uvarint()
        count = buf.uvarint()
    total = buf.f64()
    pos_spans = tuple((buf.varint(), buf.uvarint()) for _ in range(buf.count(2)))
    neg_spans = tuple((buf.varint(), buf.uvarint()) for _ in range(buf.count(2)))
    read = buf.f64 if is_float else buf.varint
    size = 8 if is_float else 1
    pos_buckets = tuple(read() for _ in range(buf.count(size)))
    neg_buckets = tuple(read() for _ in range(buf.count(size)))
    custom: tuple[float, ...] = ()
    if schema == CUSTOM_BUCKETS_SCHEMA:
        custom = tuple(buf.f64() for _ in range(buf.count(8)))
    return Histogram(
        schema=schema,
        zero_threshold=zero_threshold,
        zero_count=zero_count,
        count=count,
        sum=total,
        positive_spans=pos_spans,
        negative_spans=neg_spans,
        positive_buckets=pos_buckets,
        negative_buckets=neg_buckets,
        reset_hint=ResetHint(hint),
        is_float=is_float,
        custom_values=custom,
    )


_DECODERS = {
    1: decode_series,
    2: decode_samples,
    3: decode_tombstones,
    4: decode_exemplars,
    5: decode_mmap_markers,
    6: decode_metadata,
    7: decode_histograms,
    8: decode_histograms,
    9: decode_histograms,
    10: decode_histograms,
    11: decode_samples_v2,
    12: decode_histograms,
    13: decode_histograms,
}


_SAMPLE_ENTRIES = re.compile(
    rb"(?:[\x80-\xff]{0,9}+[\x00-\x7f][\x80-\xff]{0,9}+[\x00-\x7f].{8})*+", re.S
)


# The common layout (ref deltas of one or two bytes, time delta of one) first:
# it matches about 10% faster than the general pattern.
_SAMPLE_ENTRIES_SHORT = re.compile(rb"(?:[\x80-\xff]?+[\x00-\x7f][\x00-\x7f].{8})*+", re.S)


def check_samples(data: bytes) -> str | None:
    """Structural check of a samples record without building Python objects.

    Returns None when every entry is well formed, else the decoder's message.
    """
    if len(data) <= 1:
        return None
    if len(data) >= 17:
        body = memoryview(data)[17:]
        size = len(body)
        if size % 10 == 0 and (size == 0 or (max(body[0::10]) < 0x80 and max(body[1::10]) < 0x80)):
            return None
        if (
            size % 11 == 0
            and size
            and min(body[0::11]) >= 0x80
            and max(body[1::11]) < 0x80
            and max(body[2::11]) < 0x80
        ):
            return None
        if _SAMPLE_ENTRIES_SHORT.fullmatch(data, 17) or _SAMPLE_ENTRIES.fullmatch(data, 17):
            return None
    try:
        decode_samples(data)
    except RecordDecodeError as exc:
        return str(exc)
    return None


_SAMPLE_ENTRIES_SHORT_TIMES = re.compile(rb"([\x80-\xff]?+)[\x00-\x7f]([\x00-\x7f]).{8}", re.S)


def sample_stats(data: bytes) -> tuple[int, int | None, int | None]:
    """(count, min timestamp, max timestamp) of a samples record.

    Avoids building per-sample objects for the common layout (one-byte time
    deltas); other layouts are decoded. Raises ``RecordDecodeError`` like
    ``decode_samples``.
    """
    if len(data) <= 1:
        return 0, None, None
    if len(data) >= 17:
        (base_t,) = _I64.unpack_from(data, 9)
        entries = _SAMPLE_ENTRIES_SHORT_TIMES.findall(data, 17)
        n = len(entries)
        covered = 10 * n + sum(map(len, map(operator.itemgetter(0), entries)))
        if n and covered == len(data) - 17:
            deltas = {_UNZIGZAG[b[0]] for b in set(map(operator.itemgetter(1), entries))}
            return n, base_t + min(deltas), base_t + max(deltas)
    decoded = decode_samples(data)
    if not decoded.timestamps:
        return 0, None, None
    return len(decoded), min(decoded.timestamps), max(decoded.timestamps)


def count_samples(data: bytes) -> int:
    """Number of float samples in a samples record (decodes it; 0 for other types)."""
    if not data or data[0] not in SAMPLE_TYPES:
        return 0
    if data[0] == RecordType.SAMPLES_V2:
        return len(decode_samples_v2(data))
    return len(decode_samples(data))


# ---------------------------------------------------------------------------
# encoding


def encode_labels(labels: Labels) -> bytes:
    parts = [uvarint(len(labels))]
    small = _UVARINT_SMALL
    for name, value in labels:  # once per label of every new series: lengths looked up
        raw_name = name.encode()
        raw_value = value.encode()
        if len(raw_name) < 16384 and len(raw_value) < 16384:
            parts += (small[len(raw_name)], raw_name, small[len(raw_value)], raw_value)
        else:
            parts += (uvarint(len(raw_name)), raw_name, uvarint(len(raw_value)), raw_value)
    return b"".join(parts)


def encode_series(series: Sequence[tuple[int, Labels]]) -> bytes:
    parts = [b"\x01"]
    for ref, labels in series:
        parts.append(_U64.pack(ref))
        parts.append(encode_labels(labels))
    return b"".join(parts)


def encode_samples(
    refs: Sequence[int], timestamps: Sequence[int] | int, values: Sequence[float]
) -> bytes:
    """Encode a samples record from columns; ``timestamps`` may be one int for all."""
    n = len(refs)
    if len(values) != n or (not isinstance(timestamps, int) and len(timestamps) != n):
        raise ValueError("refs, timestamps and values must have the same length")
    if n == 0:
        return b"\x02"
    base_ref = refs[0]
    single_t = isinstance(timestamps, int)
    base_t = timestamps if single_t else timestamps[0]  # type: ignore[index]
    header = b"\x02" + _SAMPLE_HEADER.pack(base_ref, base_t)
    packed = struct.pack(f">{n}d", *values)
    lo_ref = min(refs) - base_ref
    hi_ref = max(refs) - base_ref
    if single_t:
        lo_t = hi_t = 0
    else:
        lo_t = min(timestamps) - base_t  # type: ignore[arg-type]
        hi_t = max(timestamps) - base_t  # type: ignore[arg-type]
    if lo_ref >= -64 and hi_ref < 64 and lo_t >= -64 and hi_t < 64:
        # Every entry is exactly 10 bytes: fill the columns with strided slices.
        body = bytearray(10 * n)
        body[0::10] = bytes([(d << 1) ^ (d >> 63) for d in [r - base_ref for r in refs]])
        if not single_t:
            body[1::10] = bytes([(d << 1) ^ (d >> 63) for d in [t - base_t for t in timestamps]])  # type: ignore[union-attr]
        for k in range(8):
            body[2 + k :: 10] = packed[k::8]
        return header + body
    chunks = _chunks8(n).unpack(packed)
    if single_t:
        prefixes = _single_time_prefixes(refs, base_ref, lo_ref, hi_ref)
    else:
        prefixes = _varints([r - base_ref for r in refs], zero_suffix=False)
        deltas = [t - base_t for t in timestamps]  # type: ignore[union-attr]
        if lo_t < -(1 << 63) or hi_t >= 1 << 63:  # Go subtracts in 64-bit arithmetic
            deltas = [_wrap_i64(d) for d in deltas]
        dts = _varints(deltas, zero_suffix=False)
        prefixes = list(map(operator.add, prefixes, dts))
    return header + b"".join(map(operator.add, prefixes, chunks))


def _single_time_prefixes(
    refs: Sequence[int], base_ref: int, lo_ref: int, hi_ref: int
) -> list[bytes]:
    """Each entry's ref-delta varint and zero time delta (``lo_ref``/``hi_ref``: delta range)."""
    span = _DELTA_SPAN
    if -span <= lo_ref and hi_ref < span:
        shift = base_ref - span
        table = _SVARINT_ZERO
        return [table[r - shift] for r in refs]
    return _varints([r - base_ref for r in refs], zero_suffix=True)


class FixedRefsSamples:
    """Samples records for one fixed, non-empty list of refs, one timestamp per record.

    ``encode(t, values)`` returns exactly ``encode_samples(refs, t, values)``.
    What that derives from the refs on every call (the base ref, each entry's
    ref-delta varint and zero time delta, where each value goes) is worked out
    here once: a ``Struct`` whose pad bytes stand where the fixed bytes go
    packs the timestamp and the values into their places, and one integer OR
    lays the fixed bytes (type, base ref, varints) over the pads. Costs about
    50 bytes per ref (the Struct's codes and the fixed bytes).

    Its ``decode`` reads such records back: accepted when every byte outside
    the timestamp and the values is the layout's own (one integer AND), then
    unpacked by the same ``Struct``. Handed to ``decode_samples`` in a
    ``SampleLayouts``, reading back what a live scrape wrote (a queue catching
    up from the files) costs one ``unpack`` instead of a varint walk.
    """

    __slots__ = (
        "__weakref__",
        "_fixed",
        "_fixed_mask",
        "_refs",
        "_size",
        "_struct",
        "count",
        "key",
    )

    def __init__(self, refs: Sequence[int]) -> None:
        if not refs:
            raise ValueError("a fixed-refs samples record needs at least one ref")
        self._refs = refs
        base = refs[0]
        prefixes = _single_time_prefixes(refs, base, min(refs) - base, max(refs) - base)
        # Header: type byte and base ref (fixed), base timestamp (packed).
        codes = "".join(map(_PAD_THEN_VALUE.__getitem__, map(len, prefixes)))
        self._struct = struct.Struct(">9xq" + codes)
        self._size = self._struct.size
        fixed = b"".join([b"\x02", _U64.pack(base), _ZERO8, _ZERO8.join(prefixes), _ZERO8])
        self._fixed = int.from_bytes(fixed, "big")
        self._fixed_mask: int | None = None
        """All ones over the fixed bytes, zeros where the timestamp and values go (made
        on the first ``decode``: most layouts are never read back)."""
        self.count = len(refs)
        self.key = (self._size, base)
        """(record size, base ref): what ``SampleLayouts`` finds it by."""

    def encode(self, timestamp: int, values: Sequence[float]) -> bytes:
        if len(values) != self.count:
            raise ValueError(f"{len(values)} values for a record of {self.count} refs")
        packed = self._struct.pack(timestamp, *values)
        return (int.from_bytes(packed, "big") | self._fixed).to_bytes(self._size, "big")

    def decode(self, data: bytes) -> SamplesRecord | None:
        """``data`` decoded if it is a record ``encode`` could have written, else None."""
        if len(data) != self._size:
            return None
        mask = self._fixed_mask
        if mask is None:
            # All ones packed into the timestamp and every value leave the pads at zero.
            packed = self._struct.pack(-1, *[_ALL_ONES_DOUBLE] * self.count)
            mask = self._fixed_mask = ~int.from_bytes(packed, "big") & ((1 << 8 * self._size) - 1)
        # Every byte outside the timestamp and the values must be the layout's own.
        if int.from_bytes(data, "big") & mask != self._fixed:
            return None
        timestamp, *values = self._struct.unpack(data)
        return SamplesRecord(list(self._refs), [timestamp] * self.count, values)


class SampleLayouts:
    """Fixed-refs encoders whose records ``decode_samples`` may unpack directly.

    Owned by whoever writes or reads the records (the WAL holds the encoders
    of its prepared batches) and passed explicitly, so which decoder runs
    depends only on that owner. Holds the encoders weakly: one that is gone
    is forgotten. Per record size and base ref the newest one wins.
    """

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: weakref.WeakValueDictionary[tuple[int, int], FixedRefsSamples] = (
            weakref.WeakValueDictionary()
        )

    def add(self, encoder: FixedRefsSamples) -> None:
        self._by_key[encoder.key] = encoder

    def get(self, size: int, base_ref: int) -> FixedRefsSamples | None:
        return self._by_key.get((size, base_ref))

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def __len__(self) -> int:
        return len(self._by_key)


_ZERO8 = bytes(8)
_ALL_ONES_DOUBLE: float = struct.unpack(">d", b"\xff" * 8)[0]
"""A NaN whose 64 bits are all ones (``struct`` packs a double's bits as they are)."""
_PAD_THEN_VALUE = [f"{size}xd" for size in range(12)]
"""Struct codes per prefix size: skip the varints (at most 10 bytes, then the zero byte)."""
_CHUNK_STRUCTS: dict[int, struct.Struct] = {}


def _chunks8(n: int) -> struct.Struct:
    """A Struct that splits ``8 * n`` bytes into n 8-byte strings (cached per n)."""
    st = _CHUNK_STRUCTS.get(n)
    if st is None:
        if len(_CHUNK_STRUCTS) > 256:
            _CHUNK_STRUCTS.clear()
        st = _CHUNK_STRUCTS[n] = struct.Struct("8s" * n)
    return st


_UV_TABLE = [_uvarint_bytes(z) for z in range(1 << 14)]
_UV_TABLE_ZERO = [b + b"\x00" for b in _UV_TABLE]
_UV_LOW2 = [bytes([(z & 0x7F) | 0x80, (z >> 7) | 0x80]) for z in range(1 << 14)]


def _varints(deltas: list[int], *, zero_suffix: bool) -> list[bytes]:
    """Signed varints of ``deltas`` (each followed by a zero byte if asked), in bulk."""
    zz = [(d << 1) ^ (d >> 63) for d in deltas]
    low = _UV_TABLE_ZERO if zero_suffix else _UV_TABLE
    if min(zz) >= 0 and max(zz) < 1 << 14:
        return [low[z] for z in zz]
    if min(zz) >= 0 and max(zz) < 1 << 28:
        two = _UV_LOW2
        return [low[z] if z < 16384 else two[z & 0x3FFF] + low[z >> 14] for z in zz]
    suffix = b"\x00" if zero_suffix else b""
    return [varint(d) + suffix for d in deltas]


def encode_tombstones(intervals: Sequence[tuple[int, int, int]]) -> bytes:
    parts = [b"\x03"]
    for ref, mint, maxt in intervals:
        parts.append(_U64.pack(ref) + varint(mint) + varint(maxt))
    return b"".join(parts)


def encode_mmap_markers(markers: Sequence[tuple[int, int]]) -> bytes:
    return b"\x05" + b"".join(_U64.pack(ref) + _U64.pack(chunk) for ref, chunk in markers)


def encode_exemplars(exemplars: Sequence[Exemplar]) -> bytes:
    if not exemplars:
        return b"\x04"
    base_ref = exemplars[0].ref
    base_t = exemplars[0].timestamp
    parts = [b"\x04", _SAMPLE_HEADER.pack(base_ref, base_t)]
    for ex in exemplars:
        parts.append(varint(ex.ref - base_ref))
        parts.append(varint(ex.timestamp - base_t))
        parts.append(_F64.pack(ex.value))
        parts.append(encode_labels(ex.labels))
    return b"".join(parts)


def encode_metadata(entries: Sequence[MetricMetadata]) -> bytes:
    parts = [b"\x06"]
    for meta in entries:
        unit = meta.unit.encode()
        help_text = meta.help.encode()
        parts.append(uvarint(meta.ref))
        parts.append(bytes([int(meta.type)]))
        parts.append(b"\x02\x04UNIT" + uvarint(len(unit)) + unit)
        parts.append(b"\x04HELP" + uvarint(len(help_text)) + help_text)
    return b"".join(parts)


def histogram_record_type(histogram: Histogram) -> int:
    custom = histogram.schema == CUSTOM_BUCKETS_SCHEMA
    if histogram.is_float:
        return 10 if custom else 8
    return 9 if custom else 7


def encode_histograms(samples: Sequence[HistogramSample]) -> list[bytes]:
    """Encode histogram samples into one record per kind (7, 8, 9, 10), in that order.

    All samples of one record share its header (base ref and time), so mixed
    input is split by kind first. A kind (integer or float, exponential buckets)
    with any start timestamp goes whole into the record Prometheus 3.11+ writes
    for it (12 or 13, which only it reads); without one the 2.42 types are
    written. Custom-bucket histograms have no record with start timestamps.
    """
    groups: dict[int, list[HistogramSample]] = {}
    for sample in samples:
        groups.setdefault(histogram_record_type(sample.histogram), []).append(sample)
    out = []
    for code in sorted(groups):
        group = groups[code]
        if code in (7, 8) and any(h.start_timestamp for h in group):
            starts = [h.start_timestamp for h in group]
            out.append(encode_histograms_v2(group, starts, is_float=code == 8))
        else:
            out.append(_encode_histogram_group(code, group))
    return out


def _encode_histogram_group(code: int, samples: Sequence[HistogramSample]) -> bytes:
    base_ref = samples[0].ref
    base_t = samples[0].timestamp
    parts = [bytes([code]), _SAMPLE_HEADER.pack(base_ref, base_t)]
    is_float = code in (8, 10)
    for sample in samples:
        parts.append(varint(sample.ref - base_ref))
        parts.append(varint(sample.timestamp - base_t))
        _encode_histogram(parts, sample.histogram, is_float)
    return b"".join(parts)


def _encode_histogram(parts: list[bytes], h: Histogram, is_float: bool) -> None:
    parts.append(bytes([int(h.reset_hint)]))
    parts.append(varint(h.schema))
    parts.append(_F64.pack(h.zero_threshold))
    if is_float:
        parts.append(struct.pack(">ddd", h.zero_count, h.count, h.sum))
    else:
        parts.append(uvarint(int(h.zero_count)) + uvarint(int(h.count)))
        parts.append(_F64.pack(h.sum))
    for spans in (h.positive_spans, h.negative_spans):
        parts.append(uvarint(len(spans)))
        parts.extend(varint(off) + uvarint(length) for off, length in spans)
    for buckets in (h.positive_buckets, h.negative_buckets):
        parts.append(uvarint(len(buckets)))
        if is_float:
            parts.append(struct.pack(f">{len(buckets)}d", *buckets))
        else:
            parts.extend(varint(int(b)) for b in buckets)
    if h.schema == CUSTOM_BUCKETS_SCHEMA:
        parts.append(uvarint(len(h.custom_values)))
        parts.append(struct.pack(f">{len(h.custom_values)}d", *h.custom_values))


class _V2Framing:
    """Writes the ref/time/start-time head of each entry of a type 11–13 record."""

    __slots__ = ("first_st", "first_t", "prev_ref", "prev_st", "started")

    def __init__(self) -> None:
        self.started = False
        self.first_t = self.first_st = self.prev_ref = self.prev_st = 0

    def head(self, parts: list[bytes], ref: int, t: int, st: int) -> None:
        if not self.started:
            self.started = True
            self.first_t, self.first_st = t, st
            parts.append(varint(ref) + varint(t) + varint(st))
        else:
            parts.append(varint(ref - self.prev_ref) + varint(t - self.first_t))
            if st == 0:
                parts.append(b"\x00")
            elif st == self.prev_st:
                parts.append(b"\x01")
            else:
                parts.append(b"\x02" + varint(st - self.first_st))
        self.prev_ref, self.prev_st = ref, st


def encode_samples_v2(
    refs: Sequence[int],
    timestamps: Sequence[int],
    values: Sequence[float],
    start_timestamps: Sequence[int],
) -> bytes:
    """Encode a SamplesV2 record (type 11) as Prometheus 3.11+ writes it."""
    if not len(refs) == len(timestamps) == len(values) == len(start_timestamps):
        raise ValueError("refs, timestamps, values and start timestamps must have the same length")
    parts = [b"\x0b"]
    framing = _V2Framing()
    for ref, t, v, st in zip(refs, timestamps, values, start_timestamps, strict=True):
        framing.head(parts, ref, t, st)
        parts.append(_F64.pack(v))
    return b"".join(parts)


def encode_histograms_v2(
    samples: Sequence[HistogramSample], start_timestamps: Sequence[int], *, is_float: bool
) -> bytes:
    """Encode a HistogramSamplesV2 (12) or FloatHistogramSamplesV2 (13) record."""
    if len(samples) != len(start_timestamps):
        raise ValueError("samples and start timestamps must have the same length")
    code = RecordType.FLOAT_HISTOGRAM_SAMPLES_V2 if is_float else RecordType.HISTOGRAM_SAMPLES_V2
    parts = [bytes([code])]
    framing = _V2Framing()
    for sample, st in zip(samples, start_timestamps, strict=True):
        framing.head(parts, sample.ref, sample.timestamp, st)
        _encode_histogram(parts, sample.histogram, is_float)
    return b"".join(parts)


def type_label(code: int | None) -> str:
    """Human name of a record type code (``series``, ``samples``, ``type 200``)."""
    return _type_name(code)
