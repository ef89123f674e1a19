"""Slow read-only work for the console, done in a helper process.

Inspecting, verifying or browsing a large WAL is seconds of pure-Python CPU.
In a thread of the console's process it would hold the GIL against both the
UI and the engine, so key presses and forwarding would stall while it runs.
``ToolProcess`` runs such functions in one helper process (started with
``spawn`` on first use: the console's process has running threads, so it is
never forked) and awaits the result without blocking the UI loop.

Functions must be importable module-level functions with picklable arguments
and results. Whatever they raise comes back as ``ToolError`` with the
message and whether it was an ``OSError``; the helper process never takes
the console down.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ToolError(Exception):
    """A function run by ``ToolProcess`` failed; ``message`` says why."""

    def __init__(self, message: str, *, os_error: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.os_error = os_error


class ToolProcess:
    """One helper process, started on first use and stopped by ``close``."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    @property
    def started(self) -> bool:
        return self._pool is not None

    def resolve_wal_dir(self, path: str | Path) -> Path:
        """The WAL directory ``path`` names (``wal.tools.resolve_wal_dir``)."""
        from rwconsole.wal.tools import resolve_wal_dir

        return resolve_wal_dir(path)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in the helper process; raises ``ToolError``."""
        if self._pool is None:
            _start_resource_tracker()
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            )
        loop = asyncio.get_running_loop()
        try:
            ok, value = await loop.run_in_executor(self._pool, _call, fn, args, kwargs)
        except BrokenProcessPool:
            self._discard()
            raise ToolError("the helper process stopped unexpectedly; try again") from None
        if not ok:
            message, os_error = value
            raise ToolError(message, os_error=os_error)
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the helper process, abandoning any work still running in it."""
        self._discard()

    def _discard(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:  # work in progress would otherwise delay exit
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)


def _start_resource_tracker() -> None:
    # multiprocessing hands its tracker process ``sys.stderr.fileno()``; while a
    # Textual app runs, sys.stderr is a capture object whose fileno is -1, and
    # the spawn fails. The real stderr is the right one to pass anyway.
    with contextlib.redirect_stderr(sys.__stderr__):
        resource_tracker.ensure_running()


def _call(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[bool, Any]:
    """Runs in the helper: the result, or the error as plain picklable values."""
    try:
        return True, fn(*args, **kwargs)
    except Exception as err:  # reported to the user as a notice, never re-raised here
        return False, (str(err) or type(err).__name__, isinstance(err, OSError))
