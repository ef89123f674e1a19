"""The WAL screen on real WAL directories written by Prometheus (and damaged copies)."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Static, TabbedContent

from rwconsole.tui.app import ConsoleApp
from rwconsole.tui.screens.confirm import ConfirmScreen
from rwconsole.tui.screens.wal import WalScreen
from tests.tui.recorded import recorded_snapshot

SIZE = (160, 50)
pytestmark = pytest.mark.anyio


def _copy(fixtures_dir: Path, tmp_path: Path, name: str = "agent-uncompressed") -> Path:
    target = tmp_path / name
    shutil.copytree(fixtures_dir / name / "wal", target)
    for path in [target, *target.iterdir()]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return target


async def _until(pilot: object, check: object, seconds: float = 20.0) -> None:
    """Let the app run until ``check()`` is true (bounded)."""
    for _ in range(int(seconds / 0.05)):
        if check():  # type: ignore[operator]
            return
        await pilot.pause(0.05)  # type: ignore[attr-defined]
    raise AssertionError("condition not reached in time")


async def _inspected(app: ConsoleApp, pilot: object) -> WalScreen:
    """The WAL screen once its first inspection is shown."""
    screen = app.screen
    assert isinstance(screen, WalScreen)
    await _until(pilot, lambda: screen.report is not None)
    return screen


def _text(screen: WalScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_inspect_browse_dump_and_verify(fixtures_dir: Path) -> None:
    wal = fixtures_dir / "agent-uncompressed" / "wal"
    app = ConsoleApp(None, wal_dir=wal)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _inspected(app, pilot)
        segments = screen.query_one("#wal-segments", DataTable)
        assert segments.row_count == 1
        assert segments.get_row_at(0)[0] == "00000000"
        summary = _text(screen, "#wal-summary")
        assert "352 series" in summary and "11.7k samples" in summary
        records = screen.query_one("#wal-records", DataTable)
        assert {records.get_row_at(i)[0] for i in range(records.row_count)} == {
            "series",
            "samples",
            "exemplars",
        }
        metrics = screen.query_one("#wal-metrics", DataTable)
        assert [str(cell) for cell in metrics.get_row_at(0)[:2]] == ["fx_gauge", "200"]
        # Other screens are not available without an engine.
        await pilot.press("1")
        assert app.screen is screen
        # Series browser with a selector, then one series' samples.
        await pilot.press("slash")
        await pilot.press(*'fx_requests_total{path=~"/p1.*"}', "enter")
        await _until(pilot, lambda: screen.browse is not None)
        table = screen.query_one("#series-table", DataTable)
        assert 0 < table.row_count < 50
        assert all('path="/p1' in str(table.get_row_at(i)[0]) for i in range(table.row_count))
        table.focus()
        await pilot.press("enter")
        dump = screen.query_one("#dump-table", DataTable)
        await _until(pilot, lambda: dump.row_count > 0)
        assert dump.get_row_at(0)[0] == "sample"
        assert "entries" in _text(screen, "#series-status")
        # A bad selector is reported where it is typed.
        search = screen.query_one("#series-filter", Input)
        search.value = "up{job=}"
        search.focus()
        await pilot.press("enter")
        assert "bad selector" in _text(screen, "#series-status")
        # Verify: clean.
        screen.set_focus(None)
        await pilot.press("v")
        await _until(pilot, lambda: screen.verify_report is not None)
        assert screen.query_one(TabbedContent).active == "tab-verify"
        assert "OK" in _text(screen, "#verify-summary")


async def test_verify_locates_damage_and_repair_previews_then_fixes(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    wal = _copy(fixtures_dir, tmp_path)
    segment = wal / "00000000"
    data = bytearray(segment.read_bytes())
    data[100_000:100_010] = b"\xff" * 10
    segment.write_bytes(bytes(data))
    app = ConsoleApp(None, wal_dir=wal)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, WalScreen)
        await _until(pilot, lambda: screen.report is not None)
        assert "damage" in _text(screen, "#wal-summary")
        await pilot.press("v")
        await _until(pilot, lambda: screen.verify_report is not None)
        problems = screen.query_one("#verify-problems", DataTable)
        assert problems.row_count >= 1
        kind, seg, offset, *_ = problems.get_row_at(0)
        assert kind == "corruption" and seg == "00000000" and offset != "-"
        assert 3 * 32768 <= int(offset) < 4 * 32768  # in the damaged page
        # Preview, refuse: nothing changes.
        before = segment.read_bytes()
        await pilot.press("R")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        message = str(app.screen.query_one("#confirm-message", Static).render())
        assert "dropped:" in message and "sample(s)" in message
        await pilot.press("n")
        assert segment.read_bytes() == before
        # Preview again and accept.
        await pilot.press("R")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await _until(pilot, lambda: screen.verify_report is not None and screen.verify_report.ok)
        assert len(segment.read_bytes()) < len(before)
        assert list(tmp_path.glob("*.repair-backup-*"))


async def test_open_another_directory_and_errors(fixtures_dir: Path, tmp_path: Path) -> None:
    app = ConsoleApp(None, wal_dir=fixtures_dir / "agent-uncompressed" / "wal")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, WalScreen)
        await _until(pilot, lambda: screen.report is not None)
        await pilot.press("o")
        prompt = app.screen.query_one("#wal-path", Input)
        prompt.value = str(tmp_path / "missing")
        await pilot.press("enter")
        await pilot.pause()
        assert screen.directory == fixtures_dir / "agent-uncompressed" / "wal"
        assert any("no such directory" in n.message for n in app._notifications)
        await pilot.press("o")
        app.screen.query_one("#wal-path", Input).value = str(fixtures_dir / "agent-snappy")
        await pilot.press("enter")
        await _until(
            pilot,
            lambda: screen.report is not None and "agent-snappy" in screen.report.directory,
        )
        assert screen.directory == fixtures_dir / "agent-snappy" / "wal"


async def test_running_engines_wal_is_never_repaired(fixtures_dir: Path, tmp_path: Path) -> None:
    wal = _copy(fixtures_dir, tmp_path)
    segment = wal / "00000000"
    data = bytearray(segment.read_bytes())
    data[50_000:50_004] = b"\x00\xff\x00\xff"
    segment.write_bytes(bytes(data))
    before = segment.read_bytes()
    snapshot = dataclasses.replace(recorded_snapshot(), wal_dir=str(wal))
    app = ConsoleApp(snapshot=snapshot, start="wal")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, WalScreen)
        await _until(pilot, lambda: screen.report is not None)
        assert "repair refused" in _text(screen, "#wal-heading")
        await pilot.press("R")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("Repair refused" in (n.title or "") for n in app._notifications)
        assert segment.read_bytes() == before
        # Endpoint positions of the running engine are shown.
        positions = screen.query_one("#wal-positions", DataTable)
        assert positions.row_count == 2


def test_open_wal_rejects_a_missing_or_non_wal_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Missing or non-WAL directories are usage errors (exit 2), as for the other wal commands."""
    from rwconsole.tui.launch import open_wal

    assert open_wal(tmp_path / "missing") == 2
    assert "missing" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not a WAL\n")
    assert open_wal(tmp_path) == 2
    assert str(tmp_path.name) in capsys.readouterr().err


async def test_escape_leaves_the_selector_and_v_shows_verify(fixtures_dir: Path) -> None:
    wal = fixtures_dir / "agent-uncompressed" / "wal"
    app = ConsoleApp(None, wal_dir=wal)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _inspected(app, pilot)
        await pilot.press("slash")
        search = screen.query_one("#series-filter", Input)
        assert screen.focused is search
        await pilot.press("enter")  # every series
        await _until(pilot, lambda: screen.browse is not None)
        # The label column leaves room for the numbers.
        table = screen.query_one("#series-table", DataTable)
        await pilot.pause(0.1)
        assert table.virtual_size.width <= table.size.width
        search.focus()
        await pilot.press("escape")
        assert screen.focused is not search
        await pilot.press("v")
        assert search.value == ""  # not typed into the field
        await _until(pilot, lambda: screen.verify_report is not None)
        # From the series table (which keeps the focus in the Series tab) too.
        screen.verify_report = None
        screen.query_one(TabbedContent).active = "tab-series"
        table.focus()
        await pilot.pause(0.1)
        await pilot.press("v")
        await _until(pilot, lambda: screen.verify_report is not None)
        await pilot.pause(0.1)
        assert screen.query_one(TabbedContent).active == "tab-verify"


async def test_a_wal_that_vanishes_is_a_notice_not_a_crash(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    wal = _copy(fixtures_dir, tmp_path)
    app = ConsoleApp(None, wal_dir=wal)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, WalScreen)
        await _until(pilot, lambda: screen.report is not None)
        shutil.rmtree(wal)
        await pilot.press("v")
        await _until(
            pilot, lambda: any("Verify failed" in (n.title or "") for n in app._notifications)
        )
        await pilot.press("R")
        await _until(
            pilot,
            lambda: any("Repair preview failed" in (n.title or "") for n in app._notifications),
        )
        assert app.is_running


async def test_tools_that_end_after_the_screen_is_gone_change_nothing(fixtures_dir: Path) -> None:
    """As when the console closes while an inspection or a verify is still running."""
    app = ConsoleApp(None, wal_dir=fixtures_dir / "agent-uncompressed" / "wal")
    released = asyncio.Event()
    async with app.run_test(size=SIZE) as pilot:
        screen = await _inspected(app, pilot)
        tools = screen.console.tools
        original = tools.run
        finished: list[str] = []

        async def held(fn: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await original(fn, *args, **kwargs)
            finally:
                await released.wait()
                finished.append(fn.__name__)

        tools.run = held  # type: ignore[method-assign]
        screen.report = None
        screen.action_inspect()
        await pilot.press("v")
        await _until(pilot, lambda: screen.workers and all(w.is_running for w in screen.workers))
        for child in list(screen.children):
            await child.remove()
        released.set()
        await _until(pilot, lambda: len(finished) == 2)
        await _until(pilot, lambda: not any(w.is_running for w in screen.workers))
        assert sorted(finished) == ["inspect", "verify"]
        assert screen.report is None and screen.verify_report is None
        assert all(w.error is None for w in screen.workers)
        assert app.is_running


async def test_repair_refuses_a_directory_another_process_holds(tmp_path: Path) -> None:
    from rwconsole.datadir import DataDirLock
    from rwconsole.labels import make_labels
    from rwconsole.wal.storage import WalStorage

    data = tmp_path / "data"
    held = DataDirLock.acquire(data)  # as a running `rwconsole run` holds it
    try:
        with WalStorage.open(data / "wal") as wal:
            refs = wal.series_refs([make_labels({"__name__": "m"})])
            wal.append_samples(refs, 1000, [1.0])
            wal.commit()
        app = ConsoleApp(None, wal_dir=data / "wal")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, WalScreen)
            await _until(pilot, lambda: screen.report is not None)  # reading works beside it
            await pilot.press("R")
            await pilot.pause(0.2)
            assert not isinstance(app.screen, ConfirmScreen)
            refused = [n for n in app._notifications if "Repair refused" in (n.title or "")]
            assert refused and str(data) in refused[0].message
    finally:
        held.release()


async def test_replay_sends_the_opened_wal_and_reports(fixtures_dir: Path, tmp_path: Path) -> None:
    from rwconsole.tui.screens.wal_replay import ReplayTargetScreen
    from tests.http_helpers import HTTPServer

    wal = _copy(fixtures_dir, tmp_path)
    receiver = await HTTPServer().start()
    try:
        app = ConsoleApp(None, wal_dir=wal)
        async with app.run_test(size=SIZE) as pilot:
            await _inspected(app, pilot)
            await pilot.press("p")
            await _until(pilot, lambda: isinstance(app.screen, ReplayTargetScreen))
            app.screen.query_one("#target", Input).value = receiver.url + "/api/v1/write"
            await pilot.press("enter")

            def finished() -> list[object]:
                return [n for n in app._notifications if "Replay finished" in (n.title or "")]

            await _until(pilot, finished, seconds=60)
            message = finished()[0].message  # type: ignore[attr-defined]
            assert "11,692 samples" in message and "accepted: 13,512 items" in message
        assert receiver.requests
        assert list(tmp_path.glob("*.replay-*.json"))  # progress beside the WAL, not in it
        assert not [p for p in wal.iterdir() if "replay" in p.name]
    finally:
        await receiver.aclose()


async def test_a_path_with_brackets_is_shown_whole_in_the_notice(tmp_path: Path) -> None:
    from textual.content import Content

    app = ConsoleApp(snapshot=recorded_snapshot())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await pilot.pause(0.2)
        screen = app.screen
        assert isinstance(screen, WalScreen)
        missing = tmp_path / "a[/x]b"
        assert not screen.open_directory(missing)
        await pilot.pause()
        messages = [Content.from_markup(n.message).plain for n in app._notifications]
        assert any(str(missing) in m for m in messages), messages
