"""Relabelling rules (``write_relabel_config``) with Prometheus' semantics.

This module owns compiling and validating relabel rules and applying them to a
label set. ``compile_rules(configs)`` accepts any objects (or dicts) with the
Alloy field names ``source_labels``, ``separator``, ``regex``, ``modulus``,
``target_label``, ``replacement`` and ``action``; missing fields take Alloy's
defaults. Invalid rules raise ``RelabelConfigError(field, reason)`` (with the
rule's ``index`` when raised by ``compile_rules``). ``relabel(labels, rules)``
returns the new ``Labels``, the same object when nothing changed, or None when
the series is dropped; callers cache the result per series.

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
from typing import Any

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
DEFAULT_REPLACEMENT = "$1"
DEFAULT_ACTION = REPLACE

_TEMPLATE = re.compile(r"(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+", re.ASCII)
_MAX_U64 = (1 << 64) - 1


class RelabelConfigError(ValueError):
    """A relabel rule is invalid; ``field`` names the offending field."""

    def __init__(self, field: str, reason: str, index: int | None = None) -> None:
        where = field if index is None else f"[{index}].{field}"
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


# --- compiling and validation ------------------------------------------------


def compile_regex(regex: str) -> Any:
    """Compile ``regex`` anchored as Prometheus does (``^(?s:…)$``) with RE2."""
    try:
        return compile_anchored(regex)
    except RegexError as exc:
        raise RelabelConfigError("regex", str(exc)) from None


def _get_field(config: Any, name: str, default: Any) -> Any:
    value = (
        config.get(name, default) if isinstance(config, Mapping) else getattr(config, name, default)
    )
    return default if value is None else value


def compile_rule(config: Any) -> Rule:
    """Validate one rule config (object or dict) and compile it."""
    action = _get_field(config, "action", DEFAULT_ACTION)
    if not isinstance(action, str) or not action:
        raise RelabelConfigError("action", "relabel configuration requires an action")
    if action not in ACTIONS:
        raise RelabelConfigError(
            "action", f"unknown relabel action {action!r}; expected one of {', '.join(ACTIONS)}"
        )
    source_labels = _get_field(config, "source_labels", ())
    if isinstance(source_labels, str) or not all(isinstance(s, str) for s in source_labels):
        raise RelabelConfigError("source_labels", "must be a list of label names")
    separator = _get_field(config, "separator", DEFAULT_SEPARATOR)
    regex = _get_field(config, "regex", DEFAULT_REGEX)
    modulus = _get_field(config, "modulus", 0)
    target = _get_field(config, "target_label", "")
    replacement = _get_field(config, "replacement", DEFAULT_REPLACEMENT)
    for name, value in (
        ("separator", separator),
        ("regex", regex),
        ("target_label", target),
        ("replacement", replacement),
    ):
        if not isinstance(value, str):
            raise RelabelConfigError(name, f"must be a string, got {type(value).__name__}")
    if isinstance(modulus, bool) or not isinstance(modulus, int) or not 0 <= modulus <= _MAX_U64:
        raise RelabelConfigError("modulus", f"must be an unsigned 64-bit integer, got {modulus!r}")
    pattern = compile_regex(regex)
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
    _validate(rule)
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


def _validate(rule: Rule) -> None:
    action, target = rule.action, rule.target_label
    if action == HASHMOD and rule.modulus == 0:
        raise RelabelConfigError(
            "modulus", "relabel configuration for hashmod requires non-zero modulus"
        )
    if action in (REPLACE, HASHMOD, LOWERCASE, UPPERCASE, KEEPEQUAL, DROPEQUAL) and not target:
        raise RelabelConfigError(
            "target_label",
            f"relabel configuration for {action} action requires 'target_label' value",
        )
    if action == REPLACE:
        valid = _TEMPLATE.fullmatch(target) if "$" in target else is_valid_label_name(target)
        if not valid:
            raise RelabelConfigError(
                "target_label", f"{target!r} is invalid 'target_label' for {action} action"
            )
    if action in (LOWERCASE, UPPERCASE, KEEPEQUAL, DROPEQUAL, HASHMOD) and not is_valid_label_name(
        target
    ):
        raise RelabelConfigError(
            "target_label", f"{target!r} is invalid 'target_label' for {action} action"
        )
    if action in (LOWERCASE, UPPERCASE, KEEPEQUAL, DROPEQUAL) and (
        rule.replacement != DEFAULT_REPLACEMENT
    ):
        raise RelabelConfigError("replacement", f"'replacement' can not be set for {action} action")
    if action == LABELMAP and not _TEMPLATE.fullmatch(rule.replacement):
        raise RelabelConfigError(
            "replacement", f"{rule.replacement!r} is invalid 'replacement' for {action} action"
        )
    if action in (LABELDROP, LABELKEEP):
        for name, is_set in (
            ("source_labels", bool(rule.source_labels)),
            ("target_label", bool(target)),
            ("modulus", rule.modulus != 0),
            ("separator", rule.separator != DEFAULT_SEPARATOR),
            ("replacement", rule.replacement != DEFAULT_REPLACEMENT),
        ):
            if is_set:
                raise RelabelConfigError(
                    name, f"{action} action requires only 'regex', and no other fields"
                )
    if action in (KEEPEQUAL, DROPEQUAL):
        for name, is_set in (
            ("regex", rule.regex != DEFAULT_REGEX),
            ("modulus", rule.modulus != 0),
            ("separator", rule.separator != DEFAULT_SEPARATOR),
            ("replacement", rule.replacement != DEFAULT_REPLACEMENT),
        ):
            if is_set:
                raise RelabelConfigError(
                    name,
                    f"{action} action requires only 'source_labels' and 'target_label', "
                    "and no other fields",
                )


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


def relabel(labels: Labels, rules: Sequence[Rule]) -> Labels | None:
    """Apply ``rules`` in order; None when the series is dropped."""
    current: dict[str, str] | None = None  # created on the first change
    for rule in rules:
        action = rule.action
        if action in (LABELMAP, LABELDROP, LABELKEEP):
            snapshot = labels if current is None else sorted(current.items())
            match_name = rule.pattern.match
            for name, value in snapshot:
                m = match_name(name)
                if action == LABELMAP:
                    if m is None:
                        continue
                    new_name = expand(rule.replacement, name, m)
                    if not new_name:
                        continue
                    if current is None:
                        current = dict(labels)
                    current[new_name] = value
                elif (m is not None) == (action == LABELDROP):
                    if current is None:
                        current = dict(labels)
                    del current[name]
            continue
        value = _source_value(rule, labels, current)
        if action == REPLACE:
            m = rule.pattern.match(value)
            if m is None:
                continue
            target = expand(rule.target_label, value, m)
            if not is_valid_label_name(target):
                continue
            if current is None:
                current = dict(labels)
            _set(current, target, expand(rule.replacement, value, m))
        elif action == KEEP:
            if rule.pattern.match(value) is None:
                return None
        elif action == DROP:
            if rule.pattern.match(value) is not None:
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
