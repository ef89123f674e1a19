"""Short human-readable formatting of numbers, rates, durations and times for the console."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any

from rwconsole.config import schema
from rwconsole.config.durations import format_duration

_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_BYTES = ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))


def number(value: float) -> str:
    """``1234567`` → ``"1.23M"``; small values keep up to one decimal."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    for size, suffix in _SI:
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.1f}"


def size(value: float) -> str:
    """A byte count with binary units."""
    for unit_size, suffix in _BYTES:
        if abs(value) >= unit_size:
            return f"{value / unit_size:.1f} {suffix}"
    return f"{int(value)} B"


def seconds(value: float) -> str:
    """A duration in seconds as ``"250ms"``, ``"4.2s"``, ``"3m12s"``."""
    if value <= 0:
        return "0s"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.1f}s"
    return format_duration(round(value))


def millis(value: float) -> str:
    """A short duration in milliseconds with 2 significant digits: ``"0.42ms"``, ``"31ms"``."""
    if value <= 0:
        return "0ms"
    ms = value * 1000
    if ms >= 1000:
        return seconds(value)
    return f"{ms:.2g}ms" if ms < 10 else f"{ms:.0f}ms"


def duration_field(value: float) -> str:
    """A queue_config duration exactly as it is written in the config file."""
    return format_duration(value)


def desired_shards(value: float) -> str:
    """Prometheus' unrounded desired shards, readable: ``0.0213`` → ``0.02``, ``3.46`` → ``3.5``."""
    if value is None or math.isnan(value) or value <= 0:
        return "0"
    if value < 0.01:
        return "<0.01"
    if value < 1:
        return f"{value:.2f}"
    if value < 10:
        return f"{value:.1f}"
    return f"{value:.0f}"


QUEUE_FIELDS = tuple(dataclasses.fields(schema.QueueConfig))


def field_kind(field: dataclasses.Field[Any]) -> str:
    """``duration``, ``bool`` or ``int``: how a queue_config field is written."""
    if field.metadata.get("kind") == "duration":
        return "duration"
    if field.type in ("bool", bool):
        return "bool"
    return "int"


QUEUE_KINDS = {f.name: field_kind(f) for f in QUEUE_FIELDS}


def config_value(kind: str, value: Any) -> str:
    """A queue_config value as it is written in the config file (``true``, ``30ms``)."""
    if kind == "duration":
        return duration_field(float(value))
    if kind == "bool":
        return "true" if value else "false"
    return str(value)


def queue_config(config: Mapping[str, Any]) -> str:
    """``key = value`` pairs in config syntax, comma-separated."""
    return ", ".join(
        f"{key} = {config_value(QUEUE_KINDS.get(key, 'int'), value)}"
        for key, value in config.items()
    )


def clock(timestamp: float) -> str:
    """Local wall-clock time ``HH:MM:SS``."""
    return time.strftime("%H:%M:%S", time.localtime(timestamp))


def timestamp_ms(value: int | None) -> str:
    """A millisecond Unix timestamp as local ``YYYY-MM-DD HH:MM:SS.mmm``."""
    if value is None:
        return "-"
    base = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value / 1000))
    return f"{base}.{value % 1000:03d}"


def position(pos: tuple[int, int]) -> str:
    """A WAL position ``(segment, offset)`` as ``"00000003:1234"``."""
    return f"{pos[0]:08d}:{pos[1]}"
