"""The help screen: every key of the app and of the screen it was opened from."""

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


class HelpScreen(ModalScreen[None]):
    """Keys of the app and of the screen underneath."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close help", key_display="esc"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static(Text(_INTRO), id="help-intro")
            yield Static(self._keys(), id="help-keys")

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
