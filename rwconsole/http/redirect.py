"""The one redirect policy of every outgoing HTTP request.

Owns when a response is followed and what the next request is, after
RFC 9110 §15.4: a 301, 302, 303, 307 or 308 with a ``Location`` is followed;
303 turns any method but HEAD into GET, and so do 302 and (for POST) 301, as
clients have long done; 307 and 308 repeat the method and the body. A
request turned into GET loses its body and the headers framing it.
``Authorization`` is not sent to another origin (scheme, host, port), except
when the same host is upgraded from http to https; cookies are not carried.
Both transports and httpx clients leave redirects to ``follow``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from rwconsole.http.http1 import DEFAULT_PORTS

MAX_REDIRECTS = 20
_REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))
_BODY_HEADERS = ("Content-Length", "Transfer-Encoding")

Answer = TypeVar("Answer")


async def follow(
    request: httpx.Request,
    send_once: Callable[[httpx.Request], Awaitable[Answer]],
    status_and_headers: Callable[[Answer], tuple[int, list[tuple[bytes, bytes]]]],
    *,
    enabled: bool,
    answered: Answer | None = None,
) -> Answer:
    """The final answer to ``request``, redirects followed (at most 20) when ``enabled``.

    ``send_once`` sends one request without following redirects; an answer it
    returns is expected to have been read whole, so nothing needs closing.
    ``answered`` is the answer to ``request`` when it went out already.
    """
    answer = answered
    for _ in range(MAX_REDIRECTS + 1):
        if answer is None:
            answer = await send_once(request)
        if not enabled:
            return answer
        status, headers = status_and_headers(answer)
        target = location(status, headers)
        if target is None:
            return answer
        request = next_request(request, status, target)
        answer = None
    raise httpx.TooManyRedirects("Exceeded maximum allowed redirects.", request=request)


def location(status: int, headers: list[tuple[bytes, bytes]]) -> str | None:
    """The ``Location`` of a redirect response, or None for any other response."""
    if status not in _REDIRECT_STATUSES:
        return None
    for name, value in headers:
        if name.lower() == b"location":
            return value.decode("latin-1")
    return None


def next_request(request: httpx.Request, status: int, target: str) -> httpx.Request:
    """The request that follows a ``status`` redirect of ``request`` to ``target``."""
    method = request.method
    if method != "HEAD" and (
        status == 303 or status == 302 or (status == 301 and method == "POST")
    ):
        method = "GET"
    url = _resolve(request, target)
    headers = httpx.Headers(request.headers)
    headers.pop("Cookie", None)
    if _origin(url) != _origin(request.url):
        upgrade = (request.url.scheme, url.scheme) == ("http", "https") and (
            request.url.host == url.host
        )
        if not upgrade:
            headers.pop("Authorization", None)
        headers["Host"] = url.netloc.decode("ascii")
    content = request.content
    if method != request.method:
        content = b""
        for name in _BODY_HEADERS:
            headers.pop(name, None)
    return httpx.Request(
        method, url, headers=headers, content=content, extensions=request.extensions
    )


def _resolve(request: httpx.Request, target: str) -> httpx.URL:
    """``target`` as an absolute URL, relative to the request's; its fragment kept."""
    try:
        url = httpx.URL(target)
    except httpx.InvalidURL as exc:
        raise httpx.RemoteProtocolError(
            f"invalid URL in the Location header: {exc}", request=request
        ) from None
    if url.scheme and not url.host:  # "http:/path": an absolute form without a host
        url = url.copy_with(host=request.url.host)
    if url.is_relative_url:
        url = request.url.join(url)
    if request.url.fragment and not url.fragment:
        url = url.copy_with(fragment=request.url.fragment)
    return url


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme)
