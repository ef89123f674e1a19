"""write_relabel_config semantics: a table of cases per action, validation errors,
Go template expansion, Go case mapping and hashmod."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rwconsole.labels import make_labels
from rwconsole.relabel import (
    MEMO_LIMIT,
    RelabelConfigError,
    compile_regex,
    compile_rules,
    expand,
    go_lower,
    go_upper,
    hashmod,
    relabel,
)

BASE = {"__name__": "http_requests_total", "job": "api", "instance": "10.0.0.1:9100"}

# RFC 1321 test vectors: md5 of the input, as hex.
RFC1321 = {
    "": "d41d8cd98f00b204e9800998ecf8427e",
    "a": "0cc175b9c0f1b6a831c399e269772661",
    "abc": "900150983cd24fb0d6963f7d28e17f72",
    "message digest": "f96b697d7cb7938d525a2f31aaf161d0",
}


def from_vector(text: str, modulus: int) -> str:
    # Bytes 8..15 of the digest are the last 16 hex digits, read big-endian.
    return str(int(RFC1321[text][16:], 16) % modulus)


CASES = [
    # (id, rules, input labels, expected labels or None for dropped)
    (
        "replace copies with defaults",
        [{"source_labels": ["job"], "target_label": "team"}],
        BASE,
        {**BASE, "team": "api"},
    ),
    (
        "replace without match is a no-op",
        [{"source_labels": ["job"], "regex": "web", "target_label": "team", "replacement": "x"}],
        BASE,
        BASE,
    ),
    (
        "regex is anchored",
        [{"source_labels": ["job"], "regex": "p", "target_label": "t"}],
        BASE,
        BASE,
    ),
    (
        "dot matches newline",
        [{"source_labels": ["msg"], "regex": "a.c", "target_label": "t", "replacement": "ok"}],
        {"msg": "a\nc"},
        {"msg": "a\nc", "t": "ok"},
    ),
    (
        "dollar is end of text only",
        [{"source_labels": ["msg"], "regex": "abc", "target_label": "t", "replacement": "ok"}],
        {"msg": "abc\n"},
        {"msg": "abc\n"},
    ),
    (
        "empty result deletes target",
        [{"source_labels": ["missing"], "target_label": "job"}],
        BASE,
        {k: v for k, v in BASE.items() if k != "job"},
    ),
    (
        "missing sources join with separator",
        [
            {
                "source_labels": ["x", "y"],
                "regex": ";",
                "target_label": "t",
                "replacement": "both missing",
            }
        ],
        BASE,
        {**BASE, "t": "both missing"},
    ),
    (
        "custom separator and groups",
        [
            {
                "source_labels": ["job", "instance"],
                "separator": "@",
                "regex": "(.*)@(.*):(\\d+)",
                "target_label": "addr",
                "replacement": "${2}/${1}/$3",
            }
        ],
        BASE,
        {**BASE, "addr": "10.0.0.1/api/9100"},
    ),
    (
        "$1x is the group named 1x, so empty",
        [{"source_labels": ["job"], "regex": "(.*)", "target_label": "job", "replacement": "$1x"}],
        BASE,
        {k: v for k, v in BASE.items() if k != "job"},
    ),
    (
        "${1}x appends text",
        [{"source_labels": ["job"], "target_label": "t", "replacement": "${1}x"}],
        BASE,
        {**BASE, "t": "apix"},
    ),
    (
        "named groups both syntaxes",
        [
            {
                "source_labels": ["instance"],
                "regex": "(?P<host>[^:]+):(?<port>.*)",
                "target_label": "hp",
                "replacement": "$port-${host}",
            }
        ],
        BASE,
        {**BASE, "hp": "9100-10.0.0.1"},
    ),
    (
        "$$ is a literal dollar and bad refs stay literal",
        [{"source_labels": ["job"], "target_label": "t", "replacement": "$$1 $ ${1 $-"}],
        BASE,
        {**BASE, "t": "$1 $ ${1 $-"},
    ),
    (
        "$01 is a name and $10 a missing group",
        [{"source_labels": ["job"], "target_label": "t", "replacement": "[$01][$10][${0}]"}],
        BASE,
        {**BASE, "t": "[][][api]"},
    ),
    (
        "target label from a template",
        [{"source_labels": ["job"], "target_label": "${1}_role", "replacement": "yes"}],
        BASE,
        {**BASE, "api_role": "yes"},
    ),
    (
        "expanded target that is not a valid name is a no-op",
        [
            {
                "source_labels": ["instance"],
                "regex": "(\\d+).*",
                "target_label": "$1",
                "replacement": "v",
            }
        ],
        BASE,
        BASE,
    ),
    (
        "unicode values pass through",
        [
            {
                "source_labels": ["city"],
                "regex": "(.)(.*)",
                "target_label": "rest",
                "replacement": "$2",
            }
        ],
        {"city": "Zürich"},
        {"city": "Zürich", "rest": "ürich"},
    ),
    (
        "keep on match",
        [{"action": "keep", "source_labels": ["job"], "regex": "api|web"}],
        BASE,
        BASE,
    ),
    (
        "keep without match drops",
        [{"action": "keep", "source_labels": ["job"], "regex": "web"}],
        BASE,
        None,
    ),
    (
        "keep with empty regex keeps series missing the label",
        [{"action": "keep", "source_labels": ["absent"], "regex": ""}],
        BASE,
        BASE,
    ),
    (
        "drop on match",
        [{"action": "drop", "source_labels": ["__name__"], "regex": "http_.*"}],
        BASE,
        None,
    ),
    (
        "drop without match",
        [{"action": "drop", "source_labels": ["job"], "regex": "web"}],
        BASE,
        BASE,
    ),
    (
        "keepequal equal",
        [{"action": "keepequal", "source_labels": ["a"], "target_label": "b"}],
        {"a": "1", "b": "1"},
        {"a": "1", "b": "1"},
    ),
    (
        "keepequal different",
        [{"action": "keepequal", "source_labels": ["a"], "target_label": "b"}],
        {"a": "1", "b": "2"},
        None,
    ),
    (
        "keepequal both missing",
        [{"action": "keepequal", "source_labels": ["x"], "target_label": "y"}],
        {"a": "1"},
        {"a": "1"},
    ),
    (
        "dropequal equal",
        [{"action": "dropequal", "source_labels": ["a"], "target_label": "b"}],
        {"a": "1", "b": "1"},
        None,
    ),
    (
        "dropequal different",
        [{"action": "dropequal", "source_labels": ["a"], "target_label": "b"}],
        {"a": "1", "b": "2"},
        {"a": "1", "b": "2"},
    ),
    (
        "hashmod of abc",
        [{"action": "hashmod", "source_labels": ["v"], "modulus": 1000, "target_label": "shard"}],
        {"v": "abc"},
        {"v": "abc", "shard": from_vector("abc", 1000)},
    ),
    (
        "hashmod of joined missing labels hashes ''",
        [{"action": "hashmod", "source_labels": ["nope"], "modulus": 7, "target_label": "s"}],
        {"a": "x"},
        {"a": "x", "s": from_vector("", 7)},
    ),
    (
        "hashmod of two labels",
        [
            {
                "action": "hashmod",
                "source_labels": ["p", "q"],
                "separator": " ",
                "modulus": 2**64 - 1,
                "target_label": "s",
            }
        ],
        {"p": "message", "q": "digest"},
        {"p": "message", "q": "digest", "s": from_vector("message digest", 2**64 - 1)},
    ),
    (
        "labelmap copies matching names",
        [{"action": "labelmap", "regex": "__meta_(.+)"}],
        {"__meta_zone": "a", "__meta_rack": "r1", "job": "x"},
        {"__meta_zone": "a", "__meta_rack": "r1", "job": "x", "zone": "a", "rack": "r1"},
    ),
    (
        "labelmap with template",
        [{"action": "labelmap", "regex": "(k)_(.*)", "replacement": "${2}_$1"}],
        {"k_a": "1", "b": "2"},
        {"k_a": "1", "a_k": "1", "b": "2"},
    ),
    (
        "labelmap sees the snapshot only",
        [{"action": "labelmap", "regex": "x(.*)", "replacement": "xx$1"}],
        {"xa": "1"},
        {"xa": "1", "xxa": "1"},
    ),
    (
        "labeldrop",
        [{"action": "labeldrop", "regex": "inst.*|job"}],
        BASE,
        {"__name__": "http_requests_total"},
    ),
    (
        "labelkeep drops __name__ unless matched",
        [{"action": "labelkeep", "regex": "job|instance"}],
        BASE,
        {"job": "api", "instance": "10.0.0.1:9100"},
    ),
    (
        "labelkeep of nothing drops the series",
        [{"action": "labelkeep", "regex": "nothing"}],
        BASE,
        None,
    ),
    (
        "lowercase",
        [{"action": "lowercase", "source_labels": ["v"], "target_label": "l"}],
        {"v": "HeLLo ΑΣ İ"},
        {"v": "HeLLo ΑΣ İ", "l": "hello ασ i"},
    ),
    (
        "uppercase keeps ß and uses simple mappings",
        [{"action": "uppercase", "source_labels": ["v"], "target_label": "u"}],
        {"v": "straße ﬀ ᾳ ǆ"},
        {"v": "straße ﬀ ᾳ ǆ", "u": "STRAßE ﬀ ᾼ Ǆ"},
    ),
    (
        "lowercase of empty deletes target",
        [{"action": "lowercase", "source_labels": ["nope"], "target_label": "job"}],
        BASE,
        {k: v for k, v in BASE.items() if k != "job"},
    ),
    (
        "rules run in order over current labels",
        [
            {"source_labels": ["job"], "target_label": "a"},
            {"source_labels": ["a"], "target_label": "b", "replacement": "from-$1"},
            {"action": "labeldrop", "regex": "a"},
        ],
        BASE,
        {**BASE, "b": "from-api"},
    ),
    (
        "first drop stops",
        [
            {"action": "drop", "source_labels": ["job"], "regex": "api"},
            {"source_labels": ["job"], "target_label": "never"},
        ],
        BASE,
        None,
    ),
    (
        "deleting every label drops the series",
        [{"source_labels": ["none"], "target_label": "a"}],
        {"a": "1"},
        None,
    ),
]


@pytest.mark.parametrize(
    ("rules", "given", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_relabel_cases(rules, given, expected) -> None:
    labels = make_labels(given)
    result = relabel(labels, compile_rules(rules))
    assert result == (None if expected is None else make_labels(expected))


@pytest.mark.parametrize(
    ("rules", "given", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rules_that_saw_a_text_before_give_the_same_result(rules, given, expected) -> None:
    compiled = compile_rules(rules)
    other = make_labels({**BASE, "unrelated": "x"})
    first = relabel(make_labels(given), compiled)
    relabel(other, compiled)  # the memo now also holds another label set's texts
    assert relabel(make_labels(given), compiled) == first
    assert first == (None if expected is None else make_labels(expected))


def test_a_rule_memo_stays_bounded_and_right_over_ever_new_values() -> None:
    rules = compile_rules(
        [
            {
                "source_labels": ["id"],
                "regex": "(.*)7",
                "target_label": "seven",
                "replacement": "$1",
            },
            {"source_labels": ["id"], "regex": ".*3", "action": "drop"},
            {"regex": "id", "action": "labeldrop"},
        ]
    )
    for i in range(3 * MEMO_LIMIT):
        result = relabel(make_labels({"__name__": "m", "id": str(i)}), rules)
        if str(i).endswith("3"):
            assert result is None
        elif str(i).endswith("7"):
            assert result == make_labels({"__name__": "m", "seven": str(i)[:-1]})
        else:
            assert result == make_labels({"__name__": "m"})
    assert all(0 < len(rule.memo) <= MEMO_LIMIT for rule in rules)
    assert set(rules[2].memo) == {"__name__", "id", "seven"}  # label names, not values


def test_unchanged_labels_keep_their_identity() -> None:
    labels = make_labels(BASE)
    assert relabel(labels, []) is labels
    rules = compile_rules([{"source_labels": ["job"], "target_label": "job"}])
    assert relabel(labels, rules) is labels


@dataclass
class RuleConfig:
    """Shaped like the config dataclass (Alloy's names)."""

    source_labels: list[str] = field(default_factory=list)
    separator: str = ";"
    regex: str = "(.*)"
    modulus: int = 0
    target_label: str = ""
    replacement: str = "$1"
    action: str = "replace"


def test_accepts_config_objects() -> None:
    rules = compile_rules([RuleConfig(source_labels=["job"], target_label="copy")])
    assert relabel(make_labels(BASE), rules) == make_labels({**BASE, "copy": "api"})


INVALID = [
    ({"action": ""}, "action", "requires an action"),
    ({"action": "Replace"}, "action", "unknown action 'Replace'"),
    (
        {"action": "hashmod", "target_label": "s", "source_labels": ["a"]},
        "modulus",
        "the hashmod action requires a non-zero modulus",
    ),
    ({"action": "replace"}, "target_label", "the replace action requires target_label"),
    ({"target_label": "1abc"}, "target_label", "'1abc' is not a valid label name"),
    ({"target_label": "${1"}, "target_label", "is not a valid label name"),
    (
        {"action": "lowercase", "target_label": "l", "replacement": "x"},
        "replacement",
        "cannot be set for the lowercase action",
    ),
    ({"action": "uppercase", "target_label": "a-b"}, "target_label", "not a valid label name"),
    (
        {"action": "hashmod", "target_label": "a.b", "modulus": 2},
        "target_label",
        "not a valid label",
    ),
    (
        {"action": "keepequal", "target_label": "t", "regex": "x"},
        "",
        "the keepequal action takes only source_labels and target_label; remove regex",
    ),
    (
        {"action": "dropequal", "target_label": "t", "separator": ","},
        "",
        "the dropequal action takes only source_labels and target_label; remove separator",
    ),
    (
        {"action": "labeldrop", "regex": "a", "source_labels": ["x"]},
        "",
        "the labeldrop action takes only regex; remove source_labels",
    ),
    (
        {"action": "labelkeep", "regex": "a", "target_label": "x"},
        "",
        "the labelkeep action takes only regex; remove target_label",
    ),
    (
        {"action": "labelmap", "regex": "a", "replacement": "$1-x"},
        "replacement",
        "is not a valid label name template for labelmap",
    ),
    ({"regex": "(?=x)", "target_label": "t"}, "regex", "invalid RE2 regular expression '(?=x)'"),
    ({"regex": "(a)\\1", "target_label": "t"}, "regex", "invalid RE2 regular expression"),
    ({"regex": "a{1001}", "target_label": "t"}, "regex", "invalid repetition size"),
    ({"regex": "\\C", "target_label": "t"}, "regex", "\\C is not supported"),
    ({"regex": "(", "target_label": "t"}, "regex", "invalid RE2 regular expression"),
    ({"action": "hashmod", "target_label": "s", "modulus": -1}, "modulus", "unsigned 64-bit"),
    ({"source_labels": "job", "target_label": "t"}, "source_labels", "list of label names"),
    ({"action": "keep", "source_labels": ["a-b"]}, "source_labels[0]", "not a valid label name"),
]


@pytest.mark.parametrize(("config", "field_name", "reason"), INVALID)
def test_invalid_rules(config, field_name: str, reason: str) -> None:
    with pytest.raises(RelabelConfigError) as info:
        compile_rules([{"action": "keep"}, config])
    assert info.value.field == field_name
    assert info.value.index == 1
    assert reason in info.value.reason
    where = f"[1].{field_name}" if field_name else "[1]"
    assert str(info.value).startswith(f"{where}: ")


def test_escaped_backslash_before_c_is_fine() -> None:
    assert compile_regex("\\\\C").match("\\C")


@pytest.mark.parametrize(("text", "modulus"), [(t, m) for t in RFC1321 for m in (1, 3, 256, 1000)])
def test_hashmod_matches_rfc1321_vectors(text: str, modulus: int) -> None:
    assert str(hashmod(text, modulus)) == from_vector(text, modulus)


def go_style_sum64(value: str) -> int:
    # Prometheus ORs every digest byte shifted by (15 - i) * 8 into a uint64; the
    # first eight shifts are >= 64 and so contribute nothing in Go.
    digest = hashlib.md5(value.encode()).digest()
    total = 0
    for i, byte in enumerate(digest):
        shift = (15 - i) * 8
        if shift < 64:
            total |= byte << shift
    return total


@given(st.text(max_size=40), st.integers(min_value=1, max_value=2**64 - 1))
def test_hashmod_matches_the_go_loop(text: str, modulus: int) -> None:
    assert hashmod(text, modulus) == go_style_sum64(text) % modulus


def test_expand_directly() -> None:
    pattern = compile_regex("(?P<a>x)(y)?(z)")
    m = pattern.match("xz")
    assert expand("$a|$2|$3|${3}3|$33|$", "xz", m) == "x||z|z3||$"
    assert expand("no dollars", "xz", m) == "no dollars"


@pytest.mark.parametrize(
    ("func", "text", "expected"),
    [
        (go_lower, "ÀÉÎ", "àéî"),
        (go_lower, "ΟΔΟΣ", "οδοσ"),  # no final-sigma rule in Go
        (go_lower, "İstanbul", "istanbul"),
        (go_upper, "ß", "ß"),
        (go_upper, "ŉ", "ŉ"),
        (go_upper, "ᾀ", "ᾈ"),
        (go_upper, "ı", "I"),
        (go_upper, "abc", "ABC"),
    ],
)
def test_go_case_mapping(func, text: str, expected: str) -> None:
    assert func(text) == expected
