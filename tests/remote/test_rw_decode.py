"""Decoding remote-write bodies: round trips, content negotiation and every rejection."""

from __future__ import annotations

import struct

import pytest
import snappy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from rwconsole.protocol.decode import (
    DecodedRequest,
    InvalidRequest,
    UnsupportedMediaType,
    decode_write_request,
    protocol_for,
)
from rwconsole.protocol.encode import (
    CONTENT_TYPE_V1,
    CONTENT_TYPE_V2,
    PROTOBUF_MESSAGE_V1,
    PROTOBUF_MESSAGE_V2,
    compress,
    encode_series_v1,
    encode_write_request_v1,
    encode_write_request_v2,
)
from rwconsole.protocol.proto import remote_v1_pb2, remote_v2_pb2

UP = make_labels({"__name__": "up", "job": "node"})
TEMP = make_labels({"__name__": "temp", "city": "Zürich"})
HIST = Histogram(
    schema=-1,
    zero_threshold=0.001,
    zero_count=2,
    count=9,
    sum=4.5,
    positive_spans=((-2, 2), (1, 1)),
    positive_buckets=(3, -1, 2),
    negative_spans=((0, 1),),
    negative_buckets=(1,),
    reset_hint=ResetHint.NO,
)
FHIST = Histogram(
    schema=3,
    zero_threshold=0.0,
    zero_count=0.5,
    count=4.5,
    sum=-1.0,
    positive_spans=((0, 2),),
    positive_buckets=(1.5, 2.5),
    is_float=True,
    custom_values=(),
)


def bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def decode_v1(raw: bytes) -> DecodedRequest:
    return decode_write_request(compress(raw), CONTENT_TYPE_V1, "snappy")


def decode_v2(raw: bytes) -> DecodedRequest:
    return decode_write_request(compress(raw), CONTENT_TYPE_V2, "snappy")


def test_v1_round_trip() -> None:
    meta = MetricMetadata(0, MetricType.COUNTER, "seconds", "Help text.")
    raw = encode_write_request_v1(
        [encode_series_v1(UP), encode_series_v1(TEMP)],
        [1_700_000_000_000, -5],
        [STALE_NAN, 21.5],
        histograms=[(encode_series_v1(UP), 7, HIST), (encode_series_v1(TEMP), 8, FHIST)],
        exemplars=[(encode_series_v1(UP), Exemplar(0, 9, 0.5, make_labels({"trace_id": "a"})))],
        metadata=[("up", meta)],
    )
    decoded = decode_v1(raw)
    assert decoded.protocol == PROTOBUF_MESSAGE_V1
    assert (decoded.samples, decoded.histograms, decoded.exemplars) == (2, 2, 1)
    assert [s.labels for s in decoded.series] == [UP, TEMP, UP, TEMP, UP]
    assert decoded.series[0].samples[0][0] == 1_700_000_000_000
    assert bits(decoded.series[0].samples[0][1]) == STALE_NAN_BITS
    assert decoded.series[1].samples == [(-5, 21.5)]
    assert decoded.series[2].histograms == [(7, HIST)]
    assert decoded.series[3].histograms == [(8, FHIST)]
    assert decoded.series[4].exemplars == [Exemplar(0, 9, 0.5, (("trace_id", "a"),))]
    assert decoded.metadata == [("up", meta)]
    assert decoded.warnings == [] and decoded.series_without_name == 0


def test_v2_round_trip() -> None:
    meta = MetricMetadata(0, MetricType.GAUGE, "celsius", "Temperature.")
    raw = encode_write_request_v2(
        [UP, TEMP],
        [10, 20],
        [1.0, -0.0],
        start_timestamps=[5, 0],
        metadata=[None, meta],
        histograms=[(UP, 30, HIST, 25, meta)],
        exemplars=[(TEMP, Exemplar(0, 40, 2.0, make_labels({"span_id": "s"})))],
    )
    decoded = decode_v2(raw)
    assert decoded.protocol == PROTOBUF_MESSAGE_V2
    assert decoded.symbols[0] == ""
    assert (decoded.samples, decoded.histograms, decoded.exemplars) == (2, 1, 1)
    first, second, hist, ex = decoded.series
    assert (first.labels, first.samples, first.start_timestamps, first.metadata) == (
        UP,
        [(10, 1.0)],
        [5],
        None,
    )
    assert bits(second.samples[0][1]) == bits(-0.0)
    assert second.metadata == MetricMetadata(0, MetricType.GAUGE, "celsius", "Temperature.")
    assert hist.histograms == [(30, HIST)] and hist.histogram_start_timestamps == [25]
    assert ex.exemplars == [Exemplar(0, 40, 2.0, (("span_id", "s"),))] and ex.samples == []


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (None, PROTOBUF_MESSAGE_V1),
        ("", PROTOBUF_MESSAGE_V1),
        ("application/x-protobuf", PROTOBUF_MESSAGE_V1),
        ("application/x-protobuf;proto=prometheus.WriteRequest", PROTOBUF_MESSAGE_V1),
        ("Application/X-Protobuf; proto=prometheus.WriteRequest", PROTOBUF_MESSAGE_V1),
        ("application/x-protobuf;proto=io.prometheus.write.v2.Request", PROTOBUF_MESSAGE_V2),
        (
            'application/x-protobuf; charset=x; proto="io.prometheus.write.v2.Request"',
            PROTOBUF_MESSAGE_V2,
        ),
    ],
)
def test_content_type_selects_protocol(content_type, expected) -> None:
    assert protocol_for(content_type) == expected


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/json",
        "application/x-protobuf;proto=io.prometheus.write.v3.Request",
    ],
)
def test_unsupported_content_type(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType, match="unsupported"):
        decode_write_request(compress(b""), content_type, "snappy")


def test_unsupported_content_encoding() -> None:
    with pytest.raises(UnsupportedMediaType, match="Content-Encoding 'gzip'"):
        decode_write_request(compress(b""), CONTENT_TYPE_V1, "gzip")


def test_missing_content_encoding_means_snappy() -> None:
    raw = encode_write_request_v1([encode_series_v1(UP)], [1], [2.0])
    assert decode_write_request(compress(raw), None, None).samples == 1


def v1_series(*label_pairs: tuple[str, str]) -> bytes:
    request = remote_v1_pb2.WriteRequest()
    ts = request.timeseries.add()
    for name, value in label_pairs:
        ts.labels.add(name=name, value=value)
    ts.samples.add(value=1.0, timestamp=1)
    return request.SerializeToString()


def v2_request(symbols, refs, **series_fields) -> bytes:
    request = remote_v2_pb2.Request(symbols=symbols)
    ts = request.timeseries.add(labels_refs=refs)
    for key, value in series_fields.items():
        if key == "samples":
            ts.samples.add(value=1.0, timestamp=1)
        elif key == "histograms":
            ts.histograms.add(count_int=1, timestamp=2)
        elif key == "metadata":
            ts.metadata.CopyFrom(value)
        elif key == "exemplar_refs":
            ts.exemplars.add(labels_refs=value, value=1.0, timestamp=3)
    return request.SerializeToString()


@pytest.mark.parametrize(
    ("raw", "decoder", "reason"),
    [
        (v1_series(("b", "1"), ("a", "2")), decode_v1, "labels not sorted by name ('a' after 'b')"),
        (v1_series(("a", "1"), ("a", "2")), decode_v1, "duplicate label name 'a'"),
        (v1_series(("", "1")), decode_v1, "empty label name"),
        (v1_series(("__name__", "x"), ("job", "")), decode_v1, "label 'job' has an empty value"),
        (v2_request(["", "a"], [1, 1, 1]), decode_v2, "labels_refs has odd length 3"),
        (
            v2_request(["", "a"], [1, 2]),
            decode_v2,
            "labels_refs[1] = 2 is out of range for 2 symbols",
        ),
        (v2_request(["x", "a"], [1, 1]), decode_v2, "symbols[0] must be the empty string"),
        (
            v2_request(["", "a"], [1, 1], samples=1, histograms=1),
            decode_v2,
            "has both samples and histograms",
        ),
        (
            v2_request(["", "a"], [1, 1], samples=1, exemplar_refs=[1, 5]),
            decode_v2,
            "exemplars[0]: labels_refs[1] = 5 is out of range",
        ),
        (
            v2_request(["", "a"], [1, 1], samples=1, metadata=remote_v2_pb2.Metadata(help_ref=9)),
            decode_v2,
            "metadata.help_ref = 9 is out of range",
        ),
        (b"\x0a\x05\x01", decode_v1, "protobuf: cannot parse prometheus.WriteRequest"),
        (b"\x22\x05ab", decode_v2, "protobuf: cannot parse io.prometheus.write.v2.Request"),
    ],
)
def test_invalid_requests(raw: bytes, decoder, reason: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        decoder(raw)
    assert reason in info.value.reason


def test_invalid_utf8_label_is_a_parse_error() -> None:
    # Label{name: "a", value: b"\xff"} inside a TimeSeries inside a WriteRequest.
    label = b"\x0a\x01a\x12\x01\xff"
    series = b"\x0a" + bytes([len(label)]) + label
    raw = b"\x0a" + bytes([len(series)]) + series
    with pytest.raises(InvalidRequest, match="protobuf"):
        decode_v1(raw)


@pytest.mark.parametrize(
    ("histogram_fields", "reason"),
    [
        ({"count_int": 1, "zero_count_float": 1.0}, "mixes integer and float counts"),
        ({"count_float": 1.0, "positive_deltas": [1]}, "mixes integer and float counts"),
        ({"count_int": 1, "positive_deltas": [1, 2]}, "positive spans cover 0 buckets"),
        ({"count_int": 1, "reset_hint": 9}, "unknown histogram reset hint 9"),
    ],
)
def test_invalid_histograms(histogram_fields, reason: str) -> None:
    request = remote_v1_pb2.WriteRequest()
    ts = request.timeseries.add()
    ts.labels.add(name="__name__", value="h")
    ts.histograms.add(**histogram_fields)
    with pytest.raises(InvalidRequest, match=reason):
        decode_v1(request.SerializeToString())


def test_snappy_errors() -> None:
    with pytest.raises(InvalidRequest, match="snappy framed"):
        decode_write_request(snappy.StreamCompressor().compress(b"abc"), None, "snappy")
    with pytest.raises(InvalidRequest, match="snappy: corrupt input"):
        decode_write_request(b"\x05garbage!", None, "snappy")
    with pytest.raises(InvalidRequest, match="bad length header"):
        decode_write_request(b"\xff" * 12, None, "snappy")
    big = compress(b"\x00" * 5000)
    with pytest.raises(InvalidRequest, match="exceeds the limit of 1000 bytes"):
        decode_write_request(big, None, "snappy", max_decompressed_size=1000)


def test_missing_metric_name_is_reported_not_rejected() -> None:
    raw = encode_write_request_v1(
        [encode_series_v1(make_labels({"job": "x"})), encode_series_v1(UP)], [1, 2], [1.0, 2.0]
    )
    decoded = decode_v1(raw)
    assert decoded.series_without_name == 1
    assert decoded.warnings == ["timeseries[0]: series has no __name__ label"]


def test_v2_body_with_v1_content_type_is_flagged() -> None:
    raw = encode_write_request_v2([UP], [1], [1.0])
    decoded = decode_v1(raw)
    assert (
        decoded.series == []
        and "decoded as an empty prometheus.WriteRequest" in decoded.warnings[0]
    )


def decode_any(body: bytes, content_type: str) -> None:
    try:
        decoded = decode_write_request(body, content_type, "snappy")
    except InvalidRequest as exc:
        assert exc.reason
    else:
        assert decoded.samples == sum(len(s.samples) for s in decoded.series)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300), st.sampled_from([CONTENT_TYPE_V1, CONTENT_TYPE_V2]))
def test_arbitrary_bytes_never_crash(body: bytes, content_type: str) -> None:
    decode_any(body, content_type)
    decode_any(compress(body), content_type)


def _mutations(raw: bytes) -> st.SearchStrategy[bytes]:
    return st.lists(
        st.tuples(st.integers(0, max(len(raw) - 1, 0)), st.integers(0, 255)), max_size=6
    ).map(lambda edits: _apply(raw, edits))


def _apply(raw: bytes, edits) -> bytes:
    data = bytearray(raw)
    for pos, byte in edits:
        if pos < len(data):
            data[pos] = byte
    return bytes(data)


_VALID_V1 = encode_write_request_v1(
    [encode_series_v1(UP)], [1], [1.0], histograms=[(encode_series_v1(UP), 2, HIST)]
)
_VALID_V2 = encode_write_request_v2(
    [UP],
    [1],
    [1.0],
    metadata=[MetricMetadata(0, MetricType.GAUGE, "u", "h")],
    histograms=[(TEMP, 3, HIST)],
    exemplars=[(UP, Exemplar(0, 1, 1.0, UP))],
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.one_of(
        _mutations(_VALID_V1).map(lambda b: (b, CONTENT_TYPE_V1)),
        _mutations(_VALID_V2).map(lambda b: (b, CONTENT_TYPE_V2)),
    )
)
def test_mutated_valid_requests_never_crash(case) -> None:
    raw, content_type = case
    decode_any(compress(raw), content_type)
