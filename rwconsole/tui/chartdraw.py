"""Line charts drawn with braille dots: layout, scaling and rasterising, no widgets.

``draw`` turns a few series into rows of styled text runs: a title line with a
legend (wrapped onto rows of its own when the title leaves no room, so every
series is always named), a y axis with labels, the plot area (each terminal cell holds 2 × 4
braille dots) and an x axis with tick labels. The caller maps the style keys
to colours. The cost is linear in the number of points plus the plot area,
so a chart of an hour of one-second points redraws in a few milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Run = tuple[str, str]
"""A piece of a row: its text and a style key (``TITLE``, ``AXIS``, or a line's colour)."""

TITLE = "title"
AXIS = "axis"
PLAIN = ""
LEGEND_MARK = "━"

_BRAILLE_BASE = 0x2800
# Bit of the braille dot at (row within the cell from the top, column within the cell).
_DOT_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a chart: ``ys[i]`` at ``xs[i]`` (x ascending), drawn in ``colour``."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    colour: str


def draw(
    width: int,
    height: int,
    title: str,
    lines: Sequence[Line],
    *,
    x_range: tuple[float, float],
    x_ticks: Sequence[tuple[float, str]],
    y_max: float,
    y_label: Callable[[float], str],
    notes: Sequence[LegendNote] = (),
) -> list[list[Run]]:
    """Rows (top to bottom) of a ``width`` × ``height`` chart, each a list of runs.

    The y axis runs from 0 to ``y_max``; values outside are clipped, NaN skipped.
    Lines earlier in ``lines`` are drawn over later ones where they share a cell.
    ``notes`` are legend entries that are not drawn (e.g. a limit above the scale).
    """
    if width <= 0 or height <= 0:
        return []
    entries = [LegendNote(line.label, line.colour) for line in lines] + list(notes)
    rows: list[list[Run]] = _header_rows(width, max(1, height - 3), title, entries)
    y_labels = [y_label(y_max), y_label(y_max / 2), y_label(0.0)]
    gutter = max(len(label) for label in y_labels) + 1
    plot_width = width - gutter - 1
    plot_height = height - 2 - len(rows)
    if plot_width < 4 or plot_height < 1:
        rows.extend([[(" " * width, PLAIN)]] * (height - 1))
        return rows[:height]
    bits, owners = _rasterise(plot_width, plot_height, lines, x_range, y_max)
    colours = [line.colour for line in lines]
    label_at = {0: y_labels[0], plot_height // 2: y_labels[1], plot_height - 1: y_labels[2]}
    for row in range(plot_height):
        label = label_at.get(row)
        axis = (label.rjust(gutter - 1) + " ┤") if label is not None else " " * gutter + "│"
        runs: list[Run] = [(axis, AXIS)]
        runs.extend(_plot_runs(bits[row], owners[row], colours))
        rows.append(runs)
    rows.extend(_x_axis(gutter, plot_width, x_range, x_ticks))
    return rows[:height]


@dataclass(frozen=True, slots=True)
class LegendNote:
    """A legend entry: a label after a mark in ``colour`` (no mark when ``colour`` is empty)."""

    label: str
    colour: str = ""


def _piece(entry: LegendNote, size: int | None) -> list[Run]:
    label = entry.label if size is None or len(entry.label) <= size else entry.label[:size]
    if not entry.colour:
        return [(label, AXIS)]
    return [(LEGEND_MARK, entry.colour), (f" {label}", PLAIN)]


def _length(runs: Sequence[Run]) -> int:
    return sum(len(text) for text, _key in runs)


def _pad(runs: list[Run], width: int) -> list[Run]:
    used = _length(runs)
    if used < width:
        runs.append((" " * (width - used), PLAIN))
    return runs


def _header_rows(
    width: int, max_rows: int, title: str, entries: Sequence[LegendNote]
) -> list[list[Run]]:
    """The title with the legend beside it, or the legend wrapped onto rows below it.

    Every entry stays named: labels are shortened only when even the wrapped
    legend would need more than ``max_rows`` rows in all.
    """
    pieces = [_piece(entry, None) for entry in entries]
    one_row: list[Run] = [(title, TITLE)]
    for piece in pieces:
        one_row += [("  ", PLAIN), *piece]
    if _length(one_row) <= width:
        return [_pad(one_row, width)]
    longest = max((len(entry.label) for entry in entries), default=0)
    for size in (None, *range(longest - 1, 0, -1)):
        legend = _wrap([_piece(entry, size) for entry in entries], width)
        if legend is not None and 1 + len(legend) <= max_rows:
            return [_pad([(title[:width], TITLE)], width), *legend]
    return [_pad([(title[:width], TITLE)], width)]  # too small for any legend


def _wrap(pieces: Sequence[list[Run]], width: int) -> list[list[Run]] | None:
    """Pieces laid out in rows of ``width`` (None if one piece alone is wider)."""
    rows: list[list[Run]] = []
    row: list[Run] = []
    for piece in pieces:
        size = _length(piece)
        if size > width:
            return None
        if row and _length(row) + 2 + size > width:
            rows.append(_pad(row, width))
            row = []
        row += ([("  ", PLAIN)] if row else []) + piece
    if row:
        rows.append(_pad(row, width))
    return rows


def _rasterise(
    plot_width: int,
    plot_height: int,
    lines: Sequence[Line],
    x_range: tuple[float, float],
    y_max: float,
) -> tuple[list[list[int]], list[list[int]]]:
    """Braille bits and the index of the line that owns each cell, row by row."""
    dots_x = plot_width * 2
    dots_y = plot_height * 4
    bits = [[0] * plot_width for _ in range(plot_height)]
    owners = [[-1] * plot_width for _ in range(plot_height)]
    x0, x1 = x_range
    x_scale = (dots_x - 1) / (x1 - x0) if x1 > x0 else 0.0
    y_scale = (dots_y - 1) / y_max if y_max > 0 else 0.0
    top = dots_y - 1

    # Later lines first, so the first line ends up on top.
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        columns = _column_peaks(line, x0, x_scale, y_scale, dots_x, top)
        previous: tuple[int, int] | None = None
        for column, y in enumerate(columns):
            if y < 0:
                continue
            if previous is None:
                _set(bits, owners, column, y, top, index)
            else:
                _segment(bits, owners, previous, (column, y), top, index)
            previous = (column, y)
    return bits, owners


def _column_peaks(
    line: Line, x0: float, x_scale: float, y_scale: float, dots_x: int, top: int
) -> list[int]:
    """Per dot column the highest dot row any point falls on (-1: no point)."""
    peaks = [-1] * dots_x
    xs, ys = line.xs, line.ys
    step = len(xs) // (2 * dots_x)
    if step >= 2 and not any(y != y for y in ys):
        # Far more points than columns: keep each bucket's peak (C-level max) first.
        end = len(xs) - len(xs) % step
        ys = [max(ys[i : i + step]) for i in range(0, end, step)] + list(ys[end:])
        xs = list(xs[step - 1 : end : step]) + list(xs[end:])
    for x, y in zip(xs, ys, strict=False):
        if y != y:  # NaN
            continue
        column = round((x - x0) * x_scale)
        if column < 0 or column >= dots_x:
            continue
        row = round(y * y_scale)
        row = 0 if row < 0 else (top if row > top else row)
        if row > peaks[column]:
            peaks[column] = row
    return peaks


def _segment(
    bits: list[list[int]],
    owners: list[list[int]],
    start: tuple[int, int],
    end: tuple[int, int],
    top: int,
    owner: int,
) -> None:
    """A connected line from ``start`` (already drawn) to ``end``, column by column."""
    (x0, y0), (x1, y1) = start, end
    span = x1 - x0
    last = y0
    for step in range(1, span + 1):
        y = y0 + round((y1 - y0) * step / span)
        low, high = (last + 1, y) if y > last else ((y, last - 1) if y < last else (y, y))
        for dot_y in range(low, high + 1):
            _set(bits, owners, x0 + step, dot_y, top, owner)
        last = y


def _set(
    bits: list[list[int]], owners: list[list[int]], x: int, y: int, top: int, owner: int
) -> None:
    from_top = top - y
    row = from_top >> 2
    column = x >> 1
    bits[row][column] |= _DOT_BITS[from_top & 3][x & 1]
    owners[row][column] = owner


def _plot_runs(bits: list[int], owners: list[int], colours: list[str]) -> list[Run]:
    runs: list[Run] = []
    text: list[str] = []
    current = -2
    for cell_bits, owner in zip(bits, owners, strict=True):
        if owner != current and text:
            runs.append(("".join(text), colours[current] if current >= 0 else PLAIN))
            text = []
        current = owner
        text.append(chr(_BRAILLE_BASE + cell_bits) if cell_bits else " ")
    if text:
        runs.append(("".join(text), colours[current] if current >= 0 else PLAIN))
    return runs


def _x_axis(
    gutter: int,
    plot_width: int,
    x_range: tuple[float, float],
    x_ticks: Sequence[tuple[float, str]],
) -> list[list[Run]]:
    x0, x1 = x_range
    span = x1 - x0
    axis = ["─"] * plot_width
    labels = [" "] * plot_width
    free_from = 0
    for value, text in x_ticks:
        if span <= 0 or not math.isfinite(value) or not x0 <= value <= x1:
            continue
        column = round((value - x0) / span * (plot_width - 1))
        axis[column] = "┬"
        start = min(max(column - len(text) // 2, 0), plot_width - len(text))
        if start < free_from or start < 0:
            continue  # would overlap the previous label
        labels[start : start + len(text)] = list(text)
        free_from = start + len(text) + 1
    return [
        [(" " * gutter + "└" + "".join(axis), AXIS)],
        [(" " * (gutter + 1) + "".join(labels), AXIS)],
    ]
