"""Targets: every scrape target by job with its health, last scrape and error.

A text filter narrows the table (job, labels, URL, health, error); ``d``
shows or hides the targets that relabelling dropped. The panel below shows
the highlighted target's discovered labels beside its final labels and, for
a dropped target, the rule that dropped it.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Static

from rwconsole.snapshot import ScrapeTargetSnapshot, Snapshot
from rwconsole.tui import format as fmt
from rwconsole.tui.markup import escape
from rwconsole.tui.screens.base import ConsoleScreen, highlighted_key

COLUMNS: tuple[tuple[str, str], ...] = (
    ("job", "Job"),
    ("instance", "Instance"),
    ("health", "Health"),
    ("last", "Last scrape"),
    ("duration", "Duration"),
    ("samples", "Samples"),
    ("error", "Last error"),
)
_HEALTH_STYLE = {"up": "green", "down": "bold red", "unknown": "yellow", "dropped": "dim"}
_ERROR_WIDTH = 60


def target_key(target: ScrapeTargetSnapshot) -> str:
    """A row key unique among the snapshot's targets, kept while its health changes.

    (A key with the health in it made an up/down flip rebuild the table and
    move the cursor off the target.)
    """
    kept = "dropped" if target.health == "dropped" else "kept"
    labels = target.labels or target.discovered_labels
    return target.job + "\x00" + kept + "\x00" + repr(sorted(labels.items()))


def matches(target: ScrapeTargetSnapshot, text: str) -> bool:
    if not text:
        return True
    needle = text.lower()
    haystack = [target.job, target.url, target.health, target.last_error, target.dropped_by]
    for labels in (target.labels, target.discovered_labels):
        haystack += [f"{k}={v}" for k, v in labels.items()]
    return any(needle in item.lower() for item in haystack)


def row_values(target: ScrapeTargetSnapshot, now: float) -> dict[str, str | Text]:
    instance = target.labels.get("instance") or target.discovered_labels.get("__address__", "")
    last = "-"
    if target.last_scrape is not None:
        last = fmt.seconds(max(0.0, now - target.last_scrape)) + " ago"
    error = target.last_error or target.dropped_by
    if len(error) > _ERROR_WIDTH:
        error = error[: _ERROR_WIDTH - 1] + "…"
    scraped = target.health in ("up", "down")
    return {
        "job": Text(target.job),
        "instance": Text(instance),
        "health": Text(target.health, style=_HEALTH_STYLE.get(target.health, "")),
        "last": last,
        "duration": fmt.seconds(target.last_duration) if scraped else "-",
        "samples": fmt.number(target.last_samples) if scraped else "-",
        "error": Text(error, style="red" if target.last_error else "dim"),
    }


def detail_markup(target: ScrapeTargetSnapshot) -> str:
    lines = [f"[b]{escape(target.job)}[/]  {escape(target.url or '(not scraped)')}"]
    if target.dropped_by:
        lines.append(f"[b]dropped by[/] {escape(target.dropped_by)}")
    elif target.scrape_interval:
        lines.append(
            f"every {fmt.seconds(target.scrape_interval)}, "
            f"timeout {fmt.seconds(target.scrape_timeout)}"
        )
    if target.last_error:
        lines.append(f"[red]last error:[/] {escape(target.last_error)}")
    final = ", ".join(f"{k}={v!r}" for k, v in sorted(target.labels.items()))
    found = ", ".join(f"{k}={v!r}" for k, v in sorted(target.discovered_labels.items()))
    lines.append(f"[b]labels[/]     {escape(final) or '[dim](none)[/]'}")
    lines.append(f"[b]discovered[/] {escape(found)}")
    return "\n".join(lines)


class TargetsScreen(ConsoleScreen):
    """The scrape targets of every job."""

    SCREEN_TITLE = "Targets"
    CSS_PATH = "targets.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter", key_display="/"),
        Binding("d", "toggle_dropped", "Dropped"),
        Binding("escape", "focus_table", "Back to table", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.show_dropped = False
        self._shown: dict[str, ScrapeTargetSnapshot] = {}

    def compose_body(self) -> ComposeResult:
        yield Input(placeholder="filter targets (/)", id="targets-filter")
        table: DataTable[str | Text] = DataTable(id="targets-table", cursor_type="row")
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static(id="targets-summary")
        yield Static(id="target-detail")

    def on_mount(self) -> None:
        self._table().focus()

    def _table(self) -> DataTable[str | Text]:
        return self.query_one("#targets-table", DataTable)

    def update_snapshot(self, snapshot: Snapshot) -> None:
        text = self.query_one("#targets-filter", Input).value
        visible = [
            t
            for t in snapshot.targets
            if (self.show_dropped or t.health != "dropped") and matches(t, text)
        ]
        shown = {target_key(t): t for t in visible}
        table = self._table()
        if list(shown) != [str(key.value) for key in table.rows]:
            highlighted = self._highlighted()
            table.clear()
            for key, target in shown.items():
                values = row_values(target, snapshot.time)
                table.add_row(*(values[k] for k, _ in COLUMNS), key=key)
            if highlighted in shown:
                table.move_cursor(row=list(shown).index(highlighted))
        else:
            for key, target in shown.items():
                values = row_values(target, snapshot.time)
                for column, _label in COLUMNS:
                    table.update_cell(key, column, values[column], update_width=True)
        self._shown = shown
        self._summarise(snapshot)
        self._show_detail()

    def _summarise(self, snapshot: Snapshot) -> None:
        counts: dict[str, int] = {}
        for target in snapshot.targets:
            counts[target.health] = counts.get(target.health, 0) + 1
        parts = [f"{counts.get(h, 0)} {h}" for h in ("up", "down", "unknown")]
        dropped = counts.get("dropped", 0)
        hint = "d hides them" if self.show_dropped else "d shows them"
        parts.append(f"{dropped} dropped ({hint})")
        self.query_one("#targets-summary", Static).update(" · ".join(parts))

    def _highlighted(self) -> str | None:
        return highlighted_key(self._table())

    def _show_detail(self) -> None:
        key = self._highlighted()
        target = self._shown.get(key) if key else None
        text = detail_markup(target) if target else "[dim]no targets[/]"
        self.query_one("#target-detail", Static).update(text)

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_input_changed(self, _event: Input.Changed) -> None:
        self.update_snapshot(self.console.snapshot)

    def action_toggle_dropped(self) -> None:
        self.show_dropped = not self.show_dropped
        self.update_snapshot(self.console.snapshot)

    def action_focus_filter(self) -> None:
        self.query_one("#targets-filter", Input).focus()

    def action_focus_table(self) -> None:
        self._table().focus()
