"""The steady-state shortcut of scraping: ``SteadyShape``.

Learned from a body the parser (``rwconsole.sources.textparse``) accepted, a
shape recognises a later body that differs only in its sample values and
converts just those values, in bulk, without looking at lines in Python. It
keeps the body's non-value text (from which ``keys()`` rebuilds the series
keys), and shapes of the same layout share one copy of it.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Sequence
from itertools import compress
from typing import TypeVar

from rwconsole.sources.textparse import Format, Payload

_T = TypeVar("_T")
_WHITESPACE = b" \t\n\r\x0b\x0c"
"""What ``bytes.split()`` splits on."""
_NOT_WHITESPACE = bytes(c for c in range(256) if c not in _WHITESPACE)
_FIRST = operator.itemgetter(0)


def _flags(ones: bytes) -> bytes:
    """A ``bytes.translate`` table mapping the bytes in ``ones`` to 1 and all others to 0."""
    return bytes(1 if c in ones else 0 for c in range(256))


_NEWLINE_FLAGS = _flags(b"\n")
_NOT_NEWLINE_FLAGS = _flags(bytes(c for c in range(256) if c != ord("\n")))
_SAMPLE_FLAGS = _flags(bytes(c for c in range(256) if c != ord("#")))
_FLIP = _flags(b"\x00")


_INDEX_INTS: list[int] = []
"""``_INDEX_INTS[i] == i``: the int objects every picker's indices are drawn from.

An index past the small-int cache is an object of its own (32 bytes); drawn
from here, the pickers of every shape hold 8-byte references to one set.
"""


def _shared_ints(indices: Sequence[int]) -> list[int]:
    """``indices`` (ascending) as references into ``_INDEX_INTS``."""
    global _INDEX_INTS
    table = _INDEX_INTS
    if indices and indices[-1] >= len(table):
        # A new list rather than extend(): a shape may be learned in a worker thread.
        top = (indices[-1] | 4095) + 1
        table = _INDEX_INTS = table + list(range(len(table), top))
    return list(map(table.__getitem__, indices))


def _picker(indices: Sequence[int]) -> Callable[[Sequence[_T]], tuple[_T, ...]]:
    """A C-level ``lambda seq: tuple(seq[i] for i in indices)`` (itemgetter, made uniform).

    ``indices`` must be ascending.
    """
    if len(indices) >= 2:
        return operator.itemgetter(*_shared_ints(indices))
    if len(indices) == 1:
        index = indices[0]
        return lambda seq: (seq[index],)
    return lambda seq: ()


class SteadyShape:
    """The layout of one accepted body, to recognise the next body with new values only.

    A body qualifies when its whitespace is regular (one character between tokens,
    no blank lines, a final newline) and every sample line is exactly ``<series
    key> <value>`` (no timestamp, no exemplar). ``values(data, fmt)`` then returns
    the sample values of a later body when that body has the same tokens in the
    same layout except for the value tokens, and None otherwise, in which case
    the caller parses the body in full. The values are what ``parse`` would
    return for it, in the same order.

    Why equal layouts are enough: the token count, the sequence of whitespace
    characters and a final newline together force every gap to be the same single
    character as before, so the new body is the old one with only the value
    tokens replaced; a replacement that ``float()`` accepts (and without ``_``,
    which the parser refuses) changes nothing else the parser derives.
    """

    __slots__ = (
        "__weakref__",
        "_pick_rest",
        "_pick_values",
        "_rest",
        "_skeleton",
        "_tokens",
        "count",
        "fmt",
    )

    def __init__(
        self,
        fmt: Format,
        tokens: list[bytes],
        skeleton: bytes,
        value_indices: list[int],
        rest_indices: list[int],
    ) -> None:
        self.fmt = fmt
        self.count = len(value_indices)
        """Number of sample lines."""
        self._tokens = len(tokens)
        self._skeleton = skeleton
        self._pick_values = _picker(value_indices)
        self._pick_rest = _picker(rest_indices)
        self._rest = b"\n".join(self._pick_rest(tokens))
        self._share_layout()

    def _share_layout(self) -> None:
        """Hold the same objects as a live shape of the same layout, if there is one.

        Targets that expose the same series lines (replicas of one service, say)
        then keep one copy of the text between them. Equal ``fmt``, token count,
        skeleton and non-value tokens make the whole layout equal: the value
        positions follow from the skeleton and from which lines start with ``#``.
        """
        twin = _LAYOUTS.get(self._rest)
        if twin is None:
            _LAYOUTS[self._rest] = self
        elif (twin.fmt, twin._tokens, twin._skeleton) == (self.fmt, self._tokens, self._skeleton):
            self._skeleton = twin._skeleton
            self._pick_values = twin._pick_values
            self._pick_rest = twin._pick_rest
            self._rest = twin._rest

    @classmethod
    def learn(cls, data: bytes, fmt: Format, payload: Payload) -> SteadyShape | None:
        """The shape of ``data`` that ``parse(data, fmt)`` turned into ``payload``.

        None when the body does not qualify (see the class docstring).
        """
        keys = payload.keys
        if payload.timestamps or payload.exemplars or not keys:
            return None
        if not isinstance(data, bytes) or not data.endswith(b"\n") or data[:1].isspace():
            return None
        tokens = data.split()
        skeleton = data.translate(None, _NOT_WHITESPACE)
        count = len(tokens)
        if len(skeleton) != count:
            return None  # a longer whitespace run somewhere (blank line, double space, ...)
        # With single-character gaps, skeleton[i] is the character after token i, so the
        # tokens followed by a newline end the lines, one per line (no blank lines).
        ends = list(compress(range(count), skeleton.translate(_NEWLINE_FLAGS)))
        lines = data.split(b"\n")
        del lines[-1]
        is_sample = bytes(map(_FIRST, lines)).translate(_SAMPLE_FLAGS)
        value_indices = list(compress(ends, is_sample))
        if len(value_indices) != len(keys):
            return None
        values = _picker(value_indices)(tokens)
        # Every sample line must be exactly "<key> <value>": compare all of them at once.
        expected: list[bytes] = [b"", b" ", b"", b"\n"] * len(keys)
        expected[0::4] = map(str.encode, keys)
        expected[2::4] = values
        if b"".join(expected) != b"\n".join(compress(lines, is_sample)) + b"\n":
            return None
        rest = bytearray(skeleton.translate(_NOT_NEWLINE_FLAGS))
        for index in compress(ends, is_sample.translate(_FLIP)):
            rest[index] = 1  # the last token of a comment line is not a value
        return cls(fmt, tokens, skeleton, value_indices, list(compress(range(count), rest)))

    def keys(self) -> list[str]:
        """The series keys of the body this shape was learned from, in order.

        What ``parse`` returned as ``keys`` for that body, rebuilt from the kept
        non-value tokens and the whitespace between them (so a caller need not
        keep the keys themselves while the shape holds).
        """
        rest = self._rest.split(b"\n")
        skeleton = self._skeleton
        keys: list[str] = []
        token = 0  # index of the line's first token in the body
        kept = 0  # index of the line's first token in ``rest``
        for end in compress(range(len(skeleton)), skeleton.translate(_NEWLINE_FLAGS)):
            count = end - token + 1
            if rest[kept][:1] == b"#":
                kept += count
            elif count == 2:  # "<key> <value>", the usual line
                keys.append(rest[kept].decode())
                kept += 1
            else:  # a key with whitespace inside: put it back between its tokens
                words = rest[kept : kept + count - 1]
                gaps = [skeleton[i : i + 1] for i in range(token, end - 1)]
                parts = [b""] * (2 * len(words) - 1)
                parts[0::2] = words
                parts[1::2] = gaps
                keys.append(b"".join(parts).decode())
                kept += count - 1
            token = end + 1
        return keys

    def values(self, data: bytes, fmt: Format) -> list[float] | None:
        """The sample values of ``data`` if it has this shape, else None."""
        if fmt is not self.fmt or not data.endswith(b"\n"):
            return None
        tokens = data.split()
        if len(tokens) != self._tokens:
            return None
        if data.translate(None, _NOT_WHITESPACE) != self._skeleton:
            return None
        if b"\n".join(self._pick_rest(tokens)) != self._rest:
            return None
        return _to_floats(self._pick_values(tokens))


_LAYOUTS: weakref.WeakValueDictionary[bytes, SteadyShape] = weakref.WeakValueDictionary()
"""A live shape by its non-value tokens, for shapes of the same layout to share."""


def _to_floats(tokens: Sequence[bytes]) -> list[float] | None:
    """``float()`` of every token as the parser converts values, or None if one is refused."""
    joined = b"".join(tokens)
    if joined.isdigit():
        # Plain unsigned integers (the common counter): int() is much cheaper than the
        # decimal-to-binary float conversion, and float(int(t)) == float(t) for them.
        try:
            return list(map(float, map(int, tokens)))
        except (ValueError, OverflowError):  # past int()'s digit limit or float's range
            pass
    if b"_" in joined:
        return None
    try:
        return list(map(float, tokens))
    except ValueError:
        return None
