"""PromQL-style series selectors: ``up{job=~"node.*", instance!="x"}``.

Parses a metric name and/or a brace list of label matchers with ``=``, ``!=``,
``=~`` and ``!~``. Regexes use RE2 (Go's syntax and semantics) and are fully
anchored, as in PromQL. Errors name the character position. A label that is
absent matches as the empty string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rwconsole.labels import METRIC_NAME, Labels
from rwconsole.regex import RegexError, compile_anchored

_OPS = ("=~", "!~", "!=", "=")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "`": "`"}


class SelectorError(ValueError):
    def __init__(self, text: str, position: int, message: str) -> None:
        self.position = position
        self.message = message
        super().__init__(f"bad selector at character {position + 1}: {message}: {text!r}")


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str
    value: str
    _regex: Any = field(default=None, compare=False, repr=False)

    def matches_value(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        found = self._regex.match(value) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True, slots=True)
class Selector:
    matchers: tuple[Matcher, ...]

    def matches(self, labels: Labels) -> bool:
        values = dict(labels)
        return all(m.matches_value(values.get(m.name, "")) for m in self.matchers)


def make_matcher(name: str, op: str, value: str) -> Matcher:
    """A matcher; raises ``RegexError`` (wrapped by the parser) for a bad regex."""
    regex = compile_anchored(value) if op in ("=~", "!~") else None
    return Matcher(name, op, value, regex)


def parse_selector(text: str) -> Selector:
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str, pos: int | None = None) -> SelectorError:
        return SelectorError(self.text, self.pos if pos is None else pos, message)

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def ident(self, metric: bool) -> str:
        start = self.pos
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            ok = ch.isascii() and (ch.isalpha() or ch == "_" or (metric and ch == ":"))
            if not ok and self.pos > start:
                ok = ch.isascii() and ch.isdigit()
            if not ok:
                break
            self.pos += 1
        return text[start : self.pos]

    def parse(self) -> Selector:
        matchers: list[Matcher] = []
        self.skip_space()
        if not self.text.strip():
            raise self.fail("empty selector")
        if self.peek() != "{":
            name = self.ident(metric=True)
            if not name:
                raise self.fail("expected a metric name or '{'")
            matchers.append(make_matcher(METRIC_NAME, "=", name))
            self.skip_space()
        if self.peek() == "{":
            self.pos += 1
            matchers.extend(self.matcher_list())
        self.skip_space()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.peek()!r}")
        return Selector(tuple(matchers))

    def matcher_list(self) -> list[Matcher]:
        out: list[Matcher] = []
        while True:
            self.skip_space()
            if self.peek() == "}":
                self.pos += 1
                return out
            if not self.peek():
                raise self.fail("missing '}'")
            name = self.string() if self.peek() in "\"'" else self.ident(metric=False)
            if not name:
                raise self.fail("expected a label name")
            self.skip_space()
            op = next((o for o in _OPS if self.text.startswith(o, self.pos)), None)
            if op is None:
                raise self.fail("expected one of =, !=, =~, !~")
            op_pos = self.pos
            self.pos += len(op)
            self.skip_space()
            if not self.peek() or self.peek() not in "\"'`":
                raise self.fail("expected a quoted string")
            value = self.string()
            try:
                out.append(make_matcher(name, op, value))
            except RegexError as exc:
                raise self.fail(f"invalid regex for {name}: {exc}", op_pos) from None
            self.skip_space()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                raise self.fail("expected ',' or '}'")

    def string(self) -> str:
        quote = self.text[self.pos]
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == quote:
                self.pos += 1
                return "".join(out)
            if ch == "\\" and quote != "`":
                nxt = self.text[self.pos + 1 : self.pos + 2]
                if nxt not in _ESCAPES:
                    raise self.fail(f"unknown escape \\{nxt}")
                out.append(_ESCAPES[nxt])
                self.pos += 2
                continue
            out.append(ch)
            self.pos += 1
        raise self.fail("unterminated string", start)
