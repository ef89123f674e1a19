"""One timeout shared by many concurrent operations: ``Deadlines``.

``asyncio.timeout`` arms a loop timer for every operation and cancels it when
the operation ends; at thousands of requests a second that timer heap traffic
is a visible part of each request. When every operation of an owner has the
same timeout, their deadlines fall in the order the operations started, so a
single timer armed for the oldest one serves them all: an operation registers
and unregisters in constant time, and the timer fires about once per timeout
(and once more for each operation that really runs out of time).

What a caller sees is what ``asyncio.timeout`` gives: at its deadline the
operation's task is cancelled, and the ``CancelledError`` leaves the ``async
with`` block as ``TimeoutError`` — unless the task was also cancelled from
outside meanwhile, which then goes on as a cancellation. An owner serves one
event loop at a time, on that loop's thread.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["Deadlines"]


class Deadlines:
    """``async with deadlines.timeout():`` bounds a block by ``seconds`` (fixed for the
    owner's life), with one loop timer for all the blocks running at once."""

    __slots__ = ("_loop", "_running", "_timer", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._running: dict[_Deadline, None] = {}  # oldest first: an ordered set
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def timeout(self) -> _Deadline:
        """A context manager for one block, counted from when it is entered."""
        return _Deadline(self)

    def _enter(self, deadline: _Deadline) -> None:
        if deadline.at:
            raise RuntimeError("a deadline's block is entered once")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # First use, or the owner moved to a new loop (tests run one per case);
            # one loop at a time is assumed: nothing of the old one holds.
            if self._timer is not None:
                self._timer.cancel()
            self._loop, self._timer = loop, None
            self._running.clear()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("Deadlines.timeout() must be used inside a task")
        deadline.task = task
        deadline.cancelling = task.cancelling()
        deadline.at = loop.time() + self.seconds
        self._running[deadline] = None
        if self._timer is None:
            self._timer = loop.call_at(deadline.at, self._fire)

    def _exit(self, deadline: _Deadline) -> None:
        self._running.pop(deadline, None)

    def _fire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        for deadline in self._running:
            if deadline.at > now:
                self._timer = loop.call_at(deadline.at, self._fire)
                return
            if not deadline.expired:
                deadline.expired = True
                deadline.task.cancel()


class _Deadline:
    __slots__ = ("_owner", "at", "cancelling", "expired", "task")

    def __init__(self, owner: Deadlines) -> None:
        self._owner = owner
        self.at = 0.0
        self.cancelling = 0  # the task's pending cancellations when the block began
        self.expired = False
        self.task: asyncio.Task[object]

    async def __aenter__(self) -> _Deadline:
        self._owner._enter(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._owner._exit(self)
        # As asyncio.timeout: the cancellation this deadline asked for is taken back;
        # if no other came meanwhile, the block ran out of time.
        if (
            self.expired
            and self.task.uncancel() <= self.cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc
