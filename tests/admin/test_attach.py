"""The console attached to a running service through Textual's pilot: every screen, restarts."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, RichLog, Static

from rwconsole.admin.client import RemoteEngine, RemoteTools, parse_target
from rwconsole.tui.app import ConsoleApp
from rwconsole.tui.screens.wal import WalScreen
from tests.admin.service import Service
from tests.conftest import ProcessManager, free_port, wait_for_port, wait_until
from tests.tui.test_live import _until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
SIZE = (160, 50)


def _receiver(processes: ProcessManager) -> str:
    port = free_port()
    processes.start(
        [sys.executable, "-m", "rwconsole.demo.receiver", "--listen", f"127.0.0.1:{port}"]
    )
    wait_for_port(port)
    return f"http://127.0.0.1:{port}/api/v1/write"


@pytest.fixture
def service(tmp_path: Path, processes: ProcessManager) -> Service:
    return Service(processes, tmp_path, _receiver(processes)).start()


@pytest.fixture
def remote(service: Service) -> Iterator[RemoteEngine]:
    engine = RemoteEngine(parse_target(str(service.data)))
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


def _attached_app(remote: RemoteEngine) -> ConsoleApp:
    app = ConsoleApp(remote, config_path=remote.info["config_path"], refresh_interval=0.25)
    app.tools = RemoteTools(remote)  # type: ignore[assignment]
    return app


def _vm(remote: RemoteEngine) -> Any:
    return remote.snapshot().endpoint("vm")


async def test_attached_console_applies_saves_and_reads_back(
    service: Service, remote: RemoteEngine
) -> None:
    wait_until(lambda: len(_vm(remote).history) >= 2)
    app = _attached_app(remote)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: "attached to" in app.screen.title, what="connection shown")
        assert "connected" in app.screen.title and str(service.socket) in app.screen.title
        # The history came with the first snapshot: the charts have their past at once.
        assert len(app.snapshot.endpoint("vm").history) >= 2  # type: ignore[union-attr]

        await pilot.press("3")
        app.screen.query_one("#new-max_shards", Input).value = "8"
        await pilot.press("ctrl+o")  # apply & save: to the service's own config file
        await _until(pilot, lambda: _vm(remote).queue_config["max_shards"] == 8, what="applied")
        await _until(pilot, lambda: "max_shards = 8" in service.config.read_text(), what="saved")
        assert service.ctl_json("status")["endpoints"][0]["max_shards"] == 8  # type: ignore[index]

        await pilot.press("escape", "2")
        await pilot.press("p")
        await _until(pilot, lambda: _vm(remote).paused, what="paused")
        assert service.ctl_json("status")["endpoints"][0]["paused"] is True  # type: ignore[index]
        await pilot.press("p")
        await _until(pilot, lambda: not _vm(remote).paused, what="resumed")

        await pilot.press("6")
        log = app.screen.query_one(RichLog)
        await _until(
            pilot,
            lambda: any("admin: queue_config of vm" in line.text for line in log.lines),
            what="the command logged with its origin",
        )

        await pilot.press("4")
        wal = app.screen
        assert isinstance(wal, WalScreen)
        await _until(pilot, lambda: wal.report is not None, what="WAL inspected via the API")
        assert wal.report is not None and wal.report.series == 50
        assert "repair refused" in str(wal.query_one("#wal-heading", Static).render())
        await pilot.press("v")
        await _until(pilot, lambda: wal.verify_report is not None, what="verified via the API")
        wal.query_one("#series-filter", Input).value = "{}"
        wal.action_focus_filter()
        await pilot.press("enter")
        await _until(pilot, lambda: wal.browse is not None, what="series searched via the API")
        assert wal.browse is not None and len(wal.browse.rows) == 50
        table = wal.query_one("#series-table", DataTable)
        table.focus()
        await pilot.press("enter")
        await _until(
            pilot,
            lambda: wal.query_one("#dump-table", DataTable).row_count > 0,
            what="series dumped via the API",
        )
    assert service.proc is not None and service.proc.poll() is None  # the console left, it runs


async def test_service_restart_under_an_attached_console(
    service: Service, remote: RemoteEngine
) -> None:
    app = _attached_app(remote)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: "connected" in app.screen.title, what="attached")
        assert service.stop() == 0
        await _until(pilot, lambda: remote.connection.state == "reconnecting", what="link lost")
        await _until(pilot, lambda: "reconnecting" in app.screen.title, what="shown")
        service.start()
        await _until(
            pilot,
            lambda: remote.connection.state == "connected" and remote.connection.connects >= 2,
            seconds=30,
            what="reconnected",
        )
        await _until(pilot, lambda: app.snapshot.running and app.snapshot.endpoints, what="live")
        assert remote.info["pid"] == service.proc.pid  # type: ignore[union-attr]


async def test_demo_screen_on_an_attached_demo(demo_engine: Any) -> None:
    remote = RemoteEngine(parse_target(str(demo_engine.data_dir)))
    remote.start()
    try:
        app = _attached_app(remote)
        async with app.run_test(size=SIZE) as pilot:
            await _until(pilot, lambda: app.snapshot.demo is not None, what="demo stats")
            await pilot.press("5")
            await pilot.press("x")
            await _until(
                pilot,
                lambda: demo_engine.snapshot().demo.fault.mode == "error_5xx",
                what="fault set through the API",
            )
            await pilot.press("k")
            await _until(
                pilot, lambda: demo_engine.snapshot().demo.fault.mode == "ok", what="cleared"
            )
    finally:
        remote.stop()


def test_consoles_crashing_do_not_affect_the_service(
    service: Service, processes: ProcessManager
) -> None:
    client = (
        "import sys, time; from rwconsole.admin.client import RemoteEngine, parse_target; "
        "e = RemoteEngine(parse_target(sys.argv[1])); e.start(60); print('up', flush=True); "
        "time.sleep(600)"
    )
    consoles = [
        processes.start([sys.executable, "-c", client, str(service.data)], stdout=subprocess.PIPE)
        for _ in range(3)
    ]
    for console in consoles:
        assert console.stdout is not None and console.stdout.readline() == b"up\n"
    consoles[0].send_signal(signal.SIGKILL)
    consoles[1].terminate()
    before = service.out_total()
    wait_until(lambda: service.out_total() > before + 100)
    status = service.ctl_json("status")
    assert status["pid"] == service.proc.pid  # type: ignore[union-attr]
    assert consoles[2].poll() is None  # the other console is still attached
