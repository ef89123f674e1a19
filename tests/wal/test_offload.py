"""The console's helper process: work runs outside the console's process and failures come back."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from rwconsole.wal import tools
from rwconsole.wal.offload import ToolError, ToolProcess


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


def _sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


async def test_work_runs_in_another_process_and_is_reused() -> None:
    runner = ToolProcess()
    try:
        assert not runner.started
        first = await runner.run(os.getpid)
        second = await runner.run(_sleep_then_pid, 0.0)
        assert first != os.getpid() and first == second
    finally:
        runner.close()
    assert not runner.started


async def test_errors_come_back_as_messages(tmp_path: Path) -> None:
    runner = ToolProcess()
    try:
        with pytest.raises(ToolError) as missing:
            await runner.run(tools.inspect, tmp_path / "no-such-wal")
        assert "no-such-wal" in missing.value.message
        with pytest.raises(ToolError) as bad:
            await runner.run(int, "twelve")
        assert "twelve" in bad.value.message and not bad.value.os_error
        with pytest.raises(ToolError) as os_error:
            await runner.run(os.stat, str(tmp_path / "absent"))
        assert os_error.value.os_error
        assert await runner.run(len, "still works") == 11
    finally:
        runner.close()


async def test_close_does_not_wait_for_running_work() -> None:
    runner = ToolProcess()
    pid = await runner.run(os.getpid)
    task = asyncio.ensure_future(runner.run(_sleep_then_pid, 60.0))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    runner.close()
    assert time.monotonic() - started < 10
    with pytest.raises(OSError):
        os.kill(pid, 0)  # the helper is gone
    task.cancel()
