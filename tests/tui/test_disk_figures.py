"""The WAL's disk on the Overview: figures, per-endpoint loss and the banner."""

from __future__ import annotations

import dataclasses

import pytest
from textual.widgets import Static

from rwconsole.snapshot import Snapshot, WalDiskSnapshot, from_dict, to_dict
from rwconsole.tui.app import ConsoleApp
from rwconsole.tui.widgets.disk import disk_banner, disk_line, loss_line
from tests.tui.recorded import recorded_snapshot

SIZE = (160, 50)


def _disk(**changes: object) -> WalDiskSnapshot:
    base = WalDiskSnapshot(
        size_bytes=300 * 1024**2,
        limit_bytes=512 * 1024**2,
        on_full="drop_oldest",
        free_bytes=20 * 1024**3,
        growth_bytes_per_second=1024**2,
        seconds_to_full=212 * 1024**2 / 1024**2,
        full_by="budget",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _with(disk: WalDiskSnapshot, loss: float = 0.0) -> Snapshot:
    snapshot = recorded_snapshot()
    endpoints = tuple(
        dataclasses.replace(e, loss_at_budget_per_second=loss * (i + 1))
        for i, e in enumerate(snapshot.endpoints)
    )
    return dataclasses.replace(snapshot, disk=disk, endpoints=endpoints)


def test_figures_name_size_budget_free_growth_and_time_to_full() -> None:
    line = disk_line(_disk())
    for part in ("300.0 MiB[/b] / 512.0 MiB budget (59%, drop_oldest)", "disk free 20.0 GiB"):
        assert part in line
    assert "+1.0 MiB/s" in line and "full in 3m32s (budget)" in line


def test_banner_when_appends_fail_or_full_within_ten_minutes() -> None:
    assert disk_banner(None) == ""
    assert disk_banner(_disk(seconds_to_full=3600.0)) == ""
    soon = disk_banner(_disk())
    assert "WAL budget full in 3m32s" in soon and "oldest undelivered data will be dropped" in soon
    failing = disk_banner(_disk(append_error="WAL disk full: /data/wal", append_failures=7))
    assert "WAL disk full: /data/wal" in failing and "7 commits" in failing
    disk = disk_banner(_disk(full_by="filesystem", seconds_to_full=30.0))
    assert "WAL filesystem full in 30.0s" in disk and "refused" in disk


def test_loss_per_endpoint_only_with_a_drop_budget() -> None:
    snapshot = _with(_disk(), loss=1500.0)
    assert loss_line(snapshot.disk, snapshot.endpoints).count("/s") == len(snapshot.endpoints)
    assert loss_line(_disk(on_full="reject"), snapshot.endpoints) == ""


def test_disk_figures_survive_the_snapshot_round_trip() -> None:
    snapshot = _with(_disk(free_bytes=None, seconds_to_full=None), loss=3.0)
    assert from_dict(to_dict(snapshot)) == snapshot


@pytest.mark.anyio
async def test_overview_shows_the_banner_and_figures() -> None:
    app = ConsoleApp(snapshot=_with(_disk(append_error="WAL disk full: /data/wal"), loss=20.0))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        banner = app.screen.query_one("#disk-banner", Static)
        assert banner.display and "WAL disk full: /data/wal" in str(banner.render())
        status = str(app.screen.query_one("#status-lines", Static).render())
        assert "512.0 MiB budget" in status and "at the budget would lose" in status
