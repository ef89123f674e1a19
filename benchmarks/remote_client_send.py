"""CPU per ``RemoteWriteClient.send`` against a loopback receiver in another process.

Run: ``python benchmarks/remote_client_send.py [--seconds 3] [--samples 500 5000]
[--concurrency 1 8] [--paths httpx lean] [--tls] [--profile FILE]``. Each body is a
snappy-compressed remote-write 1.0 request of that many samples (series with
eight labels, as a node exporter's). The receiver is a minimal asyncio
HTTP/1.1 server in a child process that reads the body and answers 204, so the
process CPU measured here is the client's own work per attempt: headers, auth
(basic), the HTTP exchange, classification, state. ``httpx`` is the generic
httpx/httpcore path, ``lean`` the keep-alive HTTP/1.1 transport used for
direct connections; both run in the same invocation. ``--tls`` serves https
with a self-signed certificate made at start (HTTP/1.1 only; the endpoint
keeps ``enable_http2`` on, so the lean path starts after the first answer).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rwconsole.config.schema import BasicAuthConfig, EndpointConfig, TLSConfig
from rwconsole.config.secrets import Secret
from rwconsole.protocol.encode import compress, encode_series_v1, encode_write_request_v1
from rwconsole.remote.client import RemoteWriteClient

_MAX_REQUESTS_PER_CONNECTION = 100_000_000


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        for _ in range(_MAX_REQUESTS_PER_CONNECTION):
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def _receiver(tls_dir: str | None) -> None:
    ctx = None
    if tls_dir:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(tls_dir, "cert.pem"), os.path.join(tls_dir, "key.pem"))
        ctx.set_alpn_protocols(["http/1.1"])
    server = await asyncio.start_server(_serve, "127.0.0.1", 0, ssl=ctx)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), lambda: stdin_closed.done() or stdin_closed.set_result(0))
    await stdin_closed  # the parent closes our stdin when it is done
    server.close()


def _write_certificate(directory: str) -> None:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench receiver")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    with open(os.path.join(directory, "cert.pem"), "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(directory, "key.pem"), "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def _body(samples: int) -> bytes:
    def series() -> Iterator[bytes]:
        for i in range(samples):
            yield encode_series_v1(
                (
                    ("__name__", f"node_cpu_seconds_total_{i % 40}"),
                    ("cpu", str(i % 64)),
                    ("instance", f"host-{i % 97}.example.net:9100"),
                    ("job", "node"),
                    ("mode", ("idle", "user", "system", "iowait")[i % 4]),
                    ("region", "eu-west-1"),
                    ("team", "platform"),
                    ("zone", f"eu-west-1{'abc'[i % 3]}"),
                )
            )

    labels = list(series())
    timestamps = [1_700_000_000_000 + i // 100 for i in range(samples)]
    values = [float(i * 37 % 1000) + 0.25 for i in range(samples)]
    return compress(encode_write_request_v1(labels, timestamps, values))


async def _measure(
    url: str, seconds: float, concurrency: int, body: bytes, lean: bool, tls: TLSConfig | None
) -> tuple[int, float, float]:
    config = EndpointConfig(
        url=url,
        basic_auth=BasicAuthConfig(username="u", password=Secret("p")),
        tls_config=tls or TLSConfig(),
    )
    client = RemoteWriteClient(config, user_agent="rwconsole-bench", lean_http1=lean)
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            result = await client.send(body, protocol=1, attempt=0)
            assert result.outcome == "ok", result
            done += 1

    await worker()  # warm up: one connection per worker is opened outside the timing
    done = 0
    deadline = time.perf_counter() + seconds
    start, cpu_start = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    await client.aclose()
    return done, elapsed, cpu


async def _run(args: argparse.Namespace, port: int, tls_dir: str | None) -> None:
    scheme = "https" if tls_dir else "http"
    url = f"{scheme}://127.0.0.1:{port}/api/v1/write"
    tls = TLSConfig(ca_file=os.path.join(tls_dir, "cert.pem")) if tls_dir else None
    profiler = cProfile.Profile() if args.profile else None
    for samples in args.samples:
        body = _body(samples)
        for concurrency in args.concurrency:
            per_path: dict[str, float] = {}
            for path in args.paths:
                if profiler is not None:
                    profiler.enable()
                done, elapsed, cpu = await _measure(
                    url, args.seconds, concurrency, body, path == "lean", tls
                )
                if profiler is not None:
                    profiler.disable()
                per_path[path] = cpu / done * 1e6
                print(
                    f"{samples:5d} samples ({len(body) / 1024:5.1f} KiB) concurrency "
                    f"{concurrency:2d} {path:5s}: {done / elapsed:7.0f} sends/s, "
                    f"{per_path[path]:6.1f} µs CPU per send"
                )
            if "httpx" in per_path and "lean" in per_path:
                print(f"    lean / httpx CPU per send: {per_path['lean'] / per_path['httpx']:.2f}")
    if profiler is not None:
        profiler.dump_stats(args.profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--samples", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--paths", nargs="+", choices=["httpx", "lean"], default=["httpx", "lean"])
    parser.add_argument("--profile", help="write cProfile stats of the client runs to this file")
    parser.add_argument(
        "--tls", action="store_true", help="https with a certificate made at start (HTTP/1.1)"
    )
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--receiver-tls-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        asyncio.run(_receiver(args.receiver_tls_dir))
        return
    with tempfile.TemporaryDirectory(prefix="rwconsole-bench-") as directory:
        tls_dir = None
        if args.tls:
            _write_certificate(directory)
            tls_dir = directory
        _run_with_receiver(args, tls_dir)


def _run_with_receiver(args: argparse.Namespace, tls_dir: str | None) -> None:
    extra = ["--receiver-tls-dir", tls_dir] if tls_dir else []
    child = subprocess.Popen(
        [sys.executable, __file__, "--receiver", *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        asyncio.run(_run(args, port, tls_dir))
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)


if __name__ == "__main__":
    main()
