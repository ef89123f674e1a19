"""Command palette entries: every console action, searchable by name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from textual.app import SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from rwconsole.snapshot import FAULT_MODES

if TYPE_CHECKING:
    from rwconsole.tui.app import ConsoleApp


def screen_bindings(screen: Screen[Any]) -> list[Binding]:
    """The screen's own key bindings (not the app's)."""
    found: list[Binding] = []
    for item in getattr(type(screen), "BINDINGS", []):
        if isinstance(item, Binding):
            found.append(item)
        elif isinstance(item, tuple) and len(item) >= 2:
            found.append(Binding(*item))
    return [b for b in found if b.description]


def console_commands(app: ConsoleApp, screen: Screen[Any]) -> Iterator[SystemCommand]:
    from rwconsole.tui.app import SCREENS, WINDOWS

    def run(action: str, target: Any) -> Any:
        return lambda: app.call_later(app.run_action, action, target)

    for binding in screen_bindings(screen):
        yield SystemCommand(
            binding.description,
            f"{binding.key_display or binding.key}: on this screen",
            run(binding.action, screen),
        )
    for mode, key, title in SCREENS:
        if app.check_action("show", (mode,)):
            yield SystemCommand(
                f"Show {title}", f"Go to the {title} screen ({key})", run(f"show('{mode}')", app)
            )
    for name in app.theme_names():
        yield SystemCommand(
            f"Theme: {name}",
            "Switch the colour theme (remembered)",
            lambda name=name: setattr(app, "theme", name),
        )
    for index, (label, _seconds) in enumerate(WINDOWS):
        yield SystemCommand(
            f"Chart window: {label}",
            "Time span of the charts",
            lambda index=index: app.set_window(index),
        )
    for endpoint in app.snapshot.endpoints:
        name = endpoint.name
        yield SystemCommand(
            f"Select endpoint {name}",
            "Charts and queue config follow it",
            lambda name=name: app.select_endpoint(name),
        )
        if app.commands_available:
            verb = "Resume" if endpoint.paused else "Pause"
            yield SystemCommand(
                f"{verb} endpoint {name}",
                "Stop or restart sending",
                lambda name=name: app.toggle_pause(name),
            )
    if app.commands_available:
        yield SystemCommand(
            "Reload config",
            "Re-read the config file and apply only what changed (F5)",
            app.action_reload_config,
        )
    if app.snapshot.demo is not None and app.commands_available:
        for mode in FAULT_MODES:
            yield SystemCommand(
                f"Demo fault: {mode}",
                "Make the demo receiver misbehave",
                lambda mode=mode: app.inject_fault(mode),
            )
    yield SystemCommand("Help", "Keys and what each screen shows (?)", app.action_help)
