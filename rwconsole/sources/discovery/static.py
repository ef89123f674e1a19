"""``static_configs`` (and a job's ``targets`` shorthand): fixed groups reported once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from rwconsole.sources.discovery.common import ADDRESS_LABEL, TargetGroup, Updates


def static_group(source: str, targets: Sequence[str], labels: dict[str, str]) -> TargetGroup:
    """The group of one ``static_configs`` entry; ``source`` is its index, as in Prometheus."""
    return TargetGroup(source, [{ADDRESS_LABEL: t} for t in targets], dict(labels))


class StaticDiscoverer:
    """Reports its groups once, then waits for ``stop()``."""

    def __init__(self, groups: list[TargetGroup]) -> None:
        self.error = ""
        self._groups = groups
        self._stopping = asyncio.Event()

    async def run(self, updates: Updates) -> None:
        updates(list(self._groups))
        await self._stopping.wait()

    def stop(self) -> None:
        self._stopping.set()
