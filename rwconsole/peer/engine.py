"""``PeerEngine``: the console contract served from a peer's metrics page, read-only.

A thread with its own event loop reads the page every ``interval`` seconds with
the project's HTTP stack and hands each reading to a ``PeerView``; ``snapshot``
is a reference swap. Commands never reach the peer: their futures fail with a
``ReadOnlyError`` naming the config change to make in the peer instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from typing import Any

import httpx

from rwconsole.config.durations import format_duration
from rwconsole.config.secrets import redact_url
from rwconsole.http.errors import url_problem
from rwconsole.http.transport import RoutingTransport, build_transport, send
from rwconsole.peer.readings import read
from rwconsole.peer.view import PeerView
from rwconsole.snapshot import EMPTY_SNAPSHOT, Snapshot
from rwconsole.sources.textparse import ParseError

POLL_INTERVAL = 1.0
MAX_BODY = 64 << 20
ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
_DURATION_KEYS = frozenset(
    {"batch_send_deadline", "min_backoff", "max_backoff", "sample_age_limit"}
)


class PeerError(Exception):
    """The peer cannot be attached to (unreachable, not a metrics page); fit to show."""


class ReadOnlyError(Exception):
    """A command to a peer: the console only watches it."""


class PeerEngine:
    """Implements ``rwconsole.snapshot.EngineControl`` for a forwarder rwconsole watches."""

    def __init__(
        self, url: str, *, wal_dir: str = "", interval: float = POLL_INTERVAL, timeout: float = 5.0
    ) -> None:
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.view = PeerView(url, wal_dir)
        self._snapshot: Snapshot = EMPTY_SNAPSHOT
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._first = threading.Event()
        self._first_error: str | None = None

    # ---- lifecycle ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Read the page once (raising ``PeerError`` when that fails), then keep reading it."""
        if problem := url_problem(self.url):
            raise PeerError(problem)
        self._thread = threading.Thread(target=self._run, name="rwconsole-peer", daemon=True)
        self._thread.start()
        self._first.wait(self.timeout + 5.0)
        if self._first_error is not None or not self._first.is_set():
            self.stop()
            raise PeerError(self._first_error or f"no answer from {self.view.url}")
        self.view.log(time.time(), "INFO", f"attached read-only to {self.view.source_kind}")
        if not self._snapshot.endpoints:
            self.view.log(
                time.time(),
                "WARNING",
                f"{self.view.url} shows no prometheus_remote_storage_* queues (yet)",
            )

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        transport = build_transport(None, http2=False)
        try:
            while not self._stop.is_set():
                error = await self._poll(transport)
                if not self._first.is_set():
                    self._first_error = error
                    self._first.set()
                    if error is not None:
                        return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval)
        finally:
            self._first.set()
            await transport.aclose()

    async def _poll(self, transport: RoutingTransport) -> str | None:
        """One reading; the error message when there was none."""
        request = httpx.Request("GET", self.url, headers={"Accept": ACCEPT})
        now = time.time()
        try:
            reply = await asyncio.wait_for(
                send(transport, request, follow_redirects=True, max_body=MAX_BODY), self.timeout
            )
            if reply.status != 200:
                raise PeerError(f"HTTP {reply.status} {reply.reason}".strip())
            content_type = next(
                (v.decode("latin-1") for k, v in reply.headers if k.lower() == b"content-type"),
                None,
            )
            reading = read(reply.body, content_type)
        except TimeoutError:
            error = f"no answer within {self.timeout:g}s"
        except (httpx.HTTPError, OSError, PeerError) as err:
            error = redact_url(str(err)) or type(err).__name__
        except ParseError as err:
            error = f"not a Prometheus metrics page: {err}"
        else:
            self.view.update(reading, now)
            self._snapshot = self.view.snapshot(now)
            return None
        self.view.failed(now, error)
        self._snapshot = self.view.snapshot(now)
        return f"cannot read {self.view.url}: {error}"

    # ---- the contract -------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def apply_queue_config(
        self, endpoint: str, changes: dict[str, Any], *, save: bool = False
    ) -> concurrent.futures.Future[Any]:
        return self._refuse(f"copy this into its config: {self.config_hint(endpoint, changes)}")

    def pause(self, endpoint: str) -> concurrent.futures.Future[None]:
        return self._refuse(f"its queue {endpoint} cannot be paused from here")

    def resume(self, endpoint: str) -> concurrent.futures.Future[None]:
        return self._refuse(f"its queue {endpoint} cannot be resumed from here")

    def set_fault(self, mode: str, **options: Any) -> concurrent.futures.Future[None]:
        return self._refuse("it has no demo receiver")

    def _refuse(self, detail: str) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        message = f"read-only: {self.view.source_kind} is not operated by rwconsole; {detail}"
        future.set_exception(ReadOnlyError(message))
        return future

    def config_hint(self, endpoint: str, changes: dict[str, Any]) -> str:
        """``changes`` to the queue ``endpoint`` written in the peer's own config syntax."""
        values = {
            key: format_duration(float(value)) if key in _DURATION_KEYS else value
            for key, value in sorted(changes.items())
        }
        if self.view.kind == "Alloy":
            body = " ".join(f"{k} = {_alloy_value(v)}" for k, v in values.items())
            return f"prometheus.remote_write endpoint {endpoint!r}: queue_config {{ {body} }}"
        body = ", ".join(f"{k}: {_yaml_value(v)}" for k, v in values.items())
        return f"remote_write (name: {endpoint}) queue_config: {{{body}}}"


def _alloy_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
