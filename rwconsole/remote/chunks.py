"""Chunks: the unit of data a queue takes from the WAL.

A chunk is what one WAL record (or one commit handed over in memory) holds for
sending, in columns, together with the WAL position just after it. Queues
deliver chunks in order and persist the position of the last chunk whose every
item is finished, which is what makes restarts resume without loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rwconsole.model import Exemplar, HistogramSample
from rwconsole.wal.segment import Position

START: Position = (0, 0)


@dataclass(slots=True)
class Chunk:
    end: Position
    refs: list[int] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    exemplars: list[Exemplar] = field(default_factory=list)
    histograms: list[HistogramSample] = field(default_factory=list)

    @property
    def item_count(self) -> int:
        return len(self.refs) + len(self.exemplars) + len(self.histograms)
