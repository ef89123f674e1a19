"""TLS against loopback receivers with a CA made in the test: trust, mTLS, versions, SNI, h2."""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path

import pytest
from http_helpers import (
    H2Server,
    HTTPServer,
    Pki,
    ThreadedTLSReceiver,
    endpoint,
    make_pki,
    run,
    secret,
    server_ssl_context,
)

from rwconsole.config.schema import TLSConfig
from rwconsole.http.errors import ConnectivityConfigError
from rwconsole.http.tls import build_ssl_context
from rwconsole.remote.client import RemoteWriteClient, SendResult

pytestmark = pytest.mark.timeout(30)
UA = "rwconsole-test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def _send_once(server_ctx: ssl.SSLContext, tls: TLSConfig, **kwargs: object) -> SendResult:
    server = await HTTPServer(ssl_ctx=server_ctx).start()
    url = str(kwargs.pop("url", server.url)).replace("PORT", str(server.port))
    client = RemoteWriteClient(endpoint(url, tls_config=tls, **kwargs), user_agent=UA)
    try:
        return await client.send(b"x", protocol=1, attempt=0)
    finally:
        await client.aclose()
        await server.aclose()


def test_trusted_ca_from_file_and_from_pem(pki: Pki) -> None:
    async def body() -> None:
        ctx = server_ssl_context(pki)
        by_file = await _send_once(ctx, TLSConfig(ca_file=pki.ca_file))
        by_pem = await _send_once(ctx, TLSConfig(ca_pem=pki.ca_pem))
        by_name = await _send_once(
            ctx, TLSConfig(ca_file=pki.ca_file), url="https://localhost:PORT/"
        )
        assert by_file.outcome == by_pem.outcome == by_name.outcome == "ok"

    run(body)


def test_unknown_ca_is_refused_unless_insecure_skip_verify(pki: Pki) -> None:
    async def body() -> None:
        ctx = server_ssl_context(pki)
        refused = await _send_once(ctx, TLSConfig())
        skipped = await _send_once(ctx, TLSConfig(insecure_skip_verify=True))
        assert refused.outcome == "recoverable"
        assert "certificate verification failed" in refused.reason
        assert skipped.outcome == "ok"

    run(body)


def test_mutual_tls_required_and_refused_without_client_cert(pki: Pki, tmp_path: Path) -> None:
    server = ThreadedTLSReceiver(server_ssl_context(pki, require_client_cert=True))

    async def send(tls: TLSConfig) -> SendResult:
        client = RemoteWriteClient(endpoint(server.url, tls_config=tls), user_agent=UA)
        try:
            return await client.send(b"x", protocol=1, attempt=0)
        finally:
            await client.aclose()

    async def body() -> None:
        without = await send(TLSConfig(ca_file=pki.ca_file))
        with_files = await send(
            TLSConfig(
                ca_file=pki.ca_file, cert_file=pki.client_cert_file, key_file=pki.client_key_file
            )
        )
        with_pem = await send(
            TLSConfig(
                ca_pem=pki.ca_pem, cert_pem=pki.client_cert_pem, key_pem=secret(pki.client_key_pem)
            )
        )
        assert without.outcome == "recoverable"
        assert "client certificate" in without.reason and "tls_config.cert_" in without.reason
        assert with_files.outcome == "ok"
        assert with_pem.outcome == "ok"
        assert len(server.requests) == 2

    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    old = tempfile.tempdir
    tempfile.tempdir = str(temp_dir)
    try:
        run(body)
    finally:
        tempfile.tempdir = old
        server.close()
    # PEM text went through a private temp file that is gone again
    assert os.listdir(temp_dir) == []


def test_min_version_enforced_with_a_clear_reason(pki: Pki) -> None:
    server = ThreadedTLSReceiver(server_ssl_context(pki, max_version=ssl.TLSVersion.TLSv1_2))

    async def send(minimum: str) -> SendResult:
        tls = TLSConfig(ca_file=pki.ca_file, min_version=minimum)
        client = RemoteWriteClient(endpoint(server.url, tls_config=tls), user_agent=UA)
        try:
            return await client.send(b"x", protocol=1, attempt=0)
        finally:
            await client.aclose()

    async def body() -> None:
        strict = await send("TLS13")
        lenient = await send("TLS12")
        assert strict.outcome == "recoverable"
        assert "TLS version negotiation failed" in strict.reason and "TLS13" in strict.reason
        assert lenient.outcome == "ok"

    try:
        run(body)
    finally:
        server.close()


def test_server_name_sets_sni_and_the_verified_name(pki: Pki) -> None:
    async def body() -> None:
        seen: list[str | None] = []
        ctx = server_ssl_context(pki, sni_seen=seen)
        good = await _send_once(ctx, TLSConfig(ca_file=pki.ca_file, server_name="receiver.test"))
        bad = await _send_once(ctx, TLSConfig(ca_file=pki.ca_file, server_name="other.test"))
        assert good.outcome == "ok"
        assert bad.outcome == "recoverable" and "verification failed" in bad.reason
        assert seen[:2] == ["receiver.test", "other.test"]

    run(body)


def test_http2_is_negotiated_with_an_h2_server(pki: Pki) -> None:
    async def body() -> None:
        server = await H2Server(pki).start()
        client = RemoteWriteClient(
            endpoint(server.url + "/push", tls_config=TLSConfig(ca_file=pki.ca_file)),
            user_agent=UA,
        )
        try:
            results = [await client.send(b"body", protocol=2, attempt=0, items=5) for _ in range(2)]
        finally:
            await client.aclose()
            await server.aclose()
        assert [r.outcome for r in results] == ["ok", "ok"]
        assert results[0].written == (5, 0, 0)
        assert client.state.protocol == "HTTP/2"
        assert server.alpn == ["h2"]  # both requests on one connection
        request = server.requests[0]
        assert request.headers[":method"] == "POST" and request.headers[":path"] == "/push"
        assert request.headers["content-encoding"] == "snappy"
        assert request.headers["x-prometheus-remote-write-version"] == "2.0.0"
        assert request.body == b"body"

    run(body)


def test_http1_when_http2_disabled(pki: Pki) -> None:
    async def body() -> None:
        server = await HTTPServer(ssl_ctx=server_ssl_context(pki, alpn=["h2", "http/1.1"])).start()
        client = RemoteWriteClient(
            endpoint(server.url, enable_http2=False, tls_config=TLSConfig(ca_file=pki.ca_file)),
            user_agent=UA,
        )
        try:
            result = await client.send(b"x", protocol=1, attempt=0)
        finally:
            await client.aclose()
            await server.aclose()
        assert result.outcome == "ok" and client.state.protocol == "HTTP/1.1"

    run(body)


def test_bad_tls_settings_name_the_key(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConnectivityConfigError, match=r"tls_config\.ca_file.*does not exist"):
        build_ssl_context(TLSConfig(ca_file=str(tmp_path / "missing.pem")))
    with pytest.raises(ConnectivityConfigError, match=r"tls_config\.ca_pem"):
        build_ssl_context(TLSConfig(ca_pem="not a pem"))
    with pytest.raises(ConnectivityConfigError, match="key_pem or key_file"):
        build_ssl_context(TLSConfig(cert_file=pki.client_cert_file))
    with pytest.raises(ConnectivityConfigError, match=r"tls_config\.min_version"):
        build_ssl_context(TLSConfig(min_version="TLS99"))
    wrong_key = TLSConfig(cert_pem=pki.client_cert_pem, key_file=pki.server_key_file)
    with pytest.raises(ConnectivityConfigError, match="cert_pem/key_file") as info:
        build_ssl_context(wrong_key)
    assert "PRIVATE KEY" not in str(info.value)
    default = build_ssl_context(None)
    assert default.verify_mode == ssl.CERT_REQUIRED and default.check_hostname
    assert default.minimum_version == ssl.TLSVersion.TLSv1_2
