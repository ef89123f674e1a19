"""Chunks: the unit of data a queue takes from the WAL.

A chunk is what one WAL record (or one commit handed over in memory) holds for
sending, in columns, together with the WAL position just after it. Queues
deliver chunks in order and persist the position of the last chunk whose every
item is finished, which is what makes restarts resume without loss.

Start timestamps (OpenMetrics ``_created``, remote write 2.0 ``start_timestamp``,
WAL record types 11–13) are an optional column: ``start_timestamps`` is None
until a record or commit with one is added, so chunks without any cost nothing
per sample. Histograms carry theirs in ``HistogramSample.start_timestamp``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat

from rwconsole.model import Exemplar, HistogramSample
from rwconsole.wal.segment import Position

START: Position = (0, 0)
ITEM_KINDS = ("samples", "exemplars", "histograms")
"""The kinds of item a chunk holds, in the order counts and columns of them are kept."""


@dataclass(slots=True)
class Chunk:
    end: Position
    refs: list[int] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    exemplars: list[Exemplar] = field(default_factory=list)
    histograms: list[HistogramSample] = field(default_factory=list)
    start_timestamps: list[int] | None = None
    """Per sample (0 = none), aligned with ``refs``; None when no sample has one."""

    @property
    def item_count(self) -> int:
        return len(self.refs) + len(self.exemplars) + len(self.histograms)

    def add_starts(self, added: int, starts: Iterable[int] | None) -> None:
        """Keep ``start_timestamps`` aligned after ``added`` samples were appended to
        the columns; ``starts`` are theirs (None: they have none)."""
        column = self.start_timestamps
        if starts is None:
            if column is not None:
                column.extend(repeat(0, added))
            return
        if column is None:
            column = self.start_timestamps = [0] * (len(self.refs) - added)
        column.extend(starts)
