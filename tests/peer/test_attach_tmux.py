"""``rwconsole attach --metrics`` in tmux on a real Prometheus agent: its queue, read-only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import peer_binary
from tests.peer.conftest import Agent
from tests.tui.test_tmux import _wait_for, exit_status

pytestmark = [pytest.mark.peer, pytest.mark.slow]


def test_attach_shows_the_agents_shards_and_lag(prometheus_agent: Agent, tmp_path: Path) -> None:
    tmux = peer_binary("tmux")
    session = f"rwconsole-attach-{os.getpid()}"
    base = [tmux, "-S", str(tmp_path / "tmux.sock")]
    exit_file = tmp_path / "exit-status"
    command = (
        f"env -u COLUMNS -u LINES RWCONSOLE_CONFIG_DIR={tmp_path / 'state'} TERM=xterm-256color "
        f"{sys.executable} -m rwconsole attach --metrics {prometheus_agent.metrics_url} "
        f"--wal {prometheus_agent.storage}; echo $? > {exit_file}"
    )
    subprocess.run(
        [*base, "new-session", "-d", "-s", session, "-x", "160", "-y", "50", command],
        check=True,
        timeout=10,
    )

    def keys(*names: str) -> None:
        subprocess.run([*base, "send-keys", "-t", session, *names], check=True, timeout=10)

    try:
        # The Overview: the agent's queue, its shards (running / desired) and lag.
        screen = _wait_for(base, session, ["recv", "shards 2 /", "lag ", "(read-only)"], 60)
        assert "Prometheus agent at" in screen
        assert re.search(r"recv\s.*shards 2 / \S+\s+lag \d", screen), screen
        keys("2")
        _wait_for(base, session, ["Min–max", "2–7"], 10, gone=("Samples in vs out",))
        keys("3")
        screen = _wait_for(base, session, ["read-only:", "max_shards", "Effect estimate"], 10)
        assert "not operated by rwconsole" in screen
        keys("1")
        _wait_for(base, session, ["Samples in vs out"], 10)
        keys("p")
        _wait_for(base, session, ["cannot be paused from here"], 10)
        keys("4")
        _wait_for(base, session, ["the WAL of Prometheus agent", "segment file(s)"], 20)
        keys("C-q")
        assert exit_status(exit_file, 30) == "0"
    finally:
        subprocess.run([*base, "kill-session", "-t", session], capture_output=True, timeout=10)
        subprocess.run([*base, "kill-server"], capture_output=True, timeout=10)
