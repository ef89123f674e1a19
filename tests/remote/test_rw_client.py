"""One attempt against a scriptable loopback receiver: headers, classification, state."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable

import pytest
from http_helpers import HTTPServer, Request, Response, endpoint, run, secret

from rwconsole.config.schema import QueueConfig
from rwconsole.http.errors import ConnectivityConfigError
from rwconsole.remote.client import (
    CONTENT_TYPE_V1,
    CONTENT_TYPE_V2,
    RemoteWriteClient,
    parse_retry_after,
)

pytestmark = pytest.mark.timeout(30)
UA = "rwconsole/0.1.0 (test)"


def test_protocol_headers_v1_and_v2_and_retry_attempt() -> None:
    async def body() -> None:
        server = await HTTPServer().start()
        client = RemoteWriteClient(endpoint(server.url + "/api/v1/write"), user_agent=UA)
        try:
            first = await client.send(b"payload-1", protocol=1, attempt=0)
            second = await client.send(
                b"payload-2", protocol=2, attempt=3, items=0, retry_on_http_429=True
            )
        finally:
            await client.aclose()
            await server.aclose()
        assert first.outcome == "ok" and first.status == 204 and first.reason == ""
        assert second.outcome == "ok"
        r1, r2 = server.requests
        assert (r1.method, r1.target, r1.body) == ("POST", "/api/v1/write", b"payload-1")
        assert r1.header("Content-Encoding") == "snappy"
        assert r1.header("Content-Type") == CONTENT_TYPE_V1 == "application/x-protobuf"
        assert r1.header("X-Prometheus-Remote-Write-Version") == "0.1.0"
        assert r1.header("User-Agent") == UA
        assert r1.header("Retry-Attempt") is None
        assert r1.header("Authorization") is None
        assert r2.header("Content-Type") == CONTENT_TYPE_V2
        assert CONTENT_TYPE_V2 == "application/x-protobuf;proto=io.prometheus.write.v2.Request"
        assert r2.header("X-Prometheus-Remote-Write-Version") == "2.0.0"
        assert r2.header("Retry-Attempt") == "3"
        assert r2.body == b"payload-2"

    run(body)


def test_user_headers_set_last_with_several_values() -> None:
    async def body() -> None:
        server = await HTTPServer().start()
        config = endpoint(
            server.url,
            headers={"X-Scope-OrgID": secret("tenant-a"), "User-Agent": secret("custom/1")},
            http_headers={"X-Multi": [secret("one"), secret("two")]},
        )
        client = RemoteWriteClient(config, user_agent=UA)
        try:
            result = await client.send(b"x", protocol=1, attempt=0)
        finally:
            await client.aclose()
            await server.aclose()
        assert result.outcome == "ok"
        (request,) = server.requests
        assert request.all("X-Scope-OrgID") == ["tenant-a"]
        assert request.all("X-Multi") == ["one", "two"]
        assert request.all("User-Agent") == ["custom/1"]
        # header values never reach the console state
        assert "tenant-a" not in repr(client.state)

    run(body)


def _scripted(responses: dict[str, Response]) -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        return responses[request.target]

    return handler


def test_classification_of_each_status() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    earlier = email.utils.formatdate(time.time() - 30, usegmt=True)
    written = [
        ("X-Prometheus-Remote-Write-Samples-Written", "10"),
        ("X-Prometheus-Remote-Write-Exemplars-Written", "2"),
    ]
    responses = {
        "/200": Response(200, body=b"ignored body"),
        "/204w": Response(204, headers=written),
        "/400": Response(400, body=b"out of order sample\n"),
        "/400big": Response(400, body=b"x" * 5000),
        "/400bad": Response(400, body=b"bad \xff\xfe utf8"),
        "/429s": Response(429, headers=[("Retry-After", "7")]),
        "/429d": Response(429, headers=[("Retry-After", later)]),
        "/503past": Response(503, headers=[("Retry-After", earlier)]),
        "/503junk": Response(503, headers=[("Retry-After", "soon")], body=b"overloaded"),
        "/500": Response(500),
        "/401": Response(401, body=b"no"),
    }

    async def body() -> None:
        server = await HTTPServer(_scripted(responses)).start()
        clients: dict[str, RemoteWriteClient] = {}

        async def send(path: str, **kwargs: object) -> object:
            client = clients.get(path)
            if client is None:
                client = RemoteWriteClient(endpoint(server.url + path), user_agent=UA)
                clients[path] = client
            args = {"protocol": 1, "attempt": 0, **kwargs}
            return await client.send(b"body", **args)  # type: ignore[arg-type]

        try:
            results = {
                "200": await send("/200"),
                "204w": await send("/204w", protocol=2, items=12),
                "v2-no-written": await send("/200", protocol=2, items=5),
                "v2-empty": await send("/200", protocol=2, items=0),
                "400": await send("/400"),
                "400big": await send("/400big"),
                "400bad": await send("/400bad"),
                "429s": await send("/429s"),
                "429-no-retry": await send("/429s", retry_on_http_429=False),
                "429d": await send("/429d"),
                "503past": await send("/503past"),
                "503junk": await send("/503junk"),
                "500": await send("/500"),
                "401": await send("/401"),
            }
        finally:
            for client in clients.values():
                await client.aclose()
            await server.aclose()

        r = results
        assert (r["200"].outcome, r["200"].status, r["200"].reason) == ("ok", 200, "")
        assert r["200"].written is None and r["200"].retry_after is None
        assert r["204w"].outcome == "ok" and r["204w"].written == (10, 0, 2)
        assert r["v2-no-written"].outcome == "fatal"
        assert "did not confirm" in r["v2-no-written"].reason
        assert r["v2-empty"].outcome == "ok"
        assert (r["400"].outcome, r["400"].status) == ("fatal", 400)
        assert r["400"].reason == "out of order sample"
        assert r["400big"].outcome == "fatal" and len(r["400big"].reason.encode()) <= 1024
        assert r["400big"].reason.startswith("xxxx")
        assert r["400bad"].reason == "bad \ufffd\ufffd utf8"
        assert (r["429s"].outcome, r["429s"].retry_after) == ("recoverable", 7.0)
        assert r["429-no-retry"].outcome == "fatal" and r["429-no-retry"].status == 429
        assert r["429d"].outcome == "recoverable"
        assert r["429d"].retry_after is not None and 27 <= r["429d"].retry_after <= 30
        assert r["503past"].outcome == "recoverable" and r["503past"].retry_after is None
        assert r["503junk"].retry_after is None and r["503junk"].reason == "overloaded"
        assert r["500"].outcome == "recoverable"
        assert r["500"].reason == "HTTP 500 Internal Server Error"
        assert r["401"].outcome == "fatal"
        for result in results.values():
            assert result.duration >= 0

    run(body)


def test_retry_on_http_429_comes_from_queue_config_by_default() -> None:
    async def body() -> None:
        server = await HTTPServer(lambda request: Response(429)).start()
        off = RemoteWriteClient(
            endpoint(server.url, queue_config=QueueConfig(retry_on_http_429=False)), user_agent=UA
        )
        on = RemoteWriteClient(endpoint(server.url), user_agent=UA)
        try:
            assert (await off.send(b"x", protocol=1, attempt=0)).outcome == "fatal"
            assert (await on.send(b"x", protocol=1, attempt=0)).outcome == "recoverable"
        finally:
            await off.aclose()
            await on.aclose()
            await server.aclose()

    run(body)


def test_hanging_receiver_times_out_after_remote_timeout() -> None:
    async def body() -> None:
        server = await HTTPServer(lambda request: Response(204, delay=5)).start()
        client = RemoteWriteClient(endpoint(server.url, remote_timeout=0.3), user_agent=UA)
        try:
            result = await client.send(b"x", protocol=1, attempt=0)
        finally:
            await client.aclose()
            await server.aclose()
        assert result.outcome == "recoverable" and result.status is None
        assert "remote_timeout" in result.reason and "0.3s" in result.reason
        assert 0.25 <= result.duration < 2.0
        assert client.state.connected is False

    run(body)


def test_connection_refused_is_recoverable_and_shown_in_state() -> None:
    async def body() -> None:
        server = await HTTPServer().start()
        url = server.url
        await server.aclose()  # nothing listens there any more
        client = RemoteWriteClient(endpoint(url), user_agent=UA)
        try:
            result = await client.send(b"x", protocol=1, attempt=0)
        finally:
            await client.aclose()
        assert result.outcome == "recoverable" and result.status is None
        assert result.reason
        state = client.state
        assert not state.connected and state.last_error and state.last_error_time
        assert state.last_success_time is None

    run(body)


def test_redirects_followed_or_not() -> None:
    def handler(request: Request) -> Response:
        if request.target == "/old":
            return Response(307, headers=[("Location", "/new")])
        return Response(204)

    async def body() -> None:
        server = await HTTPServer(handler).start()
        follow = RemoteWriteClient(endpoint(server.url + "/old"), user_agent=UA)
        stay = RemoteWriteClient(
            endpoint(server.url + "/old", follow_redirects=False), user_agent=UA
        )
        try:
            followed = await follow.send(b"data", protocol=1, attempt=0)
            count = len(server.requests)
            refused = await stay.send(b"data", protocol=1, attempt=0)
        finally:
            await follow.aclose()
            await stay.aclose()
            await server.aclose()
        assert followed.outcome == "ok" and followed.status == 204
        assert [r.target for r in server.requests[:count]] == ["/old", "/new"]
        assert server.requests[1].body == b"data"
        assert refused.outcome == "fatal" and refused.status == 307
        assert "/new" in refused.reason and "follow_redirects" in refused.reason
        assert [r.target for r in server.requests[count:]] == ["/old"]

    run(body)


def test_state_tracks_success_then_error_and_redacts_url_password() -> None:
    statuses = iter([204, 503])

    async def body() -> None:
        server = await HTTPServer(lambda request: Response(next(statuses))).start()
        url = server.url.replace("http://", "http://bob:hunter2@") + "/write"
        client = RemoteWriteClient(endpoint(url), user_agent=UA)
        try:
            await client.send(b"x", protocol=1, attempt=0)
            ok_state = client.state
            await client.send(b"x", protocol=1, attempt=0)
            bad_state = client.state
        finally:
            await client.aclose()
            await server.aclose()
        assert ok_state.connected and ok_state.last_status == 204
        assert ok_state.protocol == "HTTP/1.1" and ok_state.last_success_time
        assert bad_state.last_status == 503 and "503" in bad_state.last_error
        assert bad_state.last_success_time == ok_state.last_success_time
        assert "hunter2" not in repr(bad_state)
        assert "bob:<secret>@127.0.0.1" in bad_state.url

    run(body)


def test_retry_after_parsing() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 5 ") == 5.0
    assert parse_retry_after("0") is None
    assert parse_retry_after("-3") is None
    assert parse_retry_after("1.5") is None
    assert parse_retry_after("") is None and parse_retry_after(None) is None
    assert parse_retry_after(email.utils.formatdate(now + 90.7, usegmt=True), now=now) == 90.0
    assert parse_retry_after(email.utils.formatdate(now - 5, usegmt=True), now=now) is None
    assert parse_retry_after("Wed, 99 Foo 2015 07:28:00 GMT", now=now) is None


def test_bad_settings_raise_config_errors() -> None:
    with pytest.raises(ConnectivityConfigError, match="url"):
        RemoteWriteClient(endpoint("ftp://example.com/"), user_agent=UA)
    with pytest.raises(ValueError, match="protocol"):
        client = RemoteWriteClient(endpoint("http://127.0.0.1:9/"), user_agent=UA)
        asyncio.run(client.send(b"", protocol=3, attempt=0))
