"""The console driving a REAL engine running the demo pipeline (synthetic load → WAL → receiver)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import DataTable, Input, RichLog, Static

from rwconsole.tui.app import ConsoleApp
from rwconsole.tui.screens.confirm import ConfirmScreen
from rwconsole.tui.screens.wal import WalScreen

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
SIZE = (160, 50)


async def _until(pilot: Any, check: Any, seconds: float = 20.0, what: str = "") -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"not reached within {seconds}s: {what}")


def _endpoint(engine: Any, name: str) -> Any:
    return engine.snapshot().endpoint(name)


async def test_console_drives_the_engine(demo_engine: Any) -> None:
    engine = demo_engine
    assert [e.name for e in engine.snapshot().endpoints] == ["demo-v1", "demo-v2"], (
        "the demo pipeline must expose its two endpoints"
    )
    app = ConsoleApp(engine, refresh_interval=0.25)
    async with app.run_test(size=SIZE) as pilot:
        await _until(
            pilot,
            lambda: app.snapshot.endpoints and app.snapshot.endpoints[0].samples_total > 0,
            what="samples delivered",
        )
        status = str(app.screen.query_one("#status-lines", Static).render())
        assert "demo-v1" in status and "healthy" in status

        # Queue config: edit two fields, apply live, and the running queue takes them.
        await pilot.press("3")
        screen = app.screen
        screen.query_one("#new-max_shards", Input).value = "7"
        screen.query_one("#new-min_shards", Input).value = "2"
        await pilot.press("ctrl+s")
        await _until(
            pilot,
            lambda: _endpoint(engine, "demo-v1").queue_config["max_shards"] == 7,
            what="max_shards applied",
        )
        await _until(
            pilot,
            lambda: (
                (h := _endpoint(engine, "demo-v1").history)
                and h[-1].shards_max == 7
                and h[-1].shards_min == 2
            ),
            what="shard metrics follow the new bounds",
        )
        assert _endpoint(engine, "demo-v1").shards >= 2
        # Saving is not possible for the demo: said, not done.
        screen.query_one("#new-max_shards", Input).value = "9"
        await pilot.press("ctrl+o")
        await pilot.pause(0.3)
        assert _endpoint(engine, "demo-v1").queue_config["max_shards"] == 7
        # An invalid combination is refused before it reaches the engine.
        screen.query_one("#new-min_shards", Input).value = "20"
        await pilot.press("ctrl+s")
        await pilot.pause(0.3)
        assert "must be >= min_shards" in str(screen.query_one("#msg-max_shards", Static).render())
        assert _endpoint(engine, "demo-v1").queue_config["min_shards"] == 2
        await pilot.press("ctrl+r")
        # Suggest max_shards from the history, accept it.
        await pilot.press("ctrl+g")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="suggestion")
        await pilot.press("y")
        await _until(
            pilot,
            lambda: _endpoint(engine, "demo-v1").queue_config["max_shards"] == 50,
            what="suggested max_shards applied",
        )

        # Endpoints: pause and resume the highlighted endpoint.
        await pilot.press("escape", "2")
        table = app.screen.query_one(DataTable)
        assert table.row_count == 2
        await pilot.press("p")
        await _until(pilot, lambda: _endpoint(engine, "demo-v1").paused, what="paused")
        await _until(
            pilot,
            lambda: "paused" in str(table.get_row_at(0)[1]),
            what="the table shows the pause",
        )
        await pilot.press("p")
        await _until(pilot, lambda: not _endpoint(engine, "demo-v1").paused, what="resumed")

        # Demo: inject 5xx errors, the queues retry; back to normal.
        await pilot.press("5")
        retried_before = _endpoint(engine, "demo-v2").samples_retried
        await pilot.press("x")
        await _until(
            pilot,
            lambda: engine.snapshot().demo.fault.mode == "error_5xx",
            what="fault set",
        )
        await _until(
            pilot,
            lambda: (
                _endpoint(engine, "demo-v2").samples_retried > retried_before
                or _endpoint(engine, "demo-v1").status in ("retrying", "failing")
            ),
            seconds=15,
            what="queues retry under 5xx",
        )
        await pilot.press("k")
        await _until(pilot, lambda: engine.snapshot().demo.fault.mode == "ok", what="fault cleared")

        # Logs show the commands just given.
        await pilot.press("6")
        log = app.screen.query_one(RichLog)
        await _until(
            pilot,
            lambda: any("queue_config changed" in line.text for line in log.lines),
            what="log line",
        )

        # WAL: the engine's own WAL, read-only, positions live.
        await pilot.press("4")
        wal = app.screen
        assert isinstance(wal, WalScreen)
        await _until(pilot, lambda: wal.report is not None, what="WAL inspected")
        assert "repair refused" in str(wal.query_one("#wal-heading", Static).render())
        assert wal.query_one("#wal-positions", DataTable).row_count == 2
        assert wal.report is not None and wal.report.series > 0
