"""The guards around Textual behaviour the console trips over."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Tabs
from textual.widgets._tabs import Underline

import rwconsole.tui.app  # noqa: F401 (applies the guards)

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
