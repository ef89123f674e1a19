"""Endpoints: the table's columns grow with their values; the detail reads like the config."""

from __future__ import annotations

import dataclasses

import pytest
from textual.widgets import DataTable, Static

from rwconsole.tui.app import ConsoleApp
from tests.tui.recorded import recorded_snapshot

pytestmark = pytest.mark.anyio
SIZE = (160, 50)


async def test_columns_widen_for_later_values_and_the_detail_uses_config_syntax() -> None:
    recorded = recorded_snapshot()
    healthy = dataclasses.replace(
        recorded,
        endpoints=tuple(
            dataclasses.replace(e, status="healthy", samples_accepted=46.0)
            for e in recorded.endpoints
        ),
    )
    app = ConsoleApp(snapshot=healthy)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause(0.2)
        table = app.screen.query_one(DataTable)
        # Later: longer values in the same rows (a status word, a bigger count).
        first = dataclasses.replace(
            recorded.endpoints[0], status="retrying", samples_accepted=46_123.0
        )
        app.snapshot = dataclasses.replace(healthy, endpoints=(first, *healthy.endpoints[1:]))
        app.push_snapshot()
        await pilot.pause(0.2)
        widths = {c.key.value: c.content_width for c in table.columns.values()}
        assert widths["status"] >= len("retrying") and widths["sent"] >= len("46.1k")
        detail = str(app.screen.query_one("#endpoint-detail", Static).render())
        assert "min_backoff = 30ms" in detail and "retry_on_http_429 = true" in detail
        assert "=True" not in detail and "0.03" not in detail


async def test_sent_counts_accepted_samples_and_out_names_its_window() -> None:
    recorded = recorded_snapshot()
    rejected = dataclasses.replace(
        recorded.endpoints[0],
        status="failing",
        samples_total=77_500.0,
        samples_failed=77_500.0,
        samples_accepted=0.0,
    )
    app = ConsoleApp(snapshot=dataclasses.replace(recorded, endpoints=(rejected,)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause(0.2)
        table = app.screen.query_one(DataTable)
        labels = {c.key.value: c.label.plain for c in table.columns.values()}
        assert labels["out"] == "Out/s (10s avg)" and labels["failed"] == "Rejected"
        assert labels["sent"] == "Accepted"  # the detail's "sent" counts every attempt
        row = dict(zip(labels, table.get_row("demo-v1"), strict=True))
        assert (row["sent"], row["failed"]) == ("0", "77.5k")
        detail = str(app.screen.query_one("#endpoint-detail", Static).render())
        assert "accepted 0 samples, rejected 77.5k" in detail
