"""Admin tests reuse the console's fixtures (isolated state, demo engine, anyio backend)."""

from tests.tui.conftest import _isolated, anyio_backend, demo_engine  # noqa: F401
