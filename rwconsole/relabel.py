"""Relabelling rules with Prometheus' semantics: the one owner of the rules.

This module owns the relabel actions, their defaults, every rule about which
fields an action takes, compiling rules and applying them to a label set. The
config schema takes its action list and defaults from here, config validation
turns ``check_rule``'s problems into key paths, and the remote-write queue (and
any other stage) applies ``compile_rules``' result with ``relabel``.

``check_rule(config)`` and ``compile_rules(configs)`` accept any objects (or
dicts) with the Alloy field names ``source_labels``, ``separator``, ``regex``,
``modulus``, ``target_label``, ``replacement`` and ``action``; missing fields
take the defaults below. ``check_rule`` returns every problem with its path
inside the rule; ``compile_rules`` raises ``RelabelConfigError`` for the first
one, with the rule's ``index``. ``relabel(labels, rules)`` takes a plain
``Labels`` value and returns the new ``Labels``, the same object when nothing
changed, or None when the series is dropped; callers cache the result per
series. Each rule also remembers, for a bounded number of texts, what its regex
made of a label name or source value, so the names every target or series
shares are matched once.

Semantics follow Prometheus' relabelling as Alloy runs it: regexes are RE2
(``google-re2``) anchored as ``^(?s:…)$``; ``$`` templates follow Go's
``Regexp.Expand``; target label names use the legacy character set; setting a
label to an empty value deletes it; the first rule that drops stops the chain;
a series left without labels is dropped; lowercase/uppercase map each
character on its own as Go does. One deliberate difference: ``labelmap`` never
creates a label with an empty name (Prometheus would, and receivers reject it).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from rwconsole.labels import Labels, is_valid_label_name
from rwconsole.regex import RegexError, compile_anchored

REPLACE = "replace"
KEEP = "keep"
DROP = "drop"
KEEPEQUAL = "keepequal"
DROPEQUAL = "dropequal"
HASHMOD = "hashmod"
LABELMAP = "labelmap"
LABELDROP = "labeldrop"
LABELKEEP = "labelkeep"
LOWERCASE = "lowercase"
UPPERCASE = "uppercase"
ACTIONS = (
    REPLACE,
    KEEP,
    DROP,
    KEEPEQUAL,
    DROPEQUAL,
    HASHMOD,
    LABELMAP,
    LABELDROP,
    LABELKEEP,
    LOWERCASE,
    UPPERCASE,
)

DEFAULT_SEPARATOR = ";"
DEFAULT_REGEX = "(.*)"
DEFAULT_MODULUS = 0
DEFAULT_REPLACEMENT = "$1"
DEFAULT_ACTION = REPLACE

# Alloy's rule for target_label/replacement templates containing `$`.
_TEMPLATE = re.compile(r"(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+", re.ASCII)
_MAX_U64 = (1 << 64) - 1
_NEEDS_TARGET = (REPLACE, HASHMOD, LOWERCASE, UPPERCASE, KEEPEQUAL, DROPEQUAL)
_NO_REPLACEMENT = (LOWERCASE, UPPERCASE, KEEPEQUAL, DROPEQUAL)

RulePath = tuple[str | int, ...]


class RuleProblem(NamedTuple):
    """One broken rule: ``path`` inside the rule (``()`` is the rule as a whole)."""

    path: RulePath
    message: str


class RelabelConfigError(ValueError):
    """A relabel rule is invalid; ``field`` names the offending field ("" the whole rule)."""

    def __init__(self, field: str, reason: str, index: int | None = None) -> None:
        where = field if index is None else f"[{index}]" + (f".{field}" if field else "")
        super().__init__(f"{where}: {reason}")
        self.field = field
        self.reason = reason
        self.index = index


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled, validated relabel rule."""

    source_labels: tuple[str, ...]
    separator: str
    regex: str
    modulus: int
    target_label: str
    replacement: str
    action: str
    pattern: Any = field(repr=False, compare=False)  # compiled anchored re2 regex
    memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """What the rule made of a text it matched before (see ``_outcome``)."""


# --- checking and compiling --------------------------------------------------


def compile_regex(regex: str) -> Any:
    """Compile ``regex`` anchored as Prometheus does (``^(?s:…)$``) with RE2."""
    try:
        return compile_anchored(regex)
    except RegexError as exc:
        raise RelabelConfigError("regex", _regex_message(exc)) from None


def check_rule(config: Any) -> list[RuleProblem]:
    """Every problem of one rule config (object or dict), in a fixed order."""
    return _check(config)[1]


def compile_rule(config: Any) -> Rule:
    """Check one rule config (object or dict) and compile it."""
    rule, problems = _check(config)
    if rule is None:
        path, message = problems[0]
        field_name = str(path[0]) if path else ""
        if len(path) > 1:
            field_name += f"[{path[1]}]"
        raise RelabelConfigError(field_name, message)
    return rule


def compile_rules(configs: Iterable[Any]) -> list[Rule]:
    """Compile a list of rule configs; errors carry the rule's index."""
    rules = []
    for index, config in enumerate(configs):
        if config is None:
            raise RelabelConfigError("action", "empty relabel rule", index)
        try:
            rules.append(compile_rule(config))
        except RelabelConfigError as exc:
            raise RelabelConfigError(exc.field, exc.reason, index) from None
    return rules


def _get_field(config: Any, name: str, default: Any) -> Any:
    value = (
        config.get(name, default) if isinstance(config, Mapping) else getattr(config, name, default)
    )
    return default if value is None else value


def _regex_message(exc: RegexError) -> str:
    return f"invalid RE2 regular expression {exc.regex!r}: {exc.reason}"


def _check(config: Any) -> tuple[Rule | None, list[RuleProblem]]:
    """The compiled rule (None when there are problems) and the problems."""
    problems: list[RuleProblem] = []

    def add(path: RulePath, message: str) -> None:
        problems.append(RuleProblem(path, message))

    action = _get_field(config, "action", DEFAULT_ACTION)
    source_labels = _get_field(config, "source_labels", ())
    separator = _get_field(config, "separator", DEFAULT_SEPARATOR)
    regex = _get_field(config, "regex", DEFAULT_REGEX)
    modulus = _get_field(config, "modulus", DEFAULT_MODULUS)
    target = _get_field(config, "target_label", "")
    replacement = _get_field(config, "replacement", DEFAULT_REPLACEMENT)
    if not isinstance(action, str) or not action:
        add(("action",), "relabel configuration requires an action")
    elif action not in ACTIONS:
        add(("action",), f"unknown action {action!r}; must be one of {', '.join(ACTIONS)}")
    if isinstance(source_labels, str) or not all(isinstance(s, str) for s in source_labels):
        add(("source_labels",), "must be a list of label names")
    for name, value in (
        ("separator", separator),
        ("regex", regex),
        ("target_label", target),
        ("replacement", replacement),
    ):
        if not isinstance(value, str):
            add((name,), f"must be a string, got {type(value).__name__}")
    if problems:
        return None, problems

    pattern = None
    try:
        pattern = compile_anchored(regex)
    except RegexError as exc:
        add(("regex",), _regex_message(exc))
    if isinstance(modulus, bool) or not isinstance(modulus, int) or not 0 <= modulus <= _MAX_U64:
        add(("modulus",), f"must be >= 0 (an unsigned 64-bit integer), got {modulus!r}")
    elif action == HASHMOD and modulus == 0:
        add(("modulus",), "the hashmod action requires a non-zero modulus")
    if action in _NEEDS_TARGET and not target:
        add(("target_label",), f"the {action} action requires target_label")
    elif action in _NEEDS_TARGET:
        if action == REPLACE and "$" in target:
            valid = _TEMPLATE.fullmatch(target) is not None
        else:
            valid = is_valid_label_name(target)
        if not valid:
            add(("target_label",), f"{target!r} is not a valid label name")
    if action in _NO_REPLACEMENT and replacement != DEFAULT_REPLACEMENT:
        add(("replacement",), f"cannot be set for the {action} action")
    if action == LABELMAP and _TEMPLATE.fullmatch(replacement) is None:
        add(
            ("replacement",),
            f"{replacement!r} is not a valid label name template for labelmap",
        )
    extra = _extra_fields(action, source_labels, separator, regex, modulus, target, replacement)
    if extra is not None:
        problems.append(extra)
    for index, name in enumerate(source_labels):
        if not is_valid_label_name(name):
            add(("source_labels", index), f"{name!r} is not a valid label name")
    if problems:
        return None, problems
    rule = Rule(
        source_labels=tuple(source_labels),
        separator=separator,
        regex=regex,
        modulus=modulus,
        target_label=target,
        replacement=replacement,
        action=action,
        pattern=pattern,
    )
    return rule, problems


def _extra_fields(
    action: str,
    source_labels: Sequence[str],
    separator: str,
    regex: str,
    modulus: int,
    target: str,
    replacement: str,
) -> RuleProblem | None:
    """labeldrop/labelkeep take only regex; keepequal/dropequal only the label names."""
    if action in (LABELDROP, LABELKEEP):
        takes = "regex"
        extra = {
            "source_labels": bool(source_labels),
            "target_label": bool(target),
            "modulus": modulus != 0,
            "separator": separator != DEFAULT_SEPARATOR,
            "replacement": replacement != DEFAULT_REPLACEMENT,
        }
    elif action in (KEEPEQUAL, DROPEQUAL):
        takes = "source_labels and target_label"
        extra = {
            "regex": regex != DEFAULT_REGEX,
            "modulus": modulus != 0,
            "separator": separator != DEFAULT_SEPARATOR,
        }
    else:
        return None
    names = [name for name, is_set in extra.items() if is_set]
    if not names:
        return None
    return RuleProblem((), f"the {action} action takes only {takes}; remove {', '.join(names)}")


# --- Go's $-template expansion -----------------------------------------------


def _is_name_char(char: str) -> bool:
    # Go: unicode.IsLetter, unicode.IsDigit (category Nd) or '_'.
    return char.isalpha() or char.isdecimal() or char == "_"


def _extract(template: str, start: int) -> tuple[str, int] | None:
    """Parse a group name after ``$`` at ``start``: (name, end) or None if malformed."""
    n = len(template)
    brace = start < n and template[start] == "{"
    pos = start + 1 if brace else start
    end = pos
    while end < n and _is_name_char(template[end]):
        end += 1
    if end == pos:
        return None
    name = template[pos:end]
    if brace:
        if end >= n or template[end] != "}":
            return None
        end += 1
    return name, end


def _group_number(name: str) -> int:
    """The group index a name denotes, or -1 when it is a group name."""
    num = 0
    for char in name:
        if not "0" <= char <= "9" or num >= 100_000_000:
            return -1
        num = num * 10 + ord(char) - 48
    if name[0] == "0" and len(name) > 1:
        return -1
    return num


def expand(template: str, text: str, match: Any) -> str:
    """Expand ``$1``, ``${1}``, ``$name``, ``${name}`` and ``$$`` as Go's regexp does."""
    if "$" not in template:
        return template
    pattern = match.re
    out: list[str] = []
    pos = 0
    while True:
        dollar = template.find("$", pos)
        if dollar < 0:
            out.append(template[pos:])
            break
        out.append(template[pos:dollar])
        pos = dollar + 1
        if pos < len(template) and template[pos] == "$":
            out.append("$")
            pos += 1
            continue
        parsed = _extract(template, pos)
        if parsed is None:
            out.append("$")  # malformed: the '$' stays literal
            continue
        name, pos = parsed
        group = _group_number(name)
        if group < 0:
            group = pattern.groupindex.get(name, -1)
        if 0 <= group <= pattern.groups:
            start, end = match.span(group)
            if start >= 0:
                out.append(text[start:end])
    return "".join(out)


# --- Go's per-character case mapping -----------------------------------------


def _lower_char(char: str) -> str:
    lowered = char.lower()
    if len(lowered) == 1:
        return lowered
    return "i" if char == "\u0130" else char


def _upper_char(char: str) -> str:
    upper = char.upper()
    if len(upper) == 1:
        return upper
    # Multi-character full mapping: Go uses the simple mapping, which is the
    # titlecase letter where one exists (e.g. U+1F80 -> U+1F88), else the char.
    title = char.title()
    return title if len(title) == 1 else char


def go_lower(text: str) -> str:
    """``strings.ToLower``: simple per-character mapping (no final sigma, no expansion)."""
    if text.isascii():
        return text.lower()
    return "".join(map(_lower_char, text))


def go_upper(text: str) -> str:
    """``strings.ToUpper``: simple per-character mapping (``ß`` stays ``ß``)."""
    if text.isascii():
        return text.upper()
    return "".join(map(_upper_char, text))


def hashmod(value: str, modulus: int) -> int:
    """Prometheus' hashmod: big-endian uint64 of md5 bytes 8..15, modulo ``modulus``."""
    digest = hashlib.md5(value.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:16], "big") % modulus


# --- applying rules ----------------------------------------------------------


def _lookup(labels: Labels, name: str) -> str:
    for key, value in labels:
        if key == name:
            return value
    return ""


def _source_value(rule: Rule, labels: Labels, current: dict[str, str] | None) -> str:
    names = rule.source_labels
    if current is None:
        if len(names) == 1:
            return _lookup(labels, names[0])
        return rule.separator.join([_lookup(labels, name) for name in names])
    if len(names) == 1:
        return current.get(names[0], "")
    return rule.separator.join([current.get(name, "") for name in names])


def _set(current: dict[str, str], name: str, value: str) -> None:
    if value:
        current[name] = value
    else:
        current.pop(name, None)


MEMO_LIMIT = 1024
"""Texts a rule remembers its outcome for; the memo starts over when full, so a
rule that sees ever new values (addresses, request ids) holds no more than this."""


def _outcome(rule: Rule, text: str) -> Any:
    """What ``rule`` makes of ``text`` (a label name for labelmap/labeldrop/labelkeep,
    the joined source value otherwise), computed once per text.

    labelmap: the new label name ("" for none); labeldrop/labelkeep, keep/drop:
    whether the regex matches; replace: (target label, value) or None. Regex
    matches cost microseconds each through the RE2 binding, and the same label
    names, and often the same values, come back for every target or series.
    """
    memo = rule.memo
    try:
        return memo[text]
    except KeyError:
        pass
    m = rule.pattern.match(text)
    action = rule.action
    result: Any
    if action == LABELMAP:
        result = "" if m is None else expand(rule.replacement, text, m)
    elif action == REPLACE:
        result = None
        if m is not None:
            target = expand(rule.target_label, text, m)
            if is_valid_label_name(target):
                result = (target, expand(rule.replacement, text, m))
    else:
        result = m is not None
    if len(memo) >= MEMO_LIMIT:
        memo.clear()
    memo[text] = result
    return result


def relabel(labels: Labels, rules: Sequence[Rule]) -> Labels | None:
    """Apply ``rules`` in order; None when the series is dropped."""
    current: dict[str, str] | None = None  # created on the first change
    for rule in rules:
        action = rule.action
        if action in (LABELMAP, LABELDROP, LABELKEEP):
            snapshot = labels if current is None else sorted(current.items())
            memo = rule.memo
            for name, value in snapshot:
                outcome = memo.get(name)
                if outcome is None:
                    outcome = _outcome(rule, name)
                if action == LABELMAP:
                    if not outcome:
                        continue
                    if current is None:
                        current = dict(labels)
                    current[outcome] = value
                elif outcome == (action == LABELDROP):
                    if current is None:
                        current = dict(labels)
                    del current[name]
            continue
        value = _source_value(rule, labels, current)
        if action == REPLACE:
            replaced = _outcome(rule, value)
            if replaced is None:
                continue
            if current is None:
                current = dict(labels)
            _set(current, replaced[0], replaced[1])
        elif action == KEEP:
            if not _outcome(rule, value):
                return None
        elif action == DROP:
            if _outcome(rule, value):
                return None
        elif action in (KEEPEQUAL, DROPEQUAL):
            if current is None:
                equal = _lookup(labels, rule.target_label) == value
            else:
                equal = current.get(rule.target_label, "") == value
            if equal == (action == DROPEQUAL):
                return None
        else:
            if action == HASHMOD:
                result = str(hashmod(value, rule.modulus))
            elif action == LOWERCASE:
                result = go_lower(value)
            else:
                result = go_upper(value)
            if current is None:
                current = dict(labels)
            _set(current, rule.target_label, result)
    if current is None:
        return labels if labels else None
    if not current:
        return None
    result_labels = tuple(sorted(current.items()))
    return labels if result_labels == labels else result_labels
