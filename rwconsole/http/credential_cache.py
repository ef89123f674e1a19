"""Temporary cloud credentials: caching, early refresh, backoff, status, helper programs.

Owns ``CredentialStatus`` (what the console shows: the source in use, when its
credentials expire, the last refresh error; never a secret value),
``RefreshingCredential`` (one value such as AWS keys or an Azure token, fetched
on first use, reused until a margin before it expires, then refreshed by the
next request; concurrent requests share one fetch; a failed refresh is logged
and retried with exponential backoff while the old value is used as long as it
has not expired) and ``run_credential_command`` (AWS ``credential_process``
and the Azure CLI).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from rwconsole.http.errors import AuthError

log = logging.getLogger("rwconsole.credentials")

T = TypeVar("T")
Clock = Callable[[], float]

REFRESH_MARGIN = 300.0  # refresh this long before expiry (at most half the lifetime)
EXPIRY_MARGIN = 10.0  # stop using a value this long before it expires
RECHECK_STATIC = 60.0  # how often a source without expiry (keys in a file) is read again
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
COMMAND_TIMEOUT = 60.0
_MAX_STDERR = 300


@dataclass(frozen=True, slots=True)
class CredentialStatus:
    """Which credential source an endpoint uses and how its credentials stand."""

    source: str  # empty until the first fetch
    expires_at: float | None = None  # Unix time; None: the credentials do not expire
    last_error: str | None = None  # the last refresh failure, cleared by a success


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    """A fetched value, the source it came from, and when it expires (Unix time)."""

    value: T
    source: str
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    fetched: Fetched[T]
    refresh_at: float


class RefreshingCredential(Generic[T]):
    """Caches what ``fetch`` returns and refreshes it early; see the module docstring.

    ``fetch`` raises ``AuthError`` on failure. ``label`` (the endpoint's name)
    goes into log records as their ``endpoint``; ``logged=False`` leaves the
    logging to an outer cache built on this one.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Fetched[T]]],
        *,
        label: str = "",
        clock: Clock = time.time,
        logged: bool = True,
    ) -> None:
        self._fetch = fetch
        self._label = label
        self._logged = logged
        self._clock = clock
        self._entry: _Entry[T] | None = None
        self._lock = asyncio.Lock()
        self._failures = 0
        self._retry_at = 0.0
        self._last_error: str | None = None
        self.fetches = 0  # fetch attempts (tests and diagnostics)

    async def get(self) -> T:
        entry = self._entry
        if entry is not None and self._clock() < entry.refresh_at:
            return entry.fetched.value
        async with self._lock:
            return await self._refresh()

    async def current(self) -> Fetched[T]:
        """The value with its source and expiry (refreshing it when due)."""
        await self.get()
        assert self._entry is not None
        return self._entry.fetched

    def invalidate(self) -> None:
        """Forget the value (the receiver rejected it); the next request fetches anew."""
        self._entry = None
        self._retry_at = 0.0

    def status(self) -> CredentialStatus:
        entry = self._entry
        if entry is None:
            return CredentialStatus("", None, self._last_error)
        return CredentialStatus(entry.fetched.source, entry.fetched.expires_at, self._last_error)

    async def _refresh(self) -> T:
        now = self._clock()
        entry = self._entry
        if entry is not None and now < entry.refresh_at:
            return entry.fetched.value  # another request refreshed it meanwhile
        usable = entry is not None and (
            entry.fetched.expires_at is None or now < entry.fetched.expires_at - EXPIRY_MARGIN
        )
        if now < self._retry_at:
            if entry is not None and usable:
                return entry.fetched.value
            raise AuthError(self._last_error or "credentials are not available")
        self.fetches += 1
        try:
            fetched = await self._fetch()
        except AuthError as exc:
            self._failures += 1
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self._failures - 1))
            self._retry_at = now + delay
            self._last_error = str(exc)
            kept = " (still using the current credentials)" if usable else ""
            if self._logged:
                log.warning(
                    "credentials: %s; next attempt in %gs%s",
                    exc,
                    delay,
                    kept,
                    extra={"endpoint": self._label},
                )
            if entry is not None and usable:
                return entry.fetched.value
            raise
        changed = entry is None or entry.fetched.source != fetched.source
        if self._logged and (self._failures or changed):
            log.info(
                "credentials from %s%s",
                fetched.source,
                _expiry_text(fetched.expires_at),
                extra={"endpoint": self._label},
            )
        self._failures, self._retry_at, self._last_error = 0, 0.0, None
        self._entry = _Entry(fetched, _refresh_at(now, fetched.expires_at))
        return fetched.value


def _refresh_at(now: float, expires_at: float | None) -> float:
    if expires_at is None:
        return now + RECHECK_STATIC
    lifetime = max(0.0, expires_at - now)
    return expires_at - min(REFRESH_MARGIN, lifetime / 2)


def _expiry_text(expires_at: float | None) -> str:
    if expires_at is None:
        return ""
    moment = dt.datetime.fromtimestamp(expires_at, dt.UTC)
    return f", expiring {moment:%Y-%m-%d %H:%M:%S} UTC"


def parse_expiry(text: str, key: str) -> float | None:
    """An ISO 8601 expiry (``2026-12-06T21:00:00Z``) as Unix time; ``AuthError`` if malformed."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AuthError(f"{key} {text[:40]!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


async def run_credential_command(
    argv: list[str],
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT,
) -> bytes:
    """Run a credentials helper program and return its standard output.

    Raises ``AuthError`` naming ``what`` when it cannot start, times out or
    exits non-zero (with the last line it wrote to standard error).
    """
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(os.environ if env is None else env),
        )
    except OSError as exc:
        raise AuthError(f"{what}: cannot run {argv[0]!r}: {exc.strerror or exc}") from None
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        raise AuthError(f"{what}: {argv[0]!r} did not finish within {timeout:g}s") from None
    finally:
        if process.returncode is None:  # timed out or the request was cancelled
            process.kill()
    if process.returncode != 0:
        lines = stderr.decode("utf-8", "replace").strip().splitlines()
        detail = f": {lines[-1][:_MAX_STDERR]}" if lines else ""
        raise AuthError(f"{what}: {argv[0]!r} exited with status {process.returncode}{detail}")
    return stdout
