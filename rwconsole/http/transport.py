"""The client transports, the factory that builds them, and sending with redirects.

Two implementations of ``interface.Transport``: ``http1.HTTP1Transport`` (lean
keep-alive HTTP/1.1 on direct connections) and ``HttpxTransport`` (httpx's
pools: proxies, CONNECT tunnels, HTTP/2). ``RoutingTransport`` picks one per
request URL: the lean one for direct origins that speak HTTP/1.1, httpx's for
proxied ones and for HTTP/2. ``build_transport`` makes one from a settings
block (``tls_config``, the proxy options); ``send`` follows redirects with the
one policy of ``redirect``. Both are also ``httpx.AsyncBaseTransport`` for
httpx clients (token requests).
"""

from __future__ import annotations

import asyncio
import ssl
import weakref

import httpx

from rwconsole.http import redirect
from rwconsole.http.http1 import HTTP1Transport, HTTP2Negotiated
from rwconsole.http.interface import Reply, Transport, read_up_to
from rwconsole.http.options import opt
from rwconsole.http.proxy import ProxyPolicy, proxy_policy
from rwconsole.http.tls import release, reloading_ssl_context

# Every shard may hold a connection; keep them alive between sends instead of
# httpx's default of 20 idle connections (Go keeps idle connections 90 s).
POOL_LIMITS = httpx.Limits(
    max_connections=None, max_keepalive_connections=1000, keepalive_expiry=90.0
)
# httpcore's pool does work proportional to connections x waiting requests on
# every request, so many concurrent shards are spread over several pools, each
# task (shard) always using the same one.
POOLS = 8

_Origin = tuple[str, str, int | None]


async def send(
    transport: Transport,
    request: httpx.Request,
    *,
    follow_redirects: bool,
    max_body: int | None,
    answered: Reply | None = None,
) -> Reply:
    """``request``'s final reply, redirects followed when asked; ``answered`` is the
    reply to ``request`` when it went out already."""

    async def exchange(request: httpx.Request) -> Reply:
        return await transport.exchange(request, max_body=max_body)

    return await redirect.follow(
        request, exchange, _status_and_headers, enabled=follow_redirects, answered=answered
    )


def _status_and_headers(reply: Reply) -> tuple[int, list[tuple[bytes, bytes]]]:
    return reply.status, reply.headers


def build_transport(
    block: object, *, http2: bool, lean_http1: bool = True, key: str = ""
) -> RoutingTransport:
    """The transport for a settings block's ``tls_config`` and proxy options.

    ``key`` prefixes the setting names in errors (``oauth2``); raises
    ``ConnectivityConfigError`` for settings that cannot work. Without
    ``lean_http1`` every request goes through httpx's pools.
    """
    policy = proxy_policy(block, key=key)
    tls_key = f"{key}.tls_config" if key else "tls_config"
    # New connections (of either transport) use rotated CA, certificate and key files.
    verify = reloading_ssl_context(opt(block, "tls_config"), key=tls_key)
    return RoutingTransport(policy, verify=verify, http2=http2, lean_http1=lean_http1)


class HttpxTransport(httpx.AsyncBaseTransport):
    """httpx's connection pools, one set per proxy, chosen by request URL."""

    def __init__(self, policy: ProxyPolicy, *, verify: ssl.SSLContext, http2: bool) -> None:
        self._policy = policy
        self._verify = verify
        self._http2 = http2
        self._pools: dict[tuple[str | None, int], httpx.AsyncHTTPTransport] = {}
        self._task_pool: weakref.WeakKeyDictionary[asyncio.Task[object], int] = (
            weakref.WeakKeyDictionary()
        )
        self._next_pool = 0

    async def exchange(self, request: httpx.Request, *, max_body: int | None) -> Reply:
        response = await self.handle_async_request(request)
        try:
            body = await read_up_to(response.aiter_raw(), max_body)
        finally:
            await response.aclose()
        return Reply(
            response.status_code,
            response.reason_phrase,
            response.http_version,
            response.headers.raw,
            body,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._pool_for(request.url).handle_async_request(request)

    def _pool_for(self, url: httpx.URL) -> httpx.AsyncHTTPTransport:
        proxy_url = self._policy.proxy_for(url)
        key = (proxy_url, self._pool_index())
        pool = self._pools.get(key)
        if pool is None:
            proxy = None
            if proxy_url is not None:
                proxy = httpx.Proxy(proxy_url, headers=list(self._policy.connect_headers) or None)
            pool = httpx.AsyncHTTPTransport(
                verify=self._verify,
                http2=self._http2,
                trust_env=False,
                proxy=proxy,
                limits=POOL_LIMITS,
            )
            self._pools[key] = pool
        return pool

    def _pool_index(self) -> int:
        task = asyncio.current_task()
        if task is None:
            return 0
        index = self._task_pool.get(task)
        if index is None:
            index = self._task_pool[task] = self._next_pool
            self._next_pool = (self._next_pool + 1) % POOLS
        return index

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


class RoutingTransport(httpx.AsyncBaseTransport):
    """Sends each request directly or through the proxy its URL calls for.

    With ``lean_http1``, direct requests that will speak HTTP/1.1 go through
    ``HTTP1Transport`` instead of httpx's pools: every ``http`` URL, and
    ``https`` URLs when ``http2`` is off or when the server has already
    answered over HTTP/1.1 although HTTP/2 was offered. The first request to
    an ``https`` origin with ``http2`` on always goes through httpx, so ALPN
    picks the protocol; should such a server later choose HTTP/2 on a lean
    connection, the origin goes back to httpx.
    """

    def __init__(
        self, policy: ProxyPolicy, *, verify: ssl.SSLContext, http2: bool, lean_http1: bool = False
    ) -> None:
        self._policy = policy
        self._http2 = http2
        self._verify = verify
        self._httpx = HttpxTransport(policy, verify=verify, http2=http2)
        self._lean: HTTP1Transport | None = None
        if lean_http1:
            if not http2:
                verify.set_alpn_protocols(["http/1.1"])
            self._lean = HTTP1Transport(verify)
        # (scheme, host, port) -> whether requests there go through the lean transport
        self._lean_origins: dict[_Origin, bool] = {}

    def proxied(self, url: httpx.URL) -> bool:
        """True when requests to ``url`` go through a proxy."""
        return self._policy.proxy_for(url) is not None

    async def exchange(self, request: httpx.Request, *, max_body: int | None) -> Reply:
        url = request.url
        origin = (url.scheme, url.host, url.port)
        lean = self._lean_for(url, origin)
        if lean is not None:
            try:
                return await lean.exchange(request, max_body=max_body)
            except HTTP2Negotiated:
                self.chose_http2(url)
        reply = await self._httpx.exchange(request, max_body=max_body)
        self._learn(url, origin, reply.http_version)
        return reply

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin = (url.scheme, url.host, url.port)
        lean = self._lean_for(url, origin)
        if lean is not None:
            try:
                return await lean.handle_async_request(request)
            except HTTP2Negotiated:
                self.chose_http2(url)
        response = await self._httpx.handle_async_request(request)
        self._learn(url, origin, response.http_version)
        return response

    def lean_transport(self, url: httpx.URL) -> HTTP1Transport | None:
        """The lean transport when requests to ``url`` go through it now, else None."""
        return self._lean_for(url, (url.scheme, url.host, url.port))

    def chose_http2(self, url: httpx.URL) -> None:
        """The server at ``url`` chose HTTP/2 on a lean connection (``HTTP2Negotiated``):
        requests there go through httpx from now on."""
        self._lean_origins[(url.scheme, url.host, url.port)] = False

    def _lean_for(self, url: httpx.URL, origin: _Origin) -> HTTP1Transport | None:
        """The lean transport when requests to ``origin`` go through it."""
        lean = self._lean
        if lean is None:
            return None
        use_lean = self._lean_origins.get(origin)
        if use_lean is None:
            use_lean = self._lean_origins[origin] = not self.proxied(url) and (
                url.scheme == "http" or not self._http2
            )
        return lean if use_lean else None

    def _learn(self, url: httpx.URL, origin: _Origin, http_version: str) -> None:
        if (
            self._lean is not None
            and url.scheme == "https"
            and http_version == "HTTP/1.1"
            and not self.proxied(url)
        ):
            self._lean_origins[origin] = True  # offered h2, the server chose HTTP/1.1

    async def aclose(self) -> None:
        release(self._verify)
        await self._httpx.aclose()
        if self._lean is not None:
            await self._lean.aclose()
