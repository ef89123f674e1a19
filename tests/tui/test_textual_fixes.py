"""The guards around Textual behaviour the console trips over."""

from __future__ import annotations

import asyncio

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Header, Tabs
from textual.widgets._header import HeaderTitle
from textual.widgets._tabs import Underline

from rwconsole.tui.app import SCREENS, ConsoleApp
from tests.tui.recorded import recorded_snapshot

pytestmark = pytest.mark.anyio


class _TabsApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Tabs("one", "two")


async def test_a_resize_before_the_underline_exists_is_ignored() -> None:
    app = _TabsApp()
    async with app.run_test(size=(60, 10)) as pilot:
        tabs = app.query_one(Tabs)
        await tabs.query_one(Underline).remove()  # as before its children are mounted
        tabs._on_resize()  # raised NoMatches inside Textual without the guard
        await pilot.pause()
    assert app.return_code in (None, 0)


async def test_the_underline_still_follows_the_active_tab() -> None:
    app = _TabsApp()
    async with app.run_test(size=(60, 10)) as pilot:
        tabs = app.query_one(Tabs)
        await pilot.pause()
        underline = tabs.query_one(Underline)
        first = (underline.highlight_start, underline.highlight_end)
        await pilot.press("right")
        await pilot.pause(0.5)
        second = (underline.highlight_start, underline.highlight_end)
        assert first != second and second[0] >= first[1]


class _HeaderApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Header()


async def test_the_header_still_shows_the_title_and_its_changes() -> None:
    app = _HeaderApp()
    async with app.run_test(size=(60, 5)) as pilot:
        app.screen.title = "first title"
        await pilot.pause()
        title = app.query_one(HeaderTitle)
        assert "first title" in str(title.render())
        app.screen.title = "second title"
        await pilot.pause()
        assert "second title" in str(title.render())


@pytest.mark.parametrize("mode", [mode for mode, _key, _title in SCREENS[1:]])
async def test_quitting_while_a_screen_is_still_being_built_raises_nothing(mode: str) -> None:
    """A key switches to a screen not built yet and the app exits at once: that screen's
    header is taken down before its queued title update runs (``NoMatches`` from inside
    Textual, a traceback at quit, without the guard)."""
    app = ConsoleApp(snapshot=recorded_snapshot())
    app._warm_up_screens = lambda: asyncio.sleep(0)  # type: ignore[method-assign]
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause(0.2)
        home = app.current_mode
        assert mode != home
        with app.batch_update():
            app.switch_mode(mode)
            app.switch_mode(home)
    assert app.return_code in (None, 0)
