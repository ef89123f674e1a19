"""Regular expressions with Prometheus' semantics: RE2, fully anchored, Go's limits.

Relabel rules, their validation at config load and series selectors all
compile through ``compile_anchored``, so a pattern is accepted or refused the
same way everywhere.
"""

from __future__ import annotations

from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # errors are reported to the user, not printed by RE2


class RegexError(ValueError):
    """The pattern is not valid; ``reason`` says why (RE2's words, or Go's limits)."""

    def __init__(self, regex: str, reason: str) -> None:
        super().__init__(f"invalid regular expression {regex!r}: {reason}")
        self.regex = regex
        self.reason = reason


def compile_anchored(regex: str) -> Any:
    """Compile ``regex`` as Prometheus does: ``^(?s:regex)$`` with RE2 semantics."""
    if _has_any_byte_escape(regex):
        # Go's regexp rejects \C (match any byte); RE2 in C++ would accept it.
        raise RegexError(regex, "\\C is not supported")
    try:
        return re2.compile("^(?s:" + regex + ")$", _OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else "syntax error"
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        raise RegexError(regex, str(detail)) from None


def _has_any_byte_escape(regex: str) -> bool:
    i = regex.find("\\")
    while i >= 0 and i + 1 < len(regex):
        if regex[i + 1] == "C":
            return True
        i = regex.find("\\", i + 2)
    return False
