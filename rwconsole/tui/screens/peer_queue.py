"""The Queue config screen's read-only view of a peer's queue (nothing can be applied).

Shows the queue_config values the peer exposes as gauges, the throughput
estimate from its send latency and the max_shards suggestion to copy into its
own config file.
"""

from __future__ import annotations

from rwconsole.snapshot import EndpointSnapshot, Snapshot
from rwconsole.tui import format as fmt
from rwconsole.tui.estimates import (
    SUGGEST_FACTOR,
    average_latency,
    average_rate,
    max_throughput,
    suggest_max_shards,
    window_points,
)
from rwconsole.tui.markup import escape

ESTIMATE_TITLE = (
    "[b]Effect estimate[/b] (max throughput = max_shards × max_samples_per_send "
    "÷ average request latency)"
)


def window_figures(
    endpoint: EndpointSnapshot, now: float, window: tuple[str, float]
) -> tuple[float | None, float, str]:
    """Over the console's window: mean request latency (None: no request completed),
    mean incoming rate, and the line that shows both (or why there is no estimate)."""
    label, seconds = window
    points = window_points(endpoint.history, seconds, now)
    latency = average_latency(points)
    incoming = average_rate(points, "samples_in_per_second", seconds)
    if latency is None:
        return (
            None,
            incoming,
            (f"no request completed in the last {label}: latency unknown, no estimate yet"),
        )
    line = (
        f"over {label}: average request latency {fmt.seconds(latency)}, incoming "
        f"{fmt.number(incoming)} samples/s"
    )
    return latency, incoming, line


def heading(snapshot: Snapshot, endpoint: EndpointSnapshot) -> str:
    return (
        f"[$warning]read-only:[/] {escape(snapshot.source_kind)} is not operated by rwconsole; "
        f"queue_config of [b]{escape(endpoint.name)}[/b] ({escape(endpoint.url)}) as it reports "
        "it — change it in its own config  ·  other endpoint: [ / ]"
    )


def body(snapshot: Snapshot, endpoint: EndpointSnapshot, window: tuple[str, float]) -> str:
    """The peer's values, the throughput estimate and the max_shards advice."""
    config = endpoint.queue_config
    lines = ["[b]queue_config[/b] (the values its metrics expose)"]
    for field in fmt.QUEUE_FIELDS:
        if field.name in config:
            value = fmt.config_value(fmt.field_kind(field), config[field.name])
            lines.append(f"  {field.name:<22} {escape(value)}")
    if not config:
        lines.append("  [dim]none: its metrics carry no shards_min/shards_max gauges[/]")
    lines.append("  [dim]other fields are not exposed by its metrics[/]")
    latency, _incoming, figures = window_figures(endpoint, snapshot.time, window)
    lines += ["", ESTIMATE_TITLE, figures]
    throughput = max_throughput(config, latency)
    if throughput is not None:
        lines.append(
            f"{config.get('max_shards')} × {config.get('max_samples_per_send')} ÷ "
            f"{fmt.seconds(latency)} = [b]{fmt.number(throughput)}[/b] samples/s"
        )
    current = int(config.get("max_shards", 0)) or None
    advice = suggest_max_shards(endpoint.history, current)
    lines.append("")
    if advice is None:
        lines.append("[b]max_shards[/b]: no history yet (it builds up from attach time)")
    else:
        lines.append(
            f"[b]max_shards[/b]: 4 × the 90th percentile of desired shards over "
            f"{fmt.seconds(advice.window_seconds)} since attach = "
            f"{SUGGEST_FACTOR * advice.percentile_desired:.2f}"
        )
        if advice.change == "keep":
            lines.append(f"max_shards {current} fits: nothing to change")
        else:
            lines.append(
                f"{advice.change} it: copy [b]max_shards: {advice.max_shards}[/b] into its "
                "queue_config (ctrl+g shows it in its config syntax)"
            )
    return "\n".join(lines)
