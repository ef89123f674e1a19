"""The real ``rwconsole`` command in a terminal (tmux): the console comes up on the demo."""

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


def _wait_for(base: list[str], session: str, words: list[str], seconds: float) -> str:
    deadline = time.monotonic() + seconds
    screen = ""
    while time.monotonic() < deadline:
        screen = _capture(base, session)
        if all(word in screen for word in words):
            return screen
        time.sleep(0.25)
    raise AssertionError(f"{words} not on screen after {seconds}s:\n{screen}")


def test_rwconsole_demo_in_tmux(tmp_path: Path) -> None:
    tmux = peer_binary("tmux")
    session = f"rwconsole-test-{os.getpid()}"
    socket = str(tmp_path / "tmux.sock")
    env_prefix = (
        f"env RWCONSOLE_CONFIG_DIR={tmp_path / 'state'} TERM=xterm-256color "
        f"{sys.executable} -m rwconsole demo --data-dir {tmp_path / 'data'}"
    )
    base = [tmux, "-S", socket]
    subprocess.run(
        [*base, "new-session", "-d", "-s", session, "-x", "160", "-y", "50", env_prefix],
        check=True,
        timeout=10,
    )
    try:
        screen = _wait_for(base, session, ["demo-v1", "demo-v2", "healthy"], 30)
        assert "Overview" in screen
        subprocess.run([*base, "send-keys", "-t", session, "2"], check=True, timeout=10)
        screen = _wait_for(base, session, ["Endpoint", "Status", "Pending"], 10)
        subprocess.run([*base, "send-keys", "-t", session, "C-q"], check=True, timeout=10)
    finally:
        subprocess.run([*base, "kill-session", "-t", session], capture_output=True, timeout=10)
        subprocess.run([*base, "kill-server"], capture_output=True, timeout=10)
