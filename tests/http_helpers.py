"""Loopback servers and certificates for the HTTP stack and remote-write client tests.

A test CA with server and client certificates (made with ``cryptography``), a
scriptable HTTP/1.1 server (plain or TLS, optionally requiring a client
certificate), a recording forward proxy (``CONNECT`` tunnels and absolute-URI
forwarding), and a minimal HTTP/2 server built on the ``h2`` package. All bind
127.0.0.1 on a port chosen by the kernel and are closed by ``aclose``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import http.server
import ipaddress
import os
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rwconsole.config.schema import EndpointConfig
from rwconsole.config.secrets import Secret

WRITTEN_SAMPLES = "x-prometheus-remote-write-samples-written"
LOOP_LIMIT = 10_000  # upper bound for every server loop (requests per connection)


# --- certificates -------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_pem: str
    ca_file: str
    server_cert_file: str
    server_key_file: str
    client_cert_pem: str
    client_key_pem: str
    client_cert_file: str
    client_key_file: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName],
) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(key)


def make_pki(directory: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost/receiver.test, a client certificate."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("rwconsole test CA"))
        .issuer_name(_name("rwconsole test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM).decode()
    server_cert, server_key = _leaf(
        ca_key,
        ca_cert,
        "receiver",
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.DNSName("localhost"),
            x509.DNSName("receiver.test"),
        ],
    )
    client_cert, client_key = _leaf(
        ca_key, ca_cert, "rwconsole client", ExtendedKeyUsageOID.CLIENT_AUTH, []
    )
    files = {
        "ca.pem": ca_pem,
        "server.pem": server_cert,
        "server.key": server_key,
        "client.pem": client_cert,
        "client.key": client_key,
    }
    for name, text in files.items():
        (directory / name).write_text(text)
    return Pki(
        ca_pem=ca_pem,
        ca_file=str(directory / "ca.pem"),
        server_cert_file=str(directory / "server.pem"),
        server_key_file=str(directory / "server.key"),
        client_cert_pem=client_cert,
        client_key_pem=client_key,
        client_cert_file=str(directory / "client.pem"),
        client_key_file=str(directory / "client.key"),
    )


def replace_file(path: Path, text: str) -> None:
    """Write ``path`` at once (a new file renamed over it), as renewal tools do."""
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(text)
    os.replace(tmp, path)


def point_link(link: Path, target: Path) -> None:
    """Make the symlink ``link`` point at ``target`` at once (Kubernetes' secret volumes)."""
    tmp = link.with_name(f".{link.name}.new")
    os.symlink(target, tmp)
    os.replace(tmp, link)


def server_file_versions(directory: Path, *pkis: Pki) -> tuple[Path, list[Path]]:
    """A directory per PKI holding its server ``tls.crt``/``tls.key``, and a symlink
    ``live`` at the first (switch it with ``point_link``)."""
    versions = []
    for index, pki in enumerate(pkis):
        version = directory / f"v{index}"
        version.mkdir()
        (version / "tls.crt").write_text(Path(pki.server_cert_file).read_text())
        (version / "tls.key").write_text(Path(pki.server_key_file).read_text())
        versions.append(version)
    live = directory / "live"
    point_link(live, versions[0])
    return live, versions


async def peer_serial(host: str, port: int, trust: ssl.SSLContext) -> int:
    """The serial number of the certificate a TLS server shows a new connection."""
    _, writer = await asyncio.open_connection(host, port, ssl=trust, server_hostname="localhost")
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        await writer.wait_closed()
    return cert_serial(der)


def cert_serial(pem_or_der: str | bytes) -> int:
    """The serial number of a certificate (PEM text or DER bytes)."""
    if isinstance(pem_or_der, str):
        return x509.load_pem_x509_certificate(pem_or_der.encode()).serial_number
    return x509.load_der_x509_certificate(pem_or_der).serial_number


def server_ssl_context(
    pki: Pki,
    *,
    require_client_cert: bool = False,
    max_version: ssl.TLSVersion | None = None,
    alpn: list[str] | None = None,
    sni_seen: list[str | None] | None = None,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert_file, pki.server_key_file)
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=pki.ca_file)
    if max_version is not None:
        ctx.maximum_version = max_version
    ctx.set_alpn_protocols(alpn or ["http/1.1"])
    if sni_seen is not None:

        def _record(sock: object, name: str | None, context: object) -> None:
            sni_seen.append(name)

        ctx.sni_callback = _record  # type: ignore[assignment]
    return ctx


# --- config objects -------------------------------------------------------------------


def run(factory: Callable[[], Awaitable[None]]) -> None:
    """Run one test coroutine on a fresh event loop, failing it after 20 s."""
    asyncio.run(asyncio.wait_for(factory(), 20))


def endpoint(url: str, **kwargs: object) -> EndpointConfig:
    """An endpoint block as the config loader would build it."""
    return EndpointConfig(url=url, **kwargs)  # type: ignore[arg-type]


def secret(value: str) -> Secret:
    return Secret(value)


# --- HTTP/1.1 server --------------------------------------------------------------------


@dataclass
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    delay: float = 0.0


Handler = Callable[[Request], Awaitable[Response] | Response]


class HTTPServer:
    """A scriptable HTTP/1.1 server that records every request."""

    def __init__(self, handler: Handler | None = None, *, ssl_ctx: ssl.SSLContext | None = None):
        self.handler: Handler = handler or (lambda request: Response(204))
        self.requests: list[Request] = []
        self._ssl = ssl_ctx
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> HTTPServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ssl)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            for _ in range(LOOP_LIMIT):
                request = await _read_request(reader)
                if request is None:
                    break
                self.requests.append(request)
                result = self.handler(request)
                response = await result if asyncio.iscoroutine(result) else result
                assert isinstance(response, Response)
                if response.delay:
                    await asyncio.sleep(response.delay)
                writer.write(_encode_response(response))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass  # closed by aclose(); ending normally keeps asyncio's stream callback quiet
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, list[tuple[str, str]]] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    head = await _read_head(reader)
    if head is None:
        return None
    request_line, headers = head
    method, target, _ = request_line.split(" ", 2)
    length = 0
    for name, value in headers:
        if name.lower() == "content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return Request(method, target, headers, body)


_PHRASES = {200: "OK", 204: "No Content", 307: "Temporary Redirect", 400: "Bad Request",
            401: "Unauthorized", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable"}  # fmt: skip


def _encode_response(response: Response) -> bytes:
    phrase = _PHRASES.get(response.status, "Status")
    lines = [f"HTTP/1.1 {response.status} {phrase}"]
    lines += [f"{k}: {v}" for k, v in response.headers]
    lines.append(f"Content-Length: {len(response.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


class ThreadedTLSReceiver:
    """A blocking TLS server in a thread; unlike asyncio it sends TLS alerts on failures.

    ``peer_serials`` holds the serial number of the client certificate of each
    request (None without one); with ``close_connections`` every answer closes
    its connection, so each request makes a new one.
    """

    def __init__(self, ctx: ssl.SSLContext, *, close_connections: bool = False) -> None:
        self.requests: list[Request] = []
        self.peer_serials: list[int | None] = []
        requests = self.requests
        serials = self.peer_serials

        class _Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                requests.append(Request("POST", self.path, list(self.headers.items()), body))
                peer = self.connection.getpeercert()  # type: ignore[attr-defined]
                serials.append(int(str(peer["serialNumber"]), 16) if peer else None)
                self.send_response(204)
                if close_connections:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._httpd.server_address[1]}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


# --- forward proxy ----------------------------------------------------------------------


@dataclass
class ProxyRecord:
    request_line: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class ForwardProxy:
    """An HTTP proxy that tunnels CONNECT and forwards absolute-URI requests."""

    def __init__(self) -> None:
        self.records: list[ProxyRecord] = []
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def port(self) -> int:
        return self._port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            head = await _read_head(reader)
            if head is None:
                return
            request_line, headers = head
            self.records.append(ProxyRecord(request_line, headers))
            method, target, _ = request_line.split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, upstream_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                rest = target.split("://", 1)[1]
                hostport, slash, path = rest.partition("/")
                host, _, port = hostport.rpartition(":")
                up_reader, upstream_writer = await asyncio.open_connection(host, int(port))
                kept = [(k, v) for k, v in headers if not k.lower().startswith("proxy-")]
                lines = [f"{method} {slash}{path} HTTP/1.1"] + [f"{k}: {v}" for k, v in kept]
                upstream_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await asyncio.gather(
                _pipe(reader, upstream_writer), _pipe(up_reader, writer), return_exceptions=True
            )
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            for w in (writer, upstream_writer):
                if w is not None:
                    w.close()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        for _ in range(LOOP_LIMIT * 10):
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.write_eof()


# --- HTTP/2 server ----------------------------------------------------------------------


@dataclass
class H2Request:
    headers: dict[str, str]
    body: bytes


class H2Server:
    """A TLS server speaking only HTTP/2 (ALPN ``h2``); answers 204 with Written headers."""

    def __init__(self, pki: Pki) -> None:
        self.requests: list[H2Request] = []
        self.alpn: list[str | None] = []
        self._ctx = server_ssl_context(pki, alpn=["h2"])
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> H2Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ctx)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        ssl_object = writer.get_extra_info("ssl_object")
        self.alpn.append(ssl_object.selected_alpn_protocol() if ssl_object else None)
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        streams: dict[int, H2Request] = {}
        try:
            for _ in range(LOOP_LIMIT):
                data = await reader.read(65536)
                if not data:
                    break
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        streams[event.stream_id] = H2Request(dict(event.headers), b"")
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id].body += event.data
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        self.requests.append(streams.pop(event.stream_id))
                        answer = [(":status", "204"), (WRITTEN_SAMPLES, "5")]
                        conn.send_headers(event.stream_id, answer, end_stream=True)
                writer.write(conn.data_to_send())
                await writer.drain()
        except (ConnectionError, ssl.SSLError, h2.exceptions.ProtocolError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)


class ThreadedDemoReceiver:
    """A demo receiver on its own loop in its own thread: a busy test loop cannot slow it."""

    def __init__(self) -> None:
        from rwconsole.demo.receiver import DemoReceiver

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.receiver = DemoReceiver("127.0.0.1:0")
        asyncio.run_coroutine_threadsafe(self.receiver.start(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
