"""The lean HTTP/1.1 path against loopback servers that answer byte by byte.

Each test server here writes raw response bytes chosen by the test, so the
client's framing (Content-Length, chunked, close-delimited, 1xx), keep-alive
decisions, the retry of a request on a connection the server closed, timeouts
and TLS are seen on the wire: the servers count the connections they accept and
record every request they read.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from http_helpers import (
    H2Server,
    HTTPServer,
    Pki,
    Request,
    Response,
    ThreadedTLSReceiver,
    endpoint,
    make_pki,
    run,
    secret,
    server_ssl_context,
)

from rwconsole.config.schema import BasicAuthConfig, TLSConfig
from rwconsole.config.secrets import Secret
from rwconsole.http import http1
from rwconsole.http.http1 import HTTP1Transport
from rwconsole.remote.client import RemoteWriteClient, SendResult

pytestmark = pytest.mark.timeout(30)
UA = "rwconsole-test"
NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"
LOOP_LIMIT = 1000


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


# --- a raw loopback server ------------------------------------------------------------


@dataclass
class Reply:
    """What the server does after reading a request.

    ``data`` is written as is (None: nothing), after ``delay`` seconds; with
    ``close`` the connection is closed afterwards, with ``reset`` it is reset.
    """

    data: bytes | None = NO_CONTENT
    close: bool = False
    reset: bool = False
    delay: float = 0.0


@dataclass
class Seen:
    """A request as read by the server, with the connection it came on."""

    connection: int
    request: Request


Script = Callable[[Seen], Reply]


class RawServer(HTTPServer):
    """Reads HTTP/1.1 requests and answers each with the bytes its script picks."""

    def __init__(self, script: Script, *, ssl_ctx: ssl.SSLContext | None = None) -> None:
        super().__init__(ssl_ctx=ssl_ctx)
        self.script = script
        self.seen: list[Seen] = []
        self.connections = 0
        self.closed_by_client = 0

    async def start(self) -> RawServer:
        await super().start()
        return self

    @property
    def bodies(self) -> list[bytes]:
        return [s.request.body for s in self.seen]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        number = self.connections
        try:
            for _ in range(LOOP_LIMIT):
                request = await _read_request(reader)
                if request is None:
                    self.closed_by_client += 1
                    return
                seen = Seen(number, request)
                self.seen.append(seen)
                reply = self.script(seen)
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                if reply.data is not None:
                    writer.write(reply.data)
                    await writer.drain()
                if reply.reset:
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if reply.close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            self.closed_by_client += 1
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = [(n.strip(), v.strip()) for n, _, v in (x.partition(":") for x in lines[1:] if x)]
    length = int(dict((k.lower(), v) for k, v in headers).get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return Request(method, target, headers, body)


def always(reply: Reply) -> Script:
    return lambda seen: reply


async def send_all(
    server_url: str, bodies: list[bytes], *, lean: bool = True, **settings: object
) -> tuple[list[SendResult], RemoteWriteClient]:
    config = endpoint(server_url + "/write", **settings)
    client = RemoteWriteClient(config, user_agent=UA, lean_http1=lean)
    try:
        results = [await client.send(b, protocol=1, attempt=0) for b in bodies]
    finally:
        await client.aclose()
    return results, client


def outcomes(results: list[SendResult]) -> list[str]:
    return [r.outcome for r in results]


# --- keep-alive and framing ------------------------------------------------------------


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "httpx-client"])
def test_keep_alive_reuses_one_connection_with_the_same_headers(lean: bool) -> None:
    async def body() -> None:
        ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        server = await RawServer(always(Reply(ok))).start()
        try:
            auth = BasicAuthConfig(username="u", password=secret("p"))
            bodies = [b"first", b"second" * 1000, b"third"]
            results, client = await send_all(server.url, bodies, lean=lean, basic_auth=auth)
        finally:
            await server.aclose()
        assert outcomes(results) == ["ok"] * 3
        assert server.connections == 1
        assert server.bodies == bodies
        request = server.seen[0].request
        assert (request.method, request.target) == ("POST", "/write")
        assert request.header("Host") == server.url.split("//")[1]
        assert request.header("Authorization") == "Basic dTpw"
        assert request.header("Content-Encoding") == "snappy"
        assert request.header("User-Agent") == UA
        assert request.header("Content-Length") == "5"
        assert request.header("Transfer-Encoding") is None
        assert client.state.protocol == "HTTP/1.1" and client.state.connected

    run(body)


def test_a_first_attempt_and_a_retry_carry_the_same_headers() -> None:
    """A first attempt goes out with a head prepared once; a retry is built whole."""

    async def body() -> None:
        server = await HTTPServer().start()
        config = endpoint(
            server.url,
            basic_auth=BasicAuthConfig(username="u", password=secret("p")),
            headers={"X-Scope-OrgID": secret("tenant-1")},
            http_headers={"X-Team": [secret("a"), secret("b")]},
        )
        client = RemoteWriteClient(config, user_agent=UA)
        try:
            sent = [(b"one", 0), (b"two" * 700, 0), (b"three", 2)]
            for protocol in (1, 2):
                for payload, attempt in sent:
                    await client.send(payload, protocol=protocol, attempt=attempt)
        finally:
            await client.aclose()
            await server.aclose()
        assert [r.body for r in server.requests] == [payload for payload, _ in sent] * 2
        assert [r.header("Content-Length") for r in server.requests] == ["3", "2100", "5"] * 2
        assert [r.header("Retry-Attempt") for r in server.requests] == [None, None, "2"] * 2

        def others(request: Request) -> list[tuple[str, str]]:
            framing = ("content-length", "retry-attempt")
            return sorted((k.lower(), v) for k, v in request.headers if k.lower() not in framing)

        for first, second, retry in (server.requests[:3], server.requests[3:]):
            assert others(first) == others(second) == others(retry)
        v1, v2 = others(server.requests[0]), others(server.requests[3])
        assert ("authorization", "Basic dTpw") in v1 and ("x-scope-orgid", "tenant-1") in v1
        assert ("x-team", "a, b") in v1 or {("x-team", "a"), ("x-team", "b")} <= set(v1)
        assert dict(v1)["content-type"] != dict(v2)["content-type"]

    run(body)


def test_secrets_kept_in_files_are_read_again_for_every_request(tmp_path: Path) -> None:
    password, tenant = tmp_path / "password", tmp_path / "tenant"
    password.write_text("old")
    tenant.write_text("t-old")

    async def body() -> None:
        server = await HTTPServer().start()
        config = endpoint(
            server.url,
            basic_auth=BasicAuthConfig(username="u", password=Secret.from_file(str(password))),
            headers={"X-Scope-OrgID": Secret.from_file(str(tenant))},
        )
        client = RemoteWriteClient(config, user_agent=UA)
        try:
            await client.send(b"x", protocol=1, attempt=0)
            password.write_text("new")
            tenant.write_text("t-new")
            await client.send(b"x", protocol=1, attempt=0)
        finally:
            await client.aclose()
            await server.aclose()
        assert [r.header("Authorization") for r in server.requests] == [
            "Basic " + base64.b64encode(b"u:old").decode(),
            "Basic " + base64.b64encode(b"u:new").decode(),
        ]
        assert [r.header("X-Scope-OrgID") for r in server.requests] == ["t-old", "t-new"]

    run(body)


def test_concurrent_sends_share_a_few_kept_connections() -> None:
    async def body() -> None:
        server = await RawServer(always(Reply(delay=0.01))).start()
        client = RemoteWriteClient(endpoint(server.url), user_agent=UA)

        async def shard(number: int) -> list[str]:
            return [
                (await client.send(b"%d-%d" % (number, i), protocol=1, attempt=0)).outcome
                for i in range(5)
            ]

        try:
            results = await asyncio.gather(*(shard(n) for n in range(4)))
        finally:
            await client.aclose()
            await server.aclose()
        assert results == [["ok"] * 5] * 4
        assert len(server.seen) == 20 and len(set(server.bodies)) == 20
        assert server.connections == 4

    run(body)


def test_idle_connection_past_keepalive_expiry_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "KEEPALIVE_EXPIRY", 0.4)

    async def body() -> None:
        server = await RawServer(always(Reply())).start()
        client = RemoteWriteClient(endpoint(server.url), user_agent=UA)
        try:
            first = await client.send(b"a", protocol=1, attempt=0)
            soon = await client.send(b"b", protocol=1, attempt=0)
            await asyncio.sleep(0.6)
            late = await client.send(b"c", protocol=1, attempt=0)
            for _ in range(100):  # the server notices the close soon
                if server.closed_by_client:
                    break
                await asyncio.sleep(0.02)
            closed = server.closed_by_client
        finally:
            await client.aclose()
            await server.aclose()
        assert [first.outcome, soon.outcome, late.outcome] == ["ok"] * 3
        assert [s.connection for s in server.seen] == [1, 1, 2]
        assert closed == 1  # the expired connection was closed by the client

    run(body)


def test_chunked_bodies_are_decoded_and_keep_the_connection() -> None:
    chunked_error = (
        b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"7;ext=1\r\nout of \r\n5\r\norder\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    chunked_ok = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    replies = iter([Reply(chunked_error), Reply(chunked_ok), Reply()])

    async def body() -> None:
        server = await RawServer(lambda seen: next(replies)).start()
        try:
            results, _ = await send_all(server.url, [b"a", b"b", b"c"])
        finally:
            await server.aclose()
        assert outcomes(results) == ["fatal", "ok", "ok"]
        assert results[0].status == 400 and results[0].reason == "out of order"
        assert server.connections == 1

    run(body)


def test_chunked_body_split_across_writes() -> None:
    async def body() -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_request(reader)
            pieces = [
                b"HTTP/1.1 503 Service Unavailable\r\nTransfer-",
                b"Encoding: chunked\r\n\r\n4",
                b"\r\nbusy\r",
                b"\n0\r\n\r",
                b"\n",
            ]
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.02)
            await _read_request(reader)  # the connection stays usable
            writer.write(NO_CONTENT)
            await writer.drain()
            await reader.read()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            results, _ = await send_all(url, [b"x", b"y"])
        finally:
            server.close()
        assert outcomes(results) == ["recoverable", "ok"]
        assert results[0].reason == "busy"

    run(body)


def test_connection_close_and_http10_answers_open_a_new_connection() -> None:
    replies = iter(
        [
            Reply(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
            Reply(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbody until close", True),
            Reply(b"HTTP/1.0 503 Service Unavailable\r\n\r\nold server busy", close=True),
            Reply(),
            Reply(),
        ]
    )

    async def body() -> None:
        server = await RawServer(lambda seen: next(replies)).start()
        try:
            results, _ = await send_all(server.url, [b"1", b"2", b"3", b"4", b"5"])
        finally:
            await server.aclose()
        assert outcomes(results) == ["ok", "ok", "recoverable", "ok", "ok"]
        assert results[2].reason == "old server busy"
        assert [s.connection for s in server.seen] == [1, 2, 3, 4, 4]
        assert server.bodies == [b"1", b"2", b"3", b"4", b"5"]

    run(body)


def test_head_ended_by_bare_line_feeds() -> None:
    answer = b"HTTP/1.1 400 Bad Request\nContent-Length: 9\n\nno\r\n\r\nway"

    async def body() -> None:
        server = await RawServer(always(Reply(answer))).start()
        try:
            results, _ = await send_all(server.url, [b"x", b"y"])
        finally:
            await server.aclose()
        assert [(r.status, r.reason) for r in results] == [(400, "no\r\n\r\nway")] * 2
        assert server.connections == 1

    run(body)


def test_interim_1xx_responses_are_skipped() -> None:
    interim = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 4\r\n\r\nslow"
    )

    async def body() -> None:
        server = await RawServer(always(Reply(interim))).start()
        try:
            results, _ = await send_all(server.url, [b"x", b"y"])
        finally:
            await server.aclose()
        assert [(r.status, r.retry_after, r.reason) for r in results] == [(429, 3.0, "slow")] * 2
        assert server.connections == 1

    run(body)


def test_large_error_body_is_cut_and_its_connection_not_reused() -> None:
    big = b"E" * 3_000_000
    replies = iter(
        [Reply(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(big) + big)]
        + [Reply()] * 2
    )

    async def body() -> None:
        server = await RawServer(lambda seen: next(replies)).start()
        try:
            results, _ = await send_all(server.url, [b"x", b"y", b"z"])
        finally:
            await server.aclose()
        assert outcomes(results) == ["fatal", "ok", "ok"]
        assert results[0].reason == "E" * 1024
        assert [s.connection for s in server.seen] == [1, 2, 2]

    run(body)


def test_written_headers_and_reason_phrase_reach_the_result() -> None:
    answer = (
        b"HTTP/1.1 204 No Content\r\n"
        b"X-Prometheus-Remote-Write-Samples-Written: 7\r\n"
        b"x-prometheus-remote-write-histograms-written:  2 \r\n\r\n"
    )

    async def body() -> None:
        server = await RawServer(always(Reply(answer))).start()
        client = RemoteWriteClient(endpoint(server.url), user_agent=UA)
        try:
            result = await client.send(b"v2", protocol=2, attempt=1, items=9)
        finally:
            await client.aclose()
            await server.aclose()
        assert result.outcome == "ok" and result.written == (7, 2, 0)
        assert server.seen[0].request.header("Retry-Attempt") == "1"

    run(body)


# --- connections that go away ------------------------------------------------------------


def test_server_closing_after_its_answer_gets_a_fresh_connection() -> None:
    async def body() -> None:
        server = await RawServer(always(Reply(close=True))).start()
        client = RemoteWriteClient(endpoint(server.url), user_agent=UA)
        try:
            results = []
            for payload in (b"a", b"b", b"c"):
                results.append(await client.send(payload, protocol=1, attempt=0))
                await asyncio.sleep(0.05)  # the close arrives while the connection is idle
        finally:
            await client.aclose()
            await server.aclose()
        assert outcomes(results) == ["ok"] * 3
        assert server.bodies == [b"a", b"b", b"c"]  # each sent exactly once
        assert server.connections == 3

    run(body)


def test_request_on_a_connection_closed_meanwhile_is_sent_once_more() -> None:
    def script(seen: Seen) -> Reply:
        if seen.connection == 1 and seen.request.body == b"second":
            return Reply(data=None, close=True)  # an idle timeout hit just as it arrived
        return Reply()

    async def body() -> None:
        server = await RawServer(script).start()
        try:
            results, _ = await send_all(server.url, [b"first", b"second", b"third"])
        finally:
            await server.aclose()
        assert outcomes(results) == ["ok"] * 3
        assert [(s.connection, s.request.body) for s in server.seen] == [
            (1, b"first"),
            (1, b"second"),
            (2, b"second"),
            (2, b"third"),
        ]

    run(body)


def test_reset_of_a_reused_connection_is_retried_but_a_fresh_one_is_not() -> None:
    def script(seen: Seen) -> Reply:
        if seen.request.body == b"second" and seen.connection == 1:
            return Reply(data=None, reset=True)
        if seen.request.body == b"fourth":
            return Reply(data=None, reset=True)
        return Reply(close=seen.request.body == b"third")

    async def body() -> None:
        server = await RawServer(script).start()
        client = RemoteWriteClient(endpoint(server.url), user_agent=UA)
        try:
            results = []
            for payload in (b"first", b"second", b"third", b"fourth"):
                results.append(await client.send(payload, protocol=1, attempt=0))
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()
            await server.aclose()
        assert outcomes(results) == ["ok", "ok", "ok", "recoverable"]
        assert results[3].status is None and results[3].reason.startswith("ReadError")
        # "fourth" went on a fresh connection (the server closed after "third"): not resent
        assert [s.request.body for s in server.seen].count(b"fourth") == 1
        assert [s.request.body for s in server.seen].count(b"second") == 2

    run(body)


def test_request_that_got_part_of_an_answer_is_not_sent_again() -> None:
    replies = iter([Reply(), Reply(b"HTTP/1.1 200 OK\r\nContent-Len", close=True), Reply()])

    async def body() -> None:
        server = await RawServer(lambda seen: next(replies)).start()
        try:
            results, _ = await send_all(server.url, [b"one", b"two", b"three"])
        finally:
            await server.aclose()
        assert outcomes(results) == ["ok", "recoverable", "ok"]
        assert "RemoteProtocolError" in results[1].reason
        assert server.bodies == [b"one", b"two", b"three"]

    run(body)


def test_slow_answer_past_remote_timeout_discards_the_connection() -> None:
    def script(seen: Seen) -> Reply:
        if seen.request.body == b"slow":
            # Far past the 0.2 s timeout (was 0.6 s): a stalled loop on a busy machine
            # must not see the answer arrive in time.
            return Reply(b"HTTP/1.1 500 Late\r\nContent-Length: 0\r\n\r\n", delay=1.5)
        return Reply()

    async def body() -> None:
        server = await RawServer(script).start()
        client = RemoteWriteClient(endpoint(server.url, remote_timeout=0.2), user_agent=UA)
        try:
            slow = await client.send(b"slow", protocol=1, attempt=0)
            after = await client.send(b"next", protocol=1, attempt=0)
            for _ in range(200):  # until the late answer went to the closed connection
                if server.closed_by_client:
                    break
                await asyncio.sleep(0.02)
            last = await client.send(b"last", protocol=1, attempt=0)
        finally:
            await client.aclose()
            await server.aclose()
        assert slow.outcome == "recoverable" and "remote_timeout (0.2s)" in slow.reason
        assert server.closed_by_client == 1  # the timed-out connection was closed at once
        assert (after.outcome, after.status, last.status) == ("ok", 204, 204)
        assert [(s.connection, s.request.body) for s in server.seen] == [
            (1, b"slow"),
            (2, b"next"),
            (2, b"last"),
        ]

    run(body)


def test_malformed_answer_is_a_recoverable_protocol_error() -> None:
    async def body() -> None:
        server = await RawServer(always(Reply(b"SPDY/9 OK\r\n\r\n", close=True))).start()
        try:
            results, client = await send_all(server.url, [b"x"])
        finally:
            await server.aclose()
        assert results[0].outcome == "recoverable"
        assert "RemoteProtocolError" in results[0].reason and "SPDY" in results[0].reason
        assert client.state.connected is False

    run(body)


def test_connection_refused_names_the_address() -> None:
    async def body() -> None:
        server = await RawServer(always(Reply())).start()
        url = server.url
        await server.aclose()
        results, _ = await send_all(url, [b"x"])
        assert results[0].outcome == "recoverable"
        assert results[0].reason.startswith("ConnectError") and "127.0.0.1" in results[0].reason

    run(body)


# --- redirects -------------------------------------------------------------------------------


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "httpx-client"])
def test_redirects_follow_httpx_rules(lean: bool) -> None:
    async def body() -> None:
        other = await HTTPServer().start()

        def handler(request: Request) -> Response:
            if request.target == "/see-other":
                return Response(303, headers=[("Location", "/done")])
            if request.target == "/elsewhere":
                return Response(308, headers=[("Location", other.url + "/moved")])
            if request.target == "/loop":
                return Response(307, headers=[("Location", "/loop")])
            return Response(204)

        server = await HTTPServer(handler).start()
        auth = BasicAuthConfig(username="u", password=secret("p"))
        clients = [
            RemoteWriteClient(
                endpoint(server.url + path, basic_auth=auth), user_agent=UA, lean_http1=lean
            )
            for path in ("/see-other", "/elsewhere", "/loop")
        ]
        try:
            results = [await c.send(b"data", protocol=1, attempt=0) for c in clients]
        finally:
            for client in clients:
                await client.aclose()
            await server.aclose()
            await other.aclose()
        see_other, elsewhere, loop = results
        assert see_other.outcome == elsewhere.outcome == "ok"
        first, done = server.requests[:2]
        assert (first.method, first.body) == ("POST", b"data")
        assert (done.method, done.target, done.body) == ("GET", "/done", b"")
        assert done.header("Content-Length") is None and done.header("Authorization")
        (moved,) = other.requests
        assert (moved.method, moved.target, moved.body) == ("POST", "/moved", b"data")
        assert moved.header("Authorization") is None  # not sent to another origin
        assert moved.header("Host") == other.url.split("//")[1]
        assert loop.outcome == "recoverable" and "TooManyRedirects" in loop.reason
        assert sum(r.target == "/loop" for r in server.requests) == 21

    run(body)


# --- TLS -------------------------------------------------------------------------------------


def test_tls_keep_alive_with_a_test_ca_and_server_name(pki: Pki) -> None:
    async def body() -> None:
        sni: list[str | None] = []
        ctx = server_ssl_context(pki, alpn=["h2", "http/1.1"], sni_seen=sni)
        server = await RawServer(always(Reply()), ssl_ctx=ctx).start()
        tls = TLSConfig(ca_pem=pki.ca_pem, server_name="receiver.test")
        try:
            results, client = await send_all(
                server.url, [b"a", b"b", b"c"], tls_config=tls, enable_http2=False
            )
        finally:
            await server.aclose()
        assert outcomes(results) == ["ok"] * 3
        assert server.connections == 1 and sni == ["receiver.test"]
        assert server.bodies == [b"a", b"b", b"c"] and client.state.protocol == "HTTP/1.1"

    run(body)


def test_https_with_http2_on_turns_lean_after_an_http1_answer(pki: Pki) -> None:
    async def body() -> None:
        server = await RawServer(always(Reply()), ssl_ctx=server_ssl_context(pki)).start()
        tls = TLSConfig(ca_file=pki.ca_file)
        try:
            results, _ = await send_all(server.url, [b"1", b"2", b"3", b"4"], tls_config=tls)
        finally:
            await server.aclose()
        assert outcomes(results) == ["ok"] * 4
        # the first answer came through httpx (HTTP/2 offered, HTTP/1.1 chosen);
        # the rest share one lean connection
        assert [s.connection for s in server.seen] == [1, 2, 2, 2]

    run(body)


def test_tls_failures_keep_their_hints(pki: Pki) -> None:
    mtls = ThreadedTLSReceiver(server_ssl_context(pki, require_client_cert=True))

    async def body() -> None:
        server = await RawServer(always(Reply()), ssl_ctx=server_ssl_context(pki)).start()
        try:
            unknown_ca, _ = await send_all(
                server.url, [b"x"], tls_config=TLSConfig(), enable_http2=False
            )
            wrong_name, _ = await send_all(
                server.url,
                [b"x"],
                tls_config=TLSConfig(ca_file=pki.ca_file, server_name="other.test"),
                enable_http2=False,
            )
        finally:
            await server.aclose()
        no_cert, _ = await send_all(
            mtls.url, [b"x"], tls_config=TLSConfig(ca_file=pki.ca_file), enable_http2=False
        )
        for results in (unknown_ca, wrong_name):
            assert results[0].outcome == "recoverable"
            assert "TLS certificate verification failed" in results[0].reason
        assert no_cert[0].outcome == "recoverable"
        assert "client certificate" in no_cert[0].reason
        assert "tls_config.cert_" in no_cert[0].reason

    try:
        run(body)
    finally:
        mtls.close()


# --- the transport on its own --------------------------------------------------------------


def test_transport_streams_bodies_and_honours_head_requests() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, more than one read
    replies = iter(
        [
            Reply(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload),
            Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"),
            Reply(b"HTTP/1.1 200 OK\r\n\r\nuntil close", close=True),
        ]
    )

    async def body() -> None:
        server = await RawServer(lambda seen: next(replies)).start()
        transport = HTTP1Transport()
        try:
            async with httpx.AsyncClient(transport=transport) as client:
                got = await client.get(server.url + "/big?x=1")
                head = await client.head(server.url + "/head")
                tail = await client.get(server.url + "/tail")
        finally:
            await server.aclose()
        assert got.content == payload and head.content == b"" and tail.content == b"until close"
        assert [s.request.target for s in server.seen] == ["/big?x=1", "/head", "/tail"]
        assert [s.connection for s in server.seen] == [1, 1, 1]

    run(body)


def test_header_with_a_line_break_is_refused_before_sending() -> None:
    async def body() -> None:
        server = await RawServer(always(Reply())).start()
        try:
            async with httpx.AsyncClient(transport=HTTP1Transport()) as client:
                with pytest.raises(httpx.LocalProtocolError, match="line break"):
                    await client.post(server.url, headers={"X-A": "1\r\nX-Injected: 2"})
                with pytest.raises(httpx.LocalProtocolError, match="line break"):
                    await client.post(server.url, headers={"X-A": "1\nX-Injected: 2"})
                ok = await client.post(server.url, content=b"fine")
        finally:
            await server.aclose()
        assert ok.status_code == 204 and server.bodies == [b"fine"]

    run(body)


class SwitchingTLSServer(H2Server):
    """Speaks HTTP/2 or HTTP/1.1 (closing after each answer), as ALPN chose."""

    def __init__(self, pki: Pki) -> None:
        super().__init__(pki)
        self.http1_requests = 0
        self.offer(["http/1.1"])

    def offer(self, protocols: list[str]) -> None:
        self._ctx.set_alpn_protocols(protocols)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object.selected_alpn_protocol() == "h2":
            await super()._serve(reader, writer)
            return
        try:
            if await _read_request(reader) is not None:
                self.http1_requests += 1
                writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


def test_https_origin_that_starts_choosing_http2_goes_back_to_httpx(pki: Pki) -> None:
    async def body() -> None:
        server = await SwitchingTLSServer(pki).start()
        config = endpoint(server.url, tls_config=TLSConfig(ca_file=pki.ca_file))
        client = RemoteWriteClient(config, user_agent=UA)
        protocols = []
        try:
            for round_ in range(4):
                if round_ == 2:
                    server.offer(["h2"])
                result = await client.send(b"x", protocol=2, attempt=0, items=0)
                assert result.outcome == "ok", result
                protocols.append(client.state.protocol)
        finally:
            await client.aclose()
            await server.aclose()
        assert protocols == ["HTTP/1.1", "HTTP/1.1", "HTTP/2", "HTTP/2"]
        assert server.http1_requests == 2 and len(server.requests) == 2
        # one lean connection chose h2 and was closed unused, then httpx's carried both
        assert server.alpn == ["h2", "h2"]

    run(body)
