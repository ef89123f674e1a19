"""The fast remote-write encoders against the generated protobuf classes."""

from __future__ import annotations

import math
import random
import struct

import pytest
import snappy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rw_reference import reference_v1, reference_v2

from rwconsole.labels import make_labels
from rwconsole.model import (
    STALE_NAN,
    STALE_NAN_BITS,
    Exemplar,
    Histogram,
    MetricMetadata,
    MetricType,
    ResetHint,
)
from rwconsole.protocol.encode import (
    CONTENT_TYPE_V1,
    CONTENT_TYPE_V2,
    VERSION_V1,
    VERSION_V2,
    ExemplarEntry,
    HistogramEntry,
    SymbolTable,
    compress,
    encode_labels_v1,
    encode_series_v1,
    encode_write_request_v1,
    encode_write_request_v2,
)
from rwconsole.protocol.proto import remote_v1_pb2, remote_v2_pb2

NORMAL_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]
EDGE_VALUES = [
    0.0,
    -0.0,
    1.5,
    -42.0,
    NORMAL_NAN,
    STALE_NAN,
    math.inf,
    -math.inf,
    5e-324,
    1.7976931348623157e308,
]
EDGE_TIMESTAMPS = [0, 1, -1, 127, 128, -(2**63), 2**63 - 1, 1_700_000_000_123]

UP = make_labels({"__name__": "up", "job": "node", "instance": "localhost:9100"})
UNICODE = make_labels({"__name__": "temp", "city": "Zürich", "emoji": "🌡️ ☃", "cjk": "東京"})


def bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def parse_v1(body: bytes) -> remote_v1_pb2.WriteRequest:
    request = remote_v1_pb2.WriteRequest()
    request.ParseFromString(body)
    return request


def parse_v2(body: bytes) -> remote_v2_pb2.Request:
    request = remote_v2_pb2.Request()
    request.ParseFromString(body)
    return request


INT_HISTOGRAM = Histogram(
    schema=-3,
    zero_threshold=1e-128,
    zero_count=3,
    count=2**63 + 5,
    sum=-12.25,
    positive_spans=((-5, 2), (3, 1)),
    negative_spans=((0, 1), (-2, 2)),
    positive_buckets=(4, -1, 7),
    negative_buckets=(1, 0, -3),
    reset_hint=ResetHint.YES,
)
FLOAT_HISTOGRAM = Histogram(
    schema=8,
    zero_threshold=0.0,
    zero_count=0.0,
    count=0.0,
    sum=math.inf,
    positive_spans=((-1, 3),),
    positive_buckets=(0.5, 0.0, STALE_NAN),
    reset_hint=ResetHint.GAUGE,
    is_float=True,
)
CUSTOM_HISTOGRAM = Histogram(
    schema=-53,
    zero_threshold=0.0,
    zero_count=0,
    count=6,
    sum=10.0,
    positive_spans=((0, 4),),
    positive_buckets=(1, 1, 0, -1),
    custom_values=(0.1, 0.5, 1.0, 5.0),
)
EMPTY_HISTOGRAM = Histogram(schema=0, zero_threshold=0.0, zero_count=0, count=0, sum=0.0)
HISTOGRAMS = [INT_HISTOGRAM, FLOAT_HISTOGRAM, CUSTOM_HISTOGRAM, EMPTY_HISTOGRAM]


def test_header_constants() -> None:
    assert CONTENT_TYPE_V1 == "application/x-protobuf"
    assert CONTENT_TYPE_V2 == "application/x-protobuf;proto=io.prometheus.write.v2.Request"
    assert (VERSION_V1, VERSION_V2) == ("0.1.0", "2.0.0")


@pytest.mark.parametrize(
    "labels",
    [
        UP,
        UNICODE,
        (),
        (("a", "x" * 20000),),
        (("a", "x" * 16380),),  # each part below the prefix table, the pair above it
        (("a", "x" * 16383), ("b" * 16383, "y")),
        (("", "v"), ("n", "")),
    ],
)
def test_v1_labels_match_protobuf(labels) -> None:
    series = remote_v1_pb2.TimeSeries()
    for name, value in labels:
        series.labels.add(name=name, value=value)
    assert encode_labels_v1(labels) == series.SerializeToString()


@pytest.mark.parametrize("timestamp", EDGE_TIMESTAMPS)
def test_v1_edge_samples_byte_identical(timestamp: int) -> None:
    labels = [UP, UNICODE, ()] * len(EDGE_VALUES)
    labels = labels[: len(EDGE_VALUES)]
    encoded = [encode_series_v1(lab) for lab in labels]
    timestamps = [timestamp] * len(EDGE_VALUES)
    body = encode_write_request_v1(encoded, timestamps, EDGE_VALUES)
    assert body == reference_v1(labels, timestamps, EDGE_VALUES).SerializeToString()
    parsed = parse_v1(body)
    assert [bits(ts.samples[0].value) for ts in parsed.timeseries] == [bits(v) for v in EDGE_VALUES]
    assert bits(parsed.timeseries[5].samples[0].value) == STALE_NAN_BITS
    assert all(ts.samples[0].timestamp == timestamp for ts in parsed.timeseries)


def test_v1_negative_timestamp_takes_ten_bytes() -> None:
    body = encode_write_request_v1([encode_series_v1(())], [-1], [0.0])
    # TimeSeries{samples{timestamp: -1}}: the varint of -1 is ten bytes.
    assert body == b"\x0a\x0d\x12\x0b\x10" + b"\xff" * 9 + b"\x01"


def test_v1_huge_labels_use_long_length_prefix() -> None:
    labels = make_labels({"__name__": "big", "blob": "é" * 12000})
    body = encode_write_request_v1([encode_series_v1(labels)], [5], [1.0])
    assert body == reference_v1([labels], [5], [1.0]).SerializeToString()


def test_v1_histograms_exemplars_metadata_byte_identical() -> None:
    hists = [(UP, t, h) for t, h in zip([10, -10, 0, 2**40], HISTOGRAMS, strict=True)]
    exemplars = [
        (UP, Exemplar(0, 1_700_000_000_000, 0.25, make_labels({"trace_id": "abc123"}))),
        (UNICODE, Exemplar(0, 0, 0.0)),
        (UP, Exemplar(0, -7, STALE_NAN, make_labels({"span_id": "ü"}))),
    ]
    metadata = [
        ("up", MetricMetadata(0, MetricType.GAUGE, "", "1 if the target is up.")),
        (
            "http_requests_total",
            MetricMetadata(0, MetricType.COUNTER, "requests", "Help\nwith newline"),
        ),
        ("unknown_thing", MetricMetadata(0, MetricType.UNKNOWN)),
    ] + [(f"m{t}", MetricMetadata(0, t, "seconds", "h")) for t in MetricType]
    body = encode_write_request_v1(
        [encode_series_v1(UP)],
        [3],
        [1.0],
        histograms=[(encode_series_v1(lab), t, h) for lab, t, h in hists],
        exemplars=[(encode_series_v1(lab), ex) for lab, ex in exemplars],
        metadata=metadata,
    )
    expected = reference_v1([UP], [3], [1.0], exemplars, hists, metadata)
    assert body == expected.SerializeToString()
    parsed = parse_v1(body)
    assert parsed.timeseries[1].histograms[0].count_int == 2**63 + 5
    assert parsed.timeseries[1].histograms[0].positive_spans[0].offset == -5
    assert parsed.timeseries[2].histograms[0].WhichOneof("count") == "count_float"
    assert parsed.timeseries[4].histograms[0].WhichOneof("zero_count") == "zero_count_int"
    assert list(parsed.timeseries[3].histograms[0].custom_values) == [0.1, 0.5, 1.0, 5.0]
    assert parsed.metadata[1].help == "Help\nwith newline"


def test_v1_empty_request_is_empty_bytes() -> None:
    assert encode_write_request_v1([], [], []) == b""


def test_v1_rejects_mismatched_columns() -> None:
    with pytest.raises(ValueError, match="column lengths differ"):
        encode_write_request_v1([b""], [1, 2], [1.0])


label_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
label_sets = st.dictionaries(
    st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True), label_text, max_size=6
).map(make_labels)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(EDGE_VALUES)
timestamps = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(label_sets, timestamps, floats), max_size=20))
def test_v1_random_batches_byte_identical(rows) -> None:
    labels = [r[0] for r in rows]
    ts = [r[1] for r in rows]
    values = [r[2] for r in rows]
    body = encode_write_request_v1([encode_series_v1(lab) for lab in labels], ts, values)
    assert body == reference_v1(labels, ts, values).SerializeToString()


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(
        st.tuples(
            label_sets | st.just(make_labels({"__name__": "big", "blob": "x" * 17000})),
            st.sampled_from([0, 1, 1_700_000_000_000, -5, 2**35 - 1, 2**35, 2**42 - 1, 2**42]),
            floats | st.sampled_from([0.0, -0.0, 0.0, 1.0]),
        ),
        max_size=40,
    ),
    st.sampled_from([list, tuple]),
)
def test_v1_runs_of_equal_timestamps_with_zeros_byte_identical(rows, column) -> None:
    """Batches are encoded run by run of equal timestamps, +0.0 values omitted."""
    labels = [r[0] for r in rows]
    ts = column(r[1] for r in rows)
    values = column(r[2] for r in rows)
    encoded = column(encode_series_v1(lab) for lab in labels)
    body = encode_write_request_v1(encoded, ts, values)
    assert body == reference_v1(labels, list(ts), list(values)).SerializeToString()


# --- v2 ----------------------------------------------------------------------


def test_symbol_table_interns_in_first_seen_order() -> None:
    table = SymbolTable()
    assert table.symbols == [""]
    assert table.ref("") == 0
    assert table.label_refs(make_labels({"job": "job", "a": "b"})) == [1, 2, 3, 3]
    assert table.ref("b") == 2
    assert table.ref("new") == 4
    assert table.symbols == ["", "a", "b", "job", "new"]
    parsed = parse_v2(table.encode())
    assert list(parsed.symbols) == table.symbols
    table.reset()
    assert table.symbols == [""]
    assert table.ref("x") == 1


def v2_expectations(body: bytes, *args, **kwargs) -> remote_v2_pb2.Request:
    parsed = parse_v2(body)
    symbols = list(parsed.symbols)
    assert symbols[0] == ""
    assert len(set(symbols)) == len(symbols), "symbols must be unique"
    expected = reference_v2(symbols, *args, **kwargs)
    assert body == expected.SerializeToString()
    return parsed


def test_v2_samples_metadata_and_start_timestamps() -> None:
    counter = MetricMetadata(1, MetricType.COUNTER, "seconds", "Time spent.")
    gauge = MetricMetadata(2, MetricType.GAUGE)
    labels = [UP, UNICODE, UP, UNICODE] * 3
    values = [*EDGE_VALUES, 7.0, 8.0][:12]
    ts = [EDGE_TIMESTAMPS[i % len(EDGE_TIMESTAMPS)] for i in range(12)]
    starts = [0, 1, -1, 2**62] * 3
    metas = [counter, gauge, None, counter] * 3
    body = encode_write_request_v2(labels, ts, values, start_timestamps=starts, metadata=metas)
    parsed = v2_expectations(body, labels, ts, values, starts, metas)
    symbols = list(parsed.symbols)
    first = parsed.timeseries[0]
    assert [symbols[r] for r in first.labels_refs] == [s for pair in UP for s in pair]
    assert symbols[first.metadata.help_ref] == "Time spent."
    assert parsed.timeseries[1].metadata.help_ref == 0
    assert parsed.timeseries[1].metadata.type == remote_v2_pb2.Metadata.METRIC_TYPE_GAUGE
    assert not parsed.timeseries[2].HasField("metadata")
    assert parsed.timeseries[3].samples[0].start_timestamp == 2**62
    assert bits(parsed.timeseries[5].samples[0].value) == STALE_NAN_BITS
    # every symbol except "" is referenced, each string stored once
    used = {r for t in parsed.timeseries for r in t.labels_refs}
    used |= {t.metadata.help_ref for t in parsed.timeseries} | {
        t.metadata.unit_ref for t in parsed.timeseries
    }
    assert used | {0} == set(range(len(symbols)))


def test_v2_equal_label_sets_in_distinct_objects_share_symbols() -> None:
    a = make_labels({"__name__": "x", "job": "x"})
    b = make_labels({"__name__": "x", "job": "x"})
    assert a == b and a is not b
    body = encode_write_request_v2([a, b], [1, 2], [1.0, 2.0])
    parsed = v2_expectations(body, [a, b], [1, 2], [1.0, 2.0])
    assert list(parsed.symbols) == ["", "__name__", "x", "job"]
    assert list(parsed.timeseries[0].labels_refs) == [1, 2, 3, 2]
    assert parsed.timeseries[0].labels_refs == parsed.timeseries[1].labels_refs


def test_v2_histograms_and_exemplars() -> None:
    meta = MetricMetadata(0, MetricType.HISTOGRAM, "bytes", "Sizes.")
    hists = [
        HistogramEntry(UP, 5, INT_HISTOGRAM, 3, meta),
        (UNICODE, -9, FLOAT_HISTOGRAM),
        HistogramEntry(UP, 0, CUSTOM_HISTOGRAM),
        HistogramEntry(UP, 1, EMPTY_HISTOGRAM, 0, meta),
    ]
    exemplars = [
        ExemplarEntry(
            UP, Exemplar(0, 11, 0.5, make_labels({"trace_id": "t1", "job": "node"})), meta
        ),
        (UNICODE, Exemplar(0, 12, -0.0)),
    ]
    body = encode_write_request_v2([], [], [], histograms=hists, exemplars=exemplars)
    parsed = v2_expectations(body, [], [], [], histograms=hists, exemplars=exemplars)
    first = parsed.timeseries[0].histograms[0]
    assert first.count_int == 2**63 + 5 and first.start_timestamp == 3
    assert [s.offset for s in first.negative_spans] == [0, -2]
    assert list(first.negative_deltas) == [1, 0, -3]
    ex = parsed.timeseries[4].exemplars[0]
    assert [parsed.symbols[r] for r in ex.labels_refs] == ["job", "node", "trace_id", "t1"]


def test_v2_rejects_mismatched_columns() -> None:
    with pytest.raises(ValueError, match="start_timestamps"):
        encode_write_request_v2([UP], [1], [1.0], start_timestamps=[1, 2])


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(label_sets, timestamps, floats, timestamps), max_size=15))
def test_v2_random_batches_match_reference(rows) -> None:
    labels = [r[0] for r in rows]
    ts = [r[1] for r in rows]
    values = [r[2] for r in rows]
    starts = [r[3] for r in rows]
    body = encode_write_request_v2(labels, ts, values, start_timestamps=starts)
    v2_expectations(body, labels, ts, values, starts)


def test_compress_uses_snappy_block_format() -> None:
    body = encode_write_request_v1([encode_series_v1(UP)] * 100, list(range(100)), [1.0] * 100)
    packed = compress(body)
    assert not packed.startswith(b"\xff\x06\x00\x00sNaPpY")
    assert snappy.uncompress(packed) == body
    assert len(packed) < len(body) / 3


@pytest.mark.parametrize(
    "run_timestamps",
    [
        (1_700_000_000_000, 1_700_000_001_000, 1_700_000_002_000),
        (1_700_000_000_000, 0, 1_700_000_002_000),  # one run the keys are not laid out for
        (1_700_000_000_000, 2**42, 1),
    ],
)
def test_v1_long_runs_with_zeros_and_long_keys_byte_identical(run_timestamps) -> None:
    """Batches from scrapes: long runs of one timestamp each, packed as one format."""
    rng = random.Random(7)
    labels, ts, values = [], [], []
    for run, timestamp in enumerate(run_timestamps):
        for i in range(60):
            blob = "y" * rng.choice((1, 40, 600))  # keys on both sides of the code table
            labels.append(make_labels({"__name__": f"m{run}", "i": str(i), "blob": blob}))
            ts.append(timestamp)
            values.append(rng.choice((0.0, -0.0, 1.5, float(i), STALE_NAN)))
    body = encode_write_request_v1([encode_series_v1(lab) for lab in labels], ts, values)
    assert body == reference_v1(labels, ts, values).SerializeToString()
