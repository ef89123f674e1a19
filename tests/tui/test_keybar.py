"""The key bar (clickable keys), the screens built ahead at start and drawn once when shown."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rwconsole.snapshot import Snapshot
from rwconsole.tui.app import SCREENS, ConsoleApp
from rwconsole.tui.screens.base import ConsoleScreen
from rwconsole.tui.screens.endpoints import EndpointsScreen
from rwconsole.tui.screens.logs import LogsScreen
from rwconsole.tui.screens.overview import OverviewScreen
from rwconsole.tui.screens.wal import WalScreen
from rwconsole.tui.widgets.keybar import KeyBar
from tests.tui.recorded import recorded_snapshot

pytestmark = pytest.mark.anyio
SIZE = (160, 50)


def _bar(app: ConsoleApp) -> KeyBar:
    return app.screen.query_one(KeyBar)


def _shown(app: ConsoleApp) -> tuple[KeyBar, str]:
    bar = _bar(app)
    return bar, str(bar.render())


async def test_bar_lists_the_screen_keys_and_keeps_the_palette_on_the_right() -> None:
    app = ConsoleApp(snapshot=recorded_snapshot())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        bar, text = _shown(app)
        assert len(text) == SIZE[0]
        assert "w Window" in text and "2 Endpoints" in text
        assert text.rstrip().endswith("^p palette")
        descriptions = [item.description for item in bar.items]
        assert descriptions.count("Quit") == 1  # one entry per action
        await pilot.press("3")
        await pilot.pause(0.2)
        queue_text = str(_bar(app).render())
        assert "Apply live" in queue_text and "w Window" not in queue_text


async def test_the_bar_shows_only_keys_that_work_here(fixtures_dir: Path) -> None:
    # A recorded snapshot without a demo receiver: no Demo key.
    plain = dataclasses.replace(recorded_snapshot(), demo=None)
    app = ConsoleApp(snapshot=plain)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        keys = {item.key for item in _bar(app).items}
        assert {"1", "2", "3", "4", "6"} <= keys and "5" not in keys
    # The WAL viewer alone: only the WAL screen.
    app = ConsoleApp(None, wal_dir=fixtures_dir / "agent-uncompressed" / "wal")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        keys = {item.key for item in _bar(app).items}
        assert not keys & {"1", "2", "3", "5", "6"} and "4" in keys


async def test_t_cycles_the_theme_files_only() -> None:
    app = ConsoleApp(snapshot=recorded_snapshot())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        seen = []
        for _ in range(4):
            await pilot.press("t")
            seen.append(app.theme)
        assert all(name.startswith("rwconsole-") for name in seen)
        assert seen[0] == seen[3] and len(set(seen)) == 3
        # The others are in the palette, each once.
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Theme: textual-dark" in titles and "Theme" not in titles
        assert len(titles) == len(set(titles))


async def test_clicking_a_key_runs_it_and_narrow_bars_crop_the_others() -> None:
    app = ConsoleApp(snapshot=recorded_snapshot())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        bar, text = _shown(app)
        column = text.index("2 Endpoints") + 3
        assert bar.item_at(column) is not None and bar.item_at(column).key == "2"
        await pilot.click(KeyBar, offset=(column, 0))
        await pilot.pause(0.2)
        assert app.current_mode == "endpoints"
        assert _bar(app).item_at(SIZE[0] - 3).description == "palette"

    app = ConsoleApp(snapshot=recorded_snapshot())
    async with app.run_test(size=(60, 30)) as pilot:
        await pilot.pause(0.3)
        bar, text = _shown(app)
        assert len(text) == 60 and text.rstrip().endswith("^p palette")
        assert all(end <= 60 for _start, end, _item in bar._spans)


async def test_every_screen_is_built_at_start_without_leaving_the_first() -> None:
    app = ConsoleApp(snapshot=recorded_snapshot())
    painted: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        display = app._display

        def recording(screen, renderable):  # type: ignore[no-untyped-def]
            painted.append(type(screen).__name__)
            display(screen, renderable)

        app._display = recording  # type: ignore[method-assign]
        modes = [mode for mode, _key, _title in SCREENS if mode != "demo"]  # no demo here

        def built() -> bool:
            try:
                return all(app.get_screen_stack(mode) for mode in modes)
            except KeyError:  # that mode has no screen yet
                return False

        for _ in range(100):
            if built():
                break
            await pilot.pause(0.05)
        assert built()
        assert app.current_mode == "overview"
        assert set(painted) <= {"OverviewScreen"}, "other screens were never shown"
        assert not app.tools.started, "the WAL screen waits until it is shown"


async def test_a_screen_is_drawn_once_when_shown_and_not_again_without_news(
    fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[str] = []
    for screen_class in (OverviewScreen, EndpointsScreen, LogsScreen, WalScreen):
        original = screen_class.update_snapshot

        def counting(self: ConsoleScreen, snapshot: Snapshot, original=original) -> None:  # type: ignore[no-untyped-def]
            drawn.append(type(self).__name__)
            original(self, snapshot)

        monkeypatch.setattr(screen_class, "update_snapshot", counting)
    wal = fixtures_dir / "agent-uncompressed" / "wal"
    app = ConsoleApp(snapshot=recorded_snapshot(), wal_dir=wal)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(2.0)  # the first poll and the warm-up of the other screens
        assert drawn == ["OverviewScreen"]
        drawn.clear()
        await pilot.press("4")
        for _ in range(100):  # the first showing opens the WAL and inspects it
            if app.screen.report is not None:  # type: ignore[attr-defined]
                break
            await pilot.pause(0.05)
        await pilot.pause(0.2)
        assert drawn == ["WalScreen", "WalScreen"], "shown, then the inspect's result"
        for key, expected in (
            ("2", ["EndpointsScreen"]),
            ("4", []),  # the same snapshot, endpoint and window as when it was left
            ("6", ["LogsScreen"]),
            ("1", []),
            ("w", ["OverviewScreen"]),
            ("4", ["WalScreen"]),  # the window changed meanwhile
            ("1", []),
        ):
            drawn.clear()
            await pilot.press(key)
            await pilot.pause(0.2)
            assert drawn == expected, key


async def test_queue_config_switches_endpoint_without_ctrl_brackets() -> None:
    app = ConsoleApp(snapshot=recorded_snapshot())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        first, second = app.endpoint_names
        await pilot.press("3")
        await pilot.pause(0.2)
        await pilot.press("escape", "right_square_bracket")
        await pilot.pause(0.1)
        assert app.selected_endpoint == second
        app.screen.query_one("#new-max_shards").focus()
        await pilot.press("alt+left")  # also from inside a field
        await pilot.pause(0.1)
        assert app.selected_endpoint == first
