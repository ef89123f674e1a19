"""A lean keep-alive HTTP/1.1 transport for direct connections.

Owns the wire exchange of one request on a direct (unproxied) connection:
a small pool of idle keep-alive connections per (scheme, host, port), the
request written in one piece (request line, headers, ``Content-Length`` body),
the response head parsed (``Content-Length`` or chunked bodies, bodies ended by
the close of the connection, ``Connection: close``, HTTP/1.0 answers, 1xx
interim responses skipped), and TLS with the endpoint's ``ssl.SSLContext``.
It offers the ``interface.Transport`` interface (``exchange``: a whole
``Reply``) and, for httpx clients, that of an ``httpx.AsyncBaseTransport``
(a streamed ``httpx.Response``). A caller that sends many bodies with the
same headers prepares their head once (``prepare_head``) and sends each with
``exchange_prepared``, which only adds its ``Content-Length``. Errors are raised as the httpx
exceptions httpcore would raise for them (``ConnectError`` with the
``ssl.SSLError`` as its cause, ``ReadError``, ``WriteError``,
``RemoteProtocolError``).

It does far less per request than httpx's generic pool (no per-operation
timeouts, no locks, one asyncio ``Protocol`` per connection whose buffer is
parsed in place): the caller bounds the whole exchange with its own deadline
(``asyncio.timeout``), and a cancelled exchange closes its connection. Only
the connect step honours the request's ``connect`` timeout.

A connection goes back to the pool only after a complete response that keeps
it alive. A request that fails on a reused connection before any byte of the
response arrived (the server closed the idle connection meanwhile) is sent
once more on a new connection, as httpcore does.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import NamedTuple

import httpx

from rwconsole.http.interface import Reply, read_up_to

KEEPALIVE_EXPIRY = 90.0  # seconds an idle connection is kept (Go's IdleConnTimeout)
MAX_IDLE_PER_ORIGIN = 1000
MAX_HEAD_BYTES = 64 * 1024
_MAX_INTERIM_RESPONSES = 20
_READ_PAUSE_BYTES = 256 * 1024  # stop reading from the socket while this much is unread

_Origin = tuple[str, str, int]
_NO_BODY_STATUSES = frozenset((204, 304))
DEFAULT_PORTS = {"http": 80, "https": 443}


class HTTP2Negotiated(Exception):
    """The TLS server chose HTTP/2 by ALPN; the request was not sent."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: the bytes received so far and a waiter for more."""

    def __init__(self, origin: _Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False
        self.error: BaseException | None = None
        self.reused = False
        self.answered = False  # a byte of the response to the current request arrived
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.answered = True
        self.buffer += data
        if len(self.buffer) > _READ_PAUSE_BYTES and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is not None and self.error is None:
            self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- used by the exchange --------------------------------------------------------

    async def wait_for_data(self) -> None:
        """Wait until more bytes arrive; raises once the connection is gone."""
        if self.closed:
            raise self._closed_error()
        self._resume()
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def consume(self, size: int) -> bytes:
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        if self._paused and len(self.buffer) < _READ_PAUSE_BYTES:
            self._resume()
        return data

    def _resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def _closed_error(self) -> httpx.TransportError:
        if self.error is not None:
            return _read_error(self.error)
        return httpx.RemoteProtocolError("Server disconnected without sending a complete response.")

    def usable(self, now: float) -> bool:
        """True when an idle connection may carry another request."""
        return not self.closed and not self.buffer and now - self.idle_since < KEEPALIVE_EXPIRY

    def close(self) -> None:
        self.closed = True
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.abort()


def _read_error(exc: BaseException) -> httpx.TransportError:
    error = httpx.ReadError(str(exc) or type(exc).__name__)
    error.__cause__ = exc
    return error


class HTTP1Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive over direct TCP or TLS connections.

    ``ssl_context`` is used for ``https`` URLs (its ``server_name`` override
    and client certificate included). Should the context offer ``h2`` by ALPN
    and the server choose it, the request fails with ``HTTP2Negotiated``
    before anything is sent (the caller then uses an HTTP/2 capable client).
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._closed = False

    async def exchange(self, request: httpx.Request, *, max_body: int | None) -> Reply:
        """Send ``request``; its answer with at least ``max_body`` bytes of the body.

        A body longer than ``max_body`` is cut there and its connection closed
        (None: the whole body).
        """
        head, body = await self._open(request)
        return await _reply(head, body, max_body)

    async def exchange_prepared(
        self,
        prepared: PreparedHead,
        content: bytes,
        *,
        max_body: int | None,
        connect_timeout: float | None,
    ) -> Reply:
        """``exchange`` for a POST whose head was prepared once (``prepare_head``):
        only its ``Content-Length`` is added. Errors are raised as ``exchange`` raises
        them, without the request attached."""
        payload = b"".join((prepared.head, b"Content-Length: %d\r\n\r\n" % len(content), content))
        head, body = await self._send(
            prepared.origin, payload, False, prepared.close, connect_timeout, None
        )
        return await _reply(head, body, max_body)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        head, body = await self._open(request)
        return httpx.Response(
            head.status,
            headers=head.headers,
            stream=body,
            extensions={"http_version": head.version, "reason_phrase": head.reason},
        )

    async def _open(self, request: httpx.Request) -> tuple[_Head, _Body]:
        """Send ``request`` and read the response head; the body is still to be read."""
        origin = _origin_of(request.url, request)
        payload, close = _encode_request(request, await request.aread())
        timeout = request.extensions.get("timeout", {}).get("connect")
        return await self._send(origin, payload, request.method == "HEAD", close, timeout, request)

    async def _send(
        self,
        origin: _Origin,
        payload: bytes,
        head_only: bool,
        close: bool,
        connect_timeout: float | None,
        request: httpx.Request | None,
    ) -> tuple[_Head, _Body]:
        for attempt in range(2):
            conn = self._idle_connection(origin) if attempt == 0 else None
            if conn is None:
                conn = await self._connect(origin, connect_timeout, request)
            try:
                return await self._exchange(conn, payload, head_only, close)
            except httpx.TransportError:
                conn.close()
                if not (conn.reused and not conn.answered and attempt == 0):
                    raise
            except BaseException:
                conn.close()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for conn in connections:
                if conn.transport is not None:
                    conn.transport.close()

    # --- pool -----------------------------------------------------------------------

    def _idle_connection(self, origin: _Origin) -> _Connection | None:
        connections = self._idle.get(origin)
        if not connections:
            return None
        now = time.monotonic()
        while connections:
            conn = connections.pop()
            if conn.usable(now):
                conn.reused = True
                return conn
            conn.close()
        return None

    def _release(self, conn: _Connection) -> None:
        if self._closed or conn.closed or conn.buffer:
            conn.close()
            return
        now = time.monotonic()
        conn.idle_since = now
        connections = self._idle.setdefault(conn.origin, [])
        # the oldest connections sit at the front; drop those gone stale
        while connections and not connections[0].usable(now):
            connections.pop(0).close()
        if len(connections) >= MAX_IDLE_PER_ORIGIN:
            connections.pop(0).close()
        connections.append(conn)

    async def _connect(
        self, origin: _Origin, timeout: float | None, request: httpx.Request | None
    ) -> _Connection:
        scheme, host, port = origin
        conn = _Connection(origin)
        tls = scheme == "https"
        if tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(
                    lambda: conn,
                    host,
                    port,
                    ssl=self._ssl if tls else None,
                    server_hostname=host if tls else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out while connecting", request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        if tls and conn.transport is not None:
            ssl_object = conn.transport.get_extra_info("ssl_object")
            if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                conn.close()
                raise HTTP2Negotiated(f"{host}:{port} chose HTTP/2")
        return conn

    # --- one exchange ----------------------------------------------------------------

    async def _exchange(
        self, conn: _Connection, payload: bytes, head_only: bool, close: bool
    ) -> tuple[_Head, _Body]:
        transport = conn.transport
        if transport is None or transport.is_closing() or conn.closed:
            raise httpx.WriteError("connection closed before the request was written")
        conn.answered = False
        try:
            transport.write(payload)
        except (OSError, RuntimeError) as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__) from exc
        for _ in range(_MAX_INTERIM_RESPONSES):
            head = await _read_head(conn)
            if not 100 <= head.status < 200:
                break
            if head.status == 101:
                raise httpx.RemoteProtocolError("unexpected 101 Switching Protocols")
        else:
            raise httpx.RemoteProtocolError("too many 1xx interim responses")
        body = _Body(
            self,
            conn,
            head,
            no_body=head_only or head.status in _NO_BODY_STATUSES,
            keep_alive=head.keep_alive and not close,
        )
        body.take_buffered()
        return head, body


# --- request ------------------------------------------------------------------------


class PreparedHead(NamedTuple):
    """A POST's request line and headers, encoded and checked once, for many bodies."""

    origin: _Origin
    head: bytes  # each line ended by CRLF; no Content-Length and no blank line yet
    close: bool  # the request asks for the connection to be closed


def prepare_head(request: httpx.Request) -> PreparedHead:
    """The head of ``request`` for ``HTTP1Transport.exchange_prepared``; its own framing
    headers (``Content-Length``, ``Transfer-Encoding``) are left out."""
    lines, _, close = _head_lines(request, framing=False)
    return PreparedHead(_origin_of(request.url, request), b"\r\n".join(lines) + b"\r\n", close)


def _encode_request(request: httpx.Request, content: bytes) -> tuple[bytes, bool]:
    """Request line, headers and body as one bytes object (a Content-Length body).

    Also tells whether the request asks for the connection to be closed.
    """
    lines, framed, close = _head_lines(request, framing=True)
    if not framed and (content or request.method in ("POST", "PUT", "PATCH")):
        lines.append(b"Content-Length: %d" % len(content))
    return b"".join((b"\r\n".join(lines), b"\r\n\r\n", content)), close


def _head_lines(request: httpx.Request, *, framing: bool) -> tuple[list[bytes], bool, bool]:
    """The request line and header lines of ``request``, checked; whether a
    ``Content-Length`` is among them (kept only with ``framing``), and whether the
    request asks for the connection to be closed."""
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    framed = False
    close = False
    for name, value in request.headers.raw:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            continue  # the body is sent whole, with a Content-Length
        if lowered == b"content-length":
            framed = True
            if not framing:
                continue
        elif lowered == b"connection":
            close = b"close" in value.lower()
        if b":" in name:
            raise httpx.LocalProtocolError(f"illegal header name {name!r}")
        line = name + b": " + value
        # a line break inside a name or value would smuggle in another header
        if b"\n" in line or b"\r" in line:
            raise httpx.LocalProtocolError("a request header contains a line break")
        lines.append(line)
    return lines, framed, close


def _origin_of(url: httpx.URL, request: httpx.Request) -> _Origin:
    scheme = url.scheme
    if scheme not in DEFAULT_PORTS:
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}", request=request)
    return (scheme, url.host, url.port or DEFAULT_PORTS[scheme])


async def _reply(head: _Head, body: _Body, max_body: int | None) -> Reply:
    return Reply(
        head.status,
        head.reason.decode("ascii", "ignore"),
        head.version.decode("ascii", "ignore"),
        head.headers,
        await body.read(max_body),
    )


# --- response head ------------------------------------------------------------------


class _Head(NamedTuple):
    """A parsed status line and header block."""

    version: bytes
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    length: int | None  # None: chunked, or the body ends with the connection
    chunked: bool
    keep_alive: bool


async def _read_head(conn: _Connection) -> _Head:
    buffer = conn.buffer
    for _ in range(MAX_HEAD_BYTES):
        end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES)
        # a head ended by bare line feeds (tolerated, as h11 does) may come first
        bare = buffer.find(b"\n\n", 0, end if end >= 0 else MAX_HEAD_BYTES)
        if bare >= 0:
            return _parse_head(conn.consume(bare + 2)[: bare + 1])
        if end >= 0:
            return _parse_head(conn.consume(end + 4)[: end + 2])
        if len(buffer) > MAX_HEAD_BYTES:
            raise httpx.RemoteProtocolError(
                f"response head longer than {MAX_HEAD_BYTES} bytes without an end"
            )
        if conn.closed and not buffer and conn.error is None:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        await conn.wait_for_data()
    raise httpx.RemoteProtocolError("response head did not arrive")


def _parse_head(raw: bytes) -> _Head:
    lines = raw.split(b"\n")
    status_line = lines[0].rstrip(b"\r")
    version, _, rest = status_line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise httpx.RemoteProtocolError(f"malformed status line {status_line[:100]!r}")
    headers: list[tuple[bytes, bytes]] = []
    length: int | None = None
    chunked = False
    has_encoding = False
    connection = b""
    for line in lines[1:]:
        line = line.rstrip(b"\r")
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or name[0] in b" \t" or name != name.rstrip():
            raise httpx.RemoteProtocolError(f"malformed response header line {line[:100]!r}")
        value = value.strip(b" \t")
        headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length":
            length = _content_length(value, length)
        elif lowered == b"transfer-encoding":
            has_encoding = True
            chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
        elif lowered == b"connection":
            connection += b"," + value.lower()
    if has_encoding:
        length = None  # Transfer-Encoding overrides Content-Length
    # HTTP/1.0 servers close unless asked to keep the connection; we never ask
    keep_alive = version == b"HTTP/1.1" and b"close" not in connection
    if has_encoding and not chunked:
        keep_alive = False  # the body ends with the connection
    return _Head(version, int(code), reason, headers, length, chunked, keep_alive)


def _content_length(value: bytes, previous: int | None) -> int:
    values = {v.strip() for v in value.split(b",")}
    if len(values) != 1:
        raise httpx.RemoteProtocolError(f"conflicting Content-Length {value[:100]!r}")
    text = values.pop()
    if not (text.isdigit() and text.isascii()) or (previous is not None and int(text) != previous):
        raise httpx.RemoteProtocolError(f"bad Content-Length {value[:100]!r}")
    return int(text)


# --- response body ------------------------------------------------------------------


class _Body(httpx.AsyncByteStream):
    """The response body; the connection returns to the pool once it was read whole.

    A body already complete in the receive buffer (the usual short answer) is
    taken at once and the connection released before the response is returned.
    """

    def __init__(
        self,
        transport: HTTP1Transport,
        conn: _Connection,
        head: _Head,
        *,
        no_body: bool,
        keep_alive: bool,
    ) -> None:
        self._transport = transport
        self._conn: _Connection | None = conn
        self.keep_alive = keep_alive
        self._remaining = 0 if no_body else head.length  # None: chunked or until close
        self._chunked = head.chunked and not no_body
        self.ready: bytes | None = None

    def take_buffered(self) -> None:
        """Take the whole body now when it has already arrived (or is empty)."""
        conn = self._conn
        assert conn is not None
        remaining = self._remaining
        if remaining is not None and not self._chunked and len(conn.buffer) >= remaining:
            self.ready = conn.consume(remaining) if remaining else b""
            self._remaining = 0
            self._finish()

    def _finish(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self.keep_alive:
            self._transport._release(conn)
        else:
            conn.close()

    async def __aiter__(self) -> AsyncGenerator[bytes, None]:
        if self.ready is not None:
            ready, self.ready = self.ready, b""
            if ready:
                yield ready
            return
        conn = self._conn
        if conn is None:
            return
        try:
            if self._chunked:
                async for piece in _chunked_body(conn):
                    yield piece
            elif self._remaining is None:
                async for piece in _body_until_close(conn):
                    yield piece
                self.keep_alive = False
            else:
                async for piece in _sized_body(conn, self._remaining):
                    yield piece
        except BaseException:
            self._conn = None
            conn.close()
            raise
        self._finish()

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # closed before the body was read whole

    async def read(self, limit: int | None) -> bytes:
        """The body, or its first ``limit`` bytes or more (the connection then closed)."""
        if self.ready is not None:
            ready, self.ready = self.ready, b""
            return ready
        pieces = self.__aiter__()
        try:
            body = await read_up_to(pieces, limit)
        finally:
            await pieces.aclose()
        await self.aclose()
        return body


async def _sized_body(conn: _Connection, remaining: int) -> AsyncIterator[bytes]:
    while remaining > 0:
        if not conn.buffer:
            await conn.wait_for_data()
            continue
        piece = conn.consume(remaining)
        remaining -= len(piece)
        yield piece


async def _body_until_close(conn: _Connection) -> AsyncIterator[bytes]:
    for _ in range(1 << 40):
        if conn.buffer:
            yield conn.consume(len(conn.buffer))
        elif conn.closed:
            if conn.error is not None:
                raise _read_error(conn.error)
            return
        else:
            await conn.wait_for_data()


async def _read_line(conn: _Connection) -> bytes:
    for _ in range(MAX_HEAD_BYTES):
        end = conn.buffer.find(b"\n")
        if end >= 0:
            return conn.consume(end + 1).rstrip(b"\r\n")
        if len(conn.buffer) > MAX_HEAD_BYTES:
            raise httpx.RemoteProtocolError("chunk size line too long")
        await conn.wait_for_data()
    raise httpx.RemoteProtocolError("chunk size line did not arrive")


async def _chunked_body(conn: _Connection) -> AsyncIterator[bytes]:
    for _ in range(1 << 40):
        line = await _read_line(conn)
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise httpx.RemoteProtocolError(f"bad chunk size line {line[:100]!r}") from None
        if size < 0:
            raise httpx.RemoteProtocolError(f"bad chunk size line {line[:100]!r}")
        if size == 0:
            for _ in range(MAX_HEAD_BYTES):  # trailer fields, then an empty line
                if not await _read_line(conn):
                    return
            raise httpx.RemoteProtocolError("chunked trailer too long")
        async for piece in _sized_body(conn, size):
            yield piece
        if await _read_line(conn):
            raise httpx.RemoteProtocolError("chunk data not followed by a line end")
