"""The key bar at the bottom of every screen: the active key bindings, clickable.

One widget drawing one line of text. Textual's ``Footer`` builds a widget per
key and rebuilds them all whenever a screen is shown, which made every screen
switch cost more than the screen itself; this bar redraws only when the
bindings it shows actually changed.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget


class KeyItem(NamedTuple):
    """One key shown in the bar."""

    key: str
    display: str
    description: str
    enabled: bool


class KeyBar(Widget):
    """The screen's key bindings on one line; the command palette key on the right."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "keybar--key",
        "keybar--description",
        "keybar--disabled",
    }
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        & > .keybar--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        & > .keybar--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        & > .keybar--disabled {
            text-style: dim;
        }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.items: tuple[KeyItem, ...] = ()
        self.palette: KeyItem | None = None
        self._spans: list[tuple[int, int, KeyItem]] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if screen is not self.screen:
            return
        items: list[KeyItem] = []
        seen_actions: set[str] = set()
        palette: KeyItem | None = None
        palette_key = self.app.COMMAND_PALETTE_BINDING if self.app.ENABLE_COMMAND_PALETTE else None
        for key, (_node, binding, enabled, _tooltip) in screen.active_bindings.items():
            item = KeyItem(key, self.app.get_key_display(binding), binding.description, enabled)
            if key == palette_key:
                palette = item
                continue
            if not binding.show or binding.action in seen_actions:
                continue
            seen_actions.add(binding.action)
            items.append(item)
        if (tuple(items), palette) != (self.items, self.palette):
            self.items = tuple(items)
            self.palette = palette
            self.refresh()

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keybar--key")
        description_style = self.get_component_rich_style("keybar--description")
        disabled_style = self.get_component_rich_style("keybar--disabled")
        text = Text(no_wrap=True, overflow="crop", end="")
        spans: list[tuple[int, int, KeyItem]] = []
        for item in self.items:
            spans.append(self._append(text, item, key_style, description_style, disabled_style))
        if self.palette is not None:
            tail = Text(no_wrap=True, end="")
            start, end, item = self._append(
                tail, self.palette, key_style, description_style, disabled_style
            )
            # The palette key stays visible on the right: crop the others if needed.
            offset = max(0, self.size.width - len(tail))
            if len(text) > offset - 1:
                text.truncate(max(0, offset - 1))
                spans = [span for span in spans if span[1] <= offset - 1]
            text.append(" " * (offset - len(text)))
            text.append_text(tail)
            spans.append((start + offset, end + offset, item))
        self._spans = spans
        return text

    @staticmethod
    def _append(
        text: Text,
        item: KeyItem,
        key_style: object,
        description_style: object,
        disabled_style: object,
    ) -> tuple[int, int, KeyItem]:
        start = len(text)
        extra = disabled_style if not item.enabled else None
        text.append(f" {item.display} ", key_style)  # type: ignore[arg-type]
        if item.description:
            text.append(f"{item.description} ", description_style)  # type: ignore[arg-type]
        if extra is not None:
            text.stylize(extra, start)  # type: ignore[arg-type]
        return start, len(text), item

    def item_at(self, x: int) -> KeyItem | None:
        """The key drawn at column ``x`` (None between keys)."""
        return next((item for start, end, item in self._spans if start <= x < end), None)

    def on_click(self, event: events.Click) -> None:
        item = self.item_at(event.x)
        if item is None:
            return
        event.stop()
        if item.enabled:
            self.app.simulate_key(item.key)
        else:
            self.app.bell()
