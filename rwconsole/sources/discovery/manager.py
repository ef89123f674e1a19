"""``DiscoveryManager``: runs one scrape job's discoverers and delivers their merged groups.

Groups are kept by (provider, source), so two providers may use the same
source names. Every delivery is the *full* current set of non-empty groups.
Deliveries are coalesced as Prometheus' discovery manager does: after one
delivery the next waits until ``throttle`` seconds (5 s by default) have
passed, however many updates arrive meanwhile. The first delivery goes out as
soon as every provider has reported once, or ``throttle`` seconds after
``start()`` with what is known by then.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from rwconsole.sources.discovery.common import Discoverer, TargetGroup

log = logging.getLogger(__name__)

DEFAULT_THROTTLE = 5.0

OnUpdate = Callable[[list[TargetGroup]], Any]
Sleep = Callable[[float], Awaitable[None]]


class DiscoveryManager:
    """Runs ``providers`` (name → discoverer) and calls ``on_update`` with the merged set."""

    def __init__(
        self,
        providers: Mapping[str, Discoverer],
        on_update: OnUpdate,
        *,
        throttle: float = DEFAULT_THROTTLE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._providers = dict(providers)
        self._on_update = on_update
        self._throttle = throttle
        self._clock = clock
        self._sleep = sleep
        self._groups: dict[tuple[str, str], TargetGroup] = {}
        self._reported: set[str] = set()
        self._dirty = asyncio.Event()
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_send: float | None = None

    def start(self) -> None:
        """Start every provider and the delivery loop (call from the event loop)."""
        if not self._providers:
            self._ready.set()
            self._dirty.set()
        for name, provider in self._providers.items():
            self._tasks.append(asyncio.create_task(self._run(name, provider)))
        self._tasks.append(asyncio.create_task(self._deliver()))

    async def stop(self) -> None:
        """Stop every provider and the delivery loop."""
        for provider in self._providers.values():
            provider.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def groups(self) -> list[TargetGroup]:
        """The current non-empty groups, ordered by provider and source."""
        return [self._groups[key] for key in sorted(self._groups)]

    def errors(self) -> dict[str, str]:
        """Provider name → why its last refresh failed (only failing providers)."""
        return {name: p.error for name, p in self._providers.items() if p.error}

    def _update(self, provider: str, groups: list[TargetGroup]) -> None:
        for group in groups:
            key = (provider, group.source)
            if group.targets:
                self._groups[key] = group
            else:
                self._groups.pop(key, None)
        self._reported.add(provider)
        if len(self._reported) == len(self._providers):
            self._ready.set()
        self._dirty.set()

    async def _run(self, name: str, provider: Discoverer) -> None:
        try:
            await provider.run(lambda groups: self._update(name, groups))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a provider bug must not stop the job's other providers
            log.exception("discovery provider %s failed", name)
            provider.error = f"stopped: {exc}"

    async def _deliver(self) -> None:
        started = self._clock()
        while True:
            await self._dirty.wait()
            if self._last_send is None:
                await self._wait_first(started + self._throttle - self._clock())
            else:
                remaining = self._last_send + self._throttle - self._clock()
                if remaining > 0:
                    await self._sleep(remaining)
            self._dirty.clear()
            self._last_send = self._clock()
            try:
                result = self._on_update(self.groups())
                if inspect.isawaitable(result):
                    await result
            except Exception:  # keep delivering later updates
                log.exception("discovery update callback failed")

    async def _wait_first(self, remaining: float) -> None:
        if self._ready.is_set() or remaining <= 0:
            return
        sleeper = asyncio.ensure_future(self._sleep(remaining))
        ready = asyncio.ensure_future(self._ready.wait())
        try:
            await asyncio.wait((sleeper, ready), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            ready.cancel()
