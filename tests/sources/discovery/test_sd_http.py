"""http_sd against a real HTTP server on loopback: format, headers, auth, failures."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest

from rwconsole.config.schema import BasicAuthConfig, HTTPSDConfig
from rwconsole.config.secrets import Secret
from rwconsole.http.server import HttpServer, Request, Response
from rwconsole.sources.discovery.http import HTTPDiscoverer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class SDServer:
    def __init__(self) -> None:
        self.status = 200
        self.content_type = "application/json"
        self.body = b"[]"
        self.requests: list[Request] = []
        self.server = HttpServer(self._handle)

    async def _handle(self, request: Request) -> Response:
        self.requests.append(request)
        return Response(self.status, self.body, {"Content-Type": self.content_type})

    def url(self, path: str = "/sd") -> str:
        return f"http://127.0.0.1:{self.server.port}{path}"


@pytest.fixture
async def server() -> AsyncIterator[SDServer]:
    s = SDServer()
    await s.server.start("127.0.0.1", 0)
    try:
        yield s
    finally:
        await s.server.stop()


async def test_groups_meta_url_and_request_headers(server: SDServer) -> None:
    server.body = json.dumps(
        [{"targets": ["a:1", "b:2"], "labels": {"dc": "x"}}, {"targets": ["c:3"]}]
    ).encode()
    config = HTTPSDConfig(
        url=server.url(),
        refresh_interval=60,
        basic_auth=BasicAuthConfig(username="u", password=Secret("pw")),
    )
    discoverer = HTTPDiscoverer(config)
    try:
        groups = await discoverer.refresh()
    finally:
        await discoverer.close()
    url = server.url()
    assert [(g.source, g.labels) for g in groups] == [
        (f"{url}:0", {"dc": "x", "__meta_url": url}),
        (f"{url}:1", {"__meta_url": url}),
    ]
    assert groups[0].targets == [{"__address__": "a:1"}, {"__address__": "b:2"}]
    request = server.requests[0]
    assert request.header("accept") == "application/json"
    assert request.header("x-prometheus-refresh-interval-seconds") == "60"
    assert request.header("authorization") == "Basic " + base64.b64encode(b"u:pw").decode()


async def test_failures_keep_last_good_groups_and_say_why(server: SDServer) -> None:
    server.body = b'[{"targets": ["a:1"]}]'
    discoverer = HTTPDiscoverer(HTTPSDConfig(url=server.url(), refresh_interval=60))
    updates: list[list[object]] = []
    try:
        await discoverer._refresh_once(updates.append)
        assert len(updates) == 1 and discoverer.error == ""
        server.status = 500
        await discoverer._refresh_once(updates.append)
        assert len(updates) == 1
        assert discoverer.error == f"{server.url()}: server returned HTTP status 500"
        server.status, server.content_type = 200, "text/plain"
        await discoverer._refresh_once(updates.append)
        assert "unsupported content type 'text/plain'" in discoverer.error
        server.content_type, server.body = "application/json; charset=utf-8", b'{"targets": []}'
        await discoverer._refresh_once(updates.append)
        assert "expected a list of target groups, got an object" in discoverer.error
        server.body = b"[]"
        await discoverer._refresh_once(updates.append)
        assert discoverer.error == ""
        assert [(g.source, g.targets) for g in updates[-1]] == [(f"{server.url()}:0", [])]
    finally:
        await discoverer.close()


async def test_password_in_url_is_not_shown(server: SDServer) -> None:
    server.body = b'[{"targets": ["a:1"]}]'
    url = f"http://user:hunter2@127.0.0.1:{server.server.port}/sd"
    discoverer = HTTPDiscoverer(HTTPSDConfig(url=url, refresh_interval=60))
    try:
        groups = await discoverer.refresh()
        server.status = 503
        await discoverer._refresh_once(lambda groups: None)
    finally:
        await discoverer.close()
    assert "hunter2" not in repr(groups) and "hunter2" not in discoverer.error
    assert (
        groups[0].labels["__meta_url"] == f"http://user:<secret>@127.0.0.1:{server.server.port}/sd"
    )
