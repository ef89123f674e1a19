"""One process per data directory: the lock, a second ``run``, and WAL tools beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ProcessManager, free_port, wait_until

from rwconsole.datadir import LOCK_NAME, DataDirLock, DataDirLocked, check_unlocked


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rwconsole", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    data = tmp_path / "data"
    check_unlocked(data)  # nothing there yet: not locked, nothing created
    assert not data.exists()
    held = DataDirLock.acquire(data)
    assert (data / LOCK_NAME).read_text().strip() == str(os.getpid())
    with pytest.raises(DataDirLocked) as info:
        DataDirLock.acquire(data)  # a second open file description conflicts too
    assert str(data) in str(info.value) and str(os.getpid()) in str(info.value)
    with pytest.raises(DataDirLocked):
        check_unlocked(data)
    held.release()
    check_unlocked(data)
    DataDirLock.acquire(data).release()


def _write_config(path: Path, data: Path) -> None:
    path.write_text(
        f"""
[storage]
path = "{data}"

[http]
listen_address = "127.0.0.1:{free_port()}"

[synthetic]
series = 20
interval = "100ms"
"""
    )


def test_second_run_on_a_locked_directory_exits_1_naming_path_and_pid(
    tmp_path: Path, processes: ProcessManager
) -> None:
    data = tmp_path / "data"
    first_config, second_config = tmp_path / "a.toml", tmp_path / "b.toml"
    _write_config(first_config, data)
    _write_config(second_config, data)
    first = processes.start(
        [sys.executable, "-m", "rwconsole", "run", "--config", str(first_config)]
    )
    wal = data / "wal"
    # A cold start imports the whole program; on a busy 2-core machine it took over 30 s.
    wait_until(lambda: (data / LOCK_NAME).is_file() and any(wal.glob("0*")), timeout=90)
    wait_until(lambda: (data / LOCK_NAME).read_text().strip() == str(first.pid))

    second = _run("run", "--config", str(second_config))
    assert second.returncode == 1, second.stderr
    message = " ".join(second.stderr.split())
    assert str(data) in message and f"process {first.pid}" in message

    # read-only tools work beside the running process; repair refuses
    assert _run("wal", "inspect", str(wal)).returncode == 0
    assert _run("wal", "verify", str(wal)).returncode == 0
    repair = _run("wal", "repair", str(wal))
    assert repair.returncode == 1
    assert f"process {first.pid}" in " ".join(repair.stderr.split())

    # kill -9: the kernel releases the lock, a new process starts
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    check_unlocked(data)
    assert _run("wal", "repair", str(wal)).returncode == 0
    again = processes.start(
        [sys.executable, "-m", "rwconsole", "run", "--config", str(second_config)]
    )
    wait_until(lambda: (data / LOCK_NAME).read_text().strip() == str(again.pid))
    again.send_signal(signal.SIGTERM)
    assert again.wait(timeout=30) == 0
    check_unlocked(data)


def test_repair_refuses_when_the_lock_cannot_be_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rwconsole.cli import main

    wal = tmp_path / "data" / "wal"
    wal.mkdir(parents=True)
    (wal / "00000000").touch()
    (tmp_path / "data" / LOCK_NAME).symlink_to(LOCK_NAME)  # a loop: opening it fails
    assert main(["wal", "repair", str(wal)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot check the lock" in err and str(tmp_path / "data") in err
