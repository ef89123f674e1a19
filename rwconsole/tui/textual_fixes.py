"""Workarounds for Textual behaviour the console trips over; each says what and why.

Applied once by ``rwconsole.tui.app`` on import. Each is a guard around one Textual method
and leaves its behaviour unchanged whenever the method would have worked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.dom import DOMNode
from textual.events import Mount
from textual.widgets import Header, Tabs
from textual.widgets._header import HeaderTitle
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


def guard_header_title() -> None:
    """``Header`` watches the app's and its screen's title and updates its title part
    from a queued callback. A screen that is still being built when the app exits (the
    console builds its screens in the background right after start, and a key switches
    to one that was not built yet) has its header's parts taken down before that
    callback runs, which then raised ``NoMatches`` from inside Textual: a traceback at
    quit. A header without its title part has nothing to update."""
    original = Header._on_mount
    if getattr(original, "rwconsole_guarded", False):
        return

    def on_mount(self: Header, event: Mount) -> None:
        def watch(
            obj: DOMNode,
            attribute_name: str,
            callback: Callable[[], Awaitable[None]],
            init: bool = True,
        ) -> None:
            async def update_if_built() -> None:
                if self.query(HeaderTitle):
                    await callback()

            DOMNode.watch(self, obj, attribute_name, update_if_built, init)

        self.watch = watch  # type: ignore[method-assign]  # for the original's calls only
        try:
            original(self, event)
        finally:
            del self.watch

    on_mount.rwconsole_guarded = True  # type: ignore[attr-defined]
    Header._on_mount = on_mount  # type: ignore[method-assign]


def apply_all() -> None:
    """Every workaround above."""
    guard_tab_underline()
    guard_header_title()
