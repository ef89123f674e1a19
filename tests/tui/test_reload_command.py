"""The console's "Reload config" command: in the palette, on F5, outcome shown as a notice."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest
from textual.content import Content

from rwconsole.snapshot import EMPTY_SNAPSHOT, ReloadReport, Snapshot
from rwconsole.tui.app import ConsoleApp
from rwconsole.tui.palette import console_commands

pytestmark = pytest.mark.anyio


class ReloadingEngine:
    """Just enough of EngineControl: answers reloads with the next prepared report."""

    running = True

    def __init__(self, *reports: ReloadReport) -> None:
        self.reports = list(reports)
        self.calls = 0

    def snapshot(self) -> Snapshot:
        return EMPTY_SNAPSHOT

    def reload(self, config: Any = None) -> concurrent.futures.Future[ReloadReport]:
        self.calls += 1
        future: concurrent.futures.Future[ReloadReport] = concurrent.futures.Future()
        future.set_result(self.reports.pop(0))
        return future


def _shown(message: str) -> str:
    """A notice's message as the screen shows it (the message is markup)."""
    return Content.from_markup(message).plain


async def _notice(pilot: Any, app: ConsoleApp, text: str) -> Any:
    for _ in range(100):
        found = [n for n in app._notifications if text in _shown(n.message)]
        if found:
            return found[-1]
        await pilot.pause(0.05)
    shown = [_shown(n.message) for n in app._notifications]
    raise AssertionError(f"no notice with {text!r}: {shown}")


async def test_reload_command_shows_the_outcome() -> None:
    engine = ReloadingEngine(
        ReloadReport(True, ("endpoint b added",), ("storage.path",)),
        ReloadReport(False, error="endpoint[0].url: missing"),
    )
    app = ConsoleApp(engine, refresh_interval=0.25)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        titles = [c.title for c in console_commands(app, app.screen)]
        assert "Reload config" in titles
        await pilot.press("f5")
        done = await _notice(pilot, app, "endpoint b added")
        assert done.severity == "information"
        assert "needs a restart, not applied: storage.path" in done.message
        await pilot.press("f5")
        failed = await _notice(pilot, app, "endpoint[0].url: missing")
        assert failed.severity == "error"
        assert "running configuration is kept" in failed.message
    assert engine.calls == 2


async def test_read_only_console_has_no_reload_command() -> None:
    app = ConsoleApp(snapshot=EMPTY_SNAPSHOT)
    async with app.run_test(size=(120, 40)):
        assert "Reload config" not in [c.title for c in console_commands(app, app.screen)]
