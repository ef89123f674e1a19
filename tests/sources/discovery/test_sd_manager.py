"""DiscoveryManager: merging by (provider, source), full-set deliveries, the update throttle.

Time is a fake clock; the throttle's sleep is a fake that records the delay
asked for and returns only when the test releases it.
"""

from __future__ import annotations

import asyncio

import pytest

from rwconsole.sources.discovery.common import TargetGroup, Updates
from rwconsole.sources.discovery.manager import DiscoveryManager

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeDiscoverer:
    """Reports what the test pushes."""

    def __init__(self) -> None:
        self.error = ""
        self.updates: Updates | None = None
        self.running = asyncio.Event()
        self._stop = asyncio.Event()

    async def run(self, updates: Updates) -> None:
        self.updates = updates
        self.running.set()
        await self._stop.wait()

    def stop(self) -> None:
        self._stop.set()

    def push(self, *groups: TargetGroup) -> None:
        assert self.updates is not None
        self.updates(list(groups))


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.release = asyncio.Event()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await self.release.wait()
        self.release.clear()
        self.now += seconds


def group(source: str, *addresses: str, **labels: str) -> TargetGroup:
    return TargetGroup(source, [{"__address__": a} for a in addresses], dict(labels))


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def addresses(groups: list[TargetGroup]) -> list[str]:
    return [t["__address__"] for g in groups for t in g.targets]


async def test_first_delivery_waits_for_every_provider_then_throttles() -> None:
    time = FakeTime()
    delivered: list[list[TargetGroup]] = []
    a, b = FakeDiscoverer(), FakeDiscoverer()
    manager = DiscoveryManager(
        {"a": a, "b": b}, delivered.append, throttle=5.0, clock=time.clock, sleep=time.sleep
    )
    manager.start()
    try:
        await asyncio.wait_for(asyncio.gather(a.running.wait(), b.running.wait()), 5)
        a.push(group("x", "h1:1"))
        await settle()
        assert delivered == []  # b has not reported yet: wait (up to the throttle)
        assert time.sleeps == [5.0]
        b.push(group("x", "h2:1"))  # same source name, other provider: both kept
        await settle()
        assert addresses(delivered[-1]) == ["h1:1", "h2:1"]
        assert len(delivered) == 1

        # Three updates in quick succession: one delivery, after the throttle, of the last state.
        a.push(group("x", "h1:1", "h3:1"))
        a.push(group("y", "h4:1"))
        b.push(group("x"))  # an empty group removes b's source "x"
        await settle()
        assert len(delivered) == 1
        assert time.sleeps[-1] == 5.0
        time.release.set()
        await settle()
        assert len(delivered) == 2
        assert addresses(delivered[-1]) == ["h1:1", "h3:1", "h4:1"]
        assert [g.source for g in delivered[-1]] == ["x", "y"]
    finally:
        await manager.stop()


async def test_first_delivery_goes_out_after_the_throttle_without_a_silent_provider() -> None:
    time = FakeTime()
    delivered: list[list[TargetGroup]] = []
    a, silent = FakeDiscoverer(), FakeDiscoverer()
    manager = DiscoveryManager(
        {"a": a, "silent": silent}, delivered.append, clock=time.clock, sleep=time.sleep
    )
    manager.start()
    try:
        await asyncio.wait_for(a.running.wait(), 5)
        a.push(group("x", "h1:1"))
        await settle()
        assert delivered == []
        time.release.set()
        await settle()
        assert addresses(delivered[0]) == ["h1:1"]
    finally:
        await manager.stop()


async def test_a_delivery_later_than_the_throttle_is_not_delayed() -> None:
    time = FakeTime()
    delivered: list[list[TargetGroup]] = []
    a = FakeDiscoverer()
    manager = DiscoveryManager({"a": a}, delivered.append, clock=time.clock, sleep=time.sleep)
    manager.start()
    try:
        await asyncio.wait_for(a.running.wait(), 5)
        a.push(group("x", "h1:1"))
        await settle()
        assert len(delivered) == 1
        time.now += 60
        a.push(group("x", "h2:1"))
        await settle()
        assert len(delivered) == 2 and time.sleeps == []
    finally:
        await manager.stop()


async def test_async_callback_and_errors() -> None:
    delivered: list[list[TargetGroup]] = []

    async def on_update(groups: list[TargetGroup]) -> None:
        delivered.append(groups)

    a = FakeDiscoverer()
    a.error = "file x.json: line 1, column 2: bad"
    manager = DiscoveryManager({"a": a}, on_update, throttle=0.0)
    manager.start()
    try:
        await asyncio.wait_for(a.running.wait(), 5)
        a.push(group("x", "h1:1", job="j"))
        await settle()
        assert delivered[0][0].expand() == [{"__address__": "h1:1", "job": "j"}]
        assert manager.errors() == {"a": "file x.json: line 1, column 2: bad"}
    finally:
        await manager.stop()
