"""The time-series chart widget: series against "time before now", with axes and units.

``TimeSeriesChart`` keeps the data it was given and the rows ``chartdraw``
drew from it; it draws again only when the data, its size or the theme
changed, so a screen switch or an unrelated repaint costs nothing. Each dot
column keeps the largest value that falls on it, so short spikes stay visible
however long the window is.

The y axis fits the data, not its limits: reference series (min/max shards)
do not stretch it, and one above the scale is named in the legend with its
value instead of being drawn. The scale follows the newest part of the window
(``RECENT_SHARE``) and the 90th percentile of the rest, so an old spike (a
start-up burst) ages out of the axis instead of flattening everything after
it; while it is above the scale it is drawn at the top and its peak is named
in the legend.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.strip import Strip
from textual.widget import Widget

from rwconsole.tui import chartdraw
from rwconsole.tui import format as fmt


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart: values aligned with the chart's times."""

    label: str
    values: Sequence[float]
    colour: str = "primary"
    """A theme variable name (``primary``, ``warning``…) or a colour."""
    reference: bool = False
    """A limit to compare against (drawn when on the scale), not data that sets it."""


RECENT_SHARE = 0.25
"""The newest share of the window whose peak always fits on the y axis."""
OLD_PERCENTILE = 0.9


_TICK_STEPS = (5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)


def window_ticks(window: float) -> tuple[list[float], list[str]]:
    """Round x ticks from ``-window`` to ``0`` (at most six), labelled ``-5m`` … ``now``."""
    step = next((s for s in _TICK_STEPS if window / s <= 5), window)
    count = int(window // step)
    ticks = [-step * i for i in range(count, -1, -1)]
    labels = [("-" + fmt.duration_field(-t)) if t < 0 else "now" for t in ticks]
    return ticks, labels


class TimeSeriesChart(Widget):
    """A titled chart of series over the last ``window`` seconds."""

    DEFAULT_CSS = """
    TimeSeriesChart {
        height: 1fr;
        min-height: 8;
    }
    """

    def __init__(self, title: str, unit: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.chart_title = title
        self.unit = unit
        self._data: tuple[Sequence[float], list[Series], float, float] | None = None
        self._shown: tuple[object, ...] = ()
        self._version = 0
        self._strips: tuple[tuple[object, ...], list[Strip]] | None = None

    def show(
        self,
        times: Sequence[float],
        series: list[Series],
        *,
        now: float,
        window: float,
        source: str = "",
    ) -> None:
        """Plot ``series`` (values at ``times``) for ``now - window`` … ``now``.

        ``source`` names what the data is about (an endpoint): switching it redraws
        even when the times and labels are the same.
        """
        key = (source, now, window, len(times), tuple(s.label for s in series))
        if key == self._shown:
            return  # the same data again (e.g. the screen was shown again): keep the drawing
        self._shown = key
        self._data = (times, series, now, window)
        self._version += 1
        self.refresh()

    def render_line(self, y: int) -> Strip:
        strips = self._current_strips()
        if 0 <= y < len(strips):
            return strips[y]
        return Strip.blank(self.size.width)

    def _current_strips(self) -> list[Strip]:
        key = (self._version, self.size, self.app.theme)
        if self._strips is None or self._strips[0] != key:
            self._strips = (key, self._draw(self.rich_style))
        return self._strips[1]

    def _draw(self, base: Style) -> list[Strip]:
        width, height = self.size
        if self._data is None:
            title = f"{self.chart_title} ({self.unit}) — no data yet"
            times: Sequence[float] = ()
            series: list[Series] = []
            now, window = 0.0, 60.0
        else:
            times, series, now, window = self._data
            title = f"{self.chart_title} ({self.unit})"
        start = bisect.bisect_left(times, now - window)
        xs = [t - now for t in times[start:]]
        recent = bisect.bisect_left(xs, -window * RECENT_SHARE)
        data = [s for s in series if not s.reference]
        top, peak = _scale([s.values[start:] for s in data], recent)
        y_max = top * 1.1 if top > 0 else 1.0
        lines: list[chartdraw.Line] = []
        notes: list[chartdraw.LegendNote] = []
        for s in series:
            if not xs:
                break
            values = s.values[start:]
            level = _last(values)
            if s.reference and level is not None and level > y_max:
                notes.append(chartdraw.LegendNote(f"{s.label} {_axis_number(level)} ↑", s.colour))
            else:
                lines.append(chartdraw.Line(s.label, xs, values, s.colour))
        if peak > y_max:
            notes.append(chartdraw.LegendNote(f"↑ peak {_axis_number(peak)} (older)"))
        if not lines and self._data is not None:
            title += " — no data yet"
        ticks, labels = window_ticks(window)
        rows = chartdraw.draw(
            width,
            height,
            title,
            lines,
            x_range=(-window, 0.0),
            x_ticks=list(zip(ticks, labels, strict=True)),
            y_max=y_max,
            y_label=_axis_number,
            notes=notes,
        )
        styles = self._styles(base, series)
        return [
            Strip([Segment(text, styles.get(key, base)) for text, key in row], width)
            for row in rows
        ]

    def _styles(self, base: Style, series: list[Series]) -> dict[str, Style]:
        variables = self.app.theme_variables
        styles = {
            chartdraw.TITLE: base + Style(bold=True),
            chartdraw.AXIS: base + Style(dim=True),
        }
        for line in series:
            value = variables.get(line.colour, line.colour)
            try:
                colour = Color.parse(value)
            except Exception:
                colour = Color.parse("white")
            styles[line.colour] = base + Style(color=colour.rich_color)
        return styles


def _scale(columns: list[Sequence[float]], recent: int) -> tuple[float, float]:
    """The top of the y scale and the highest value of all (NaN skipped).

    The top covers every value from index ``recent`` on, and the 90th
    percentile of the older ones: a short old spike does not set it.
    """
    newest = [y for values in columns for y in values[recent:] if y == y]
    older = sorted(y for values in columns for y in values[:recent] if y == y)
    peak = max(newest + older[-1:], default=0.0)
    top = max(newest, default=0.0)
    if older:
        top = max(top, older[min(len(older) - 1, int(len(older) * OLD_PERCENTILE))])
    return top, peak


def _last(values: Sequence[float]) -> float | None:
    return next((y for y in reversed(values) if y == y), None)


def _axis_number(value: float) -> str:
    """Axis labels keep three significant digits, so 0.055 and 0.11 stay apart."""
    return fmt.number(value) if abs(value) >= 1000 else f"{value:.3g}"
