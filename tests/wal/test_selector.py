"""Series selectors: parsing, matching semantics, error positions."""

from __future__ import annotations

import pytest

from rwconsole.selector import SelectorError, parse_selector

UP = (("__name__", "up"), ("instance", "a:9100"), ("job", "node-exporter"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("up", True),
        ("down", False),
        ('{__name__="up"}', True),
        ('up{job="node-exporter"}', True),
        ('up{job!="node-exporter"}', False),
        ('up{job=~"node.*"}', True),
        ('up{job=~"node"}', False),  # fully anchored
        ('up{job!~"x|y"}', True),
        ('up{missing=""}', True),  # absent label matches the empty string
        ('up{missing!=""}', False),
        ("up{job=~'node-.*', instance=~`a:\\d+`,}", True),
        ('  up { job = "node-exporter" }  ', True),
    ],
)
def test_matching(text: str, expected: bool) -> None:
    assert parse_selector(text).matches(UP) is expected


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("", 0, "empty"),
        ("up{", 3, "missing '}'"),
        ("up{job}", 6, "expected one of"),
        ('up{job="x" foo="y"}', 11, "expected ','"),
        ('up{job=~"("}', 6, "invalid regex"),
        ('up{job="unterminated}', 7, "unterminated"),
        ("9up", 0, "metric name"),
        ('up{job="a\\qb"}', 9, "unknown escape"),
        ('up{job="x"} extra', 12, "unexpected"),
    ],
)
def test_errors_name_the_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_selector(text)
    assert info.value.position == position
    assert fragment in str(info.value)


def test_escapes_and_regex_dot_matches_newline() -> None:
    sel = parse_selector('{a=~"x.y", b="q\\"\\n"}')
    assert sel.matches((("a", "x\ny"), ("b", 'q"\n')))
