"""Fast protobuf encoders for remote-write requests (protocol 1.0 and 2.0).

This module owns the wire bytes a remote-write sender produces: it writes the
protobuf encoding directly with ``bytes.join`` and ``struct`` and never builds
protobuf message objects (the generated modules in ``rwconsole.protocol.proto``
are the reference the tests compare against). It also owns snappy compression
and the protocol's header constants.

Protocol 1.0 (``prometheus.WriteRequest``)
    ``encode_series_v1(labels)`` gives a series' key, the bytes a TimeSeries
    of that series starts with; the queue computes it once per series and
    keeps it (``encode_labels_v1(labels)`` gives the bare ``labels`` fields).
    ``encode_write_request_v1(series_keys, timestamps, values, *, exemplars,
    histograms, metadata)`` takes columns: ``series_keys[i]`` is the key of
    sample ``i``'s series. Exemplars are ``(series_key, Exemplar)`` pairs,
    histograms ``(series_key, timestamp, Histogram)`` triples, metadata
    ``(metric_family_name, MetricMetadata)`` pairs. Every sample, histogram and
    exemplar gets its own TimeSeries, as Prometheus sends.

Protocol 2.0 (``io.prometheus.write.v2.Request``)
    ``encode_write_request_v2(series_labels, timestamps, values, *,
    start_timestamps, metadata, histograms, exemplars)`` takes the same columns
    but with ``Labels`` tuples (strings are interned into a per-request
    ``SymbolTable``). ``metadata[i]`` is the ``MetricMetadata`` (or None) of
    sample ``i``'s series; ``start_timestamps[i]`` is its start timestamp (0 =
    unset). Histograms are ``HistogramEntry`` tuples ``(labels, timestamp,
    histogram, start_timestamp=0, metadata=None)``, exemplars ``ExemplarEntry``
    tuples ``(labels, exemplar, metadata=None)``; plain tuples of those shapes
    work too. Within one call the symbol refs of a series are computed once per
    distinct ``Labels`` object (and metadata once per distinct object), so the
    caller should pass the same tuple object for every sample of a series.
    Symbols are numbered in first-seen order: the labels of every distinct
    series (float samples, then histograms, then exemplar entries), then help
    and unit of every distinct metadata object, then exemplar labels.

Encoding rules followed (proto3, as the protobuf package serialises): scalars
equal to zero (all-zero bits, so ``-0.0`` is written) and empty strings are
omitted; ``oneof`` histogram counts are always written; int64 values are
two's-complement varints (negative ones take 10 bytes); ``sint32``/``sint64``
use zigzag; repeated scalars are packed; doubles keep their exact bits, so the
staleness marker survives.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from itertools import chain, groupby, repeat
from typing import NamedTuple, TypeVar

import snappy

from rwconsole.config.schema import PROTOBUF_V1, PROTOBUF_V2
from rwconsole.labels import Labels
from rwconsole.model import Exemplar, Histogram, MetricMetadata, MetricType

CONTENT_TYPE_V1 = "application/x-protobuf"
CONTENT_TYPE_V2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
CONTENT_ENCODING = "snappy"
VERSION_HEADER = "X-Prometheus-Remote-Write-Version"
VERSION_V1 = "0.1.0"
VERSION_V2 = "2.0.0"
PROTOBUF_MESSAGE_V1 = PROTOBUF_V1
PROTOBUF_MESSAGE_V2 = PROTOBUF_V2
SAMPLES_WRITTEN_HEADER = "X-Prometheus-Remote-Write-Samples-Written"
HISTOGRAMS_WRITTEN_HEADER = "X-Prometheus-Remote-Write-Histograms-Written"
EXEMPLARS_WRITTEN_HEADER = "X-Prometheus-Remote-Write-Exemplars-Written"

_U64 = (1 << 64) - 1
_T = TypeVar("_T")


def compress(body: bytes) -> bytes:
    """Snappy-compress ``body`` in the block format remote write requires."""
    return snappy.compress(body)


# --- varint primitives -------------------------------------------------------


def _varint_slow(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_TABLE_SIZE = 1 << 14  # varints and field prefixes below this are looked up
_VARINTS: list[bytes] = [_varint_slow(n) for n in range(_TABLE_SIZE)]


def _varint(value: int) -> bytes:
    """Varint of an unsigned value; negative values as 64-bit two's complement."""
    if 0 <= value < _TABLE_SIZE:
        return _VARINTS[value]
    return _varint_slow(value & _U64)


def _zigzag(value: int) -> int:
    return value << 1 if value >= 0 else ((-value) << 1) - 1


def _key(field: int, wire_type: int) -> bytes:
    return _varint((field << 3) | wire_type)


def _prefix_table(field: int) -> list[bytes]:
    key = _key(field, 2)
    return [key + _varint(n) for n in range(_TABLE_SIZE)]


def _field_prefix(table: list[bytes], field: int, length: int) -> bytes:
    """Key and length of a length-delimited field (table lookup when small)."""
    if length < _TABLE_SIZE:
        return table[length]
    return _key(field, 2) + _varint_slow(length)


_LEN1 = _prefix_table(1)
_LEN2 = _prefix_table(2)
_LEN5 = _prefix_table(5)

_pack_double = struct.Struct("<d").pack
_pack_sample_head = struct.Struct("<BBBd").pack  # samples key, length, value key, value
_ZERO_DOUBLE = bytes(8)
_MIN_RUN = 16  # shorter runs of equal timestamps on average: sample by sample


def _string_field(field: int, text: str) -> bytes:
    """A string field, omitted when empty (proto3)."""
    if not text:
        return b""
    raw = text.encode()
    return _key(field, 2) + _varint(len(raw)) + raw


def _message_field(field: int, body: bytes) -> bytes:
    return _key(field, 2) + _varint(len(body)) + body


def _double_field(field: int, value: float) -> bytes:
    raw = _pack_double(value)
    if raw == _ZERO_DOUBLE:
        return b""
    return _key(field, 1) + raw


def _varint_field(field: int, value: int) -> bytes:
    if value == 0:
        return b""
    return _key(field, 0) + _varint(value)


def _packed_doubles(field: int, values: Sequence[float]) -> bytes:
    if not values:
        return b""
    return _message_field(field, struct.pack(f"<{len(values)}d", *values))


def _packed_varints(field: int, values: Iterable[int]) -> bytes:
    body = b"".join(map(_varint, values))
    if not body:
        return b""
    return _message_field(field, body)


# --- shared message bodies ---------------------------------------------------


def _spans(field: int, spans: Sequence[tuple[int, int]]) -> bytes:
    out = []
    for offset, length in spans:
        body = _varint_field(1, _zigzag(offset)) + _varint_field(2, length)
        out.append(_message_field(field, body))
    return b"".join(out)


def _histogram_body(histogram: Histogram, timestamp: int, start_timestamp: int = 0) -> bytes:
    """Fields 1..17 of a Histogram message (identical in both protocols)."""
    h = histogram
    parts: list[bytes] = []
    if h.is_float:
        parts.append(_key(2, 1) + _pack_double(h.count))
    else:
        parts.append(_key(1, 0) + _varint(int(h.count)))
    parts.append(_double_field(3, h.sum))
    parts.append(_varint_field(4, _zigzag(h.schema)))
    parts.append(_double_field(5, h.zero_threshold))
    if h.is_float:
        parts.append(_key(7, 1) + _pack_double(h.zero_count))
    else:
        parts.append(_key(6, 0) + _varint(int(h.zero_count)))
    parts.append(_spans(8, h.negative_spans))
    if h.is_float:
        parts.append(_packed_doubles(10, h.negative_buckets))
    else:
        parts.append(_packed_varints(9, (_zigzag(int(d)) for d in h.negative_buckets)))
    parts.append(_spans(11, h.positive_spans))
    if h.is_float:
        parts.append(_packed_doubles(13, h.positive_buckets))
    else:
        parts.append(_packed_varints(12, (_zigzag(int(d)) for d in h.positive_buckets)))
    parts.append(_varint_field(14, int(h.reset_hint)))
    parts.append(_varint_field(15, timestamp))
    parts.append(_packed_doubles(16, h.custom_values))
    parts.append(_varint_field(17, start_timestamp))
    return b"".join(parts)


# --- protocol 1.0 ------------------------------------------------------------


def encode_labels_v1(labels: Labels) -> bytes:
    """The repeated ``labels`` fields (field 1) of a v1 TimeSeries or Exemplar."""
    out = []
    for name, value in labels:
        # Inlined field writers: this runs once per label of every new series.
        raw_name = name.encode()
        raw_value = value.encode()
        if len(raw_name) < _TABLE_SIZE and len(raw_value) < _TABLE_SIZE:
            body = (_LEN1[len(raw_name)] + raw_name if raw_name else b"") + (
                _LEN2[len(raw_value)] + raw_value if raw_value else b""
            )
        else:
            body = _string_field(1, name) + _string_field(2, value)
        size = len(body)
        out.append((_LEN1[size] if size < _TABLE_SIZE else _field_prefix(_LEN1, 1, size)) + body)
    return b"".join(out)


def _metadata_v1(name: str, meta: MetricMetadata) -> bytes:
    body = (
        _varint_field(1, int(meta.type))
        + _string_field(2, name)
        + _string_field(4, meta.help)
        + _string_field(5, meta.unit)
    )
    return _message_field(3, body)


def _exemplar_v1(exemplar: Exemplar) -> bytes:
    return (
        encode_labels_v1(exemplar.labels)
        + _double_field(2, exemplar.value)
        + _varint_field(3, exemplar.timestamp)
    )


def _timestamp_tail(timestamp: int) -> bytes:
    """The timestamp field of a Sample (field 2), empty for 0."""
    return b"" if timestamp == 0 else b"\x10" + _varint(timestamp)


_KEY_TAIL = 7
"""The timestamp field's size a series key is laid out for: a 6-byte varint, every
millisecond timestamp from 1971-02 to 2109."""
_KEY_HEAD = b"\x12" + _varint(9 + _KEY_TAIL) + b"\x09"  # samples field, its length, value key
_KEY_EXTRA = len(_KEY_HEAD) + 8 + _KEY_TAIL
_pack_value_tail = struct.Struct(f"<d{_KEY_TAIL}s").pack


def encode_series_v1(labels: Labels) -> bytes:
    """A series' key for ``encode_write_request_v1`` (computed once per series).

    The TimeSeries of one float sample, up to its value: the field prefix, the
    labels and the Sample's head, for timestamps of the usual size. A sample is
    then two pieces, this key and its packed value with the timestamp.
    """
    encoded = encode_labels_v1(labels)
    return _field_prefix(_LEN1, 1, len(encoded) + _KEY_EXTRA) + encoded + _KEY_HEAD


def _key_labels(key: bytes) -> bytes:
    """The encoded labels inside a series key."""
    start = 2
    while key[start - 1] & 0x80:  # the varint of the TimeSeries' length
        start += 1
    return key[start : -len(_KEY_HEAD)]


def _float_samples_v1(
    out: list[bytes],
    series_keys: Sequence[bytes],
    timestamps: Sequence[int],
    values: Sequence[float],
) -> None:
    """One TimeSeries per sample; batches from scrapes go run by run of equal timestamps."""
    count = len(values)
    if count == 0:
        return
    if timestamps.count(timestamps[0]) == count:
        _float_run_v1(out, series_keys, timestamps[0], values)
        return
    runs = [(timestamp, len(list(run))) for timestamp, run in groupby(timestamps)]
    if len(runs) * _MIN_RUN > count:
        _float_samples_each_v1(out, series_keys, timestamps, values)
        return
    start = 0
    for timestamp, length in runs:
        end = start + length
        _float_run_v1(out, series_keys[start:end], timestamp, values[start:end])
        start = end


def _float_run_v1(
    out: list[bytes], series_keys: Sequence[bytes], timestamp: int, values: Sequence[float]
) -> None:
    """Samples sharing a timestamp: each is its series key and its value packed with
    the timestamp, interleaved by one C-level ``chain``; only +0.0 values (which
    proto3 omits, so their TimeSeries is shorter) are patched one by one."""
    tail = _timestamp_tail(timestamp)
    if len(tail) != _KEY_TAIL:  # a timestamp the keys are not laid out for: rare
        _float_samples_each_v1(out, series_keys, repeat(timestamp), values)
        return
    packed = list(map(_pack_value_tail, values, repeat(tail)))
    if 0.0 not in values:
        out.extend(chain.from_iterable(zip(series_keys, packed, strict=True)))
        return
    keys = list(series_keys)
    zero_sample = _ZERO_DOUBLE + tail
    index = -1
    while True:
        try:
            index = values.index(0.0, index + 1)  # also finds -0.0, which is kept
        except ValueError:
            break
        if packed[index] == zero_sample:
            key = keys[index]
            head = _ZERO_HEADS.get(key)
            if head is None:
                if len(_ZERO_HEADS) >= _ZERO_HEADS_MAX:
                    _ZERO_HEADS.clear()
                head = _ZERO_HEADS[key] = _zero_sample_parts(key, tail)[0]
            keys[index] = head
            packed[index] = tail
    out.extend(chain.from_iterable(zip(keys, packed, strict=True)))


_ZERO_HEADS: dict[bytes, bytes] = {}
"""A +0.0 sample's TimeSeries up to its timestamp (the part before ``tail``), by series
key: counters that stay at zero are common. Emptied at ``_ZERO_HEADS_MAX`` entries, so
it holds at most that many heads (about the size of a key each: a few MB)."""
_ZERO_HEADS_MAX = 16_384


def _zero_sample_parts(key: bytes, tail: bytes) -> tuple[bytes, bytes]:
    """A +0.0 sample's TimeSeries as (everything before the timestamp, the timestamp)."""
    labels = _key_labels(key)
    head = b"\x12" + _varint(len(tail))
    return _field_prefix(_LEN1, 1, len(labels) + len(head) + len(tail)) + labels + head, tail


def _float_samples_each_v1(
    out: list[bytes],
    series_keys: Iterable[bytes],
    timestamps: Iterable[int],
    values: Iterable[float],
) -> None:
    extend = out.extend
    last_t: int | None = None
    tail = b""
    for key, t, v in zip(series_keys, timestamps, values, strict=False):  # may repeat()
        if t != last_t:
            last_t = t
            tail = _timestamp_tail(t)
        if v == 0.0 and _pack_double(v) == _ZERO_DOUBLE:
            extend(_zero_sample_parts(key, tail))
        elif len(tail) == _KEY_TAIL:
            extend((key, _pack_value_tail(v, tail)))
        else:
            labels = _key_labels(key)
            sample = _pack_sample_head(0x12, 9 + len(tail), 0x09, v) + tail
            extend((_field_prefix(_LEN1, 1, len(labels) + len(sample)), labels, sample))


def encode_write_request_v1(
    series_keys: Sequence[bytes],
    timestamps: Sequence[int],
    values: Sequence[float],
    *,
    exemplars: Sequence[tuple[bytes, Exemplar]] = (),
    histograms: Sequence[tuple[bytes, int, Histogram]] = (),
    metadata: Sequence[tuple[str, MetricMetadata]] = (),
) -> bytes:
    """Encode a ``prometheus.WriteRequest`` (uncompressed protobuf bytes)."""
    if not len(series_keys) == len(timestamps) == len(values):
        raise ValueError(
            f"column lengths differ: {len(series_keys)} series, "
            f"{len(timestamps)} timestamps, {len(values)} values"
        )
    out: list[bytes] = []
    _float_samples_v1(out, series_keys, timestamps, values)
    for key, t, histogram in histograms:
        series = _key_labels(key) + _message_field(4, _histogram_body(histogram, t))
        out.append(_message_field(1, series))
    for key, exemplar in exemplars:
        series = _key_labels(key) + _message_field(3, _exemplar_v1(exemplar))
        out.append(_message_field(1, series))
    for name, meta in metadata:
        out.append(_metadata_v1(name, meta))
    return b"".join(out)


# --- protocol 2.0 ------------------------------------------------------------


_TYPE_FIELDS = {int(t): _varint_field(1, int(t)) for t in MetricType}


class _VarintsByText(dict[str, bytes]):
    """Maps each symbol to the varint of its index, adding unknown ones on lookup.

    Lookups of known symbols stay in C (``map(table.__getitem__, strings)``);
    only a new symbol runs ``__missing__``.
    """

    __slots__ = ("symbols",)

    def __init__(self) -> None:
        super().__init__({"": _VARINTS[0]})
        self.symbols: list[str] = [""]

    def __missing__(self, text: str) -> bytes:
        symbols = self.symbols
        varint = _varint(len(symbols))
        self[text] = varint
        symbols.append(text)
        return varint


class SymbolTable:
    """Interns strings for one v2 request; ``symbols[0]`` is always ``""``.

    Symbols are numbered in first-seen order.
    """

    __slots__ = ("_table",)

    def __init__(self) -> None:
        self._table = _VarintsByText()

    @property
    def symbols(self) -> list[str]:
        return self._table.symbols

    @property
    def table(self) -> dict[str, bytes]:
        """Symbol -> varint of its ref; looking up a new symbol interns it."""
        return self._table

    def reset(self) -> None:
        """Forget every symbol except ``""`` (done before each request)."""
        self._table = _VarintsByText()

    def ref(self, text: str) -> int:
        """The index of ``text``, adding it when new."""
        return _decode_varint(self._table[text])

    def label_refs(self, labels: Labels) -> list[int]:
        """``[name_ref, value_ref, ...]`` for a label set."""
        return [self.ref(text) for text in chain.from_iterable(labels)]

    def packed_refs(self, strings: Iterable[str]) -> bytes:
        """The concatenated varints of the refs of ``strings`` (interning them)."""
        return b"".join(map(self._table.__getitem__, strings))

    def encode(self) -> bytes:
        """The repeated ``symbols`` fields (field 4) of a Request."""
        raws = map(str.encode, self._table.symbols)
        return b"".join([b"\x22" + _varint(len(raw)) + raw for raw in raws])


def _decode_varint(raw: bytes) -> int:
    value = 0
    for shift, byte in enumerate(raw):
        value |= (byte & 0x7F) << (7 * shift)
    return value


class HistogramEntry(NamedTuple):
    labels: Labels
    timestamp: int
    histogram: Histogram
    start_timestamp: int = 0
    metadata: MetricMetadata | None = None


class ExemplarEntry(NamedTuple):
    labels: Labels
    exemplar: Exemplar
    metadata: MetricMetadata | None = None


def _distinct(objects: Iterable[_T]) -> dict[int, _T]:
    """Distinct objects by identity, in first-seen order (the caller keeps them alive)."""
    items = list(objects)
    return dict(zip(map(id, items), items, strict=True))


class _V2Fields:
    """The label-refs and metadata fields of every distinct series object of a request.

    Each distinct ``Labels`` (and ``MetricMetadata``) object maps, by ``id``, to
    its encoded field. The caller's lists keep those objects alive during the
    call, so ids cannot be recycled.
    """

    __slots__ = ("labels", "metadata", "symbols")

    def __init__(self, label_sets: dict[int, Labels], metas: dict[int, MetricMetadata]) -> None:
        self.symbols = SymbolTable()
        packed = self.symbols.packed_refs
        self.labels: dict[int, bytes] = {}
        for key, labels in label_sets.items():
            body = packed(chain.from_iterable(labels))
            self.labels[key] = _field_prefix(_LEN1, 1, len(body)) + body if body else b""
        self.metadata: dict[int, bytes] = {id(None): b""}
        table = self.symbols.table
        for key, meta in metas.items():
            body = _TYPE_FIELDS.get(meta.type) or _varint_field(1, int(meta.type))
            if meta.help:
                body += b"\x18" + table[meta.help]
            if meta.unit:
                body += b"\x20" + table[meta.unit]
            self.metadata[key] = _field_prefix(_LEN5, 5, len(body)) + body

    def refs_field(self, labels: Labels) -> bytes:
        """The packed ``labels_refs`` field (field 1) of a label set."""
        body = self.symbols.packed_refs(chain.from_iterable(labels))
        return _field_prefix(_LEN1, 1, len(body)) + body if body else b""


def _float_samples_v2(
    out: list[bytes],
    refs_fields: Iterable[bytes],
    meta_fields: Iterable[bytes],
    timestamps: Sequence[int],
    values: Sequence[float],
    starts: Iterable[int],
) -> None:
    extend = out.extend
    prefix = _LEN5
    head = _pack_sample_head
    last: tuple[int, int] | None = None
    tail = b""
    sample_len = 0
    for refs, meta_field, t, v, st in zip(
        refs_fields, meta_fields, timestamps, values, starts, strict=True
    ):
        if (t, st) != last:
            last = (t, st)
            tail = _timestamp_tail(t) + (b"\x18" + _varint(st) if st else b"")
            sample_len = 9 + len(tail)
        if v == 0.0 and _pack_double(v) == _ZERO_DOUBLE:
            sample = b"\x12" + _varint(len(tail)) + tail
        else:
            sample = head(0x12, sample_len, 0x09, v) + tail
        size = len(refs) + len(sample) + len(meta_field)
        extend(
            (
                prefix[size] if size < _TABLE_SIZE else _field_prefix(prefix, 5, size),
                refs,
                sample,
                meta_field,
            )
        )


def encode_write_request_v2(
    series_labels: Sequence[Labels],
    timestamps: Sequence[int],
    values: Sequence[float],
    *,
    start_timestamps: Sequence[int] | None = None,
    metadata: Sequence[MetricMetadata | None] | None = None,
    histograms: Sequence[HistogramEntry | tuple] = (),
    exemplars: Sequence[ExemplarEntry | tuple] = (),
) -> bytes:
    """Encode an ``io.prometheus.write.v2.Request`` (uncompressed protobuf bytes)."""
    n = len(series_labels)
    if not n == len(timestamps) == len(values):
        raise ValueError(
            f"column lengths differ: {n} labels, {len(timestamps)} timestamps, {len(values)} values"
        )
    for name, column in (("start_timestamps", start_timestamps), ("metadata", metadata)):
        if column is not None and len(column) != n:
            raise ValueError(f"{name} has {len(column)} entries for {n} samples")
    labels_col = list(series_labels)
    metas_col = list(metadata) if metadata is not None else [None] * n
    hists = [HistogramEntry(*entry) for entry in histograms]
    exs = [ExemplarEntry(*entry) for entry in exemplars]
    label_sets = _distinct(chain(labels_col, (h.labels for h in hists), (e.labels for e in exs)))
    # filter(None, ...) drops the Nones (metadata objects are always truthy).
    metas = _distinct(
        filter(None, chain(metas_col, (h.metadata for h in hists), (e.metadata for e in exs)))
    )
    fields = _V2Fields(label_sets, metas)
    labels_field = fields.labels.__getitem__
    metadata_field = fields.metadata.__getitem__

    out: list[bytes] = []
    _float_samples_v2(
        out,
        map(labels_field, map(id, labels_col)),
        map(metadata_field, map(id, metas_col)),
        timestamps,
        values,
        start_timestamps if start_timestamps is not None else repeat(0, n),
    )
    for h in hists:
        body = (
            labels_field(id(h.labels))
            + _message_field(3, _histogram_body(h.histogram, h.timestamp, h.start_timestamp))
            + metadata_field(id(h.metadata))
        )
        out.append(_message_field(5, body))
    for e in exs:
        exemplar = e.exemplar
        refs = fields.refs_field(exemplar.labels)
        body = (
            labels_field(id(e.labels))
            + _message_field(
                4,
                refs + _double_field(2, exemplar.value) + _varint_field(3, exemplar.timestamp),
            )
            + metadata_field(id(e.metadata))
        )
        out.append(_message_field(5, body))
    return fields.symbols.encode() + b"".join(out)
