"""Endpoints: the table's columns grow with their values; the detail reads like the config."""

from __future__ import annotations

import dataclasses
import re

import pytest
from textual.widgets import DataTable, Static

from rwconsole.snapshot import CredentialsSnapshot
from rwconsole.tui.app import ConsoleApp
from rwconsole.tui.screens.endpoints import detail_markup
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


async def test_credential_expiry_is_counted_from_the_snapshot_time() -> None:
    recorded = recorded_snapshot()  # taken long ago: wall-clock time would call it expired
    credentials = CredentialsSnapshot("EC2 instance role r", expires_at=recorded.time + 600)
    endpoint = dataclasses.replace(recorded.endpoints[0], credentials=credentials)
    app = ConsoleApp(snapshot=dataclasses.replace(recorded, endpoints=(endpoint,)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause(0.2)
        detail = str(app.screen.query_one("#endpoint-detail", Static).render())
        assert "(in 10m)" in detail and "expired" not in detail


def _plain(markup: str) -> str:
    return re.sub(r"\[/?[$a-z][^\]]*\]", "", markup)


async def test_the_detail_says_where_sends_spend_their_time_and_why_those_shards() -> None:
    snap = recorded_snapshot()
    healthy, failing = snap.endpoints
    text = _plain(detail_markup(healthy, now=snap.time, window=10.0))
    assert "in flight 1.1 (mean) · shards busy 48% · 4 batches/s" in text
    assert "per batch: encode 3.1ms, waiting for the loop 1.1ms, network+receiver 32ms" in text
    assert "(10s avg)" in text
    assert "shards: desired 2.00 = 1 ms of network and receiver time per sample" in text
    # The receiver is down: no batch finished in the window, the shards are all busy.
    text = _plain(detail_markup(failing, now=snap.time, window=10.0))
    assert "in flight 3 · no batch sent in the last 10s" in text
    assert "(capped at max_shards 5)" in text
    # A peer's metrics carry none of this: nothing is claimed for it.
    text = detail_markup(healthy, read_only=True, now=snap.time)
    assert "in flight" not in text and "shards:" not in text


async def test_the_detail_shows_what_waits_in_the_spool() -> None:
    snap = recorded_snapshot()
    endpoint = snap.endpoints[1]
    assert "spool" not in detail_markup(endpoint, now=snap.time)
    spooling = dataclasses.replace(endpoint, spool_batches=1234, spool_bytes=48 * 1024 * 1024)
    text = _plain(detail_markup(spooling, now=snap.time))
    assert "1.23k batches encoded ahead in the spool (48.0 MiB)" in text


async def test_saturated_shards_are_marked() -> None:
    snap = recorded_snapshot()
    endpoint = snap.endpoints[0]
    busy = tuple(dataclasses.replace(p, shard_utilisation=0.95) for p in endpoint.history)
    markup = detail_markup(dataclasses.replace(endpoint, history=busy), now=snap.time)
    assert "shards busy [$warning]95%[/]" in markup
