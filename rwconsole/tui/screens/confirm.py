"""A yes/no question in a modal dialog.

The buttons and the key hint are docked to the dialog's bottom edge, so a long
message scrolls instead of squeezing them out of sight in a small terminal.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    """Asks a question; dismisses with True (yes) or False (no)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No", key_display="n/esc"),
    ]

    def __init__(self, title: str, message: str, *, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self._title = title
        self._message = message
        self._yes = yes
        self._no = no

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(self._title, classes="panel-title")
            with Horizontal(id="confirm-buttons"):
                yield Static("y: yes  ·  n / esc: no", id="confirm-keys")
                yield Button(f"{self._yes} (y)", variant="primary", id="yes", compact=True)
                yield Button(f"{self._no} (n)", id="no", compact=True)
            with VerticalScroll(id="confirm-scroll"):
                yield Static(self._message, id="confirm-message")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
