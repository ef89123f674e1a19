"""The interface of the client transports: send a prepared request, get a ``Reply``.

``Transport.exchange`` sends one ``httpx.Request`` (headers complete, body
read) as it is, without following redirects (``redirect`` decides that, and
``transport.send`` loops over it), and returns the status, headers and body.
Failures are raised as httpx's exceptions (``httpx.TransportError`` and its
kinds), whichever implementation carried the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple, Protocol

import httpx


class Reply(NamedTuple):
    """A whole response: ``headers`` as received (raw names and values), ``body`` not decoded."""

    status: int
    reason: str
    http_version: str
    headers: list[tuple[bytes, bytes]]
    body: bytes


class Transport(Protocol):
    async def exchange(self, request: httpx.Request, *, max_body: int | None) -> Reply:
        """Send ``request`` once; the body is read up to at least ``max_body`` bytes.

        A longer body is cut there (None: the whole body).
        """
        ...

    async def aclose(self) -> None: ...


async def read_up_to(pieces: AsyncIterator[bytes], limit: int | None) -> bytes:
    """The ``pieces`` of a body joined, stopping once ``limit`` bytes arrived (None: all)."""
    chunks: list[bytes] = []
    size = 0
    async for piece in pieces:
        chunks.append(piece)
        size += len(piece)
        if limit is not None and size >= limit:
            break
    return b"".join(chunks)
