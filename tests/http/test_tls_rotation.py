"""Rotated CA, certificate and key files reach new connections without a restart.

Real TLS on loopback with two CAs made in the test (the one in use, the one
rotated to). Files are replaced the way renewal tools do it (a new file renamed
over the old one, or a symlinked directory switched), or caught half-written.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
from http_helpers import (
    Pki,
    ThreadedTLSReceiver,
    cert_serial,
    endpoint,
    peer_serial,
    point_link,
    replace_file,
    run,
    server_file_versions,
)

from rwconsole.config.schema import ReceiverTLSConfig, TLSConfig
from rwconsole.http import local, tls
from rwconsole.http.server import HttpServer, Request, Response
from rwconsole.metrics import Counter, Family
from rwconsole.remote.client import RemoteWriteClient

pytestmark = pytest.mark.timeout(60)
UA = "rwconsole-test"


def count(family: Family, path: Path) -> float:
    child = family.children.get((str(path),))
    assert child is None or isinstance(child, Counter)
    return 0.0 if child is None else child.value


def ca_serials(context: ssl.SSLContext) -> list[int]:
    return [int(str(ca["serialNumber"]), 16) for ca in context.get_ca_certs()]


def test_files_are_looked_at_once_per_interval_and_read_only_when_they_look_changed(
    pki_pair: tuple[Pki, Pki], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = pki_pair
    ca = tmp_path / "ca.pem"
    ca.write_text(old.ca_pem)
    now = [100.0]
    stats: list[str] = []
    reads: list[str] = []
    real_stat, real_digest = tls._stat, tls._digest
    monkeypatch.setattr(tls, "_stat", lambda path: stats.append(path) or real_stat(path))
    monkeypatch.setattr(tls, "_digest", lambda path: reads.append(path) or real_digest(path))
    config = TLSConfig(ca_file=str(ca))
    files = tls.TLSFiles(lambda: tls.build_ssl_context(config), [str(ca)], clock=lambda: now[0])
    first = files.current()
    assert ca_serials(first) == [cert_serial(old.ca_pem)]
    stats.clear()
    reads.clear()

    for _ in range(100):
        assert files.current() is first
    replace_file(ca, new.ca_pem)
    now[0] += tls.CHECK_INTERVAL - 0.001
    assert files.current() is first
    assert stats == [] and reads == []  # nothing looked at within the interval

    now[0] += 0.001
    second = files.current()
    assert second is not first
    assert ca_serials(second) == [cert_serial(new.ca_pem)]
    assert (len(stats), len(reads)) == (1, 1)

    # The same content written again (another inode and mtime): read, not rebuilt.
    replace_file(ca, new.ca_pem)
    now[0] += tls.CHECK_INTERVAL
    assert files.current() is second
    assert (len(stats), len(reads)) == (2, 2)
    # Untouched: one stat, no read.
    now[0] += tls.CHECK_INTERVAL
    assert files.current() is second
    assert (len(stats), len(reads)) == (3, 2)


def test_settings_without_files_give_a_plain_context() -> None:
    context = tls.reloading_ssl_context(TLSConfig(insecure_skip_verify=True))
    assert type(context) is ssl.SSLContext
    assert context.verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize("lean", [True, False], ids=["lean-http1", "httpx"])
def test_client_certificate_rotates_and_a_half_written_key_keeps_the_previous_one(
    pki_pair: tuple[Pki, Pki],
    tmp_path: Path,
    look_every_time: None,
    caplog: pytest.LogCaptureFixture,
    lean: bool,
) -> None:
    old, new = pki_pair
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(old.server_cert_file, old.server_key_file)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=old.ca_file)
    server_ctx.load_verify_locations(cafile=new.ca_file)  # the server trusts both
    server = ThreadedTLSReceiver(server_ctx, close_connections=True)
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_text(old.client_cert_pem)
    key.write_text(old.client_key_pem)
    config = TLSConfig(ca_file=old.ca_file, cert_file=str(cert), key_file=str(key))
    client = RemoteWriteClient(
        endpoint(server.url, tls_config=config), user_agent=UA, lean_http1=lean
    )
    outcomes: list[str] = []
    seen: dict[str, float] = {}

    async def send() -> None:
        result = await client.send(b"x", protocol=1, attempt=0)
        outcomes.append(result.outcome if result.outcome == "ok" else result.reason)

    async def body() -> None:
        try:
            await send()
            replace_file(cert, new.client_cert_pem)
            key.write_text(new.client_key_pem[: len(new.client_key_pem) // 2])  # caught half-way
            await send()
            await send()
            seen["failures"] = count(tls.RELOAD_FAILURES, key)
            key.write_text(new.client_key_pem)
            await send()
            await send()
        finally:
            await client.aclose()

    try:
        with caplog.at_level(logging.INFO, logger="rwconsole.http.tls"):
            run(body)
    finally:
        server.close()
    assert outcomes == ["ok"] * 5
    old_serial, new_serial = cert_serial(old.client_cert_pem), cert_serial(new.client_cert_pem)
    # Each send was a new connection; the half-written key kept the previous pair in use.
    assert server.peer_serials == [old_serial, old_serial, old_serial, new_serial, new_serial]
    assert seen["failures"] == 1 and count(tls.RELOAD_FAILURES, cert) == 1
    assert count(tls.RELOAD_FAILURES, key) == 1  # the good key is no failure
    assert count(tls.RELOADS, key) == 1 and count(tls.RELOADS, cert) == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # once, not per connection
    text = warnings[0].getMessage()
    assert str(key) in text and "cannot load the client certificate" in text
    assert "PRIVATE KEY" not in text
    reloaded = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(str(key) in line and "reloaded" in line for line in reloaded)


@pytest.mark.parametrize("kind", ["receiver tls_config", "admin"])
def test_a_server_shows_new_connections_its_rotated_certificate(
    pki_pair: tuple[Pki, Pki], tmp_path: Path, look_every_time: None, kind: str
) -> None:
    old, new = pki_pair
    live, dirs = server_file_versions(tmp_path, old, new)
    cert, key = str(live / "tls.crt"), str(live / "tls.key")
    if kind == "admin":
        context = local.server_ssl_context(cert, key)
    else:
        context = tls.reloading_server_ssl_context(ReceiverTLSConfig(cert_file=cert, key_file=key))
    trust = ssl.create_default_context(cafile=old.ca_file)
    trust.load_verify_locations(cafile=new.ca_file)

    async def handler(request: Request) -> Response:
        return Response(200, b"ok")

    async def body() -> None:
        server = HttpServer(handler, ssl_context=context)
        await server.start("127.0.0.1", 0)
        try:
            before = await peer_serial(server.host, server.port, trust)
            point_link(live, dirs[1])
            after = await peer_serial(server.host, server.port, trust)
            # A half-written pair in the next version: handshakes keep the last good one.
            (dirs[0] / "tls.key").write_text("-----BEGIN PRIVATE KEY-----\nMIG")
            point_link(live, dirs[0])
            kept = await peer_serial(server.host, server.port, trust)
        finally:
            await server.stop()
        assert before == cert_serial(Path(old.server_cert_file).read_text())
        assert after == kept == cert_serial(Path(new.server_cert_file).read_text())

    run(body)


def test_a_closed_clients_files_are_not_reported_by_a_reload(
    pki_pair: tuple[Pki, Pki], tmp_path: Path
) -> None:
    """A removed endpoint's broken CA file is no finding of the next reload; a live one is."""
    old, _ = pki_pair
    paths = [tmp_path / "kept.pem", tmp_path / "closed.pem"]
    for path in paths:
        path.write_text(old.ca_pem)

    async def body() -> list[str]:
        kept, closed = (
            RemoteWriteClient(
                endpoint("https://127.0.0.1:9/w", tls_config=TLSConfig(ca_file=str(p))),
                user_agent=UA,
            )
            for p in paths
        )
        await closed.aclose()
        for path in paths:
            path.write_text("-----BEGIN CERTIFICATE-----\nhalf")
        try:
            return tls.check_rotated_files()
        finally:
            await kept.aclose()

    lines: list[str] = []
    run(lambda: _collect(body, lines))
    assert any("kept.pem" in line for line in lines)
    assert not any("closed.pem" in line for line in lines)


async def _collect(body: object, into: list[str]) -> None:
    into.extend(await body())  # type: ignore[operator]
