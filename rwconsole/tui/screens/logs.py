"""Logs: the engine's log lines, filterable by level, endpoint and text."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Input, RichLog, Select

from rwconsole.snapshot import LogEntry, Snapshot
from rwconsole.tui import format as fmt
from rwconsole.tui.screens.base import ConsoleScreen

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LEVEL_STYLE = {
    "DEBUG": "dim",
    "INFO": "",
    "WARNING": "yellow",
    "ERROR": "bold red",
    "CRITICAL": "bold red reverse",
}
ALL = "*"


def matches(entry: LogEntry, level: str, endpoint: str, text: str) -> bool:
    if entry.level in LEVELS and LEVELS.index(entry.level) < LEVELS.index(level):
        return False
    if endpoint != ALL and entry.endpoint != endpoint:
        return False
    return not text or text.lower() in entry.message.lower()


def render_entry(entry: LogEntry) -> Text:
    line = Text()
    line.append(fmt.clock(entry.time), style="dim")
    line.append(f" {entry.level:<7} ", style=_LEVEL_STYLE.get(entry.level, ""))
    if entry.endpoint:
        line.append(f"[{entry.endpoint}] ", style="bold")
    line.append(entry.message)
    return line


class LogsScreen(ConsoleScreen):
    """The newest engine log lines (up to the engine's buffer)."""

    SCREEN_TITLE = "Logs"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "next_level", "Level"),
        Binding("n", "next_endpoint", "Endpoint"),
        Binding("slash", "focus_filter", "Filter", key_display="/"),
        Binding("escape", "focus_log", "Back to log", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._last: LogEntry | None = None
        self._endpoints: tuple[str, ...] = ()

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="log-filters"):
            yield Select(
                [(level, level) for level in LEVELS],
                value="INFO",
                allow_blank=False,
                id="log-level",
                prompt="level",
            )
            yield Select([("all endpoints", ALL)], value=ALL, allow_blank=False, id="log-endpoint")
            yield Input(placeholder="text filter (/)", id="log-text")
        yield RichLog(id="log", wrap=True, max_lines=5000, auto_scroll=True)

    def on_mount(self) -> None:
        self.query_one(RichLog).focus()

    def _filters(self) -> tuple[str, str, str]:
        level = self.query_one("#log-level", Select).value
        endpoint = self.query_one("#log-endpoint", Select).value
        text = self.query_one("#log-text", Input).value
        return str(level), str(endpoint), text

    def update_snapshot(self, snapshot: Snapshot) -> None:
        names = tuple(e.name for e in snapshot.endpoints)
        if names != self._endpoints:
            self._endpoints = names
            select = self.query_one("#log-endpoint", Select)
            current = select.value
            select.set_options([("all endpoints", ALL), *((n, n) for n in names)])
            select.value = current if current in (ALL, *names) else ALL
        self._append(snapshot.logs)

    def _append(self, logs: tuple[LogEntry, ...]) -> None:
        start = 0
        if self._last is not None:
            for index in range(len(logs) - 1, -1, -1):
                if logs[index] is self._last:
                    start = index + 1
                    break
        new = logs[start:]
        if not new:
            return
        self._last = new[-1]
        level, endpoint, text = self._filters()
        log = self.query_one(RichLog)
        for entry in new:
            if matches(entry, level, endpoint, text):
                log.write(render_entry(entry))

    def _rebuild(self) -> None:
        self.query_one(RichLog).clear()
        self._last = None
        self._append(self.console.snapshot.logs)

    def on_select_changed(self, _event: Select.Changed) -> None:
        self._rebuild()

    def on_input_changed(self, _event: Input.Changed) -> None:
        self._rebuild()

    def action_next_level(self) -> None:
        select = self.query_one("#log-level", Select)
        index = LEVELS.index(str(select.value)) if select.value in LEVELS else 0
        select.value = LEVELS[(index + 1) % len(LEVELS)]

    def action_next_endpoint(self) -> None:
        select = self.query_one("#log-endpoint", Select)
        options = [ALL, *self._endpoints]
        index = options.index(str(select.value)) if select.value in options else 0
        select.value = options[(index + 1) % len(options)]

    def action_focus_filter(self) -> None:
        self.query_one("#log-text", Input).focus()

    def action_focus_log(self) -> None:
        self.query_one(RichLog).focus()
