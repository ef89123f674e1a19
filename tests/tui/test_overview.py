"""Overview: the charts show the selected endpoint."""

from __future__ import annotations

import pytest

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
