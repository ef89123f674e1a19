"""The WAL's disk as the console shows it: size against budget, free space, time to full.

Markup helpers shared by the Overview and the WAL screen: a banner when appends
fail or the budget or disk is full within ten minutes, one line of figures,
and per endpoint what it would lose at the current rate once the budget is
reached.
"""

from __future__ import annotations

from collections.abc import Sequence

from rwconsole.snapshot import EndpointSnapshot, WalDiskSnapshot
from rwconsole.tui import format as fmt
from rwconsole.tui.markup import escape


def disk_banner(disk: WalDiskSnapshot | None) -> str:
    """Markup of the warning banner, or "" when nothing is alarming."""
    if disk is None or not disk.alarming:
        return ""
    if disk.append_error:
        return (
            f"[b $error]⚠ {escape(disk.append_error)}[/]  [$error]new data is refused "
            f"({fmt.number(disk.append_failures)} commits so far) until space is freed[/]"
        )
    what = "WAL budget" if disk.full_by == "budget" else "WAL filesystem"
    consequence = (
        "the oldest undelivered data will be dropped"
        if disk.full_by == "budget" and disk.on_full == "drop_oldest"
        else "new data will be refused"
    )
    eta = fmt.seconds(disk.seconds_to_full or 0.0)
    return f"[b $warning]⚠ {what} full in {eta} at the current rate[/]  [$warning]{consequence}[/]"


def disk_line(disk: WalDiskSnapshot | None) -> str:
    """Markup of the figures: size / budget, free disk, growth, time to full ("" without)."""
    if disk is None:
        return ""
    parts = [f"WAL [b]{fmt.size(disk.size_bytes)}[/b]"]
    if disk.limit_bytes:
        share = disk.size_bytes / disk.limit_bytes
        parts[0] += f" / {fmt.size(disk.limit_bytes)} budget ({share:.0%}, {disk.on_full})"
    else:
        parts[0] += " (no budget)"
    if disk.free_bytes is not None:
        parts.append(f"disk free {fmt.size(disk.free_bytes)}")
    growth = disk.growth_bytes_per_second
    sign = "+" if growth >= 0 else "-"
    parts.append(f"{sign}{fmt.size(abs(growth))}/s")
    if disk.seconds_to_full is not None:
        parts.append(f"full in {fmt.seconds(disk.seconds_to_full)} ({disk.full_by})")
    if disk.samples_dropped:
        parts.append(f"[$error]{fmt.number(disk.samples_dropped)} samples dropped by the budget[/]")
    return "  ·  ".join(parts)


def loss_line(disk: WalDiskSnapshot | None, endpoints: Sequence[EndpointSnapshot]) -> str:
    """Per endpoint, the samples/s it would lose at the budget (empty without a drop budget)."""
    if disk is None or not disk.limit_bytes or disk.on_full != "drop_oldest":
        return ""
    parts = [
        f"{escape(e.name)} {fmt.number(e.loss_at_budget_per_second)}/s"
        for e in endpoints
        if e.loss_at_budget_per_second > 0
    ]
    if not parts:
        return "[dim]at the budget no endpoint would lose data at the current rates[/]"
    return "at the budget would lose: " + ", ".join(parts)
