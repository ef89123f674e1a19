"""What every discovery mechanism shares: target groups, the protocol, refresh loops, clients.

A ``TargetGroup`` is Prometheus' ``targetgroup.Group``: a ``source`` that is
unique within its provider, a list of targets (label dicts, each with
``__address__``) and labels common to the group (``__meta_*`` among them).
A group with no targets tells the receiver that the source is gone.

A ``Discoverer`` runs until ``stop()`` and reports *changed* groups through the
callback it is given; ``PeriodicDiscoverer`` implements that for mechanisms
that re-read everything on an interval (file, HTTP, DNS): it compares the
sources of one refresh with the previous one and sends empty groups for the
sources that disappeared. A failed refresh keeps the last good groups and
leaves the reason in ``error``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from rwconsole import __version__

log = logging.getLogger(__name__)

ADDRESS_LABEL = "__address__"
META_PREFIX = "__meta_"
USER_AGENT = f"rwconsole/{__version__}"

_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")

Updates = Callable[[list["TargetGroup"]], None]


@dataclass(slots=True)
class TargetGroup:
    """A set of targets with common labels, as one provider's source reports it."""

    source: str
    targets: list[dict[str, str]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    def expand(self) -> list[dict[str, str]]:
        """Each target's labels on top of the group's (a target's own label wins)."""
        return [{**self.labels, **target} for target in self.targets]


class Discoverer(Protocol):
    """One configured discovery mechanism (one ``*_sd_configs`` entry)."""

    error: str

    async def run(self, updates: Updates) -> None:
        """Report changed groups through ``updates`` until ``stop()`` is called."""

    def stop(self) -> None:
        """Make ``run`` return soon."""


def sanitize_label_name(name: str) -> str:
    """Prometheus' rule: every character outside ``[a-zA-Z0-9_]`` becomes ``_``."""
    return _INVALID_LABEL_CHARS.sub("_", name)


class PeriodicDiscoverer:
    """Base for mechanisms that refresh everything every ``refresh_interval`` seconds.

    Subclasses implement ``refresh()``, returning every current group (raising
    ``DiscoveryError`` or ``OSError``/``httpx.HTTPError`` on failure), and may
    override ``wait_for_change`` to end a wait early (file watching).
    """

    def __init__(self, refresh_interval: float) -> None:
        self.refresh_interval = refresh_interval
        self.error = ""
        self._stopping = asyncio.Event()
        self._sources: set[str] = set()

    async def refresh(self) -> list[TargetGroup]:
        raise NotImplementedError

    async def wait_for_change(self, timeout: float) -> None:
        """Return after ``timeout`` seconds, or earlier when the subclass sees a change."""
        await asyncio.sleep(timeout)

    async def close(self) -> None:
        """Release what ``refresh`` holds (clients); called once when ``run`` ends."""

    async def run(self, updates: Updates) -> None:
        try:
            while not self._stopping.is_set():
                await self._refresh_once(updates)
                waiter = asyncio.ensure_future(self.wait_for_change(self.refresh_interval))
                stopper = asyncio.ensure_future(self._stopping.wait())
                await asyncio.wait((waiter, stopper), return_when=asyncio.FIRST_COMPLETED)
                for task in (waiter, stopper):
                    task.cancel()
        finally:
            await self.close()

    def stop(self) -> None:
        self._stopping.set()

    async def _refresh_once(self, updates: Updates) -> None:
        self.error = ""  # refresh() may set it for a partial failure
        try:
            groups = await self.refresh()
        except (DiscoveryError, OSError, httpx.HTTPError, ValueError) as exc:
            self.error = str(exc) or type(exc).__name__
            log.warning("discovery refresh failed, keeping the last targets: %s", self.error)
            return
        current = {group.source for group in groups}
        gone = [TargetGroup(source) for source in sorted(self._sources - current)]
        self._sources = current
        updates(groups + gone)


class DiscoveryError(Exception):
    """A refresh failed for a reason worth showing as is (names the file, URL or record)."""


def build_http_client(config: Any, timeout: float) -> tuple[httpx.AsyncClient, Any]:
    """An httpx client plus authenticator for an ``HTTPClientConfig``-shaped object.

    Proxy, TLS, HTTP/2, redirects and custom headers follow the config as they
    do for an endpoint; raises ``ValueError`` (``ConnectivityConfigError``)
    naming the setting that is wrong.
    """
    from rwconsole.http.auth import build_authenticator
    from rwconsole.http.options import custom_headers
    from rwconsole.http.transport import build_transport

    transport = build_transport(config, http2=config.enable_http2)
    headers = {"User-Agent": USER_AGENT, **custom_headers(config)}
    # redirects are followed with the one policy of ``rwconsole.http`` (see ``send``)
    client = httpx.AsyncClient(
        transport=transport, headers=headers, timeout=timeout, trust_env=False
    )
    return client, build_authenticator(config, timeout=timeout)


async def send(client: httpx.AsyncClient, request: httpx.Request, config: Any) -> httpx.Response:
    """Send ``request``, following redirects as ``config.follow_redirects`` says."""
    from rwconsole.http import redirect

    return await redirect.follow(
        request,
        client.send,
        lambda r: (r.status_code, r.headers.raw),
        enabled=bool(getattr(config, "follow_redirects", True)),
    )


async def close_http_client(client: httpx.AsyncClient, authenticator: Any) -> None:
    await client.aclose()
    await authenticator.aclose()
