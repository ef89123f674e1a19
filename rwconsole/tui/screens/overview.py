"""Overview: a status line per endpoint and live charts for the selected endpoint."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.widgets import Static

from rwconsole.snapshot import EndpointSnapshot, Snapshot
from rwconsole.tui import format as fmt
from rwconsole.tui.estimates import average_rate, window_points
from rwconsole.tui.markup import escape
from rwconsole.tui.screens.base import ConsoleScreen
from rwconsole.tui.widgets.charts import Series, TimeSeriesChart
from rwconsole.tui.widgets.disk import disk_banner, disk_line, loss_line
from rwconsole.tui.widgets.status import endpoint_line, window_label

# (widget id, title, unit)
CHARTS = (
    ("chart-shards", "Shards", "shards"),
    ("chart-lag", "Lag", "seconds"),
    ("chart-rates", "Samples in vs out", "samples/s"),
    ("chart-errors", "Retried / failed / dropped", "samples/s"),
    ("chart-pending", "Pending", "samples"),
    ("chart-latency", "Send latency", "seconds"),
)


class OverviewScreen(ConsoleScreen):
    """Per-endpoint status and charts over a selectable window."""

    SCREEN_TITLE = "Overview"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left_square_bracket", "step_endpoint(-1)", "Prev endpoint", key_display="["),
        Binding("right_square_bracket", "step_endpoint(1)", "Next endpoint", key_display="]"),
        Binding("w", "next_window", "Window"),
        Binding("p", "toggle_pause", "Pause/resume"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static(id="disk-banner")
        yield Static(id="status-lines")
        yield Static(id="chart-heading")
        with Grid(id="charts"):
            for chart_id, title, unit in CHARTS:
                yield TimeSeriesChart(title, unit, id=chart_id)

    def action_step_endpoint(self, step: int) -> None:
        self.console.step_endpoint(step)

    def action_next_window(self) -> None:
        self.console.set_window(self.console.window_index + 1)

    def action_toggle_pause(self) -> None:
        endpoint = self.selected(self.console.snapshot)
        if endpoint is not None:
            self.console.toggle_pause(endpoint.name)

    def update_snapshot(self, snapshot: Snapshot) -> None:
        selected = self.selected(snapshot)
        width = self.size.width
        if snapshot.endpoints:
            lines = [
                endpoint_line(
                    e,
                    selected=selected is not None and e.name == selected.name,
                    width=width,
                    window=snapshot.rate_window_seconds,
                )
                for e in snapshot.endpoints
            ]
        else:
            lines = ["[dim]no endpoints yet (waiting for the engine)[/]"]
        disk = snapshot.disk
        figures = (disk_line(disk), loss_line(disk, snapshot.endpoints))
        lines.extend(line for line in figures if line)
        self.query_one("#status-lines", Static).update("\n".join(lines))
        banner = self.query_one("#disk-banner", Static)
        banner.update(disk_banner(disk))
        banner.display = bool(disk is not None and disk.alarming)
        label, seconds = self.console.window
        heading = "no endpoint selected"
        if selected is not None:
            window = snapshot.rate_window_seconds
            in_rate = average_rate(selected.history, "samples_in_per_second", window)
            heading = (
                f"[b]{escape(selected.name)}[/b]  {escape(selected.url)}  ·  window [b]{label}[/b]"
                f"  ·  in {fmt.number(in_rate)}{window_label(window)}"
            )
        self.query_one("#chart-heading", Static).update(heading)
        self._draw_charts(selected, snapshot.time, seconds)

    def _draw_charts(self, endpoint: EndpointSnapshot | None, now: float, window: float) -> None:
        points = window_points(endpoint.history, window, now) if endpoint else []
        times = [p.time for p in points]

        def col(name: str) -> list[float]:
            return [getattr(p, name) for p in points]

        data: dict[str, list[Series]] = {
            "chart-shards": [
                Series("shards", col("shards"), "primary"),
                Series("desired", col("shards_desired"), "accent"),
                Series("min", col("shards_min"), "secondary", reference=True),
                Series("max", col("shards_max"), "error", reference=True),
            ],
            "chart-lag": [Series("lag", col("lag_seconds"), "primary")],
            "chart-rates": [
                Series("in", col("samples_in_per_second"), "accent"),
                Series("out", col("accepted_per_second"), "primary"),
            ],
            "chart-errors": [
                Series("retried", col("retried_per_second"), "warning"),
                Series("failed", col("failed_per_second"), "error"),
                Series("dropped", col("dropped_per_second"), "secondary"),
            ],
            "chart-pending": [Series("pending", col("pending"), "primary")],
            "chart-latency": [Series("latency", col("send_latency_seconds"), "primary")],
        }
        for chart_id, series in data.items():
            self.query_one(f"#{chart_id}", TimeSeriesChart).show(
                times, series, now=now, window=window, source=endpoint.name if endpoint else ""
            )
