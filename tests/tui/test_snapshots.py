"""Rendering snapshots of the main screens from a recorded engine snapshot (deterministic).

Update the stored SVGs with ``pytest tests/tui/test_snapshots.py --snapshot-update``
after an intended change to a screen, and look at them before committing: in a
commit of their own, whose message says what changed on screen and why that is
right. They were drawn by the Textual of ``SNAPSHOT_TEXTUAL``; another version
draws differently, so that is reported as such instead of as every screen broken.
"""

from __future__ import annotations

from typing import Any

import pytest
import textual

from rwconsole.tui.app import ConsoleApp
from tests.tui.recorded import recorded_snapshot

SIZE = (160, 50)
SNAPSHOT_TEXTUAL = "8.2."
"""The Textual release series the stored SVGs were drawn with (pyproject pins it)."""


@pytest.fixture(autouse=True)
def _same_textual() -> None:
    if not textual.__version__.startswith(SNAPSHOT_TEXTUAL):
        pytest.fail(
            f"the snapshots were drawn by Textual {SNAPSHOT_TEXTUAL}x, this is "
            f"{textual.__version__}: install the pinned version (pip install -e .) or update "
            "the snapshots in a reviewed commit of their own"
        )


def _app(**kwargs: Any) -> ConsoleApp:
    return ConsoleApp(snapshot=recorded_snapshot(), **kwargs)


@pytest.mark.parametrize(
    ("name", "press"),
    [
        ("overview", []),
        ("overview_second_endpoint_15m", ["right_square_bracket", "w"]),
        ("endpoints", ["2"]),
        ("queue_config", ["3"]),
        ("demo", ["5"]),
        ("logs", ["6"]),
        ("help", ["question_mark"]),
    ],
)
def test_screen(snap_compare: Any, name: str, press: list[str]) -> None:
    assert snap_compare(_app(), press=press, terminal_size=SIZE)


def test_queue_config_with_edits(snap_compare: Any) -> None:
    async def edit(pilot: Any) -> None:
        await pilot.press("3")
        await pilot.pause()
        screen = pilot.app.screen
        screen.query_one("#new-max_shards").value = "80"
        screen.query_one("#new-min_backoff").value = "1m30x"
        await pilot.pause()

    assert snap_compare(_app(), run_before=edit, terminal_size=SIZE)


def test_light_theme(snap_compare: Any) -> None:
    async def light(pilot: Any) -> None:
        pilot.app.theme = "rwconsole-light"
        await pilot.pause()

    assert snap_compare(_app(), run_before=light, terminal_size=SIZE)
