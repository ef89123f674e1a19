"""Workarounds for Textual behaviour the console trips over; each says what and why.

Applied once by ``rwconsole.tui.app`` on import. Each is a guard around one Textual method
and leaves its behaviour unchanged whenever the method would have worked.
"""

from __future__ import annotations

from textual.widgets import Tabs
from textual.widgets._tabs import Underline


def guard_tab_underline() -> None:
    """``Tabs`` moves its underline on every ``Resize``, and a ``Resize`` can reach it
    before its own children (the ``Underline``) are mounted: the console builds its
    screens in the background while another one is shown, and the WAL screen's tab bar
    then raised ``NoMatches`` from inside Textual and ended the app. Until the underline
    exists there is nothing to move; ``Tabs`` highlights the active tab once mounted."""
    original = Tabs._highlight_active
    if getattr(original, "rwconsole_guarded", False):
        return

    def highlight_active(self: Tabs, animate: bool = True) -> None:
        if not self.query(Underline):
            return
        original(self, animate)

    highlight_active.rwconsole_guarded = True  # type: ignore[attr-defined]
    Tabs._highlight_active = highlight_active  # type: ignore[method-assign]


def apply_all() -> None:
    """Every workaround above."""
    guard_tab_underline()
