"""Items a queue delivered ahead of its delivered position, so a restart skips them.

The delivered position moves chunk by chunk, and only past chunks whose every
item is finished. A batch can end inside a chunk and shards finish
independently, so when a queue stops while its receiver does not accept,
items beyond the position are already delivered; resuming from the position
alone would send them twice.

``AheadLog`` keeps, for each batch finished beyond the position, which items
it held, until the position passes every chunk the batch took from. At stop
they become a ``DeliveredAhead``: those items, counted, and the end of the
last chunk read, up to which they lie. A queue started from the saved
position with it skips each of them once while it reads up to that end.

An item is named by its kind, WAL series ref and timestamp. The pairs are
counted, so a pair the WAL holds twice is skipped only as often as it was
delivered. ``pack_items`` stores a batch's pairs as two fixed-width columns
(refs as uint64, timestamps as int64, as in the WAL), snappy-compressed: about
4.5 bytes per sample for a scrape, against some 12 of the request body. Delta
coding would make it a fifth of that, at twice the CPU, which every batch
parked during an outage would pay.
"""

from __future__ import annotations

import base64
import struct
import sys
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Generic, TypeVar

from rwconsole.protocol import decode, encode
from rwconsole.remote.chunks import ITEM_KINDS, Chunk, Position

Column = tuple[Sequence[int], Sequence[int]]
"""(refs, timestamps) of one kind's items, aligned."""
BatchItems = tuple[Column, Column, Column]
"""A batch's items by kind (``ITEM_KINDS``)."""

_T = TypeVar("_T")
_COUNT = struct.Struct("<I")
_FORMAT = 1
_COLUMNS = (("refs", "Q"), ("timestamps", "q"))
"""Name and array type of each column: WAL series refs are uint64, timestamps int64."""


def pack_items(items: BatchItems) -> bytes:
    """Encode a batch's items."""
    parts = [bytes((_FORMAT,))]
    for kind in items:
        parts.append(_COUNT.pack(len(kind[0])))
        for column, (_, typecode) in zip(kind, _COLUMNS, strict=True):
            values = array(typecode, column)
            if sys.byteorder != "little":
                values.byteswap()
            parts.append(values.tobytes())
    return encode.compress(b"".join(parts))


def unpack_items(blob: bytes) -> BatchItems:
    """Decode ``pack_items``' output; raises ``ValueError`` naming what is wrong."""
    try:
        raw = decode.decompress(blob)
    except Exception as err:  # snappy reports damage with its own exception types
        raise ValueError(f"not snappy-compressed item columns ({err})") from None
    if not raw or raw[0] != _FORMAT:
        raise ValueError(f"unknown item column format {raw[:1].hex() or 'empty'}")
    offset = 1
    kinds: list[Column] = []
    for kind in ITEM_KINDS:
        if offset + _COUNT.size > len(raw):
            raise ValueError(f"{kind}: count cut off at byte {offset}")
        (n,) = _COUNT.unpack_from(raw, offset)
        offset += _COUNT.size
        columns = []
        for name, typecode in _COLUMNS:
            end = offset + 8 * n
            if end > len(raw):
                raise ValueError(f"{kind} {name}: {n} values need {8 * n} bytes at byte {offset}")
            values = array(typecode, raw[offset:end])
            if sys.byteorder != "little":
                values.byteswap()
            columns.append(values.tolist())
            offset = end
        kinds.append((columns[0], columns[1]))
    if offset != len(raw):
        raise ValueError(f"{len(raw) - offset} bytes after the item columns")
    return kinds[0], kinds[1], kinds[2]


@dataclass
class DeliveredAhead:
    """Items delivered beyond a saved position, lying before ``until``."""

    until: Position
    counts: tuple[dict[tuple[int, int], int], ...] = field(
        default_factory=lambda: tuple({} for _ in ITEM_KINDS)
    )
    """Per kind, (ref, timestamp) -> how many times it was delivered."""

    @classmethod
    def of(cls, until: Position, batches: Iterable[BatchItems]) -> DeliveredAhead:
        """The items of ``batches``, lying before ``until``."""
        ahead = cls(until)
        for items in batches:
            ahead._add(items)
        return ahead

    def _add(self, items: BatchItems) -> None:
        for counts, (refs, timestamps) in zip(self.counts, items, strict=True):
            for key in zip(refs, timestamps, strict=True):
                counts[key] = counts.get(key, 0) + 1

    def merged(self, other: DeliveredAhead | None) -> DeliveredAhead:
        """Both sets of items, up to the later of the two ends."""
        if other is None:
            return self
        merged = DeliveredAhead(max(self.until, other.until))
        for ahead in (self, other):
            for into, counts in zip(merged.counts, ahead.counts, strict=True):
                for key, n in counts.items():
                    into[key] = into.get(key, 0) + n
        return merged

    def copy(self) -> DeliveredAhead:
        return DeliveredAhead(self.until).merged(self)

    def total(self) -> int:
        return sum(sum(counts.values()) for counts in self.counts)

    def skip(self, chunk: Chunk) -> tuple[Chunk, int]:
        """``chunk`` without the items delivered already (each skipped once), and how
        many it left out."""
        samples, exemplars, histograms = self.counts
        keep = _keep(samples, zip(chunk.refs, chunk.timestamps, strict=True)) if samples else None
        keep_ex = _keep(exemplars, ((e.ref, e.timestamp) for e in chunk.exemplars))
        keep_h = _keep(histograms, ((h.ref, h.timestamp) for h in chunk.histograms))
        if keep is None and keep_ex is None and keep_h is None:
            return chunk, 0
        skipped = 0
        out = Chunk(end=chunk.end)
        if keep is None:
            out.refs, out.timestamps, out.values = chunk.refs, chunk.timestamps, chunk.values
            out.start_timestamps = chunk.start_timestamps
        else:
            skipped += len(keep) - sum(keep)
            out.refs = list(compress(chunk.refs, keep))
            out.timestamps = list(compress(chunk.timestamps, keep))
            out.values = list(compress(chunk.values, keep))
            if chunk.start_timestamps is not None:
                out.start_timestamps = list(compress(chunk.start_timestamps, keep))
        out.exemplars = chunk.exemplars
        if keep_ex is not None:
            skipped += len(keep_ex) - sum(keep_ex)
            out.exemplars = list(compress(chunk.exemplars, keep_ex))
        out.histograms = chunk.histograms
        if keep_h is not None:
            skipped += len(keep_h) - sum(keep_h)
            out.histograms = list(compress(chunk.histograms, keep_h))
        return out, skipped

    def to_json(self) -> dict[str, object]:
        columns = []
        for counts in self.counts:
            refs: list[int] = []
            timestamps: list[int] = []
            for (ref, ts), n in sorted(counts.items()):
                refs.extend([ref] * n)
                timestamps.extend([ts] * n)
            columns.append((refs, timestamps))
        blob = pack_items((columns[0], columns[1], columns[2]))
        return {
            "until": list(self.until),
            "items": self.total(),
            "columns": base64.b64encode(blob).decode(),
        }

    @classmethod
    def from_json(cls, data: object) -> DeliveredAhead:
        """The inverse of ``to_json``; raises ``ValueError`` naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"expected an object, not {type(data).__name__}")
        until = data.get("until")
        if not (
            isinstance(until, list)
            and len(until) == 2
            and all(isinstance(v, int) and v >= 0 for v in until)
        ):
            raise ValueError(f"until: expected [segment, offset], not {until!r}")
        columns = data.get("columns")
        if not isinstance(columns, str):
            raise ValueError("columns: missing")
        try:
            blob = base64.b64decode(columns, validate=True)
        except ValueError as err:
            raise ValueError(f"columns: not base64 ({err})") from None
        try:
            items = unpack_items(blob)
        except ValueError as err:
            raise ValueError(f"columns: {err}") from None
        ahead = cls.of((until[0], until[1]), [items])
        if data.get("items") != ahead.total():
            raise ValueError(f"items: says {data.get('items')!r}, the columns hold {ahead.total()}")
        return ahead


def _keep(counts: dict[tuple[int, int], int], keys: Iterable[tuple[int, int]]) -> list[bool] | None:
    """Per key, False for one that ``counts`` still holds (taking it once), else True;
    None when none is held."""
    if not counts:
        return None
    keep: list[bool] = []
    found = False
    for key in keys:
        n = counts.get(key)
        if n:
            found = True
            if n == 1:
                del counts[key]
            else:
                counts[key] = n - 1
            keep.append(False)
        else:
            keep.append(True)
    return keep if found else None


class AheadLog(Generic[_T]):
    """Batches finished beyond the delivered position, until the position passes them.

    An entry is a batch's items, or a token (``_T``) from which ``collect`` can
    get them (a parked batch keeps its items in the spool, not in memory).
    """

    def __init__(self) -> None:
        self._entries: deque[tuple[int, BatchItems | None, _T | None]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, bound: int, items: BatchItems | None = None, token: _T | None = None) -> None:
        """A batch finished whose chunks all have sequence numbers below ``bound``."""
        self._entries.append((bound, items, token))

    def prune(self, delivered_seq: int) -> list[_T]:
        """Forget the oldest batches every chunk of which up to ``delivered_seq`` covers;
        their tokens, to release. (Shards finish out of order: a passed batch behind
        a newer one waits for the next prune, and ``collect`` leaves it out.)"""
        entries = self._entries
        released: list[_T] = []
        while entries and entries[0][0] <= delivered_seq + 1:
            token = entries.popleft()[2]
            if token is not None:
                released.append(token)
        return released

    def collect(
        self, until: Position, delivered_seq: int, resolve: Callable[[_T], BatchItems | None]
    ) -> DeliveredAhead:
        """The batches the position up to ``delivered_seq`` has not passed, as delivered
        ahead up to ``until``; empties the log. A token ``resolve`` cannot read is
        left out."""
        batches: list[BatchItems] = []
        for bound, items, token in self._entries:
            if bound <= delivered_seq + 1:
                continue
            if token is not None:
                items = resolve(token)
            if items is not None:
                batches.append(items)
        self._entries.clear()
        return DeliveredAhead.of(until, batches)
