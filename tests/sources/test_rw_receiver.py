"""The remote-write input source and the shared HTTP server, driven over real sockets."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import httpx
import pytest
from src_helpers import V1_TYPE, V2_TYPE, RecordingAppender, WireSeries, encode_v1, encode_v2

from rwconsole.http.server import HttpServer, Request, Response
from rwconsole.labels import make_labels
from rwconsole.model import STALE_NAN, MetricType, is_stale_nan
from rwconsole.sources.receiver import RemoteWriteReceiver, parse_listen_address

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

V1_HEADERS = {"Content-Type": V1_TYPE, "Content-Encoding": "snappy"}
V2_HEADERS = {"Content-Type": V2_TYPE, "Content-Encoding": "snappy"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[RemoteWriteReceiver, RecordingAppender]]:
    app = RecordingAppender()
    rx = RemoteWriteReceiver(app, "127.0.0.1:0", max_body=64 * 1024)
    await rx.start()
    try:
        yield rx, app
    finally:
        await rx.stop()


def url(rx: RemoteWriteReceiver) -> str:
    return f"http://127.0.0.1:{rx.port}/api/v1/write"


A = make_labels({"__name__": "req_total", "job": "x", "code": "200"})
B = make_labels({"__name__": "temp", "job": "x"})


async def test_v1_request_is_written_exactly(receiver) -> None:
    rx, app = receiver
    body = encode_v1(
        [
            WireSeries(A, [(1000, 1.0), (2000, 2.5)], [((("trace_id", "t1"),), 0.5, 1500)]),
            WireSeries(B, [(1000, -3.25), (2000, STALE_NAN)]),
        ],
        metadata=[("req", int(MetricType.COUNTER), "Requests.", ""), ("temp", 2, "Temp.", "c")],
    )
    async with httpx.AsyncClient() as client:
        response = await client.post(url(rx), content=body, headers=V1_HEADERS)
    assert response.status_code == 204
    assert "X-Prometheus-Remote-Write-Samples-Written" not in response.headers
    series = app.series()
    assert series[A] == [(1000, 1.0), (2000, 2.5)]
    assert series[B][0] == (1000, -3.25) and is_stale_nan(series[B][1][1])
    (ex,) = app.exemplars
    assert (app.labels_by_ref[ex.ref], ex.timestamp, ex.value, ex.labels) == (
        A,
        1500,
        0.5,
        (("trace_id", "t1"),),
    )
    meta = app.metadata_by_labels()
    assert meta[A].type == MetricType.COUNTER and meta[A].help == "Requests."
    assert (meta[B].type, meta[B].unit) == (MetricType.GAUGE, "c")
    assert app.commits == 1
    stats = rx.stats()
    assert (stats.requests, stats.samples, stats.exemplars) == (1, 4, 1)
    assert stats.by_status == {204: 1}


async def test_v2_request_is_written_and_answered_with_counts(receiver) -> None:
    rx, app = receiver
    body = encode_v2(
        [
            WireSeries(A, [(1000, 7.0)], [((("trace_id", "x"),), 1.0, 1000)], (1, "Reqs.", "")),
            WireSeries(B, [(1000, math.inf), (2000, -math.inf)], [], (2, "Temp.", "celsius")),
        ]
    )
    async with httpx.AsyncClient() as client:
        response = await client.post(url(rx), content=body, headers=V2_HEADERS)
    assert response.status_code == 204
    assert response.headers["X-Prometheus-Remote-Write-Samples-Written"] == "3"
    assert response.headers["X-Prometheus-Remote-Write-Exemplars-Written"] == "1"
    assert response.headers["X-Prometheus-Remote-Write-Histograms-Written"] == "0"
    series = app.series()
    assert series == {A: [(1000, 7.0)], B: [(1000, math.inf), (2000, -math.inf)]}
    meta = app.metadata_by_labels()
    assert (meta[B].type, meta[B].help, meta[B].unit) == (MetricType.GAUGE, "Temp.", "celsius")


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        (V1_HEADERS, b"\x05garbage", 400, "snappy"),
        ({"Content-Type": "text/plain", "Content-Encoding": "snappy"}, b"", 415, "Content-Type"),
        ({"Content-Type": V1_TYPE, "Content-Encoding": "gzip"}, b"", 415, "Content-Encoding"),
    ],
)
async def test_bad_requests_append_nothing(receiver, headers, body, status, reason) -> None:
    rx, app = receiver
    async with httpx.AsyncClient() as client:
        response = await client.post(url(rx), content=body, headers=headers)
    assert response.status_code == status
    assert reason in response.text
    assert app.commits == 0 and app.series() == {}
    assert rx.stats().by_status == {status: 1}


async def test_repeated_label_rejects_the_whole_request(receiver) -> None:
    rx, app = receiver
    good = WireSeries(A, [(1000, 1.0)])
    bad = WireSeries((("__name__", "x"), ("a", "1"), ("a", "2")), [(1000, 1.0)])
    async with httpx.AsyncClient() as client:
        response = await client.post(url(rx), content=encode_v1([good, bad]), headers=V1_HEADERS)
    assert response.status_code == 400
    assert app.series() == {} and app.commits == 0


async def test_wrong_path_method_and_size(receiver) -> None:
    rx, app = receiver
    async with httpx.AsyncClient() as client:
        assert (
            await client.post(f"http://127.0.0.1:{rx.port}/nope", content=b"")
        ).status_code == 404
        assert (await client.get(url(rx))).status_code == 405
        big = await client.post(url(rx), content=b"x" * (65 * 1024), headers=V1_HEADERS)
        assert big.status_code == 413
        assert "exceeds the limit" in big.text
        # the server still answers afterwards
        body = encode_v1([WireSeries(A, [(1, 1.0)])])
        assert (await client.post(url(rx), content=body, headers=V1_HEADERS)).status_code == 204
    assert app.series() == {A: [(1, 1.0)]}


def test_parse_listen_address() -> None:
    assert parse_listen_address("127.0.0.1:9201") == ("127.0.0.1", 9201)
    assert parse_listen_address("[::1]:80") == ("::1", 80)
    assert parse_listen_address(":9201") == ("0.0.0.0", 9201)
    for bad in ("localhost", "host:port", "h:99999"):
        with pytest.raises(ValueError, match="host:port"):
            parse_listen_address(bad)


# --- the HTTP server itself, over raw sockets ------------------------------------------------


async def _echo(request: Request) -> Response:
    return Response(200, f"{request.method} {request.path} {len(request.body)}".encode())


@pytest.fixture
async def echo_server() -> AsyncIterator[HttpServer]:
    server = HttpServer(_echo, max_body=1000, read_timeout=2.0)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


async def _exchange(port: int, data: bytes, responses: int = 1) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        out = []
        for _ in range(responses):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.lower().split(b"\r\n")
            length = int(next(x.split(b":")[1] for x in lines if x.startswith(b"content-length")))
            out.append(head + await reader.readexactly(length))
        return out
    finally:
        writer.close()


async def test_keep_alive_and_pipelining(echo_server: HttpServer) -> None:
    data = (
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    first, second = await _exchange(echo_server.port, data, responses=2)
    assert first.startswith(b"HTTP/1.1 200 OK") and first.endswith(b"POST /a 3")
    assert second.endswith(b"GET /b 0")


async def test_chunked_body_and_expect_continue(echo_server: HttpServer) -> None:
    data = (
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\n"
    )
    (answer,) = await _exchange(echo_server.port, data)
    assert answer.endswith(b"POST /c 9")
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"http://127.0.0.1:{echo_server.port}/e",
            content=b"12345",
            headers={"Expect": "100-continue"},
        )
    assert response.text == "POST /e 5"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"NONSENSE\r\n\r\n", b"400"),
        (b"GET / HTTP/2.0\r\n\r\n", b"505"),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", b"400"),
        ("POST / HTTP/1.1\r\nContent-Length: \u00b2\r\n\r\n".encode(), b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", b"413"),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"400"),
    ],
)
async def test_malformed_requests_get_an_error_status(
    echo_server: HttpServer, data: bytes, status: bytes
) -> None:
    (answer,) = await _exchange(echo_server.port, data)
    assert answer.split(b" ")[1] == status
    assert b"Connection: close" in answer


async def test_listener_can_close_and_reopen_on_the_same_port(echo_server: HttpServer) -> None:
    port = echo_server.port
    await echo_server.close_listener()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    await echo_server.open_listener()
    assert echo_server.port == port
    (answer,) = await _exchange(port, b"GET /x HTTP/1.1\r\n\r\n")
    assert answer.endswith(b"GET /x 0")
