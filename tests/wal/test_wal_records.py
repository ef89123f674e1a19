"""Record codecs: round trips for every type, exact float bits, hostile input."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rwconsole.model import (
    STALE_NAN,
    Exemplar,
    Histogram,
    HistogramSample,
    MetricMetadata,
    MetricType,
    ResetHint,
    is_stale_nan,
)
from rwconsole.wal import records as rec


def _bits(values: list[float]) -> list[bytes]:
    return [struct.pack(">d", v) for v in values]


GO_NAN = struct.unpack(">d", bytes.fromhex("7ff8000000000001"))[0]
SPECIAL = [STALE_NAN, GO_NAN, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1.7976931348623157e308]


def test_series_round_trip() -> None:
    series = [
        (1, (("__name__", "up"), ("job", "node"))),
        (2**63 + 5, (("__name__", "ünï"), ("a", "x" * 300))),
        (7, ()),
        (8, (("a", "x" * 16383), ("b" * 16384, "é" * 9000))),  # around the varint table's end
    ]
    assert rec.decode(rec.encode_series(series)) == rec.SeriesRecord(series)


def test_uvarint_table_matches_the_encoding() -> None:
    for value in (0, 1, 127, 128, 300, 16383, 16384, 2**35, 2**64 - 1):
        out, rest = bytearray(), value
        while rest >= 0x80:
            out.append((rest & 0x7F) | 0x80)
            rest >>= 7
        out.append(rest)
        assert rec.uvarint(value) == bytes(out)


@pytest.mark.parametrize(
    "refs",
    [
        list(range(1, 51)),  # one-byte deltas: strided path
        list(range(5000, 6000)),  # two-byte deltas
        random.Random(1).sample(range(1, 100_000), 800),  # negative and 3-byte deltas
        random.Random(2).sample(range(1, 2**40), 300),  # huge deltas
        [9, 9, 9, 3, 3],  # repeats
    ],
)
@pytest.mark.parametrize("single_ts", [True, False])
def test_samples_round_trip(refs: list[int], single_ts: bool) -> None:
    rnd = random.Random(len(refs))
    values = [rnd.choice([*SPECIAL, rnd.random() * 1e6]) for _ in refs]
    if single_ts:
        ts: list[int] | int = 1_700_000_000_000
        expected_ts = [1_700_000_000_000] * len(refs)
    else:
        expected_ts = [1_700_000_000_000 + rnd.randint(-100_000, 100_000) for _ in refs]
        ts = expected_ts
    data = rec.encode_samples(refs, ts, values)
    decoded = rec.decode(data)
    assert isinstance(decoded, rec.SamplesRecord)
    assert decoded.refs == refs
    assert decoded.timestamps == expected_ts
    assert _bits(decoded.values) == _bits(values)
    # The general decoder agrees with the bulk paths, and the structural check passes.
    base = struct.unpack_from(">Qq", data, 1)
    general = rec._decode_samples_general(data, *base)
    assert (general.refs, general.timestamps) == (refs, expected_ts)
    assert rec.check_samples(data) is None
    assert rec.sample_stats(data) == (len(refs), min(expected_ts), max(expected_ts))


def test_staleness_marker_is_bit_exact() -> None:
    data = rec.encode_samples([1, 2], 5, [STALE_NAN, GO_NAN])
    assert data.endswith(
        bytes.fromhex("7ff0000000000002") + b"\x02\x00" + bytes.fromhex("7ff8000000000001")
    )
    values = rec.decode_samples(data).values
    assert is_stale_nan(values[0]) and not is_stale_nan(values[1])


def test_empty_records() -> None:
    assert rec.decode(rec.encode_samples([], 0, [])) == rec.SamplesRecord([], [], [])
    assert rec.decode(rec.encode_exemplars([])) == rec.ExemplarsRecord([])
    assert rec.decode(b"") == rec.UnknownRecord(None, 0)


def test_other_types_round_trip() -> None:
    exemplars = [
        Exemplar(5, 1000, 0.5, (("trace_id", "abc"),)),
        Exemplar(3, 900, STALE_NAN, ()),
    ]
    got = rec.decode(rec.encode_exemplars(exemplars))
    assert isinstance(got, rec.ExemplarsRecord)
    assert [(e.ref, e.timestamp, e.labels) for e in got.exemplars] == [
        (e.ref, e.timestamp, e.labels) for e in exemplars
    ]
    assert _bits([e.value for e in got.exemplars]) == _bits([e.value for e in exemplars])

    meta = [
        MetricMetadata(1, MetricType.COUNTER, "seconds", "Total time.\nSecond line"),
        MetricMetadata(300, MetricType.STATESET, "", ""),
    ]
    assert rec.decode(rec.encode_metadata(meta)) == rec.MetadataRecord(meta)
    tomb = [(1, -5, 10), (2**40, 0, 2**62)]
    assert rec.decode(rec.encode_tombstones(tomb)) == rec.TombstonesRecord(tomb)
    marks = [(1, 2), (2**64 - 1, 0)]
    assert rec.decode(rec.encode_mmap_markers(marks)) == rec.MmapMarkersRecord(marks)


def _histograms() -> list[HistogramSample]:
    integer = Histogram(
        schema=3,
        zero_threshold=1e-128,
        zero_count=2,
        count=10,
        sum=12.5,
        positive_spans=((0, 2), (3, 1)),
        negative_spans=((-2, 1),),
        positive_buckets=(1, 2, -1),
        negative_buckets=(4,),
        reset_hint=ResetHint.NO,
    )
    floating = Histogram(
        schema=-2,
        zero_threshold=0.0,
        zero_count=0.5,
        count=7.25,
        sum=-3.0,
        positive_spans=((1, 2),),
        positive_buckets=(1.5, 5.75),
        reset_hint=ResetHint.GAUGE,
        is_float=True,
    )
    custom = Histogram(
        schema=-53,
        zero_threshold=0.0,
        zero_count=0,
        count=3,
        sum=4.0,
        positive_spans=((0, 3),),
        positive_buckets=(1, 0, 0),
        custom_values=(0.1, 1.0, 10.0),
    )
    custom_float = Histogram(
        schema=-53,
        zero_threshold=0.0,
        zero_count=0.0,
        count=3.0,
        sum=4.0,
        positive_spans=((0, 1),),
        positive_buckets=(3.0,),
        is_float=True,
        custom_values=(2.5,),
    )
    return [
        HistogramSample(10, 1000, integer),
        HistogramSample(11, 1001, floating),
        HistogramSample(12, 999, custom),
        HistogramSample(13, 1002, custom_float),
        HistogramSample(9, 1003, integer),
    ]


def test_histograms_round_trip_in_types_7_to_10() -> None:
    samples = _histograms()
    encoded = rec.encode_histograms(samples)
    assert [d[0] for d in encoded] == [7, 8, 9, 10]
    decoded = [h for d in encoded for h in rec.decode(d).histograms]  # type: ignore[union-attr]
    key = lambda h: (h.ref, h.timestamp)  # noqa: E731
    assert sorted(decoded, key=key) == sorted(samples, key=key)


def test_unknown_types_are_reported() -> None:
    assert rec.decode(b"\xc8abc") == rec.UnknownRecord(200, 4)
    assert rec.decode(b"\x0e\x00") == rec.UnknownRecord(14, 2)


def _zz(value: int) -> bytes:
    """A Go ``PutVarint``, written out independently of the codec under test."""
    z = (value << 1) ^ (value >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def test_samples_v2_decodes_the_layout_byte_by_byte() -> None:
    f64 = struct.Struct(">d").pack
    data = (
        b"\x0b"
        + _zz(5) + _zz(1000) + _zz(900) + f64(1.5)  # first: ref, t, st, value
        + _zz(2) + _zz(15) + b"\x01" + f64(2.5)  # ref 7 (delta to previous), same st
        + _zz(-1) + _zz(30) + b"\x02" + _zz(100) + f64(-0.0)  # ref 6, st = first st + 100
        + _zz(300) + _zz(-5) + b"\x00" + f64(7.0)  # ref 306, t before the first, no st
    )  # fmt: skip
    decoded = rec.decode(data)
    assert isinstance(decoded, rec.SamplesRecord)
    assert decoded.refs == [5, 7, 6, 306]
    assert decoded.timestamps == [1000, 1015, 1030, 995]
    assert decoded.start_timestamps == [900, 900, 1000, 0]
    assert _bits(decoded.values) == _bits([1.5, 2.5, -0.0, 7.0])
    assert (
        rec.encode_samples_v2(
            decoded.refs, decoded.timestamps, decoded.values, decoded.start_timestamps
        )
        == data
    )
    assert rec.count_samples(data) == 4
    assert rec.decode(b"\x0b") == rec.SamplesRecord([], [], [], [])


def test_samples_v2_rejects_trailing_and_missing_bytes() -> None:
    data = rec.encode_samples_v2([1, 2], [10, 20], [1.0, 2.0], [5, 5])
    with pytest.raises(rec.RecordDecodeError) as info:
        rec.decode(data + b"\x00")
    assert info.value.record_type == 11
    with pytest.raises(rec.RecordDecodeError) as info:
        rec.decode(data[:-1])
    assert info.value.offset == len(data) - 8  # where the cut value begins


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**40),
            st.integers(-(2**50), 2**50),
            st.integers(-(2**50), 2**50),
            st.floats(allow_nan=False),
        ),
        max_size=30,
    )
)
def test_samples_v2_round_trip(entries: list[tuple[int, int, int, float]]) -> None:
    refs = [e[0] for e in entries]
    ts = [e[1] for e in entries]
    sts = [e[2] if i % 3 else 0 for i, e in enumerate(entries)]
    values = [e[3] for e in entries]
    decoded = rec.decode(rec.encode_samples_v2(refs, ts, values, sts))
    assert decoded == rec.SamplesRecord(refs, ts, values, sts)


def test_histogram_samples_v2_round_trip() -> None:
    samples = _histograms()
    integer = [h for h in samples if not h.histogram.is_float]
    floating = [h for h in samples if h.histogram.is_float]
    for group, is_float, code in ((integer, False, 12), (floating, True, 13)):
        sts = [0 if i % 2 else group[0].timestamp - 60_000 for i in range(len(group))]
        data = rec.encode_histograms_v2(group, sts, is_float=is_float)
        assert data[0] == code
        decoded = rec.decode(data)
        assert isinstance(decoded, rec.HistogramsRecord)
        assert decoded.type == code
        # Each decoded sample carries its start timestamp too.
        assert decoded.histograms == [
            dataclasses.replace(h, start_timestamp=st) for h, st in zip(group, sts, strict=True)
        ]
        assert decoded.start_timestamps == sts
    with pytest.raises(rec.RecordDecodeError):
        rec.decode(rec.encode_histograms_v2(integer, [1] * len(integer), is_float=False)[:-2])


def test_decode_errors_carry_offsets() -> None:
    data = rec.encode_samples([1, 2, 3], 10, [1.0, 2.0, 3.0])
    with pytest.raises(rec.RecordDecodeError) as info:
        rec.decode(data[:-3])
    assert info.value.offset == len(data) - 3
    with pytest.raises(rec.RecordDecodeError, match="overflows"):
        rec.decode(b"\x03" + b"\x00" * 8 + b"\xff" * 11)
    with pytest.raises(rec.RecordDecodeError, match="runs past"):
        rec.decode(b"\x01" + b"\x00" * 8 + b"\x01\x05ab")
    assert rec.check_samples(data[:-3]) is not None


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 13), st.binary(max_size=400))
def test_every_decoder_survives_arbitrary_bytes(code: int, body: bytes) -> None:
    data = bytes([code]) + body
    try:
        rec.decode(data)
    except rec.RecordDecodeError as exc:
        assert 0 <= exc.offset <= len(data)
    if code == 2:
        rec.check_samples(data)
        with contextlib.suppress(rec.RecordDecodeError):
            rec.sample_stats(data)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2**63 - 1), st.integers(-(2**62), 2**62), st.floats()),
        min_size=1,
        max_size=50,
    )
)
# timestamps 2^63 apart: the delta wraps in 64 bits, as Go computes it
@example([(0, -(2**62), 0.0), (1, 2**62, 1.0)])
def test_samples_property_round_trip(rows: list[tuple[int, int, float]]) -> None:
    refs = [r for r, _, _ in rows]
    ts = [t for _, t, _ in rows]
    values = [v for _, _, v in rows]
    got = rec.decode_samples(rec.encode_samples(refs, ts, values))
    assert (got.refs, got.timestamps) == (refs, ts)
    assert _bits(got.values) == _bits(values)
