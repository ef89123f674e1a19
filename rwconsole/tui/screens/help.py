"""The help screen: every key of the app and of the screen it was opened from, and a glossary."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from rwconsole.tui.palette import screen_bindings

_INTRO = (
    "rwconsole forwards Prometheus remote-write data and shows what its queues do. "
    "Numbers refresh every second from the engine. Press ctrl+p for the command "
    "palette (every action by name), escape or ? to close this help."
)

GLOSSARY: tuple[tuple[str, str], ...] = (
    (
        "shards",
        "parallel senders of one endpoint; each sends one request at a time. "
        "Shown as running / desired.",
    ),
    (
        "desired shards",
        "how many shards the queue estimates it needs to keep up: the time one sample takes "
        "to send × (incoming rate + 5% of the backlog). Recomputed every 10s, unrounded, so "
        "an endpoint that is mostly idle wants a fraction of one (0.02). The running count "
        "follows it only when it differs by more than 30%, within min_shards..max_shards.",
    ),
    (
        "lag",
        "the newest timestamp written to the WAL minus the newest timestamp this endpoint "
        "has sent, in whole seconds.",
    ),
    ("pending", "samples read from the WAL and queued in the shards, not yet sent."),
    ("retried", "samples in requests that failed in a recoverable way and are sent again."),
    ("failed", "samples in requests that failed for good (e.g. HTTP 400): not sent again."),
    (
        "dropped",
        "samples deliberately not sent: their series was removed by relabelling or is "
        "unknown, they were older than sample_age_limit, or the protocol cannot carry them.",
    ),
    (
        "WAL segment",
        "one numbered file of the write-ahead log; samples are appended to the newest one.",
    ),
    (
        "checkpoint",
        "a compacted copy of the series still alive from the oldest segments, written when "
        "those segments are removed.",
    ),
)


class HelpScreen(ModalScreen[None]):
    """Keys of the app and of the screen underneath."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close help", key_display="esc"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static(Text(_INTRO), id="help-intro")
            yield Static(self._keys(), id="help-keys")
            yield Static(_glossary(), id="help-glossary")

    def _keys(self) -> Table:
        table = Table(show_header=True, header_style="bold", box=None, expand=True)
        table.add_column("key", no_wrap=True)
        table.add_column("action")
        table.add_column("where", no_wrap=True)
        under = self._screen_under()
        if under is not None:
            title = getattr(under, "SCREEN_TITLE", type(under).__name__)
            for binding in screen_bindings(under):
                table.add_row(binding.key_display or binding.key, binding.description, title)
        for binding in self.app.BINDINGS:
            if isinstance(binding, Binding) and binding.description:
                table.add_row(binding.key_display or binding.key, binding.description, "anywhere")
        table.add_row("ctrl+p", "command palette", "anywhere")
        table.add_row("tab / shift+tab", "move between controls", "anywhere")
        return table

    def _screen_under(self) -> Screen[Any] | None:
        stack = self.app.screen_stack
        return stack[-2] if len(stack) >= 2 else None


def _glossary() -> Table:
    table = Table(title="Terms", title_justify="left", box=None, expand=True, show_header=False)
    table.add_column("term", no_wrap=True, style="bold")
    table.add_column("meaning")
    for term, meaning in GLOSSARY:
        table.add_row(term, meaning)
    return table
