"""Deadlines: one loop timer bounding many concurrent blocks, as asyncio.timeout does."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from rwconsole.http.deadlines import Deadlines


def _count_timers(loop: asyncio.AbstractEventLoop) -> list[float]:
    """Record every ``call_at`` the loop is asked for from now on."""
    armed: list[float] = []
    original = loop.call_at

    def call_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        armed.append(when)
        return original(when, callback, *args, **kwargs)

    loop.call_at = call_at  # type: ignore[method-assign]
    return armed


async def _ending(task: asyncio.Task[None]) -> BaseException | None:
    """How ``task`` ended (its exception), waiting at most 30 s for it to end."""
    done, _ = await asyncio.wait({task}, timeout=30)
    assert task in done, "the block never ended"
    return task.exception()


async def _blocked_inside(deadlines: Deadlines) -> asyncio.Task[None]:
    """A task waiting forever inside one of ``deadlines``' blocks."""
    entered = asyncio.Event()

    async def block() -> None:
        async with deadlines.timeout():
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(block())
    await entered.wait()
    return task


def test_a_block_that_runs_out_of_time_raises_timeout_error_and_the_others_finish() -> None:
    async def main() -> None:
        deadlines = Deadlines(0.2)
        finished: list[int] = []

        async def quick(i: int) -> None:
            async with deadlines.timeout():
                await asyncio.sleep(0)
            finished.append(i)

        loop = asyncio.get_running_loop()
        started = loop.time()
        stuck_task = await _blocked_inside(deadlines)
        await asyncio.gather(*(quick(i) for i in range(50)))
        assert sorted(finished) == list(range(50))
        assert isinstance(await _ending(stuck_task), TimeoutError)
        assert loop.time() - started >= 0.2, "not before its deadline"
        assert not deadlines._running, "every block unregistered"

    asyncio.run(main())


def test_many_blocks_at_once_arm_one_timer() -> None:
    async def main() -> None:
        deadlines = Deadlines(5.0)
        armed = _count_timers(asyncio.get_running_loop())
        release = asyncio.Event()

        async def block() -> None:
            async with deadlines.timeout():
                await release.wait()

        tasks = [asyncio.create_task(block()) for _ in range(200)]
        for _ in range(100):
            if len(deadlines._running) == 200:
                break
            await asyncio.sleep(0)
        assert len(deadlines._running) == 200
        assert len(armed) == 1, "asyncio.timeout would have armed 200"
        release.set()
        await asyncio.gather(*tasks)
        assert not deadlines._running

    asyncio.run(main())


def test_each_of_several_stuck_blocks_times_out_at_its_own_deadline() -> None:
    async def main() -> None:
        deadlines = Deadlines(0.1)
        loop = asyncio.get_running_loop()
        never = asyncio.Event()
        ended: list[float] = []
        began: list[float] = []

        async def stuck() -> None:
            began.append(loop.time())
            try:
                async with deadlines.timeout():
                    await never.wait()
            except TimeoutError:
                ended.append(loop.time())

        tasks = []
        for _ in range(3):
            tasks.append(asyncio.create_task(stuck()))
            await asyncio.sleep(0.05)
        for task in tasks:
            assert await _ending(task) is None
        assert len(ended) == 3
        for start, end in zip(began, ended, strict=True):
            assert 0.1 <= end - start < 5, "at its deadline, not another's"

    asyncio.run(main())


def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    async def main() -> None:
        deadlines = Deadlines(30.0)
        task = await _blocked_inside(deadlines)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not deadlines._running

    asyncio.run(main())


def test_a_cancellation_from_outside_at_the_deadline_is_not_turned_into_a_timeout() -> None:
    async def main() -> None:
        deadlines = Deadlines(0.05)
        loop = asyncio.get_running_loop()
        task = await _blocked_inside(deadlines)
        # Cancel from outside in the same loop pass as the deadline's own cancel.
        (deadline,) = deadlines._running
        loop.call_at(deadline.at, task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), 30)
        assert task.cancelled()

    asyncio.run(main())


def test_one_owner_serves_a_new_event_loop() -> None:
    deadlines = Deadlines(0.05)

    async def main() -> BaseException | None:
        return await _ending(await _blocked_inside(deadlines))

    for _ in range(2):  # the second loop must arm its own timer
        assert isinstance(asyncio.run(main()), TimeoutError)


def test_a_task_that_once_swallowed_a_cancellation_still_times_out() -> None:
    async def main() -> BaseException | None:
        deadlines = Deadlines(0.05)

        async def block() -> None:
            # Swallowed without uncancel(): cancelling() stays 1 from here on.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(30)
            async with deadlines.timeout():
                await asyncio.Event().wait()

        task = asyncio.create_task(block())
        await asyncio.sleep(0)
        task.cancel()
        return await _ending(task)

    assert isinstance(asyncio.run(main()), TimeoutError)


def test_a_deadline_is_entered_once() -> None:
    async def main() -> None:
        deadline = Deadlines(5.0).timeout()
        async with deadline:
            pass
        with pytest.raises(RuntimeError, match="entered once"):
            async with deadline:
                pass

    asyncio.run(main())
