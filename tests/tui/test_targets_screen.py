"""Targets: per job the targets with health and error; filter; discovered vs final labels."""

from __future__ import annotations

import dataclasses

import pytest
from textual.widgets import DataTable, Input, Static

from rwconsole.snapshot import ScrapeTargetSnapshot, Snapshot
from rwconsole.tui.app import ConsoleApp
from tests.tui.recorded import recorded_snapshot

pytestmark = pytest.mark.anyio
SIZE = (160, 50)


def _snapshot() -> Snapshot:
    base = recorded_snapshot()
    now = base.time
    targets = (
        ScrapeTargetSnapshot(
            "node",
            "http://10.0.0.1:9100/metrics",
            "up",
            {"job": "node", "instance": "10.0.0.1:9100", "zone": "a"},
            {"__address__": "10.0.0.1:9100", "__meta_zone": "a", "job": "node"},
            now - 3,
            0.012,
            420,
            scrape_interval=15.0,
            scrape_timeout=10.0,
        ),
        ScrapeTargetSnapshot(
            "api",
            "http://10.0.0.2:8080/metrics",
            "down",
            {"job": "api", "instance": "10.0.0.2:8080"},
            {"__address__": "10.0.0.2:8080", "job": "api"},
            now - 1,
            0.5,
            0,
            "parse error at line 1: expected a metric name",
        ),
        ScrapeTargetSnapshot(
            "node",
            "",
            "dropped",
            {},
            {"__address__": "10.0.0.9:9100", "job": "node"},
            dropped_by="relabel_configs[1] (drop)",
        ),
    )
    return dataclasses.replace(base, targets=targets)


def _cells(app: ConsoleApp) -> list[list[str]]:
    table = app.screen.query_one("#targets-table", DataTable)
    return [[str(cell) for cell in table.get_row(key)] for key in table.rows]


async def test_targets_table_filter_dropped_and_detail() -> None:
    app = ConsoleApp(snapshot=_snapshot())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("7")
        await pilot.pause(0.2)
        rows = _cells(app)
        assert [r[:3] for r in rows] == [
            ["node", "10.0.0.1:9100", "up"],
            ["api", "10.0.0.2:8080", "down"],
        ]
        assert rows[0][3] == "3.0s ago" and rows[0][5] == "420"
        assert rows[1][6].startswith("parse error at line 1")
        detail = str(app.screen.query_one("#target-detail", Static).render())
        assert "zone='a'" in detail and "__meta_zone='a'" in detail
        summary = str(app.screen.query_one("#targets-summary", Static).render())
        assert summary.startswith("1 up · 1 down · 0 unknown · 1 dropped")

        await pilot.press("slash")
        await pilot.press(*"parse")
        await pilot.pause(0.2)
        assert [r[0] for r in _cells(app)] == ["api"]
        app.screen.query_one("#targets-filter", Input).value = ""
        await pilot.press("escape", "d")
        await pilot.pause(0.2)
        rows = _cells(app)
        assert [r[2] for r in rows] == ["up", "down", "dropped"]
        await pilot.press("down", "down")
        await pilot.pause(0.2)
        detail = str(app.screen.query_one("#target-detail", Static).render())
        assert "dropped by relabel_configs[1] (drop)" in detail
        assert "10.0.0.9:9100" in detail


async def test_cursor_stays_on_a_target_whose_health_changes() -> None:
    snapshot = _snapshot()
    app = ConsoleApp(snapshot=snapshot)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("7")
        await pilot.pause(0.2)
        await pilot.press("down")
        await pilot.pause(0.2)
        table = app.screen.query_one("#targets-table", DataTable)
        assert table.cursor_row == 1
        api = snapshot.targets[1]
        flipped = dataclasses.replace(api, health="up", last_error="")
        targets = (snapshot.targets[0], flipped, snapshot.targets[2])
        app.snapshot = dataclasses.replace(snapshot, targets=targets)
        app.push_snapshot()
        await pilot.pause(0.2)
        assert table.cursor_row == 1
        assert [r[2] for r in _cells(app)] == ["up", "up"]
        detail = str(app.screen.query_one("#target-detail", Static).render())
        assert detail.startswith("api")


async def test_label_text_that_looks_like_markup_is_shown_literally() -> None:
    """Label values are user data: ``[b]`` or ``[$error]`` in them is text, not a style."""
    from textual.widgets._data_table import default_cell_formatter

    base = recorded_snapshot()
    instance = "[b]host[/b]:9100"
    target = ScrapeTargetSnapshot(
        "[$error]job",
        "http://h:9100/metrics",
        "up",
        {"job": "[$error]job", "instance": instance, "note": "ends with \\"},
        {"__address__": instance, "job": "[$error]job"},
        base.time - 1,
        0.01,
        5,
    )
    app = ConsoleApp(snapshot=dataclasses.replace(base, targets=(target,)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("7")
        await pilot.pause(0.2)
        table = app.screen.query_one("#targets-table", DataTable)
        shown = [default_cell_formatter(cell).plain for cell in table.get_row_at(0)]
        assert shown[:2] == ["[$error]job", instance]
        detail = str(app.screen.query_one("#target-detail", Static).render())
        assert "[$error]job" in detail and instance in detail
        assert "ends with \\" in detail
