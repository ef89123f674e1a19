"""Proxy selection for remote-write connections.

Owns Alloy's proxy options: ``proxy_url``, ``no_proxy`` (IPs, CIDRs and domain
names, each optionally with a port), ``proxy_from_environment``
(``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` in either case) and
``proxy_connect_header`` (headers sent to the proxy on ``CONNECT``). The
decision is made per request URL by ``RoutingTransport``, so redirects to
another host and ``no_proxy`` CIDRs work, which httpx's per-client proxy and
pattern mounts cannot express.

``no_proxy`` follows Go's ``httpproxy`` rules: ``*`` bypasses everything;
``example.com`` matches the domain and its subdomains, ``.example.com`` and
``*.example.com`` only subdomains; a port in the entry must match the port of
the URL. Unlike Go, loopback hosts are not bypassed implicitly: list them.
HTTP and HTTPS proxies are supported (HTTPS targets are tunnelled with
``CONNECT``); SOCKS proxies need the ``socksio`` package and are refused with
a clear error when it is absent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import ssl
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from rwconsole.config.secrets import redact_url
from rwconsole.remote.http1 import DEFAULT_PORTS, HTTP1Transport, HTTP2Negotiated
from rwconsole.remote.http_common import ConnectivityConfigError, opt, reveal

# Every shard may hold a connection; keep them alive between sends instead of
# httpx's default of 20 idle connections (Go keeps idle connections 90 s).
POOL_LIMITS = httpx.Limits(
    max_connections=None, max_keepalive_connections=1000, keepalive_expiry=90.0
)
# httpcore's pool does work proportional to connections x waiting requests on
# every request, so many concurrent shards are spread over several pools, each
# task (shard) always using the same one.
POOLS = 8


@dataclass(frozen=True, slots=True)
class _DomainRule:
    suffix: str  # always starts with "."
    match_bare: bool  # "example.com" also matches the bare domain
    port: int | None

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        return host.endswith(self.suffix) or (self.match_bare and host == self.suffix[1:])


@dataclass(frozen=True, slots=True)
class _IPRule:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    port: int | None

    def matches(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        return ip in self.network


@dataclass(frozen=True, slots=True)
class NoProxy:
    """A parsed ``no_proxy`` list."""

    bypass_all: bool = False
    domains: tuple[_DomainRule, ...] = ()
    ips: tuple[_IPRule, ...] = ()

    @classmethod
    def parse(cls, text: str, *, key: str = "no_proxy") -> NoProxy:
        domains: list[_DomainRule] = []
        ips: list[_IPRule] = []
        for raw in text.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry == "*":
                return cls(bypass_all=True)
            if "/" in entry:
                try:
                    ips.append(_IPRule(ipaddress.ip_network(entry, strict=False), None))
                except ValueError:
                    raise ConnectivityConfigError(f"{key}: {raw.strip()!r} is not a CIDR") from None
                continue
            host, port = _split_host_port(entry, key)
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                if host.startswith("*."):
                    host = host[1:]
                bare = not host.startswith(".")
                domains.append(_DomainRule(host if not bare else "." + host, bare, port))
            else:
                ips.append(_IPRule(ipaddress.ip_network(address), port))
        return cls(False, tuple(domains), tuple(ips))

    def bypasses(self, url: httpx.URL) -> bool:
        """True when requests to ``url`` must not use the proxy."""
        if self.bypass_all:
            return True
        host = url.host.lower().rstrip(".")
        port = url.port or DEFAULT_PORTS.get(url.scheme, 0)
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return any(rule.matches(host, port) for rule in self.domains)
        return any(rule.matches(address, port) for rule in self.ips)


def _split_host_port(entry: str, key: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6]:port or [v6]
        host, _, rest = entry[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, port_text = entry.split(":")
    else:  # a bare name or a bare IPv6 address
        host, port_text = entry, ""
    if not port_text:
        return host, None
    if not (port_text.isascii() and port_text.isdigit()):
        raise ConnectivityConfigError(f"{key}: {entry!r} has a bad port")
    return host, int(port_text)


@dataclass(frozen=True)
class ProxyPolicy:
    """Which proxy (if any) a request URL goes through."""

    http_proxy: str | None = None
    https_proxy: str | None = None
    no_proxy: NoProxy = field(default_factory=NoProxy)
    connect_headers: tuple[tuple[str, str], ...] = ()

    def proxy_for(self, url: httpx.URL) -> str | None:
        proxy = self.https_proxy if url.scheme == "https" else self.http_proxy
        if not proxy or self.no_proxy.bypasses(url):
            return None
        return proxy


def proxy_policy(
    block: object, *, key: str = "", environ: Mapping[str, str] | None = None
) -> ProxyPolicy:
    """The ``ProxyPolicy`` for an endpoint (or an ``oauth2`` block) and the environment."""
    prefix = f"{key}." if key else ""
    headers = _connect_headers(opt(block, "proxy_connect_header", {}) or {})
    if opt(block, "proxy_from_environment", False):
        env = os.environ if environ is None else environ
        http_proxy = _normalise_proxy(_getenv(env, "HTTP_PROXY"), f"{prefix}proxy_from_environment")
        https_proxy = _normalise_proxy(
            _getenv(env, "HTTPS_PROXY"), f"{prefix}proxy_from_environment"
        )
        no_proxy = NoProxy.parse(_getenv(env, "NO_PROXY"), key="NO_PROXY")
        return ProxyPolicy(http_proxy, https_proxy, no_proxy, headers)
    url = opt(block, "proxy_url", "")
    if not url:
        return ProxyPolicy(connect_headers=headers)
    proxy = _normalise_proxy(reveal(url) or "", f"{prefix}proxy_url")
    no_proxy = NoProxy.parse(opt(block, "no_proxy", "") or "", key=f"{prefix}no_proxy")
    return ProxyPolicy(proxy, proxy, no_proxy, headers)


def _getenv(env: Mapping[str, str], name: str) -> str:
    return env.get(name) or env.get(name.lower()) or ""


def _normalise_proxy(url: str, key: str) -> str | None:
    url = url.strip()
    if not url:
        return None
    if "://" not in url:
        url = "http://" + url  # Go accepts "host:port" in the environment
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("socks5", "socks5h"):
        try:
            import socksio  # noqa: F401
        except ImportError:
            raise ConnectivityConfigError(
                f"{key}: SOCKS proxies are not supported here ({redact_url(url)!r}); "
                "install the 'socksio' package or use an HTTP(S) proxy"
            ) from None
    elif scheme not in ("http", "https"):
        raise ConnectivityConfigError(
            f"{key}: unsupported proxy scheme {scheme!r} in {redact_url(url)!r} "
            "(use http://, https:// or socks5://)"
        )
    return url


def _connect_headers(raw: Mapping[str, Sequence[object]]) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for name, values in raw.items():
        items = [values] if isinstance(values, str) or hasattr(values, "reveal") else values
        for value in items:
            pairs.append((name, reveal(value) or ""))  # type: ignore[arg-type]
    return tuple(pairs)


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
        self._verify = verify
        self._http2 = http2
        self._pools: dict[tuple[str | None, int], httpx.AsyncHTTPTransport] = {}
        self._task_pool: weakref.WeakKeyDictionary[asyncio.Task[object], int] = (
            weakref.WeakKeyDictionary()
        )
        self._next_pool = 0
        self._lean: HTTP1Transport | None = None
        if lean_http1:
            if not http2:
                verify.set_alpn_protocols(["http/1.1"])
            self._lean = HTTP1Transport(verify)
        # (scheme, host, port) -> whether requests there go through the lean transport
        self._lean_origins: dict[tuple[str, str, int | None], bool] = {}

    def _transport_for(self, url: httpx.URL) -> httpx.AsyncHTTPTransport:
        proxy_url = self._policy.proxy_for(url)
        key = (proxy_url, self._pool_index())
        transport = self._pools.get(key)
        if transport is None:
            proxy = None
            if proxy_url is not None:
                proxy = httpx.Proxy(proxy_url, headers=list(self._policy.connect_headers) or None)
            transport = httpx.AsyncHTTPTransport(
                verify=self._verify,
                http2=self._http2,
                trust_env=False,
                proxy=proxy,
                limits=POOL_LIMITS,
            )
            self._pools[key] = transport
        return transport

    def _pool_index(self) -> int:
        task = asyncio.current_task()
        if task is None:
            return 0
        index = self._task_pool.get(task)
        if index is None:
            index = self._task_pool[task] = self._next_pool
            self._next_pool = (self._next_pool + 1) % POOLS
        return index

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        lean = self._lean
        if lean is None:
            return await self._transport_for(request.url).handle_async_request(request)
        url = request.url
        origin = (url.scheme, url.host, url.port)
        use_lean = self._lean_origins.get(origin)
        if use_lean is None:
            use_lean = self._lean_origins[origin] = self._policy.proxy_for(url) is None and (
                url.scheme == "http" or not self._http2
            )
        if use_lean:
            try:
                return await lean.handle_async_request(request)
            except HTTP2Negotiated:
                self._lean_origins[origin] = False
        response = await self._transport_for(url).handle_async_request(request)
        if (
            url.scheme == "https"
            and response.http_version == "HTTP/1.1"
            and self._policy.proxy_for(url) is None
        ):
            self._lean_origins[origin] = True  # offered h2, the server chose HTTP/1.1
        return response

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for transport in pools:
            await transport.aclose()
        if self._lean is not None:
            await self._lean.aclose()
