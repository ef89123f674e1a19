"""Parsers for the Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text.

The parser turns a whole payload into columns (series key texts, values,
explicit timestamps) plus metric families (TYPE/HELP/UNIT with the range of
samples they cover) and exemplars. A *series key* is the text of a sample line
up to the end of its label block (``node_cpu_seconds_total{cpu="0",mode="idle"}``);
callers keep a cache keyed by it, and the parser only parses labels for keys
the caller does not already know (``known``), so a steady scrape costs a few
string operations and one ``float()`` per line.

Every problem is reported as ``ParseError(line, reason)`` with the 1-based line
number; nothing else escapes for any input.

The steady-state shortcut that skips this parser is ``rwconsole.sources.steady``.
"""

from __future__ import annotations

import enum
import functools
import operator
import re
from collections.abc import Container
from dataclasses import dataclass, field

from rwconsole.labels import METRIC_NAME, DuplicateLabelError, Labels, make_labels
from rwconsole.model import MetricType

OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text"

EXEMPLAR_MAX_LABEL_RUNES = 128
"""OpenMetrics limit on the combined length of an exemplar's label names and values."""

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class Format(enum.Enum):
    TEXT = "text"
    OPENMETRICS = "openmetrics"


class ParseError(ValueError):
    """A payload is not valid; ``line`` is 1-based."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass(slots=True)
class Family:
    """A metric family and the samples ``[start, end)`` that belong to it.

    ``explicit`` is False for families no TYPE/HELP/UNIT line described.
    """

    name: str
    type: MetricType = MetricType.UNKNOWN
    help: str = ""
    unit: str = ""
    start: int = 0
    end: int = 0
    explicit: bool = False


@dataclass(slots=True)
class ParsedExemplar:
    index: int
    """Index of the sample the exemplar is attached to."""
    labels: Labels
    value: float
    timestamp: int | None
    """Milliseconds, or None when the exemplar has no timestamp."""


@dataclass(slots=True)
class Payload:
    keys: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    timestamps: dict[int, int] = field(default_factory=dict)
    """Explicit timestamps in milliseconds by sample index (most samples have none)."""
    families: list[Family] = field(default_factory=list)
    exemplars: list[ParsedExemplar] = field(default_factory=list)
    new_series: dict[str, Labels] = field(default_factory=dict)
    """Labels (with ``__name__``) of every key that was not in ``known``."""


def format_for(content_type: str | None) -> Format:
    """The format a scrape response's Content-Type announces (text when unknown)."""
    if content_type and content_type.split(";", 1)[0].strip().lower() == OPENMETRICS_CONTENT_TYPE:
        return Format.OPENMETRICS
    return Format.TEXT


_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_PAIR_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*(,?)[ \t]*')
_NAME_OF = operator.itemgetter(0)
_ESCAPE_RE = re.compile(r"\\(.)")
_PLAIN_PAIR = r'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"'
_PLAIN_KEY_RE = re.compile(
    rf"([a-zA-Z_:][a-zA-Z0-9_:]*)\{{((?:{_PLAIN_PAIR}(?:,{_PLAIN_PAIR})*,?)?)\}}"
)
"""A series key without whitespace or escapes in its label block: the usual one."""
_PLAIN_PAIRS_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"\\\n]*)"')
_LABEL_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}

_TEXT_TYPES = {
    "counter": MetricType.COUNTER,
    "gauge": MetricType.GAUGE,
    "histogram": MetricType.HISTOGRAM,
    "summary": MetricType.SUMMARY,
    "untyped": MetricType.UNKNOWN,
}
_OM_TYPES = {
    "counter": MetricType.COUNTER,
    "gauge": MetricType.GAUGE,
    "histogram": MetricType.HISTOGRAM,
    "gaugehistogram": MetricType.GAUGEHISTOGRAM,
    "summary": MetricType.SUMMARY,
    "info": MetricType.INFO,
    "stateset": MetricType.STATESET,
    "unknown": MetricType.UNKNOWN,
}
# Sample-name suffixes that belong to a family of each type ("" = the family name itself).
_SUFFIXES: dict[MetricType, tuple[str, ...]] = {
    MetricType.UNKNOWN: ("",),
    MetricType.GAUGE: ("",),
    MetricType.STATESET: ("",),
    MetricType.COUNTER: ("", "_total", "_created"),
    MetricType.HISTOGRAM: ("_bucket", "_sum", "_count", "_created"),
    MetricType.GAUGEHISTOGRAM: ("_bucket", "_gsum", "_gcount"),
    MetricType.SUMMARY: ("", "_sum", "_count", "_created"),
    MetricType.INFO: ("_info",),
}


def _unescape_label(raw: str) -> str:
    return _ESCAPE_RE.sub(lambda m: _LABEL_ESCAPES.get(m.group(1), m.group(0)), raw)


def _unescape_help(raw: str, openmetrics: bool) -> str:
    def repl(m: re.Match[str]) -> str:
        char = m.group(1)
        if char == "\\":
            return "\\"
        if char == "n":
            return "\n"
        if char == '"' and openmetrics:
            return '"'
        return m.group(0)

    return _ESCAPE_RE.sub(repl, raw) if "\\" in raw else raw


def _parse_label_block(text: str, pos: int) -> tuple[list[tuple[str, str]], int]:
    """Parse ``{a="b",...}`` starting at ``text[pos] == "{"``; return pairs and the end index."""
    pairs: list[tuple[str, str]] = []
    n = len(text)
    pos += 1
    while pos < n and text[pos] in " \t":
        pos += 1
    while True:
        if pos >= n:
            raise ValueError("label set not closed with '}'")
        if text[pos] == "}":
            return pairs, pos + 1
        match = _PAIR_RE.match(text, pos)
        if match is None:
            raise ValueError(_label_problem(text, pos))
        name, raw, comma = match.groups()
        pairs.append((name, _unescape_label(raw) if "\\" in raw else raw))
        pos = match.end()
        if not comma and (pos >= n or text[pos] != "}"):
            raise ValueError(f"expected ',' or '}}' after label {name!r}")


def _label_problem(text: str, pos: int) -> str:
    name = _LABEL_NAME_RE.match(text, pos)
    if name is None:
        return f"invalid label name at {text[pos : pos + 20]!r}"
    rest = text[name.end() :].lstrip(" \t")
    if not rest.startswith("="):
        return f"expected '=' after label name {name.group(0)!r}"
    rest = rest[1:].lstrip(" \t")
    if not rest.startswith('"'):
        return f"label value of {name.group(0)!r} is not quoted"
    return f"label value of {name.group(0)!r} is not terminated"


def _labels_from_pairs(name: str, pairs: list[tuple[str, str]]) -> Labels:
    try:
        return make_labels([(METRIC_NAME, name), *pairs])
    except DuplicateLabelError as exc:
        raise ValueError(str(exc).replace("duplicate label name", "repeated label name")) from None


def parse_series(key: str) -> Labels:
    """Labels of a series key text such as ``up{job="x"}``; raises ValueError."""
    plain = _PLAIN_KEY_RE.fullmatch(key)
    if plain is not None:
        # All pairs in one C-level pass; what the general path below would return.
        block = plain.group(2)
        pairs = _PLAIN_PAIRS_RE.findall(block)
        if '=""' in block:
            pairs = [pair for pair in pairs if pair[1]]
        pairs.append((METRIC_NAME, plain.group(1)))
        if len(set(map(_NAME_OF, pairs))) == len(pairs):
            pairs.sort()
            return tuple(pairs)
        # a repeated name: the general path says which
    match = _NAME_RE.match(key)
    if match is None:
        if key.startswith("{") or not key:
            raise ValueError("metric name missing")
        raise ValueError(f"invalid metric name at {key[:20]!r}")
    name = match.group(0)
    pos = match.end()
    n = len(key)
    while pos < n and key[pos] in " \t":
        pos += 1
    if pos == n:
        return ((METRIC_NAME, name),)
    if key[pos] != "{":
        raise ValueError(f"invalid character {key[pos]!r} in metric name {name!r}")
    pairs, end = _parse_label_block(key, pos)
    if end != n:
        raise ValueError(f"unexpected text after label set: {key[end : end + 20]!r}")
    return _labels_from_pairs(name, pairs)


_START_FAMILIES = {
    MetricType.COUNTER: "",
    MetricType.HISTOGRAM: "le",
    MetricType.SUMMARY: "quantile",
}
"""Family types whose samples an OpenMetrics ``_created`` sample gives a start time,
with the label that tells a family's samples of one point apart (none for counters)."""


def start_time_sources(payload: Payload) -> tuple[list[int], list[int]] | None:
    """Which ``_created`` sample holds each sample's start time, in an OpenMetrics payload.

    Two columns: sample indexes, and the index of the ``_created`` sample of the
    same point (same labels but ``le``/``quantile``) of a counter, histogram or
    summary family; None when there is none. The ``_created`` samples themselves
    have none. Only families with a ``_created`` sample have their keys parsed.
    """
    samples: list[int] = []
    sources: list[int] = []
    keys = payload.keys
    for family in payload.families:
        point_label = _START_FAMILIES.get(family.type)
        if point_label is None:
            continue
        created = family.name + "_created"
        members = range(family.start, family.end)
        if not any(_named(keys[i], created) for i in members):
            continue
        by_point: dict[Labels, int] = {}
        others: list[tuple[int, Labels]] = []
        for i in members:
            labels = parse_series(keys[i])  # the parser accepted the key already
            point = tuple(p for p in labels if p[0] != METRIC_NAME and p[0] != point_label)
            if _named(keys[i], created):
                by_point.setdefault(point, i)
            else:
                others.append((i, point))
        for i, point in others:
            source = by_point.get(point)
            if source is not None:
                samples.append(i)
                sources.append(source)
    return (samples, sources) if samples else None


def _named(key: str, name: str) -> bool:
    """Whether series key text ``key`` is of metric ``name``."""
    return key.startswith(name) and (len(key) == len(name) or key[len(name)] in "{ \t")


def _split_series(line: str) -> tuple[str, str]:
    """Split a sample line into (series key, rest) by walking its label block."""
    match = _NAME_RE.match(line)
    if match is None:
        if line.startswith("{"):
            raise ValueError("metric name missing")
        raise ValueError(f"invalid metric name at {line[:20]!r}")
    pos = match.end()
    n = len(line)
    probe = pos
    while probe < n and line[probe] in " \t":
        probe += 1
    if probe < n and line[probe] == "{":
        _, pos = _parse_label_block(line, probe)
    return line[:pos], line[pos:]


def _parse_float(token: str, what: str) -> float:
    if "_" in token:
        raise ValueError(f"invalid {what} {token!r}")
    try:
        return float(token)
    except ValueError:
        raise ValueError(f"invalid {what} {token!r}") from None


def _parse_text_timestamp(token: str) -> int:
    if "_" in token:
        raise ValueError(f"invalid timestamp {token!r}")
    try:
        ts = int(token)
    except ValueError:
        raise ValueError(f"invalid timestamp {token!r} (milliseconds expected)") from None
    if not _INT64_MIN <= ts <= _INT64_MAX:
        raise ValueError(f"timestamp {token!r} out of range")
    return ts


def _parse_om_timestamp(token: str) -> int:
    seconds = _parse_float(token, "timestamp")
    try:
        ts = round(seconds * 1000)
    except (OverflowError, ValueError):
        raise ValueError(f"invalid timestamp {token!r}") from None
    if not _INT64_MIN <= ts <= _INT64_MAX:
        raise ValueError(f"timestamp {token!r} out of range")
    return ts


def _parse_exemplar(text: str, openmetrics_ts: bool = True) -> tuple[Labels, float, int | None]:
    text = text.strip(" \t")
    if not text.startswith("{"):
        raise ValueError("exemplar must start with a label set")
    pairs, end = _parse_label_block(text, 0)
    runes = sum(len(name) + len(value) for name, value in pairs)
    if runes > EXEMPLAR_MAX_LABEL_RUNES:
        raise ValueError(
            f"exemplar labels have {runes} characters, more than {EXEMPLAR_MAX_LABEL_RUNES}"
        )
    try:
        labels = make_labels(pairs)
    except DuplicateLabelError as exc:
        raise ValueError(f"exemplar: {exc}".replace("duplicate", "repeated")) from None
    if end < len(text) and text[end] not in " \t":
        raise ValueError("expected a space after the exemplar's label set")
    parts = text[end:].split()
    if not parts or len(parts) > 2:
        raise ValueError("exemplar needs a value and an optional timestamp")
    value = _parse_float(parts[0], "exemplar value")
    ts = _parse_om_timestamp(parts[1]) if len(parts) == 2 else None
    return labels, value, ts


def _belongs(name: str, family: Family) -> bool:
    if not name.startswith(family.name):
        return False
    return name[len(family.name) :] in _SUFFIXES[family.type]


@functools.lru_cache(maxsize=16384)
def _meta_line(line: str, om: bool) -> tuple[str, str, str | MetricType] | None:
    """(keyword, family name, help/unit text or type) of a ``#`` line; None for comments.

    Cached: a steady target repeats the same HELP/TYPE lines on every scrape.
    """
    if om:
        if not line.startswith("# "):
            raise ValueError("comment lines must start with '# '")
        parts = line.split(" ", 3)
    else:
        parts = line[1:].split(None, 2)
        parts.insert(0, "#")
        if len(parts) < 2 or parts[1] not in ("HELP", "TYPE"):
            return None
    keyword = parts[1] if len(parts) > 1 else ""
    if keyword not in ("HELP", "TYPE", "UNIT"):
        raise ValueError(f"unexpected comment line {line[:40]!r} (HELP, TYPE, UNIT or EOF)")
    if len(parts) < 3 or not parts[2]:
        raise ValueError(f"{keyword} line without a metric name")
    name = parts[2]
    if _NAME_RE.fullmatch(name) is None:
        raise ValueError(f"invalid metric name {name!r} in {keyword} line")
    rest = parts[3] if len(parts) > 3 else ""
    if keyword == "HELP":
        return keyword, name, _unescape_help(rest if om else rest.strip(" \t"), om)
    if keyword == "TYPE":
        types = _OM_TYPES if om else _TEXT_TYPES
        kind = rest if om else rest.strip(" \t")
        if kind not in types:
            raise ValueError(f"invalid metric type {kind!r} for {name!r}")
        return keyword, name, types[kind]
    return keyword, name, rest


class _State:
    """Mutable state of one parse (kept off the hot loop's locals where rare)."""

    __slots__ = ("families", "openmetrics", "payload")

    def __init__(self, payload: Payload, openmetrics: bool) -> None:
        self.payload = payload
        self.openmetrics = openmetrics
        self.families = payload.families

    def metadata_line(self, line: str) -> None:
        """Handle a ``#`` line: HELP/TYPE/UNIT feed families, others are comments (text)."""
        parsed = _meta_line(line, self.openmetrics)
        if parsed is None:
            return
        keyword, name, value = parsed
        family = self._family(name)
        if keyword == "HELP":
            family.help = value  # type: ignore[assignment]
        elif keyword == "TYPE":
            family.type = value  # type: ignore[assignment]
        else:
            family.unit = value  # type: ignore[assignment]

    def _family(self, name: str) -> Family:
        families = self.families
        count = len(self.payload.keys)
        if families and families[-1].name == name and families[-1].explicit:
            return families[-1]
        if families:
            families[-1].end = count
        family = Family(name=name, start=count, end=count, explicit=True)
        families.append(family)
        return family

    def sample_family(self, name: str) -> None:
        """Make sure the last family covers a sample named ``name``."""
        families = self.families
        if families and _belongs(name, families[-1]):
            return
        count = len(self.payload.keys)
        if families:
            families[-1].end = count
        families.append(Family(name=name, start=count, end=count))


def parse(
    data: bytes | str,
    fmt: Format = Format.TEXT,
    known: Container[str] = frozenset(),
) -> Payload:
    """Parse a whole exposition payload; raise ParseError on the first bad line."""
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            line = bytes(data).count(b"\n", 0, exc.start) + 1
            raise ParseError(line, f"invalid UTF-8 at byte offset {exc.start}") from None
    else:
        text = data
    openmetrics = fmt is Format.OPENMETRICS
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if openmetrics:
        if not lines or lines[-1] != "# EOF":
            raise ParseError(max(len(lines), 1), "OpenMetrics payload does not end with '# EOF'")
        lines.pop()
    payload = Payload()
    state = _State(payload, openmetrics)
    try:
        _parse_lines(lines, state, known, openmetrics)
    finally:
        if payload.families:
            payload.families[-1].end = len(payload.keys)
    return payload


def _parse_lines(lines: list[str], state: _State, known: Container[str], openmetrics: bool) -> None:
    payload = state.payload
    keys = payload.keys
    values = payload.values
    new_series = payload.new_series
    add_key = keys.append
    add_value = values.append
    last_name: str | None = None
    lineno = 0
    try:
        for lineno, line in enumerate(lines, 1):
            if not line:
                if openmetrics:
                    raise ValueError("empty line")
                continue
            first = line[0]
            if first in " \t":
                if openmetrics:
                    raise ValueError("line starts with whitespace")
                line = line.lstrip(" \t")
                if not line:
                    continue
                first = line[0]
            if first == "#":
                if openmetrics and line == "# EOF":
                    raise ValueError("'# EOF' before the end of the payload")
                state.metadata_line(line)
                last_name = None
                continue
            if openmetrics and "#" in line:
                _exemplar_line(line, state, known, lineno)
                last_name = None
                continue
            brace = line.find("{")
            if brace < 0:
                parts = line.split()
                key = name = parts[0]
                del parts[0]
            else:
                end = line.rfind("}")
                if end < brace:
                    raise ValueError("label set not closed with '}'")
                key = line[: end + 1]
                tail = line[end + 1 :]
                if tail and tail[0] not in " \t":
                    raise ValueError("expected a space after the label set")
                parts = tail.split()
                name = line[:brace]
                if line[brace - 1 : brace] in (" ", "\t"):
                    name = name.rstrip(" \t")
            if key not in known and key not in new_series:
                new_series[key] = parse_series(key)
            if name != last_name:
                last_name = name
                state.sample_family(name)
            count = len(parts)
            if count == 1:
                token = parts[0]
                if "_" in token:
                    raise ValueError(f"invalid value {token!r}")
                add_value(float(token))
            elif count == 2:
                token = parts[0]
                if "_" in token:
                    raise ValueError(f"invalid value {token!r}")
                add_value(float(token))
                try:
                    payload.timestamps[len(keys)] = (
                        _parse_om_timestamp(parts[1])
                        if openmetrics
                        else _parse_text_timestamp(parts[1])
                    )
                except ValueError:
                    values.pop()
                    raise
            elif count == 0:
                raise ValueError(f"sample {key[:60]!r} has no value")
            else:
                raise ValueError(f"unexpected text after the value: {' '.join(parts[2:])[:40]!r}")
            add_key(key)
    except ParseError:
        raise
    except ValueError as exc:
        reason = str(exc)
        if reason.startswith("could not convert string to float"):
            reason = f"invalid value {reason.split(': ', 1)[-1]}"
        raise ParseError(lineno, reason) from None
    except (IndexError, RecursionError) as exc:  # defensive: never crash on odd input
        raise ParseError(lineno, f"malformed line ({type(exc).__name__})") from None


def _exemplar_line(line: str, state: _State, known: Container[str], lineno: int) -> None:
    """Slow path for OpenMetrics lines that contain '#': walk the label block exactly."""
    payload = state.payload
    key, rest = _split_series(line)
    if key not in known and key not in payload.new_series:
        payload.new_series[key] = parse_series(key)
    if rest and rest[0] != " ":
        raise ValueError("expected a space after the series")
    sample, hash_sign, exemplar_text = rest.partition(" # ")
    if not hash_sign and "#" in rest:
        raise ValueError("exemplar must be introduced by ' # '")
    parts = sample.split()
    if not parts or len(parts) > 2:
        raise ValueError("sample needs a value and an optional timestamp")
    value = _parse_float(parts[0], "value")
    ts = _parse_om_timestamp(parts[1]) if len(parts) == 2 else None
    name = key[: key.find("{")] if "{" in key else key
    state.sample_family(name.rstrip(" \t"))
    index = len(payload.keys)
    if hash_sign:
        labels, ex_value, ex_ts = _parse_exemplar(exemplar_text)
        payload.exemplars.append(ParsedExemplar(index, labels, ex_value, ex_ts))
    if ts is not None:
        payload.timestamps[index] = ts
    payload.values.append(value)
    payload.keys.append(key)
