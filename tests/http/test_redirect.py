"""The redirect policy on its own (both transports follow it: see test_http1)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from rwconsole.http import redirect
from rwconsole.http.interface import Reply

pytestmark = pytest.mark.timeout(30)


def _post(url: str = "http://a.test/write", **headers: str) -> httpx.Request:
    request = httpx.Request("POST", url, headers=headers, content=b"body")
    request.read()
    return request


@pytest.mark.parametrize(
    ("status", "method", "expected"),
    [
        (301, "POST", "GET"),
        (301, "PUT", "PUT"),
        (302, "PUT", "GET"),
        (303, "PUT", "GET"),
        (303, "HEAD", "HEAD"),
        (307, "POST", "POST"),
        (308, "POST", "POST"),
    ],
)
def test_method_after_each_redirect_status(status: int, method: str, expected: str) -> None:
    request = httpx.Request(method, "http://a.test/x", content=b"body")
    request.read()
    following = redirect.next_request(request, status, "/y")
    assert (following.method, str(following.url)) == (expected, "http://a.test/y")
    if expected == method:
        assert following.content == b"body" and following.headers["Content-Length"] == "4"
    else:
        assert following.content == b"" and "Content-Length" not in following.headers


def test_authorization_kept_on_the_origin_and_on_an_https_upgrade_only() -> None:
    request = _post(Authorization="Bearer t", Cookie="c=1")
    same = redirect.next_request(request, 307, "/other")
    upgrade = redirect.next_request(request, 307, "https://a.test/write")
    other_host = redirect.next_request(request, 307, "http://b.test/write")
    other_port = redirect.next_request(request, 307, "http://a.test:8080/write")
    assert same.headers["Authorization"] == upgrade.headers["Authorization"] == "Bearer t"
    assert "Authorization" not in other_host.headers and "Authorization" not in other_port.headers
    assert other_host.headers["Host"] == "b.test" and other_port.headers["Host"] == "a.test:8080"
    assert all("Cookie" not in r.headers for r in (same, upgrade, other_host, other_port))


def test_location_only_for_redirect_statuses() -> None:
    headers = [(b"LOCATION", b"/next")]
    assert redirect.location(308, headers) == "/next"
    assert redirect.location(300, headers) is None and redirect.location(201, headers) is None
    assert redirect.location(302, []) is None
    with pytest.raises(httpx.RemoteProtocolError, match="Location"):
        redirect.next_request(_post(), 302, "http://a.test:x/")


def test_follow_stops_after_twenty_redirects_and_only_when_enabled() -> None:
    sent: list[str] = []

    async def send_once(request: httpx.Request) -> Reply:
        sent.append(request.url.path)
        return Reply(307, "", "HTTP/1.1", [(b"Location", b"/again")], b"")

    def answer(reply: Reply) -> tuple[int, list[tuple[bytes, bytes]]]:
        return reply.status, reply.headers

    async def body() -> None:
        reply = await redirect.follow(_post(), send_once, answer, enabled=False)
        assert reply.status == 307 and sent == ["/write"]
        with pytest.raises(httpx.TooManyRedirects):
            await redirect.follow(_post(), send_once, answer, enabled=True)

    asyncio.run(body())
    assert len(sent) == 1 + 21
