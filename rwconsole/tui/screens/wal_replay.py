"""The WAL screen's "Replay…": where to send the opened WAL, and the replay itself.

The replay runs as ``rwconsole wal replay`` in a child process (the console
holds no queue machinery of its own), so it behaves exactly like the command:
read-only, resumable from its progress file beside the WAL, refusing a
directory another process holds. Its summary is what the console shows.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from rwconsole.tui.markup import escape

_OUTPUT_LIMIT = 4000


class ReplayTargetScreen(ModalScreen[str | None]):
    """Asks for a remote-write URL or a config file to replay the WAL to."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self._directory = directory

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(f"Replay {escape(str(self._directory))}", classes="panel-title")
            yield Static(
                "A remote-write URL, or a config file (its only endpoint, its external labels "
                "and relabelling). Enter starts; a replay resumes where the last one stopped."
            )
            yield Input(placeholder="http://host:port/api/v1/write or config.toml", id="target")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


def replay_command(directory: Path, target: str) -> list[str]:
    """The ``rwconsole wal replay`` command line for ``target`` (a URL or a config path)."""
    flag = "--url" if target.startswith(("http://", "https://")) else "--config"
    return [sys.executable, "-m", "rwconsole", "wal", "replay", str(directory), flag, target]


async def run_replay(directory: Path, target: str) -> tuple[int, str]:
    """Run the replay to its end; its exit code and its summary (or error)."""
    proc = await asyncio.create_subprocess_exec(
        *replay_command(directory, target),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await proc.communicate()
    except asyncio.CancelledError:
        # Leaving the console interrupts the replay; it saves its progress first.
        proc.terminate()
        await proc.wait()
        raise
    summary = out.decode(errors="replace").strip()
    errors = [
        line
        for line in err.decode(errors="replace").splitlines()
        if line.startswith("error:") or "refused" in line
    ]
    text = "\n".join([summary, *errors]).strip() or f"exit code {proc.returncode}"
    return proc.returncode or 0, text[:_OUTPUT_LIMIT]
