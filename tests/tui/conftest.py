"""Console test fixtures: an isolated state directory, a fixed time zone, a live demo engine."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from rwconsole.tui import themes

STOP_TIMEOUT = 10.0


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv(themes.CONFIG_DIR_ENV, str(tmp_path / "state"))
    monkeypatch.delenv(themes.THEME_DIR_ENV, raising=False)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def demo_engine(tmp_path: Path) -> Iterator[object]:
    """A real engine running the demo pipeline on a temporary directory (always stopped)."""
    from rwconsole.engine import Engine
    from rwconsole.pipelines import demo_config

    logger = logging.getLogger("rwconsole")
    level = logger.level
    logger.setLevel(logging.INFO)
    data = tmp_path / "data"
    engine = Engine(demo_config(data), data_dir=data)
    engine.start()
    try:
        if not engine.snapshot().endpoints:
            # Give the first snapshot a moment; bounded.
            deadline = time.monotonic() + 5
            while not engine.snapshot().endpoints and time.monotonic() < deadline:
                time.sleep(0.1)
        yield engine
    finally:
        engine.stop(timeout=STOP_TIMEOUT)
        logger.setLevel(level)
        if engine.running:
            warnings.warn(
                f"the demo engine did not stop within {STOP_TIMEOUT}s (engine shutdown bug)",
                stacklevel=1,
            )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
