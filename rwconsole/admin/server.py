"""The admin API server every engine runs: snapshots, commands, logs and WAL tools.

It is served by the project's own HTTP server (``rwconsole.http.server``: asyncio
streams, Unix sockets, TLS and chunked streaming) on the engine's event loop:

* on ``<data dir>/rwconsole.sock``, created with mode 0600; a peer is also
  checked by its uid (``SO_PEERCRED``): the service's own user or root;
* optionally on TCP (``[admin] listen_address``), which refuses to start
  without TLS (optionally with client certificates) or a bearer token.

It carries exactly the ``rwconsole.snapshot`` contract: the snapshot (also as
a stream, see ``protocol``), the commands of ``EngineControl`` plus reload,
the log lines, and the read-only WAL tools, which run in a helper process so
that they never hold the forwarder's interpreter. Every command is logged with
what it changes and who sent it. No secret crosses it: snapshots carry none.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import json
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs

from rwconsole import __version__
from rwconsole.admin import protocol
from rwconsole.config.schema import AdminConfig
from rwconsole.config.secrets import Secret, SecretError
from rwconsole.http.local import unix_socket_address
from rwconsole.http.server import HttpServer, Request, Response, StreamResponse
from rwconsole.snapshot import SNAPSHOT_VERSION, EngineControl, Snapshot, to_dict, to_plain

log = logging.getLogger("rwconsole.admin")

_JSON = {"Content-Type": "application/json"}
_NDJSON = {"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"}
_SUBSCRIBER_BACKLOG = 30
"""Stream messages a slow client may fall behind before it is dropped (it reconnects)."""


class AdminConfigError(ValueError):
    """The ``[admin]`` settings cannot be served (message names the key)."""


class ServedEngine(EngineControl, Protocol):
    """What the admin server needs of an engine."""

    wal_dir: Path
    data_dir: Path
    config_path: Path | None


class AdminServer:
    """The admin API of one engine; ``start``/``stop`` on the engine's loop."""

    def __init__(
        self,
        engine: ServedEngine,
        config: AdminConfig,
        *,
        history_limit: int,
        log_limit: int,
    ) -> None:
        self._engine = engine
        self._config = config
        self._limits = (history_limit, log_limit)
        self._token = _read_token(config)
        self._unix: HttpServer | None = None
        self._tcp: HttpServer | None = None
        self.socket_path: Path | None = None
        self._subscribers: set[asyncio.Queue[bytes | None]] = set()
        self._broadcaster: asyncio.Task[None] | None = None
        self._sent: Snapshot | None = None
        self._tools: Any = None

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        return (self._tcp.host, self._tcp.port) if self._tcp is not None else None

    async def start(self) -> None:
        """Listen on the socket (after the data-dir lock: a leftover file is stale) and TCP."""
        tcp_context = self._tcp_settings()
        if self._config.socket:
            path = self._engine.data_dir / protocol.SOCKET_NAME
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self._unix = HttpServer(self._handle_unix, max_body=1024 * 1024)
            try:
                await self._unix.start_unix(unix_socket_address(path))
            except OSError as err:
                raise AdminConfigError(
                    f"admin.socket: cannot listen on {path}: {err.strerror or err}"
                ) from None
            self.socket_path = path
        if self._config.listen_address:
            from rwconsole.sources.receiver import parse_listen_address

            self._tcp = HttpServer(self._handle_tcp, max_body=1024 * 1024, ssl_context=tcp_context)
            try:
                host, port = parse_listen_address(self._config.listen_address)
                await self._tcp.start(host, port)
            except (OSError, ValueError) as err:
                raise AdminConfigError(
                    f"admin.listen_address: cannot listen on {self._config.listen_address}: "
                    f"{getattr(err, 'strerror', None) or err}"
                ) from None

    async def stop(self) -> None:
        for queue in self._subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        if self._broadcaster is not None:
            self._broadcaster.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._broadcaster
        for server in (self._unix, self._tcp):
            if server is not None:
                await server.stop()
        if self.socket_path is not None:
            with contextlib.suppress(OSError):
                self.socket_path.unlink()
        if self._tools is not None:
            await asyncio.to_thread(self._tools.close)

    def _tcp_settings(self) -> Any:
        cfg = self._config
        if not cfg.listen_address:
            return None
        from rwconsole.sources.receiver import parse_listen_address

        try:
            parse_listen_address(cfg.listen_address)
        except ValueError as err:
            raise AdminConfigError(f"admin.listen_address: {err}") from None
        tls = bool(cfg.tls_cert_file or cfg.tls_key_file)
        if tls and not (cfg.tls_cert_file and cfg.tls_key_file):
            raise AdminConfigError("admin: TLS needs both tls_cert_file and tls_key_file")
        if cfg.client_ca_file and not tls:
            raise AdminConfigError("admin.client_ca_file needs tls_cert_file and tls_key_file")
        if not tls and self._token is None:
            raise AdminConfigError(
                f"admin.listen_address {cfg.listen_address!r}: the admin API over TCP needs "
                "TLS (tls_cert_file, tls_key_file) or a bearer_token/bearer_token_file"
            )
        if not tls:
            return None
        from rwconsole.http.errors import ConnectivityConfigError
        from rwconsole.http.local import server_ssl_context

        try:
            return server_ssl_context(cfg.tls_cert_file, cfg.tls_key_file, cfg.client_ca_file)
        except ConnectivityConfigError as err:
            raise AdminConfigError(str(err)) from None

    # ---- authentication ------------------------------------------------------------------

    async def _handle_unix(self, request: Request) -> Response | StreamResponse:
        uid = _peer_uid(request)
        if uid is None or uid not in (os.getuid(), 0):
            return _error(403, f"uid {uid} may not use this engine's admin socket")
        return await self._route(request, f"uid {uid} on the admin socket")

    async def _handle_tcp(self, request: Request) -> Response | StreamResponse:
        who = request.peer
        cert = request.transport_info("peercert")
        if isinstance(cert, dict) and cert.get("subject"):
            subject = ",".join(f"{k}={v}" for rdn in cert["subject"] for k, v in rdn)
            who = f"{who} (TLS subject {subject})"
        if self._token is not None:
            sent = request.header("authorization")
            scheme, _, value = sent.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                value.strip().encode(), self._token.encode()
            ):
                log.warning("admin: refused a request from %s: missing or wrong token", who)
                return _error(401, "missing or wrong bearer token")
            who = f"{who} (token)"
        return await self._route(request, who)

    # ---- routing --------------------------------------------------------------------------

    async def _route(self, request: Request, who: str) -> Response | StreamResponse:
        path = request.path
        query = {k: v[-1] for k, v in parse_qs(request.query).items()}
        if not path.startswith(protocol.API + "/"):
            return _error(404, f"no such path {path!r}")
        route = path[len(protocol.API) + 1 :]
        if request.method == "GET":
            if route == "health":
                return _json({"ok": True})
            if route == "info":
                return _json(self._info())
            if route == "snapshot":
                snapshot = self._engine.snapshot()
                body = await asyncio.to_thread(lambda: json.dumps(to_dict(snapshot)).encode())
                return Response(200, body + b"\n", dict(_JSON))
            if route == "snapshot/stream":
                return StreamResponse(self._stream(), headers=_NDJSON)
            if route == "logs":
                follow = query.get("follow", "") in ("1", "true", "yes")
                return StreamResponse(self._logs(follow), headers=_NDJSON)
            if route.startswith("wal/") and route[4:] in protocol.WAL_TOOLS:
                return await self._wal_tool(route[4:], query)
        if request.method == "POST" and route.startswith("commands/"):
            name = route[len("commands/") :]
            if name in protocol.COMMANDS:
                return await self._command(name, request.body, who)
        return _error(404, f"no such path {request.method} {path!r}")

    def _info(self) -> dict[str, Any]:
        engine = self._engine
        return {
            "version": __version__,
            "snapshot_version": SNAPSHOT_VERSION,
            "pid": os.getpid(),
            "config_path": str(engine.config_path) if engine.config_path else "",
            "wal_dir": str(engine.wal_dir),
            "data_dir": str(engine.data_dir),
            "reload": callable(getattr(engine, "reload", None)),
        }

    # ---- commands -------------------------------------------------------------------------

    async def _command(self, name: str, body: bytes, who: str) -> Response:
        try:
            args = json.loads(body or b"{}")
            if not isinstance(args, dict):
                raise ValueError("the body must be a JSON object")
            start, what = self._start_command(name, args)
        except Exception as err:  # a bad argument, or an engine that is stopping
            return _error(400, f"{name}: {err}")
        if start is None:
            return _error(501, f"{name}: not supported by this engine")
        log.info("admin: %s from %s", what, who)
        try:
            result = await _settle(start)
        except Exception as err:  # the engine's user errors: unknown endpoint, bad value
            log.warning("admin: %s from %s failed: %s", what, who, err)
            return _error(400, str(err) or type(err).__name__)
        return _json({"ok": True, "result": to_plain(result)})

    def _start_command(self, name: str, args: dict[str, Any]) -> tuple[Any, str]:
        engine = self._engine
        if name == "reload":
            reload = getattr(engine, "reload", None)
            return (reload() if callable(reload) else None), "reload"
        if name == "set_fault":
            mode = _text(args, "mode")
            options = args.get("options") or {}
            if not isinstance(options, dict):
                raise ValueError("options: expected an object")
            detail = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
            return engine.set_fault(mode, **options), f"set_fault {mode} {detail}".strip()
        endpoint = _text(args, "endpoint")
        if name == "pause":
            return engine.pause(endpoint), f"pause {endpoint}"
        if name == "resume":
            return engine.resume(endpoint), f"resume {endpoint}"
        changes = args.get("changes")
        if not isinstance(changes, dict) or not changes:
            raise ValueError("changes: expected a non-empty object of queue_config fields")
        save = bool(args.get("save", False))
        detail = ", ".join(f"{k}={v}" for k, v in sorted(changes.items()))
        future = engine.apply_queue_config(endpoint, changes, save=save)
        return future, f"queue_config of {endpoint}: {detail}" + (" (saved)" if save else "")

    # ---- streams --------------------------------------------------------------------------

    async def _stream(self) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_SUBSCRIBER_BACKLOG)
        snapshot = self._sent or self._engine.snapshot()
        self._sent = snapshot
        # Subscribed at once: the deltas queued while the full message is encoded follow it.
        self._subscribers.add(queue)
        if self._broadcaster is None or self._broadcaster.done():
            self._broadcaster = asyncio.create_task(self._broadcast(), name="admin-broadcast")
        try:
            yield await self._encode_full(snapshot)
            while True:
                line = await queue.get()
                if line is None:
                    return
                yield line
        finally:
            self._subscribers.discard(queue)

    async def _broadcast(self) -> None:
        """Once a second while anyone listens: one message, encoded once, for everyone."""
        while self._subscribers:
            await asyncio.sleep(protocol.STREAM_INTERVAL)
            snapshot = self._engine.snapshot()
            previous = self._sent
            if previous is None or snapshot is previous:
                continue
            message = protocol.delta_message(previous, snapshot)
            self._sent = snapshot
            if message is None:
                line = await self._encode_full(snapshot)
            else:
                line = protocol.encode_line(message)
            for queue in list(self._subscribers):
                try:
                    queue.put_nowait(line)
                except asyncio.QueueFull:  # too slow: dropped; it reconnects and starts afresh
                    self._subscribers.discard(queue)
                    queue.get_nowait()
                    queue.put_nowait(None)
        self._sent = None

    async def _encode_full(self, snapshot: Snapshot) -> bytes:
        """A full message, encoded off the loop: an hour of history is megabytes of JSON,
        and the forwarder's loop must not stop for it."""
        return await asyncio.to_thread(
            lambda: protocol.encode_line(protocol.full_message(snapshot, *self._limits))
        )

    async def _logs(self, follow: bool) -> AsyncIterator[bytes]:
        sent = self._engine.snapshot().logs
        for entry in sent:
            yield protocol.encode_line(to_plain(entry))
        while follow:
            await asyncio.sleep(protocol.STREAM_INTERVAL / 2)
            logs = self._engine.snapshot().logs
            new = protocol.added_items(sent, logs)
            sent = logs
            for entry in logs if new is None else new:
                yield protocol.encode_line(to_plain(entry))

    # ---- WAL tools ------------------------------------------------------------------------

    async def _wal_tool(self, tool: str, query: dict[str, str]) -> Response:
        from rwconsole.wal import browse as walview
        from rwconsole.wal import tools
        from rwconsole.wal.offload import ToolError, ToolProcess

        directory = str(self._engine.wal_dir)
        try:
            if tool == "inspect":
                call: tuple[Any, ...] = (tools.inspect, directory)
                kwargs = {"top": int(query.get("top", "10"))}
            elif tool == "verify":
                call, kwargs = (tools.verify, directory), {}
            elif tool == "series":
                selector = protocol.parse_matchers_param(query.get("matchers", ""))
                call, kwargs = (walview.browse_series, directory, selector), {}
            else:
                labels = protocol.parse_labels_param(query.get("labels", "[]"))
                call, kwargs = (walview.series_dump, directory, labels), {}
        except ValueError as err:
            return _error(400, f"{tool}: {err}")
        if self._tools is None:
            self._tools = ToolProcess()
        try:
            result = await self._tools.run(*call, **kwargs)
        except ToolError as err:
            return _error(500 if not err.os_error else 503, f"{tool}: {err.message}")
        return _json(to_plain(result))


async def _settle(started: Any) -> Any:
    if isinstance(started, concurrent.futures.Future):
        return await asyncio.wrap_future(started)
    if isinstance(started, Awaitable):
        return await started
    return started


def _text(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key}: expected a non-empty string")
    return value


def _json(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data).encode() + b"\n", dict(_JSON))


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


def _peer_uid(request: Request) -> int | None:
    sock = request.transport_info("socket")
    if sock is None:
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def _read_token(config: AdminConfig) -> str | None:
    if config.bearer_token is not None:
        try:
            return config.bearer_token.reveal() if isinstance(config.bearer_token, Secret) else None
        except SecretError as err:
            raise AdminConfigError(f"admin.bearer_token: {err}") from None
    if config.bearer_token_file:
        try:
            token = Path(config.bearer_token_file).read_text().strip()
        except OSError as err:
            raise AdminConfigError(
                f"admin.bearer_token_file: cannot read {config.bearer_token_file!r}: "
                f"{err.strerror or err}"
            ) from None
        if not token:
            raise AdminConfigError(
                f"admin.bearer_token_file: {config.bearer_token_file!r} is empty"
            )
        return token
    return None
