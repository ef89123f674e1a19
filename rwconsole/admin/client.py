"""Clients of the admin API: ``AdminClient`` (requests) and ``RemoteEngine`` (a console's engine).

``RemoteEngine`` implements ``rwconsole.snapshot.EngineControl`` over the admin
API, so the console works on a running service exactly as on its own engine.
It runs its own thread and event loop: it follows the snapshot stream, keeps
the latest whole snapshot (a reference the console reads without waiting),
sends commands as futures, and reconnects whenever the link drops (the
service restarted), saying so in ``connection``. ``RemoteTools`` stands in for
the console's WAL tool process: the same calls, answered by the service.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from rwconsole.admin import protocol
from rwconsole.http.errors import url_problem
from rwconsole.http.local import ClientTLS, admin_transport
from rwconsole.snapshot import EMPTY_SNAPSHOT, Snapshot, SnapshotFormatError, from_plain

T = TypeVar("T")
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 120.0
RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0)
PING_INTERVAL = 5.0


class AdminError(Exception):
    """The admin API refused or failed a request; ``status`` 0: no connection."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class AdminTarget:
    """Where an admin API is: a Unix socket or an http(s) URL, with credentials."""

    socket: str = ""
    url: str = ""
    token: str = ""
    tls: ClientTLS | None = None

    def describe(self) -> str:
        return self.socket or self.url


def parse_target(
    text: str,
    *,
    token_file: str = "",
    ca_file: str = "",
    cert_file: str = "",
    key_file: str = "",
) -> AdminTarget:
    """``text``: a data directory, a socket path or an admin URL; ValueError says why not."""
    token = ""
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as err:
            raise ValueError(f"--token-file {token_file}: {err.strerror or err}") from None
        if not token:
            raise ValueError(f"--token-file {token_file}: the file is empty")
    if text.startswith(("http://", "https://")):
        if problem := url_problem(text):
            raise ValueError(problem)
        tls = None
        if text.startswith("https://"):
            tls = ClientTLS(ca_file=ca_file, cert_file=cert_file, key_file=key_file)
        return AdminTarget(url=text.rstrip("/"), token=token, tls=tls)
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / protocol.SOCKET_NAME
    if not path.exists():
        raise ValueError(
            f"{text}: no admin socket there (is `rwconsole run` running on this data directory?)"
        )
    if not path.is_socket():
        raise ValueError(f"{text}: not a data directory or an admin socket")
    return AdminTarget(socket=str(path), token=token)


class AdminClient:
    """Requests to one admin API (async; one connection pool)."""

    def __init__(self, target: AdminTarget) -> None:
        self.target = target
        headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
        self._http = httpx.AsyncClient(
            transport=admin_transport(uds=target.socket or None, tls=target.tls),
            base_url=(target.url or "http://rwconsole") + protocol.API,
            headers=headers,
            timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, path: str, **params: str) -> Any:
        return await self._call("GET", path, params=params)

    async def command(self, name: str, **args: Any) -> Any:
        return (await self._call("POST", f"/commands/{name}", json=args)).get("result")

    async def lines(self, path: str, **params: str) -> AsyncIterator[dict[str, Any]]:
        """The JSON objects of a newline-delimited stream."""
        try:
            async with self._http.stream("GET", path, params=params) as reply:
                if reply.status_code != 200:
                    await reply.aread()
                    raise _refusal(reply)
                async for line in reply.aiter_lines():
                    if line:
                        yield json.loads(line)
        except httpx.HTTPError as err:
            raise AdminError(self._unreachable(err)) from None

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            reply = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise AdminError(self._unreachable(err)) from None
        if reply.status_code != 200:
            raise _refusal(reply)
        return reply.json()

    def _unreachable(self, err: Exception) -> str:
        return f"cannot reach {self.target.describe()}: {err or type(err).__name__}"


def _refusal(reply: httpx.Response) -> AdminError:
    try:
        message = str(reply.json().get("error", ""))
    except ValueError:
        message = ""
    return AdminError(message or f"HTTP {reply.status_code}", reply.status_code)


@dataclass(frozen=True, slots=True)
class Connection:
    """The console's link to the service, as the console shows it."""

    target: str
    state: str
    """``connecting``, ``connected``, ``reconnecting`` or ``closed``."""
    latency: float | None
    detail: str = ""
    connects: int = 0
    """Successful connections so far (2+: the link was re-established)."""

    def describe(self) -> str:
        text = f"{self.target} · {self.state}"
        if self.state == "connected" and self.latency is not None:
            text += f" · {self.latency * 1000:.0f} ms"
        elif self.detail and self.state != "connected":
            text += f" · {self.detail}"
        return text


class RemoteEngine:
    """``EngineControl`` over the admin API; ``start`` connects, ``stop`` disconnects."""

    def __init__(self, target: AdminTarget) -> None:
        self.target = target
        self.info: dict[str, Any] = {}
        self._snapshot: Snapshot = EMPTY_SNAPSHOT
        self._connection = Connection(target.describe(), "connecting", None)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: AdminClient | None = None
        self._first = threading.Event()
        self._first_error: AdminError | None = None
        self._closing = False

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> None:
        """Connect and wait for the first snapshot; AdminError if that fails."""
        self._thread = threading.Thread(target=self._thread_main, name="rwconsole-attach")
        self._thread.daemon = True
        self._thread.start()
        if not self._first.wait(timeout):
            self.stop()
            raise AdminError(f"no snapshot from {self.target.describe()} within {timeout:.0f}s")
        if self._first_error is not None:
            self.stop()
            raise self._first_error

    def stop(self) -> None:
        self._closing = True
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(_cancel_all, loop)
        if self._thread is not None:
            self._thread.join(10)

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except asyncio.CancelledError:
            pass
        finally:
            loop.close()
            self._connection = Connection(self.target.describe(), "closed", None)

    async def _main(self) -> None:
        self._client = AdminClient(self.target)
        try:
            await asyncio.gather(self._follow(), self._ping())
        finally:
            await self._client.aclose()

    async def _follow(self) -> None:
        assert self._client is not None
        connects = 0
        failures = 0
        while not self._closing:
            try:
                self.info = await self._client.get("/info")
                merger = protocol.SnapshotMerger()
                async for message in self._client.lines("/snapshot/stream"):
                    self._snapshot = merger.apply(message)
                    if self._connection.state != "connected":
                        connects += 1
                        failures = 0
                        self._set_state("connected", connects=connects)
                    self._first.set()
                raise AdminError("the service closed the stream")
            except (AdminError, SnapshotFormatError, ValueError) as err:
                if not self._first.is_set() and (
                    getattr(err, "status", 0) in (401, 403) or failures >= 2
                ):
                    self._first_error = err if isinstance(err, AdminError) else AdminError(str(err))
                    self._first.set()
                    return
                self._set_state("reconnecting", detail=str(err), connects=connects)
            delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
            failures += 1
            await asyncio.sleep(delay)

    async def _ping(self) -> None:
        assert self._client is not None
        while True:
            await asyncio.sleep(PING_INTERVAL if self._connection.latency else 0.5)
            if self._connection.state != "connected":
                continue
            started = time.monotonic()
            try:
                await self._client.get("/health")
            except AdminError:
                continue
            self._connection = _replace(self._connection, latency=time.monotonic() - started)

    def _set_state(self, state: str, *, detail: str = "", connects: int = 0) -> None:
        self._connection = Connection(
            self.target.describe(), state, self._connection.latency, detail, connects
        )

    # ---- EngineControl -----------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        return self._connection

    @property
    def running(self) -> bool:
        """True while attached (also while reconnecting): the console keeps its screens."""
        return self._thread is not None and self._thread.is_alive()

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def apply_queue_config(
        self, endpoint: str, changes: dict[str, Any], *, save: bool = False
    ) -> concurrent.futures.Future[Any]:
        return self.command("apply_queue_config", endpoint=endpoint, changes=changes, save=save)

    def pause(self, endpoint: str) -> concurrent.futures.Future[None]:
        return self.command("pause", endpoint=endpoint)

    def resume(self, endpoint: str) -> concurrent.futures.Future[None]:
        return self.command("resume", endpoint=endpoint)

    def set_fault(self, mode: str, **options: Any) -> concurrent.futures.Future[None]:
        return self.command("set_fault", mode=mode, options=options)

    def reload(self) -> concurrent.futures.Future[Any]:
        return self.command("reload")

    def command(self, name: str, **args: Any) -> concurrent.futures.Future[Any]:
        return self.submit(lambda client: client.command(name, **args))

    def submit(self, call: Callable[[AdminClient], Any]) -> concurrent.futures.Future[Any]:
        """``await call(client)`` on the link's loop; thread-safe."""
        loop, client = self._loop, self._client
        if loop is None or client is None or not loop.is_running():
            failed: concurrent.futures.Future[Any] = concurrent.futures.Future()
            failed.set_exception(AdminError("not attached"))
            return failed

        async def run() -> Any:
            return await call(client)

        return asyncio.run_coroutine_threadsafe(run(), loop)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()


def _replace(connection: Connection, **changes: Any) -> Connection:
    import dataclasses

    return dataclasses.replace(connection, **changes)


class RemoteTools:
    """The console's WAL tools (``ToolProcess.run``) answered by the service, read-only."""

    started = True

    def __init__(self, engine: RemoteEngine) -> None:
        self._engine = engine

    def resolve_wal_dir(self, path: str | Path) -> Path:
        from rwconsole.wal.tools import NotAWalError

        wal_dir = self._engine.info.get("wal_dir") or self._engine.snapshot().wal_dir
        if str(path) != wal_dir:
            raise NotAWalError(f"an attached console shows the service's WAL only ({wal_dir})")
        return Path(wal_dir)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        from rwconsole.wal.offload import ToolError

        name = getattr(fn, "__name__", "")
        try:
            tool, params = _tool_request(name, args, kwargs)
        except KeyError:
            raise ToolError(
                f"{name.replace('_', ' ')} is refused on an attached console: the service holds "
                "its WAL; stop it and run `rwconsole wal` on the data directory"
            ) from None

        async def call(client: AdminClient) -> Any:
            return await client.get(f"/wal/{tool}", **params)

        try:
            data = await asyncio.wrap_future(self._engine.submit(call))
            result: T = from_plain(protocol.wal_result_type(tool), data)
        except (AdminError, SnapshotFormatError) as err:
            raise ToolError(str(err)) from None
        return result

    def close(self) -> None:
        """Nothing runs here: the service's helper process does the work."""


def _tool_request(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[str, dict[str, str]]:
    """The API call for a WAL tool function (``KeyError``: not offered read-only)."""
    if name == "inspect":
        return "inspect", {"top": str(kwargs.get("top", 10))}
    if name == "verify":
        return "verify", {}
    if name == "browse_series":
        selector = args[1] if len(args) > 1 else kwargs.get("selector")
        return "series", {"matchers": protocol.matchers_param(selector)}
    if name == "series_dump":
        labels = args[1] if len(args) > 1 else kwargs["labels"]
        return "dump", {"labels": protocol.labels_param(labels)}
    raise KeyError(name)
