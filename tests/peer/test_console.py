"""The console on a peer: Queue config is read-only, commands come back as notices."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from rwconsole.peer import PeerEngine
from rwconsole.tui import themes
from rwconsole.tui.app import ConsoleApp
from rwconsole.tui.widgets.keybar import KeyBar

pytestmark = pytest.mark.anyio
SIZE = (160, 50)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _own_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(themes.CONFIG_DIR_ENV, str(tmp_path / "state"))


async def _until(pilot: Pilot[int], check: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not met")


def _notices(app: ConsoleApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def test_queue_config_shows_the_peers_values_read_only(engine: PeerEngine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=SIZE) as pilot:
        await _until(
            pilot, lambda: bool(app.snapshot.endpoints and app.snapshot.endpoints[0].history)
        )
        await pilot.press("3")
        await pilot.pause(0.3)
        screen = app.screen
        heading = str(screen.query_one("#qc-heading", Static).render())
        assert (
            "read-only: Prometheus agent at" in heading and "not operated by rwconsole" in heading
        )
        assert not screen.query_one("#qc-grid").display
        assert not screen.query_one("#qc-buttons").display
        body = str(screen.query_one("#qc-estimate", Static).render())
        assert "max_shards             7" in body and "capacity               2500" in body
        assert "copy max_shards: 50 into its queue_config" in body
        # Only the suggestion has a key: nothing can be applied or reset here.
        assert screen.check_action("suggest", ()) and not screen.check_action("apply", (False,))
        assert not screen.check_action("reset", ())
        shown = [item.description for item in screen.query_one(KeyBar).items]
        assert "Suggest max_shards" in shown and "Apply live" not in shown
        await pilot.press("ctrl+g")
        await _until(
            pilot,
            lambda: any(
                "copy this into its config: remote_write (name: recv) queue_config: "
                "{max_shards: 50}" in n
                for n in _notices(app)
            ),
        )


async def test_the_title_names_the_peer(engine: PeerEngine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert app.screen.title == f"rwconsole · Prometheus agent at {engine.url} (read-only)"
