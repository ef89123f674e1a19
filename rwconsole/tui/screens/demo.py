"""Demo controls: make the embedded receiver misbehave and watch the queues react."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal
from textual.validation import Number
from textual.widgets import Button, Input, Label, Static

from rwconsole.snapshot import DemoStats, Snapshot
from rwconsole.tui import format as fmt
from rwconsole.tui.estimates import window_points
from rwconsole.tui.markup import escape
from rwconsole.tui.screens.base import ConsoleScreen
from rwconsole.tui.widgets.charts import Series, TimeSeriesChart
from rwconsole.tui.widgets.status import endpoint_line

# (mode, key, button label)
FAULTS = (
    ("ok", "k", "OK"),
    ("error_5xx", "x", "5xx"),
    ("too_many_requests", "r", "429"),
    ("bad_request", "b", "400"),
    ("latency", "l", "Latency"),
    ("hang", "h", "Hang"),
    ("down", "d", "Down"),
)
_COLOURS = ("primary", "accent", "success", "secondary", "warning", "error")


def demo_markup(demo: DemoStats) -> str:
    describe = demo.fault.describe()
    by_status = ", ".join(f"{k}: {fmt.number(v)}" for k, v in sorted(demo.by_status.items()))
    lines = [
        f"receiver {escape(demo.address)}  "
        + ("[$success]listening[/]" if demo.listening else "[$error]down[/]")
        + f"  ·  fault [b]{escape(describe)}[/b]",
        f"requests {fmt.number(demo.requests)} (v1 {fmt.number(demo.v1_requests)}, "
        f"v2 {fmt.number(demo.v2_requests)})  by status: {by_status or '-'}",
        f"received {fmt.number(demo.samples)} samples, {fmt.number(demo.exemplars)} exemplars, "
        f"{fmt.number(demo.histograms)} histograms, {fmt.number(demo.metadata)} metadata; "
        f"{fmt.number(demo.series)} series; out of order {fmt.number(demo.out_of_order)}; "
        f"hung {demo.hung}",
    ]
    if demo.last_error:
        lines.append(f"[$error]last error: {escape(demo.last_error)}[/]")
    return "\n".join(lines)


class DemoScreen(ConsoleScreen):
    """Fault injection for the embedded demo receiver, with its effect on every queue."""

    SCREEN_TITLE = "Demo"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(key, f"fault('{mode}')", f"Fault {label}") for mode, key, label in FAULTS
    ]

    def compose_body(self) -> ComposeResult:
        yield Static(id="demo-stats")
        with Horizontal(id="fault-buttons"):
            for mode, key, label in FAULTS:
                yield Button(f"{label} ({key})", id=f"fault-{mode}")
        with Grid(id="fault-options"):
            yield Label("status (5xx)")
            yield Input("503", id="opt-status", validators=[Number(minimum=500, maximum=599)])
            yield Label("delay s (latency)")
            yield Input("2", id="opt-delay", validators=[Number(minimum=0, maximum=600)])
            yield Label("Retry-After s (429)")
            yield Input(
                "",
                id="opt-retry_after",
                placeholder="none",
                validators=[Number(minimum=0, maximum=3600)],
            )
            yield Label("fraction 0..1")
            yield Input("1", id="opt-fraction", validators=[Number(minimum=0, maximum=1)])
        yield Static(id="demo-endpoints")
        with Grid(id="demo-charts"):
            yield TimeSeriesChart("Accepted", "samples/s", id="demo-chart-out")
            yield TimeSeriesChart("Retried + failed", "samples/s", id="demo-chart-errors")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        button = event.button.id or ""
        if button.startswith("fault-"):
            self.action_fault(button.removeprefix("fault-"))

    def options(self, mode: str) -> dict[str, Any] | str:
        """The options for ``mode`` from the inputs, or an error message."""

        def number(name: str) -> float | None:
            text = self.query_one(f"#opt-{name}", Input).value.strip()
            if not text:
                return None
            return float(text)

        try:
            fraction = number("fraction")
            result: dict[str, Any] = {"fraction": 1.0 if fraction is None else fraction}
            if mode == "error_5xx":
                status = number("status")
                if status is not None:
                    result["status"] = int(status)
            elif mode == "latency":
                result["delay"] = number("delay") or 0.0
            elif mode == "too_many_requests":
                retry_after = number("retry_after")
                if retry_after is not None:
                    result["retry_after"] = retry_after
        except ValueError as err:
            return f"bad fault option: {err}"
        return result

    def action_fault(self, mode: str) -> None:
        if self.console.snapshot.demo is None:
            self.notify("this pipeline has no demo receiver", severity="warning")
            return
        options = self.options(mode)
        if isinstance(options, str):
            self.notify(options, severity="error")
            return
        self.console.inject_fault(mode, **options)

    def update_snapshot(self, snapshot: Snapshot) -> None:
        demo = snapshot.demo
        stats = self.query_one("#demo-stats", Static)
        if demo is None:
            stats.update("[dim]this pipeline has no demo receiver (start with `rwconsole demo`)[/]")
        else:
            stats.update(demo_markup(demo))
        lines = [
            endpoint_line(e, width=self.size.width, window=snapshot.rate_window_seconds)
            for e in snapshot.endpoints
        ]
        self.query_one("#demo-endpoints", Static).update("\n".join(lines) or "[dim]-[/]")
        _label, window = self.console.window
        out: list[Series] = []
        errors: list[Series] = []
        times: list[float] = []
        for index, endpoint in enumerate(snapshot.endpoints):
            points = window_points(endpoint.history, window, snapshot.time)
            if not times or len(points) > len(times):
                times = [p.time for p in points]
            colour = _COLOURS[index % len(_COLOURS)]
            out.append(Series(endpoint.name, [p.accepted_per_second for p in points], colour))
            errors.append(
                Series(
                    endpoint.name,
                    [p.retried_per_second + p.failed_per_second for p in points],
                    colour,
                )
            )
        # Series of different lengths are aligned on their newest point.
        out = [_align(s, len(times)) for s in out]
        errors = [_align(s, len(times)) for s in errors]
        self.query_one("#demo-chart-out", TimeSeriesChart).show(
            times, out, now=snapshot.time, window=window
        )
        self.query_one("#demo-chart-errors", TimeSeriesChart).show(
            times, errors, now=snapshot.time, window=window
        )


def _align(series: Series, length: int) -> Series:
    values = list(series.values)
    if len(values) < length:
        values = [0.0] * (length - len(values)) + values
    return Series(series.label, values, series.colour)
