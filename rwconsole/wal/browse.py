"""WAL data for the console and the admin API, gathered with ``rwconsole.wal.tools``.

Every function here may take a while on a large WAL: the WAL screen runs them
in its helper process. They only read, except ``run_repair``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from rwconsole.labels import Labels
from rwconsole.selector import Selector, make_matcher
from rwconsole.wal import tools
from rwconsole.wal.segment import list_segments

MAX_SCAN_ITEMS = 2_000_000
MAX_SERIES_ROWS = 5000
MAX_DUMP_ROWS = 2000


@dataclass(slots=True)
class SeriesRow:
    labels: Labels
    samples: int = 0
    exemplars: int = 0
    histograms: int = 0
    first_ms: int = 0
    last_ms: int = 0
    last_value: float = 0.0


@dataclass(slots=True)
class SeriesBrowse:
    """Series matching a selector, with counts (bounded; ``truncated`` says so)."""

    rows: list[SeriesRow] = field(default_factory=list)
    scanned: int = 0
    truncated: str = ""
    problems: list[str] = field(default_factory=list)


def behind_bytes(wal_dir: str | Path, start: tuple[int, int], end: tuple[int, int]) -> int:
    """WAL bytes between two positions, from the segment files' sizes."""
    if start >= end:
        return 0
    if start[0] == end[0]:
        return end[1] - start[1]
    sizes = {s.index: s.size for s in list_segments(wal_dir)}
    total = max(0, sizes.get(start[0], start[1]) - start[1])
    for index in range(start[0] + 1, end[0]):
        total += sizes.get(index, 0)
    return total + end[1]


def browse_series(
    wal_dir: str | Path,
    selector: Selector | None,
    *,
    max_items: int = MAX_SCAN_ITEMS,
    max_series: int = MAX_SERIES_ROWS,
) -> SeriesBrowse:
    """The series matching ``selector`` with how many samples each has in the WAL."""
    result = SeriesBrowse()
    rows: dict[Labels, SeriesRow] = {}
    for item in tools.iter_dump(wal_dir, selector, problems=result.problems):
        result.scanned += 1
        row = rows.get(item.labels)
        if row is None:
            if len(rows) >= max_series:
                result.truncated = f"stopped at {max_series} series"
                break
            row = rows[item.labels] = SeriesRow(item.labels, first_ms=item.timestamp)
        if item.kind == "sample":
            row.samples += 1
            row.last_value = item.value
        elif item.kind == "exemplar":
            row.exemplars += 1
        else:
            row.histograms += 1
        row.first_ms = min(row.first_ms, item.timestamp)
        row.last_ms = max(row.last_ms, item.timestamp)
        if result.scanned >= max_items:
            result.truncated = f"stopped after {max_items} entries"
            break
    result.rows = sorted(rows.values(), key=lambda r: r.labels)
    return result


def series_dump(
    wal_dir: str | Path, labels: Labels, *, limit: int = MAX_DUMP_ROWS
) -> tuple[list[tools.DumpItem], int, list[str]]:
    """The newest ``limit`` entries of one series, their total count and any problems."""
    selector = Selector(tuple(make_matcher(name, "=", value) for name, value in labels))
    problems: list[str] = []
    newest: deque[tools.DumpItem] = deque(maxlen=limit)
    total = 0
    for item in tools.iter_dump(wal_dir, selector, problems=problems):
        if item.labels == labels:
            newest.append(item)
            total += 1
    return list(newest), total, problems
