"""Shared test helpers: peer binaries, free loopback ports, managed processes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES_ENV = "RWCONSOLE_WAL_FIXTURES"
FIXTURES = Path(os.environ.get(FIXTURES_ENV) or REPO.parent / "shared" / "fixtures" / "wal")
"""WALs written by Prometheus 2.42, with their ground truth (README: Tests)."""
REQUIRE_PEERS = os.environ.get("RWCONSOLE_REQUIRE_PEERS") == "1"


def missing_requirement(reason: str) -> NoReturn:
    """Skip the test, or fail it under RWCONSOLE_REQUIRE_PEERS=1 (nothing may skip then)."""
    if REQUIRE_PEERS:
        pytest.fail(reason + " and RWCONSOLE_REQUIRE_PEERS=1")
    pytest.skip(reason)


def peer_binary(name: str) -> str:
    """Return the path of a peer binary, or skip (fail under RWCONSOLE_REQUIRE_PEERS=1)."""
    for candidate in (name, f"/usr/bin/{name}", f"/usr/sbin/{name}"):
        found = shutil.which(candidate)
        if found:
            return found
    missing_requirement(f"peer binary {name!r} is not installed (Debian package needed)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def wait_until(check, timeout: float = 30.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll ``check()`` until it returns something truthy (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


class ProcessManager:
    """Starts processes for a test and always stops them."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen(argv, **kwargs)  # type: ignore[call-overload]
        self._procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def processes() -> Iterator[ProcessManager]:
    manager = ProcessManager()
    try:
        yield manager
    finally:
        manager.stop_all()


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        missing_requirement(f"WAL fixtures not found at {FIXTURES} (set ${FIXTURES_ENV})")
    return FIXTURES


@pytest.fixture(scope="session")
def pki_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    """Two test CAs with their certificates (``http_helpers.Pki``): in use, rotated to."""
    from http_helpers import make_pki

    return make_pki(tmp_path_factory.mktemp("pki-old")), make_pki(
        tmp_path_factory.mktemp("pki-new")
    )


@pytest.fixture
def look_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every new TLS connection looks at its certificate files (no waiting for the interval)."""
    from rwconsole.http import tls

    monkeypatch.setattr(tls, "CHECK_INTERVAL", 0.0)
