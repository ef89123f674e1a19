"""Fixtures shared by the source tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from src_helpers import TargetServer


@pytest.fixture
async def target() -> AsyncIterator[TargetServer]:
    """A scrape target on loopback whose answer the test sets."""
    server = TargetServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
