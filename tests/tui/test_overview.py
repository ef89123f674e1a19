"""Overview: the charts show the selected endpoint."""

from __future__ import annotations

import pytest
from textual.widgets import Static

from rwconsole.tui import format as fmt
from rwconsole.tui.app import ConsoleApp
from rwconsole.tui.widgets.charts import TimeSeriesChart
from tests.tui.recorded import recorded_snapshot

pytestmark = pytest.mark.anyio
SIZE = (160, 50)


async def test_overview_charts_follow_the_selected_endpoint() -> None:
    snapshot = recorded_snapshot()
    app = ConsoleApp(snapshot=snapshot)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        chart = app.screen.query_one("#chart-lag", TimeSeriesChart)

        def last_lag() -> float:
            assert chart._data is not None
            return chart._data[1][0].values[-1]

        first, second = snapshot.endpoints
        assert last_lag() == first.history[-1].lag_seconds
        await pilot.press("]")
        await pilot.pause(0.2)
        assert last_lag() == second.history[-1].lag_seconds != first.history[-1].lag_seconds


async def test_shards_chart_fits_the_shards_and_names_max_shards_off_scale() -> None:
    snapshot = recorded_snapshot()
    app = ConsoleApp(snapshot=snapshot)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        chart = app.screen.query_one("#chart-shards", TimeSeriesChart)
        text = "\n".join(strip.text for strip in chart._current_strips())
        max_shards = int(snapshot.endpoints[0].history[-1].shards_max)
        assert f"max {max_shards} ↑" in text  # named, not drawn along the top
        for name in ("shards", "desired", "min"):
            assert f"━ {name}" in text
        # The axis is scaled to the shards, not to max_shards.
        top_label = float(next(line for line in text.splitlines() if "┤" in line).split("┤")[0])
        assert top_label < max_shards


async def test_status_lines_show_accepted_samples_averaged_over_the_rate_window() -> None:
    snapshot = recorded_snapshot()
    app = ConsoleApp(snapshot=snapshot)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        lines = str(app.screen.query_one("#status-lines", Static).render()).splitlines()
        healthy = snapshot.endpoints[0]
        expected = sum(p.accepted_per_second for p in healthy.history[-10:]) / 10
        assert f"out {fmt.number(expected)}/s (10s avg)" in lines[0]
        # Failing: whatever is sent is rejected or retried, so nothing is "out".
        assert "out 0/s (10s avg)" in lines[1]
        heading = str(app.screen.query_one("#chart-heading", Static).render())
        assert "/s (10s avg)" in heading
