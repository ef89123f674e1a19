"""A small HTTP/1.1 server on asyncio streams: receiver input, /metrics and health.

It owns connection handling only: request line and header parsing with limits,
Content-Length and chunked bodies with a size cap (413 beyond it, without
reading the body), ``Expect: 100-continue``, keep-alive with an idle timeout,
read timeouts, a bound on how many handlers run at once, and TLS when given a
server ``ssl.SSLContext`` (``rwconsole.http.tls.build_server_ssl_context``). What a request
means is the handler's business: ``async handler(Request) -> Response``.

The server can close its listening socket and reopen it on the same port
(``close_listener`` / ``open_listener``), which the demo receiver uses to
simulate an endpoint that goes down and comes back. It can also listen on a
Unix socket (``start_unix``) or with TLS (``ssl_context``), and answer with a body
produced piece by piece (``StreamResponse``, sent chunked).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from rwconsole.http.tls import release

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 32 * 1024 * 1024
_MAX_HEAD = 64 * 1024
_MAX_HEADERS = 100
_READ_CHUNK = 256 * 1024


class CloseConnection(Exception):
    """Raised by a handler to drop the connection without answering."""


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class Response:
    status: int = 204
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


@dataclass(slots=True)
class StreamResponse:
    """A 200 answer whose body ``chunks`` yields; sent with chunked encoding, then closed."""

    chunks: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
    close: bool = True


class _Connection:
    """One client connection with its own read buffer (so pipelined bytes are never lost)."""

    __slots__ = ("buf", "peer", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    async def _fill(self) -> bool:
        chunk = await self.reader.read(_READ_CHUNK)
        if not chunk:
            return False
        self.buf += chunk
        return True

    async def read_head(self) -> bytes | None:
        """Bytes of the request head without the blank line; None on a clean EOF."""
        start = 0
        while True:
            index = self.buf.find(b"\r\n\r\n", start)
            if index >= 0:
                head = bytes(self.buf[:index])
                del self.buf[: index + 4]
                return head
            if len(self.buf) > _MAX_HEAD:
                raise _BadRequest(431, "request head too large")
            start = max(0, len(self.buf) - 3)
            if not await self._fill():
                if self.buf.strip():
                    raise _BadRequest(400, "connection closed in the middle of a request head")
                return None

    async def read_line(self, limit: int) -> bytes:
        while True:
            index = self.buf.find(b"\r\n")
            if index >= 0:
                line = bytes(self.buf[:index])
                del self.buf[: index + 2]
                return line
            if len(self.buf) > limit:
                raise _BadRequest(400, "chunk header line too long")
            if not await self._fill():
                raise asyncio.IncompleteReadError(bytes(self.buf), None)

    async def read_exact(self, size: int) -> bytes:
        while len(self.buf) < size:
            if not await self._fill():
                raise asyncio.IncompleteReadError(bytes(self.buf), size)
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    async def wait_eof(self) -> None:
        """Read (and keep) whatever arrives until the client closes the connection."""
        while await self._fill():
            pass


@dataclass(slots=True)
class Request:
    method: str
    target: str
    path: str
    query: str
    version: str
    headers: dict[str, str]
    """Lower-case names; repeated headers joined with ', '."""
    body: bytes
    peer: str
    _conn: _Connection

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def transport_info(self, name: str) -> object:
        """The connection's ``get_extra_info(name)`` (``socket``, ``peercert``, …)."""
        return self._conn.writer.get_extra_info(name)

    async def wait_disconnected(self) -> None:
        """Return when the client closes its side of the connection."""
        await self._conn.wait_eof()


Handler = Callable[[Request], Awaitable[Response | StreamResponse]]


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
        raise _BadRequest(400, "request head is not text") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise _BadRequest(400, f"malformed request line {lines[0][:80]!r}")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _BadRequest(505, f"unsupported protocol version {version[:20]!r}")
    if len(lines) - 1 > _MAX_HEADERS:
        raise _BadRequest(431, f"more than {_MAX_HEADERS} header lines")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or " " in name or "\t" in name:
            raise _BadRequest(400, f"malformed header line {line[:80]!r}")
        key = name.lower()
        value = value.strip(" \t")
        if key in headers:
            if key in ("content-length", "host"):
                if headers[key] != value:
                    raise _BadRequest(400, f"conflicting {name} headers")
                continue
            headers[key] = f"{headers[key]}, {value}"
        else:
            headers[key] = value
    return method, target, version, headers


def _encode_response(response: Response, keep_alive: bool) -> bytes:
    try:
        phrase = HTTPStatus(response.status).phrase
    except ValueError:
        phrase = "Status"
    lines = [f"HTTP/1.1 {response.status} {phrase}"]
    for name, value in response.headers.items():
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(response.body)}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


class HttpServer:
    """Serves ``handler`` on one TCP address; restartable listener, bounded handlers."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        max_concurrency: int = 64,
        max_connections: int = 1024,
        idle_timeout: float = 75.0,
        read_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._handler = handler
        self._ssl = ssl_context
        self.max_body = max_body
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._max_connections = max_connections
        self._idle_timeout = idle_timeout
        self._read_timeout = read_timeout
        self._server: asyncio.Server | None = None
        self._host = "127.0.0.1"
        self._port = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def connections(self) -> int:
        return len(self._writers)

    def set_address(self, host: str, port: int) -> None:
        """Where ``open_listener`` listens (port 0 picks a free one, kept for reopening)."""
        self._host = host
        self._port = port

    async def start(self, host: str, port: int) -> None:
        """Listen on host:port (port 0 picks a free one, kept for later reopening).

        With the ``ssl_context`` given at construction, the listener serves TLS.
        """
        self.set_address(host, port)
        await self.open_listener()

    async def start_unix(self, path: str, *, mode: int = 0o600) -> None:
        """Listen on a Unix socket at ``path``, created with ``mode`` (never wider)."""
        old = os.umask(0o777 & ~mode)
        try:
            self._server = await asyncio.start_unix_server(self._accept, path, limit=_READ_CHUNK)
        finally:
            os.umask(old)
        os.chmod(path, mode)

    async def open_listener(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept,
            self._host,
            self._port,
            reuse_address=True,
            limit=_READ_CHUNK,
            ssl=self._ssl,
            ssl_handshake_timeout=self._read_timeout if self._ssl is not None else None,
        )
        sockets = self._server.sockets
        if sockets:
            self._port = sockets[0].getsockname()[1]

    async def close_listener(self, drop_connections: bool = True) -> None:
        """Stop accepting; optionally reset every open connection too."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if drop_connections:
            await self._drop_connections()

    async def stop(self) -> None:
        await self.close_listener(drop_connections=True)
        release(self._ssl)

    async def _drop_connections(self) -> None:
        for writer in list(self._writers):
            transport = writer.transport
            with contextlib.suppress(Exception):
                transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._writers) >= self._max_connections or task is None:
            writer.transport.abort()
            return
        self._tasks.add(task)  # type: ignore[arg-type]
        self._writers.add(writer)
        conn = _Connection(reader, writer)
        try:
            await self._serve(conn)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, CloseConnection):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # a handler bug must not take the server down
            log.exception("HTTP connection from %s failed", conn.peer)
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()

    async def _serve(self, conn: _Connection) -> None:
        first = True
        while True:
            try:
                async with asyncio.timeout(self._idle_timeout if not first else self._read_timeout):
                    head = await conn.read_head()
                if head is None:
                    return
                request, keep_alive = await self._read_request(conn, head)
            except _BadRequest as exc:
                await self._send(conn, Response(exc.status, exc.reason.encode() + b"\n"), False)
                await self._linger(conn)
                return
            first = False
            async with self._semaphore:
                try:
                    response = await self._handler(request)
                except (CloseConnection, asyncio.CancelledError):
                    raise
                except Exception:
                    log.exception("handler failed for %s %s", request.method, request.path)
                    response = Response(500, b"internal error\n", close=True)
            keep_alive = keep_alive and not response.close
            await self._send(conn, response, keep_alive)
            if not keep_alive:
                return

    async def _read_request(self, conn: _Connection, head: bytes) -> tuple[Request, bool]:
        method, target, version, headers = _parse_head(head)
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.1":
            keep_alive = "close" not in connection
        else:
            keep_alive = "keep-alive" in connection
        async with asyncio.timeout(self._read_timeout):
            body = await self._read_body(conn, headers)
        path, _, query = target.partition("?")
        request = Request(method, target, path, query, version, headers, body, conn.peer, conn)
        return request, keep_alive

    async def _read_body(self, conn: _Connection, headers: dict[str, str]) -> bytes:
        encoding = headers.get("transfer-encoding", "").lower()
        length_text = headers.get("content-length")
        if encoding and length_text is not None:
            raise _BadRequest(400, "both Transfer-Encoding and Content-Length are set")
        if encoding:
            if encoding != "chunked":
                raise _BadRequest(501, f"unsupported Transfer-Encoding {encoding!r}")
            await self._continue(conn, headers)
            return await self._read_chunked(conn)
        if length_text is None:
            return b""
        if not (length_text.isascii() and length_text.isdigit()):
            raise _BadRequest(400, f"invalid Content-Length {length_text[:30]!r}")
        length = int(length_text)
        if length > self.max_body:
            raise _BadRequest(413, f"body of {length} bytes exceeds the limit of {self.max_body}")
        await self._continue(conn, headers)
        return await conn.read_exact(length)

    async def _continue(self, conn: _Connection, headers: dict[str, str]) -> None:
        if headers.get("expect", "").lower() == "100-continue":
            conn.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await conn.writer.drain()

    async def _read_chunked(self, conn: _Connection) -> bytes:
        body = bytearray()
        while True:
            line = await conn.read_line(1024)
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BadRequest(400, f"invalid chunk size {size_text[:20]!r}") from None
            if size < 0:
                raise _BadRequest(400, "negative chunk size")
            if size == 0:
                while await conn.read_line(_MAX_HEAD):  # trailers end with an empty line
                    pass
                return bytes(body)
            if len(body) + size > self.max_body:
                raise _BadRequest(413, f"chunked body exceeds the limit of {self.max_body} bytes")
            body += await conn.read_exact(size)
            if await conn.read_exact(2) != b"\r\n":
                raise _BadRequest(400, "chunk not terminated by CRLF")

    async def _linger(self, conn: _Connection) -> None:
        """After an early error answer, let the client finish sending before closing.

        Closing a socket with unread data resets it, and the client would then
        see a connection error instead of the status we sent.
        """
        with contextlib.suppress(Exception):
            conn.writer.write_eof()
        discarded = 0
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                while discarded < 4 * self.max_body:
                    chunk = await conn.reader.read(_READ_CHUNK)
                    if not chunk:
                        break
                    discarded += len(chunk)

    async def _send(
        self, conn: _Connection, response: Response | StreamResponse, keep_alive: bool
    ) -> None:
        if isinstance(response, StreamResponse):
            await _send_stream(conn.writer, response)
            raise CloseConnection
        conn.writer.write(_encode_response(response, keep_alive))
        await conn.writer.drain()


async def _send_stream(writer: asyncio.StreamWriter, response: StreamResponse) -> None:
    head = [f"HTTP/1.1 {response.status} {HTTPStatus(response.status).phrase}"]
    head += [f"{name}: {value}" for name, value in response.headers.items()]
    head += ["Transfer-Encoding: chunked", "Connection: close"]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    try:
        async for chunk in response.chunks:
            if chunk:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    finally:
        aclose = getattr(response.chunks, "aclose", None)
        if aclose is not None:
            await aclose()
