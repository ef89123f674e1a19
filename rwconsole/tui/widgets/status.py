"""One status line per endpoint: state word, shards, lag, pending, rates, last error.

``out`` counts samples the receiver accepted (rejected ones are not "out"),
averaged over the snapshot's rate window so a slow scrape does not flap to 0/s.

Shards read ``running / desired``: desired is Prometheus' unrounded estimate,
so a queue that needs a fraction of one shard shows e.g. ``1 / 0.02``.
"""

from __future__ import annotations

from rwconsole.snapshot import EndpointSnapshot
from rwconsole.tui import format as fmt
from rwconsole.tui.estimates import average_rate
from rwconsole.tui.markup import escape

STATUS_MARKUP = {
    "healthy": "[$success]● healthy [/]",
    "retrying": "[$warning]◐ retrying[/]",
    "failing": "[$error]✖ failing [/]",
    "paused": "[$secondary]‖ paused  [/]",
}


def status_markup(status: str) -> str:
    """The status word with its colour (a theme variable) and symbol."""
    return STATUS_MARKUP.get(status, escape(status))


def out_rate(endpoint: EndpointSnapshot, window: float = 1.0) -> float:
    """Samples per second the receiver accepted, averaged over ``window`` seconds."""
    return average_rate(endpoint.history, "accepted_per_second", window)


def window_label(window: float) -> str:
    """``"/s (10s avg)"``: how an averaged rate is labelled."""
    return "/s" if window <= 1 else f"/s ({fmt.duration_field(window)} avg)"


def endpoint_line(
    endpoint: EndpointSnapshot, *, selected: bool = False, width: int = 0, window: float = 1.0
) -> str:
    """Markup for one endpoint's status line; ``out`` is accepted samples over ``window``."""
    marker = "[b]▶[/b]" if selected else " "
    parts = [
        f"{marker} [b]{escape(endpoint.name)}[/b]",
        status_markup(endpoint.status),
        f"shards {endpoint.shards} / {fmt.desired_shards(endpoint.shards_desired)}",
        f"lag {fmt.seconds(endpoint.lag_seconds)}",
        f"pending {fmt.number(endpoint.pending_samples)}",
        f"out {fmt.number(out_rate(endpoint, window))}{window_label(window)}",
    ]
    line = "  ".join(parts)
    if endpoint.last_error and endpoint.status != "healthy":
        error = endpoint.last_error
        if width and len(error) > max(width - 80, 20):
            error = error[: max(width - 81, 19)] + "…"
        line += f"  [$error]last error: {escape(error)}[/]"
    return line
