"""Time-series charts with axes and units, drawn with plotext inside Textual.

``TimeSeriesChart`` plots one or more series against "time before now" over a
chosen window. Long histories are reduced to about two points per terminal
cell (keeping each bucket's maximum, so short spikes stay visible) before
plotting, which keeps a redraw cheap however long the window is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from textual.app import RenderResult
from textual.color import Color
from textual_plotext import PlotextPlot

from rwconsole.tui import format as fmt


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart: values aligned with the chart's times."""

    label: str
    values: Sequence[float]
    colour: str = "primary"
    """A theme variable name (``primary``, ``warning``…) or a colour."""


def reduce_points(
    xs: Sequence[float], ys: Sequence[float], target: int
) -> tuple[list[float], list[float]]:
    """At most ``target`` points: each bucket keeps its last x and its largest y."""
    if len(xs) <= target or target <= 0:
        return list(xs), list(ys)
    step = math.ceil(len(xs) / target)
    out_x: list[float] = []
    out_y: list[float] = []
    for start in range(0, len(xs), step):
        out_x.append(xs[min(start + step, len(xs)) - 1])
        out_y.append(max(ys[start : start + step]))
    return out_x, out_y


_TICK_STEPS = (5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)


def window_ticks(window: float) -> tuple[list[float], list[str]]:
    """Round x ticks from ``-window`` to ``0`` (at most six), labelled ``-5m`` … ``now``."""
    step = next((s for s in _TICK_STEPS if window / s <= 5), window)
    count = int(window // step)
    ticks = [-step * i for i in range(count, -1, -1)]
    labels = [("-" + fmt.duration_field(-t)) if t < 0 else "now" for t in ticks]
    return ticks, labels


class TimeSeriesChart(PlotextPlot):
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
        self._rendered: tuple[tuple[object, ...], RenderResult] | None = None
        self._version = 0

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
        key = (source, now, window, len(times), tuple(s.label for s in series), self.app.theme)
        if key == self._shown:
            return  # the same data again (e.g. the screen was shown again): keep the drawing
        self._shown = key
        self._data = (times, series, now, window)
        self._replot()

    def render(self) -> RenderResult:
        # plotext rebuilds the whole figure on every render; a screen switch or an
        # unrelated repaint must not pay for that when nothing in the chart changed.
        key = (self._version, self.size, self.app.theme)
        if self._rendered is None or self._rendered[0] != key:
            self._rendered = (key, super().render())
        return self._rendered[1]

    def on_resize(self) -> None:
        if self._data is not None:
            self._replot()

    def _colour(self, name: str) -> tuple[int, int, int]:
        value = self.app.theme_variables.get(name, name)
        try:
            return Color.parse(value).rgb
        except Exception:
            return Color.parse("white").rgb

    def _replot(self) -> None:
        assert self._data is not None
        times, series, now, window = self._data
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(f"{self.chart_title} ({self.unit})")
        xs = [t - now for t in times]
        start = 0
        while start < len(xs) and xs[start] < -window:
            start += 1
        xs = xs[start:]
        target = max(20, 2 * max(self.size.width - 10, 10))
        top = 0.0
        plotted = False
        for line in series:
            ys = list(line.values[start:])
            if not ys:
                continue
            rx, ry = reduce_points(xs, ys, target)
            plt.plot(rx, ry, label=line.label, color=self._colour(line.colour), marker="braille")
            top = max(top, max(ry))
            plotted = True
        if not plotted:
            plt.title(f"{self.chart_title} ({self.unit}) — no data yet")
        ticks, labels = window_ticks(window)
        plt.xticks(ticks, labels)
        plt.xlim(-window, 0)
        plt.ylim(0, top * 1.1 if top > 0 else 1)
        self._version += 1
        self.refresh()
