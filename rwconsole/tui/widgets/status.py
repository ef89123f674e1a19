"""One status line per endpoint: state word, shards, lag, pending, rates, last error.

Shards read ``running / desired``: desired is Prometheus' unrounded estimate,
so a queue that needs a fraction of one shard shows e.g. ``1 / 0.02``.
"""

from __future__ import annotations

from rich.markup import escape

from rwconsole.snapshot import EndpointSnapshot
from rwconsole.tui import format as fmt

STATUS_MARKUP = {
    "healthy": "[$success]● healthy [/]",
    "retrying": "[$warning]◐ retrying[/]",
    "failing": "[$error]✖ failing [/]",
    "paused": "[$secondary]‖ paused  [/]",
}


def status_markup(status: str) -> str:
    """The status word with its colour (a theme variable) and symbol."""
    return STATUS_MARKUP.get(status, escape(status))


def out_rate(endpoint: EndpointSnapshot) -> float:
    """Samples per second sent in the last recorded second."""
    return endpoint.history[-1].samples_out_per_second if endpoint.history else 0.0


def endpoint_line(endpoint: EndpointSnapshot, *, selected: bool = False, width: int = 0) -> str:
    """Markup for one endpoint's status line."""
    marker = "[b]▶[/b]" if selected else " "
    parts = [
        f"{marker} [b]{escape(endpoint.name)}[/b]",
        status_markup(endpoint.status),
        f"shards {endpoint.shards} / {fmt.desired_shards(endpoint.shards_desired)}",
        f"lag {fmt.seconds(endpoint.lag_seconds)}",
        f"pending {fmt.number(endpoint.pending_samples)}",
        f"out {fmt.number(out_rate(endpoint))}/s",
    ]
    line = "  ".join(parts)
    if endpoint.last_error and endpoint.status != "healthy":
        error = endpoint.last_error
        if width and len(error) > max(width - 80, 20):
            error = error[: max(width - 81, 19)] + "…"
        line += f"  [$error]last error: {escape(error)}[/]"
    return line
