"""Conformance table for the text format 0.0.4 and OpenMetrics 1.0 parsers, plus fuzzing."""

from __future__ import annotations

import math
import re
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rwconsole.model import MetricType
from rwconsole.sources import textparse
from rwconsole.sources.textparse import (
    Format,
    ParseError,
    format_for,
    parse,
    parse_series,
)

TEXT = Format.TEXT
OM = Format.OPENMETRICS


def samples(payload_text: str, fmt: Format = TEXT) -> list[tuple[tuple, float, int | None]]:
    """(labels, value, explicit timestamp) per sample line."""
    payload = parse(payload_text, fmt)
    return [
        (payload.new_series[key], value, payload.timestamps.get(i))
        for i, (key, value) in enumerate(zip(payload.keys, payload.values, strict=True))
    ]


# (format, input, expected samples as (labels dict, value, timestamp))
VALID = [
    (TEXT, "up 1\n", [({"__name__": "up"}, 1.0, None)]),
    (TEXT, "up 1", [({"__name__": "up"}, 1.0, None)]),
    (TEXT, "", []),
    (TEXT, "\n\n# just a comment\n", []),
    (
        TEXT,
        'test{a="1",b="2"} 3\n',
        [({"__name__": "test", "a": "1", "b": "2"}, 3.0, None)],
    ),
    # labels arrive sorted whatever the exposition order
    (TEXT, 'test{b="2",a="1"} 3\n', [({"__name__": "test", "a": "1", "b": "2"}, 3.0, None)]),
    # empty label value == label absent (compliance: EmptyLabels)
    (TEXT, 'test{a=""} 1\n', [({"__name__": "test"}, 1.0, None)]),
    (TEXT, "test{} 1\n", [({"__name__": "test"}, 1.0, None)]),
    (TEXT, 'test{a="1",} 1\n', [({"__name__": "test", "a": "1"}, 1.0, None)]),
    (
        TEXT,
        'esc{v="a\\\\b\\"c\\nd"} 1\n',
        [({"__name__": "esc", "v": 'a\\b"c\nd'}, 1.0, None)],
    ),
    (TEXT, 'sp{v="x y } z"} 1\n', [({"__name__": "sp", "v": "x y } z"}, 1.0, None)]),
    (TEXT, 'uni{v="grüße ☃"} 1\n', [({"__name__": "uni", "v": "grüße ☃"}, 1.0, None)]),
    (TEXT, "inf +Inf\n", [({"__name__": "inf"}, math.inf, None)]),
    (TEXT, "ninf -Inf\n", [({"__name__": "ninf"}, -math.inf, None)]),
    (TEXT, "sci 1.5e-3\n", [({"__name__": "sci"}, 0.0015, None)]),
    (TEXT, "neg -42\n", [({"__name__": "neg"}, -42.0, None)]),
    (TEXT, "ts 1 1700000000123\n", [({"__name__": "ts"}, 1.0, 1700000000123)]),
    (TEXT, "ts 1 -5\n", [({"__name__": "ts"}, 1.0, -5)]),
    (TEXT, "colon:metric 1\n", [({"__name__": "colon:metric"}, 1.0, None)]),
    (TEXT, "  lead 1\n", [({"__name__": "lead"}, 1.0, None)]),
    (TEXT, "tab\t1\t2\n", [({"__name__": "tab"}, 1.0, 2)]),
    (OM, "up 1\n# EOF\n", [({"__name__": "up"}, 1.0, None)]),
    (OM, "up 1\n# EOF", [({"__name__": "up"}, 1.0, None)]),
    (OM, "# EOF\n", []),
    (OM, "ts 1 1520879607.789\n# EOF\n", [({"__name__": "ts"}, 1.0, 1520879607789)]),
    (OM, 'h{a="#"} 2\n# EOF\n', [({"__name__": "h", "a": "#"}, 2.0, None)]),
    (OM, 'h{a=" # {x} "} 2\n# EOF\n', [({"__name__": "h", "a": " # {x} "}, 2.0, None)]),
    (OM, "n NaN\n# EOF\n", [({"__name__": "n"}, math.nan, None)]),
    (
        OM,
        'c_total{a="1"} 5 # {trace_id="abc"} 1.5 1520879607.7\n# EOF\n',
        [({"__name__": "c_total", "a": "1"}, 5.0, None)],
    ),
]


@pytest.mark.parametrize(("fmt", "text", "expected"), VALID)
def test_valid_inputs(fmt: Format, text: str, expected: list) -> None:
    got = samples(text, fmt)
    assert len(got) == len(expected)
    for (labels, value, ts), (want_labels, want_value, want_ts) in zip(got, expected, strict=True):
        assert dict(labels) == want_labels
        assert list(labels) == sorted(labels)
        assert (math.isnan(value) and math.isnan(want_value)) or value == want_value
        assert ts == want_ts


# (format, input, line of the error, words the reason must contain)
INVALID = [
    (TEXT, 'test{a="1",a="2"} 1\n', 1, "repeated label name 'a'"),
    (TEXT, 'ok 1\n{a="b"} 1\n', 2, "metric name missing"),
    (TEXT, '{__name__="x"} 1\n', 1, "metric name missing"),
    (TEXT, "up\n", 1, "no value"),
    (TEXT, "up x\n", 1, "invalid value"),
    (TEXT, "up 1_000\n", 1, "invalid value"),
    (TEXT, "up 1 2 3\n", 1, "unexpected text"),
    (TEXT, "up 1 1.5\n", 1, "timestamp"),
    (TEXT, "up 1 99999999999999999999\n", 1, "out of range"),
    (TEXT, "a 1\nb 2\n9bad 3\n", 3, "invalid metric name"),
    (TEXT, "bad-name 1\n", 1, "invalid"),
    (TEXT, "x{a=1} 1\n", 1, "not quoted"),
    (TEXT, 'x{a="1"', 1, "not closed"),
    (TEXT, 'x{a="1" b="2"} 1\n', 1, "expected ','"),
    (TEXT, 'x{1a="1"} 1\n', 1, "invalid label name"),
    (TEXT, 'x{a="1"}1\n', 1, "space"),
    (TEXT, "# TYPE x bogus\nx 1\n", 1, "invalid metric type"),
    (TEXT, "# TYPE 9x counter\n", 1, "invalid metric name"),
    (OM, "up 1\n", 1, "# EOF"),
    (OM, "", 1, "# EOF"),
    (OM, "up 1\n# EOF\nup 2\n", 3, "# EOF"),
    (OM, "up 1\n\nup 2\n# EOF\n", 2, "empty line"),
    (OM, "# random comment\nup 1\n# EOF\n", 1, "unexpected comment"),
    (OM, "# TYPE x untyped\n# EOF\n", 1, "invalid metric type"),
    (OM, " up 1\n# EOF\n", 1, "whitespace"),
    (OM, 'c_total 1 # {id="a",id="b"} 1\n# EOF\n', 1, "repeated label name"),
    (OM, 'c_total 1 # {id="' + "x" * 130 + '"} 1\n# EOF\n', 1, "more than 128"),
    (OM, "c_total 1 # trace 1\n# EOF\n", 1, "exemplar"),
    (OM, 'c_total 1 #{a="b"} 1\n# EOF\n', 1, "exemplar"),
    (OM, "ts 1 nan_ts\n# EOF\n", 1, "timestamp"),
]


@pytest.mark.parametrize(("fmt", "text", "line", "reason"), INVALID)
def test_invalid_inputs(fmt: Format, text: str, line: int, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text, fmt)
    assert info.value.line == line
    assert reason in info.value.reason
    assert str(info.value).startswith(f"line {line}: ")


def test_invalid_utf8_names_the_line_and_offset() -> None:
    with pytest.raises(ParseError) as info:
        parse(b'ok 1\nx{a="\xff"} 1\n')
    assert info.value.line == 2
    assert "byte offset 10" in info.value.reason


def test_families_text_format() -> None:
    payload = parse(
        "# HELP http_requests_total Requests \\\\ handled\\nso far.\n"
        "# TYPE http_requests_total counter\n"
        'http_requests_total{code="200"} 10\n'
        'http_requests_total{code="500"} 1\n'
        "# TYPE lat histogram\n"
        'lat_bucket{le="1"} 1\n'
        'lat_bucket{le="+Inf"} 2\n'
        "lat_sum 3\n"
        "lat_count 2\n"
        "# TYPE rpc summary\n"
        'rpc{quantile="0.5"} 2\n'
        "rpc_sum 6\n"
        "rpc_count 3\n"
        "loose 1\n"
    )
    by_name = {f.name: f for f in payload.families}
    counter = by_name["http_requests_total"]
    assert (counter.type, counter.start, counter.end) == (MetricType.COUNTER, 0, 2)
    assert counter.help == "Requests \\ handled\nso far."
    assert (by_name["lat"].type, by_name["lat"].start, by_name["lat"].end) == (
        MetricType.HISTOGRAM,
        2,
        6,
    )
    assert (by_name["rpc"].type, by_name["rpc"].end) == (MetricType.SUMMARY, 9)
    assert not by_name["loose"].explicit and by_name["loose"].type == MetricType.UNKNOWN


def test_families_openmetrics() -> None:
    payload = parse(
        "# TYPE req counter\n"
        "# UNIT req requests\n"
        '# HELP req Say \\"hi\\"\n'
        "req_total 3\n"
        "req_created 1700000000\n"
        "# TYPE build info\n"
        'build_info{version="1"} 1\n'
        "# TYPE st stateset\n"
        'st{st="a"} 1\n'
        'st{st="b"} 0\n'
        "# TYPE gh gaugehistogram\n"
        'gh_bucket{le="+Inf"} 2\n'
        "gh_gcount 2\n"
        "gh_gsum 4\n"
        "# EOF\n",
        OM,
    )
    fams = [(f.name, f.type, f.start, f.end) for f in payload.families]
    assert fams == [
        ("req", MetricType.COUNTER, 0, 2),
        ("build", MetricType.INFO, 2, 3),
        ("st", MetricType.STATESET, 3, 5),
        ("gh", MetricType.GAUGEHISTOGRAM, 5, 8),
    ]
    assert payload.families[0].unit == "requests"
    assert payload.families[0].help == 'Say "hi"'


def test_openmetrics_exemplars() -> None:
    payload = parse(
        "# TYPE lat histogram\n"
        'lat_bucket{le="0.1"} 1 # {trace_id="aa",span_id="bb"} 0.05 1700000000.5\n'
        'lat_bucket{le="+Inf"} 2 # {trace_id="cc"} 3\n'
        "lat_sum 3.05\nlat_count 2\n# EOF\n",
        OM,
    )
    first, second = payload.exemplars
    assert (first.index, first.value, first.timestamp) == (0, 0.05, 1700000000500)
    assert first.labels == (("span_id", "bb"), ("trace_id", "aa"))
    assert (second.index, second.value, second.timestamp) == (1, 3.0, None)


def test_known_keys_skip_label_parsing() -> None:
    text = 'a{x="1"} 1\na{x="2"} 2\nb 3\n'
    first = parse(text)
    assert set(first.new_series) == {'a{x="1"}', 'a{x="2"}', "b"}
    second = parse(text, known=set(first.new_series))
    assert second.new_series == {}
    assert second.keys == first.keys
    assert second.values == [1.0, 2.0, 3.0]
    third = parse(text + 'a{x="3"} 4\n', known=set(first.new_series))
    assert list(third.new_series) == ['a{x="3"}']


def test_a_known_key_does_not_hide_a_bad_value() -> None:
    known = {'a{x="1"}'}
    with pytest.raises(ParseError) as info:
        parse('a{x="1"} oops\n', known=known)
    assert info.value.line == 1


def test_parse_series_and_format_for() -> None:
    assert parse_series('m{b="2",a="1"}') == (("__name__", "m"), ("a", "1"), ("b", "2"))
    with pytest.raises(ValueError, match="metric name missing"):
        parse_series('{a="1"}')
    assert format_for("application/openmetrics-text; version=1.0.0; charset=utf-8") is OM
    assert format_for("text/plain; version=0.0.4") is TEXT
    assert format_for("") is TEXT
    assert format_for(None) is TEXT


def _outcome(key: str) -> object:
    try:
        return parse_series(key)
    except ValueError as exc:
        return str(exc)


def _general(key: str) -> object:
    """What ``parse_series`` gives for ``key`` without the plain-key shortcut."""
    with mock.patch.object(textparse, "_PLAIN_KEY_RE", re.compile(r"(?!)")):
        return _outcome(key)


_KEY_PIECES = st.sampled_from(
    ['a="1"', 'b=""', 'a="x"', '__name__="n"', 'c="a b,c}"', 'z="=\'"', ",", ",,", "=", '"']
)


@given(st.sampled_from(["m", "m:x_total", "_a", "9x", ""]), st.lists(_KEY_PIECES, max_size=6))
@settings(max_examples=400, deadline=None)
def test_the_plain_key_shortcut_gives_what_the_general_path_gives(
    name: str, pieces: list[str]
) -> None:
    for block in ("".join(pieces), ",".join(pieces)):
        key = f"{name}{{{block}}}"
        assert _outcome(key) == _general(key), key


def test_plain_keys_drop_empty_values_and_report_repeated_names() -> None:
    assert parse_series('m{b="",a="1",}') == (("__name__", "m"), ("a", "1"))
    assert parse_series('m{a="",a="1"}') == (("__name__", "m"), ("a", "1"))
    with pytest.raises(ValueError, match="repeated label name 'a'"):
        parse_series('m{a="1",a="2"}')
    with pytest.raises(ValueError, match="repeated label name '__name__'"):
        parse_series('m{__name__="m"}')


_LINE_PIECES = st.sampled_from(
    [
        "up",
        "x_total",
        "{",
        "}",
        '"',
        "=",
        ",",
        " ",
        "\t",
        "\\",
        "#",
        "# TYPE",
        "# HELP",
        "# UNIT",
        "# EOF",
        "counter",
        "1",
        "-1.5e3",
        "+Inf",
        "NaN",
        'a="b"',
        "le",
        "_",
        "\n",
        "é",
        "\x00",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_LINE_PIECES, max_size=40), st.sampled_from([TEXT, OM]))
def test_fuzz_structured_pieces_never_crash(pieces: list[str], fmt: Format) -> None:
    text = "".join(pieces)
    try:
        payload = parse(text, fmt)
    except ParseError as exc:
        assert exc.line >= 1
        return
    assert len(payload.keys) == len(payload.values)
    for key in payload.keys:
        assert key in payload.new_series


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([TEXT, OM]))
def test_fuzz_bytes_never_crash(data: bytes, fmt: Format) -> None:
    try:
        parse(data, fmt)
    except ParseError as exc:
        assert exc.line >= 1
