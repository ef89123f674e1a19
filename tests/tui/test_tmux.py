"""The real ``rwconsole`` command in tmux: up on the demo, keys work, ctrl+q exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import peer_binary

pytestmark = [pytest.mark.peer, pytest.mark.slow]


def _capture(base: list[str], session: str) -> str:
    return subprocess.run(
        [*base, "capture-pane", "-p", "-t", session], capture_output=True, text=True, timeout=10
    ).stdout


def _wait_for(
    base: list[str], session: str, words: list[str], seconds: float, gone: tuple[str, ...] = ()
) -> str:
    """The screen once every one of ``words`` is on it and none of ``gone`` is."""
    deadline = time.monotonic() + seconds
    screen = ""
    while time.monotonic() < deadline:
        screen = _capture(base, session)
        if all(word in screen for word in words) and not any(word in screen for word in gone):
            return screen
        time.sleep(0.25)
    raise AssertionError(f"{words} (without {gone}) not on screen after {seconds}s:\n{screen}")


def exit_status(exit_file: Path, seconds: float) -> str:
    """The status the shell wrote to ``exit_file`` once the command ended (bounded wait)."""
    deadline = time.monotonic() + seconds
    while not exit_file.exists() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert exit_file.exists(), f"rwconsole did not exit within {seconds}s after ctrl+q"
    time.sleep(0.1)  # the shell writes the status after creating the file
    return exit_file.read_text().strip()


def test_rwconsole_demo_in_tmux(tmp_path: Path) -> None:
    tmux = peer_binary("tmux")
    session = f"rwconsole-test-{os.getpid()}"
    socket = str(tmp_path / "tmux.sock")
    exit_file = tmp_path / "exit-status"
    env_prefix = (
        # COLUMNS/LINES (set under pytest) would override the terminal's real size.
        f"env -u COLUMNS -u LINES RWCONSOLE_CONFIG_DIR={tmp_path / 'state'} TERM=xterm-256color "
        f"{sys.executable} -m rwconsole demo --data-dir {tmp_path / 'data'}"
        f"; echo $? > {exit_file}"
    )
    base = [tmux, "-S", socket]
    subprocess.run(
        [*base, "new-session", "-d", "-s", session, "-x", "160", "-y", "50", env_prefix],
        check=True,
        timeout=10,
    )
    try:
        screen = _wait_for(base, session, ["demo-v1", "demo-v2", "healthy"], 30)
        assert "Overview" in screen and "Samples in vs out" in screen
        subprocess.run([*base, "send-keys", "-t", session, "2"], check=True, timeout=10)
        # Words of the Endpoints table only, and the Overview's charts gone: the screen changed.
        endpoints_only = ["Min–max", "Desired", "Retried"]
        _wait_for(base, session, endpoints_only, 10, gone=("Samples in vs out",))
        subprocess.run([*base, "send-keys", "-t", session, "C-q"], check=True, timeout=10)
        # 60 s: the engine flushes its queues on the way out
        assert exit_status(exit_file, 60) == "0"
    finally:
        subprocess.run([*base, "kill-session", "-t", session], capture_output=True, timeout=10)
        subprocess.run([*base, "kill-server"], capture_output=True, timeout=10)
