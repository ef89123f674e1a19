"""Label sets: the one representation of a series' identity used by every layer.

A label set is a tuple of ``(name, value)`` pairs sorted by name (byte order, as
Go compares strings), without empty values and without repeated names. Tuples
are hashable and cheap to compare, so they serve as dictionary keys for series
caches. ``make_labels`` is the only constructor that normalises; code that
already holds a normalised tuple passes it along unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from itertools import pairwise

Labels = tuple[tuple[str, str], ...]

METRIC_NAME = "__name__"


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*", re.ASCII)


def is_valid_label_name(name: str) -> bool:
    """Legacy Prometheus label-name syntax (what Alloy and remote write 1.0 accept)."""
    return _LABEL_NAME.fullmatch(name) is not None


class DuplicateLabelError(ValueError):
    """A label name appears more than once in one label set."""


def make_labels(pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> Labels:
    """Return the normalised label set for ``pairs``.

    Empty values are dropped (an empty value means the label is absent); a
    repeated name raises ``DuplicateLabelError``.
    """
    if type(pairs) is dict:
        # Names are unique already: no check for repeats (this runs per new series).
        if "" in pairs.values():
            return tuple(sorted((name, value) for name, value in pairs.items() if value != ""))
        return tuple(sorted(pairs.items()))
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    result = sorted((name, value) for name, value in items if value != "")
    for (left, _), (right, _) in pairwise(result):
        if left == right:
            raise DuplicateLabelError(f"duplicate label name {left!r}")
    return tuple(result)


def get(labels: Labels, name: str, default: str = "") -> str:
    """Return the value of ``name`` in ``labels`` (``default`` when absent)."""
    for key, value in labels:
        if key == name:
            return value
    return default


def metric_name(labels: Labels) -> str:
    """Return the ``__name__`` of a label set, or ``""``."""
    return get(labels, METRIC_NAME)


def escape_value(value: str) -> str:
    """Escape a label value for the text formats (backslash, newline, double quote)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_labels(labels: Labels) -> str:
    """Format as ``{__name__="up", job="node"}``, the form promtool prints."""
    inner = ", ".join(f'{name}="{escape_value(value)}"' for name, value in labels)
    return "{" + inner + "}"
