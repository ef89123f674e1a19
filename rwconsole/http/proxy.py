"""Proxy selection for outgoing HTTP connections.

Owns Alloy's proxy options: ``proxy_url``, ``no_proxy`` (IPs, CIDRs and domain
names, each optionally with a port), ``proxy_from_environment``
(``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` in either case) and
``proxy_connect_header`` (headers sent to the proxy on ``CONNECT``). The
decision is made per request URL by ``transport.RoutingTransport``, so redirects to
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

import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from rwconsole.config.secrets import redact_url
from rwconsole.http.errors import ConnectivityConfigError
from rwconsole.http.http1 import DEFAULT_PORTS
from rwconsole.http.options import opt, reveal


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
