"""Byte sizes: parse ``"512MiB"`` or ``"20GB"`` into bytes and format them back.

A size is a whole number of bytes (a TOML integer) or a string of a decimal
number and a unit: ``B``, the decimal ``kB``/``KB``, ``MB``, ``GB``, ``TB``
(powers of 1000) or the binary ``KiB``, ``MiB``, ``GiB``, ``TiB`` (powers of
1024); units are case-insensitive (``"512mib"``), a bare ``"0"`` is zero.
Fractions are allowed as long as the result is a whole number of bytes
(``"1.5GiB"``). Formatting gives the largest binary unit that is exact.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_FORMAT_UNITS = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))
_UNIT_HINT = "use B, KiB, MiB, GiB, kB, MB, GB"
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*")


class SizeError(ValueError):
    """A value is not a valid byte size."""


def parse_size(value: int | str) -> int:
    """Return the size ``value`` (``1048576``, ``"512MiB"``, ``"20GB"``) in bytes."""
    if isinstance(value, bool):
        raise SizeError(f"invalid size {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise SizeError(f"negative size {value} is not allowed")
        return value
    match = _SIZE.fullmatch(value)
    if match is None:
        raise SizeError(f"invalid size {value!r}")
    number, unit = match.groups()
    if not unit:
        # "2.0" is as ambiguous as "2": only zero needs no unit.
        if Decimal(number) != 0:
            raise SizeError(f"missing unit in size {value!r} ({_UNIT_HINT})")
        unit = "b"
    scale = _UNITS.get(unit.lower())
    if scale is None:
        raise SizeError(f"unknown unit {unit!r} in size {value!r} ({_UNIT_HINT})")
    try:
        exact = Decimal(number) * scale
    except InvalidOperation:
        raise SizeError(f"invalid size {value!r}") from None
    if exact != exact.to_integral_value():
        raise SizeError(f"size {value!r} is not a whole number of bytes")
    return int(exact)


def format_size(size: int) -> str:
    """``size`` bytes in the largest binary unit that is exact (``"512MiB"``), else bytes."""
    for unit, scale in _FORMAT_UNITS:
        if size and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"
