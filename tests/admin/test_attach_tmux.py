"""The real ``rwconsole attach`` in tmux on a ``rwconsole run`` service: a change, read back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.admin.service import Service
from tests.admin.test_attach import _receiver
from tests.conftest import ProcessManager, peer_binary
from tests.tui.test_tmux import _wait_for

pytestmark = [pytest.mark.peer, pytest.mark.slow]


def test_attach_in_tmux(tmp_path: Path, processes: ProcessManager) -> None:
    tmux = peer_binary("tmux")
    service = Service(processes, tmp_path, _receiver(processes)).start()
    session = f"rwconsole-attach-{os.getpid()}"
    exit_file = tmp_path / "exit-status"
    command = (
        f"env -u COLUMNS -u LINES RWCONSOLE_CONFIG_DIR={tmp_path / 'state'} TERM=xterm-256color "
        f"{sys.executable} -m rwconsole attach {service.data}; echo $? > {exit_file}"
    )
    base = [tmux, "-S", str(tmp_path / "tmux.sock")]
    subprocess.run(
        [*base, "new-session", "-d", "-s", session, "-x", "160", "-y", "50", command],
        check=True,
        timeout=10,
    )
    try:
        _wait_for(base, session, ["attached to", "connected", "vm"], 30)
        subprocess.run([*base, "send-keys", "-t", session, "2"], check=True, timeout=10)
        _wait_for(base, session, ["Desired", "Retried"], 10, gone=("Samples in vs out",))
        subprocess.run([*base, "send-keys", "-t", session, "p"], check=True, timeout=10)
        _wait_for(base, session, ["paused"], 10)
        assert service.ctl_json("status")["endpoints"][0]["paused"] is True  # type: ignore[index]
        subprocess.run([*base, "send-keys", "-t", session, "C-q"], check=True, timeout=10)
        deadline = time.monotonic() + 30
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.25)
        time.sleep(0.1)
        assert exit_file.read_text().strip() == "0"
        # The console quit; the service runs on, still paused as the console left it.
        assert service.proc is not None and service.proc.poll() is None
        assert service.ctl_json("status")["endpoints"][0]["paused"] is True  # type: ignore[index]
    finally:
        subprocess.run([*base, "kill-session", "-t", session], capture_output=True, timeout=10)
        subprocess.run([*base, "kill-server"], capture_output=True, timeout=10)
