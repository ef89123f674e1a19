"""Proxies: CONNECT tunnels with connect headers, forwarding, no_proxy rules, environment."""

from __future__ import annotations

import httpx
import pytest
from http_helpers import (
    ForwardProxy,
    HTTPServer,
    Pki,
    endpoint,
    make_pki,
    run,
    secret,
    server_ssl_context,
)

from rwconsole.config.schema import TLSConfig
from rwconsole.http.errors import ConnectivityConfigError
from rwconsole.http.proxy import NoProxy, proxy_policy
from rwconsole.remote.client import RemoteWriteClient, SendResult

pytestmark = pytest.mark.timeout(30)
UA = "rwconsole-test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def _send(config: object) -> tuple[SendResult, RemoteWriteClient]:
    client = RemoteWriteClient(config, user_agent=UA)
    try:
        return await client.send(b"through", protocol=1, attempt=0), client
    finally:
        await client.aclose()


def test_https_endpoint_tunnelled_with_connect_headers(pki: Pki) -> None:
    async def body() -> None:
        server = await HTTPServer(ssl_ctx=server_ssl_context(pki)).start()
        proxy = await ForwardProxy().start()
        try:
            config = endpoint(
                server.url + "/write",
                tls_config=TLSConfig(ca_file=pki.ca_file),
                proxy_url=f"http://carol:pr0xyPass@127.0.0.1:{proxy.port}",
                proxy_connect_header={"X-Proxy-Token": [secret("tok-1"), secret("tok-2")]},
            )
            result, client = await _send(config)
        finally:
            await proxy.aclose()
            await server.aclose()
        assert result.outcome == "ok"
        (record,) = proxy.records
        assert record.request_line == f"CONNECT 127.0.0.1:{server.port} HTTP/1.1"
        values = [v for k, v in record.headers if k.lower() == "x-proxy-token"]
        assert values == ["tok-1", "tok-2"]
        assert record.header("Proxy-Authorization") == "Basic Y2Fyb2w6cHIweHlQYXNz"
        assert server.requests[0].body == b"through"
        # the tunnelled request itself carries no proxy headers
        assert server.requests[0].header("X-Proxy-Token") is None
        assert client.state.proxied and "pr0xyPass" not in repr(client.state)

    run(body)


def test_http_endpoint_forwarded_unless_no_proxy_matches() -> None:
    async def body() -> None:
        server = await HTTPServer().start()
        proxy = await ForwardProxy().start()
        proxy_url = f"http://127.0.0.1:{proxy.port}"
        try:
            forwarded, _ = await _send(
                endpoint(server.url + "/a", proxy_url=proxy_url, no_proxy="127.0.0.1:1,10.0.0.0/8")
            )
            after_forward = len(proxy.records)
            bypass_cidr, _ = await _send(
                endpoint(server.url + "/b", proxy_url=proxy_url, no_proxy="10.0.0.0/8,127.0.0.0/8")
            )
            bypass_ip_port, _ = await _send(
                endpoint(
                    server.url + "/c", proxy_url=proxy_url, no_proxy=f"127.0.0.1:{server.port}"
                )
            )
            local = f"http://localhost:{server.port}/d"
            bypass_domain, _ = await _send(
                endpoint(local, proxy_url=proxy_url, no_proxy="example.com, LOCALHOST")
            )
        finally:
            await proxy.aclose()
            await server.aclose()
        assert forwarded.outcome == "ok"
        assert after_forward == 1
        assert proxy.records[0].request_line == f"POST {server.url}/a HTTP/1.1"
        assert [bypass_cidr.outcome, bypass_ip_port.outcome, bypass_domain.outcome] == ["ok"] * 3
        assert len(proxy.records) == 1  # the bypassed ones went directly
        assert [r.target for r in server.requests] == ["/a", "/b", "/c", "/d"]

    run(body)


def test_proxy_from_environment(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    async def body() -> None:
        server = await HTTPServer(ssl_ctx=server_ssl_context(pki)).start()
        plain = await HTTPServer().start()
        proxy = await ForwardProxy().start()
        monkeypatch.setenv("https_proxy", f"127.0.0.1:{proxy.port}")  # lower case, no scheme
        monkeypatch.delenv("HTTPS_PROXY", raising=False)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        monkeypatch.delenv("http_proxy", raising=False)
        monkeypatch.setenv("NO_PROXY", "")
        tls = TLSConfig(ca_file=pki.ca_file)
        try:
            via_env, _ = await _send(
                endpoint(server.url, tls_config=tls, proxy_from_environment=True)
            )
            # http:// URLs use HTTP_PROXY, which is unset: direct
            direct, _ = await _send(endpoint(plain.url, proxy_from_environment=True))
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            excluded, _ = await _send(
                endpoint(server.url, tls_config=tls, proxy_from_environment=True)
            )
        finally:
            await proxy.aclose()
            await plain.aclose()
            await server.aclose()
        assert [via_env.outcome, direct.outcome, excluded.outcome] == ["ok"] * 3
        assert [r.request_line for r in proxy.records] == [
            f"CONNECT 127.0.0.1:{server.port} HTTP/1.1"
        ]

    run(body)


def test_unreachable_proxy_is_a_recoverable_error() -> None:
    async def body() -> None:
        proxy = await ForwardProxy().start()
        port = proxy.port
        await proxy.aclose()
        result, client = await _send(
            endpoint("http://127.0.0.1:9/", proxy_url=f"http://u:sekrit@127.0.0.1:{port}")
        )
        assert result.outcome == "recoverable" and result.status is None
        assert "sekrit" not in result.reason and "sekrit" not in repr(client.state)

    run(body)


def test_no_proxy_rules() -> None:
    rules = NoProxy.parse("example.com, .sub.test, *.wild.test, 10.1.0.0/16, 192.0.2.7:8443, [::1]")

    def bypass(url: str) -> bool:
        return rules.bypasses(httpx.URL(url))

    assert bypass("http://example.com/") and bypass("https://api.example.com:9090/")
    assert not bypass("http://notexample.com/")
    assert bypass("http://a.sub.test/") and not bypass("http://sub.test/")
    assert bypass("http://x.wild.test/") and not bypass("http://wild.test/")
    assert bypass("http://10.1.200.3/") and not bypass("http://10.2.0.1/")
    assert bypass("https://192.0.2.7:8443/") and not bypass("https://192.0.2.7/")
    assert bypass("http://[::1]:9090/")
    assert NoProxy.parse("*").bypasses(httpx.URL("http://anything/"))
    assert not NoProxy.parse("").bypasses(httpx.URL("http://anything/"))
    with pytest.raises(ConnectivityConfigError, match="no_proxy"):
        NoProxy.parse("10.0.0.0/99")


def test_unsupported_proxy_schemes_are_refused_clearly() -> None:
    with pytest.raises(ConnectivityConfigError, match=r"proxy_url.*unsupported proxy scheme"):
        proxy_policy(endpoint("http://x/", proxy_url="ftp://127.0.0.1:21"))
    try:
        import socksio  # noqa: F401
    except ImportError:
        with pytest.raises(ConnectivityConfigError, match=r"SOCKS.*socksio"):
            proxy_policy(endpoint("http://x/", proxy_url="socks5://u:p@127.0.0.1:1080"))
