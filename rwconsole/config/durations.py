"""Go-style durations: parse ``"1h30m"`` into float seconds and format them back.

The accepted syntax is Go's ``time.ParseDuration`` (what Alloy uses): a sequence
of decimal numbers, each with a unit ``h``, ``m``, ``s``, ``ms``, ``us``/``µs``
or ``ns``, e.g. ``"30s"``, ``"1h30m"``, ``"1.5h"``, ``"250ms"``; a bare ``"0"``
is zero. Negative durations are rejected because no setting accepts them.
Formatting gives the shortest exact form with the largest units first
(``90.0`` → ``"1m30s"``, ``0.03`` → ``"30ms"``, ``0`` → ``"0s"``), which parses
back to the same number of nanoseconds.
"""

from __future__ import annotations

import re

_NS_PER_UNIT: dict[str, int] = {
    "h": 3_600_000_000_000,
    "m": 60_000_000_000,
    "s": 1_000_000_000,
    "ms": 1_000_000,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ns": 1,
}
_FORMAT_UNITS: tuple[tuple[str, int], ...] = (
    ("h", _NS_PER_UNIT["h"]),
    ("m", _NS_PER_UNIT["m"]),
    ("s", _NS_PER_UNIT["s"]),
    ("ms", _NS_PER_UNIT["ms"]),
    ("us", _NS_PER_UNIT["us"]),
    ("ns", 1),
)
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    """A string is not a valid Go-style duration."""


def parse_duration(text: str) -> float:
    """Return the duration ``text`` (e.g. ``"1m30s"``) in seconds."""
    return parse_duration_ns(text) / 1e9


def parse_duration_ns(text: str) -> int:
    """Return the duration ``text`` in whole nanoseconds (exact)."""
    if text == "0":
        return 0
    if text.startswith("-"):
        raise DurationError(f"negative duration {text!r} is not allowed")
    body = text[1:] if text.startswith("+") else text
    if not body:
        raise DurationError(f"invalid duration {text!r}")
    total = 0
    pos = 0
    while pos < len(body):
        match = _PART.match(body, pos)
        if match is None:
            if body[pos].isdigit() or body[pos] == ".":
                raise DurationError(f"missing unit in duration {text!r} (use h, m, s, ms, us, ns)")
            raise DurationError(f"invalid duration {text!r}")
        number, unit = match.groups()
        whole, _, frac = number.partition(".")
        scale = _NS_PER_UNIT[unit]
        total += int(whole or "0") * scale
        if frac:
            # Integer arithmetic keeps "1.1s" exact instead of 1.0999999s.
            total += int(frac) * scale // 10 ** len(frac)
        pos = match.end()
    return total


def format_duration(seconds: float) -> str:
    """Format ``seconds`` as the shortest Go-style duration string."""
    if seconds < 0:
        raise DurationError(f"negative duration {seconds!r} cannot be formatted")
    return format_duration_ns(round(seconds * 1e9))


def format_duration_ns(nanoseconds: int) -> str:
    """Format whole nanoseconds as the shortest Go-style duration string."""
    if nanoseconds == 0:
        return "0s"
    parts: list[str] = []
    rest = nanoseconds
    for unit, size in _FORMAT_UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
