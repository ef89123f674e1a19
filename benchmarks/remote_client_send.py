"""Requests per second of ``RemoteWriteClient.send`` against a loopback receiver.

Run: ``python benchmarks/remote_client_send.py [--seconds 3] [--concurrency 1 8 32]
[--body-kib 64]``. The receiver is a minimal asyncio HTTP/1.1 server on
127.0.0.1 that reads the body and answers 204, so the numbers show the
client's own overhead per attempt (headers, auth, classification, state).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from rwconsole.config.schema import BasicAuthConfig, EndpointConfig
from rwconsole.config.secrets import Secret
from rwconsole.remote.client import RemoteWriteClient


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        for _ in range(10_000_000):
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


async def _measure(url: str, seconds: float, concurrency: int, body: bytes) -> tuple[int, float]:
    config = EndpointConfig(url=url, basic_auth=BasicAuthConfig(username="u", password=Secret("p")))
    client = RemoteWriteClient(config, user_agent="rwconsole-bench")
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            result = await client.send(body, protocol=1, attempt=0)
            assert result.outcome == "ok", result
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await client.aclose()
    return done, elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--body-kib", type=int, default=64)
    args = parser.parse_args()
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    body = os.urandom(args.body_kib * 1024)
    try:
        for concurrency in args.concurrency:
            done, elapsed = await _measure(
                f"http://127.0.0.1:{port}/api/v1/write", args.seconds, concurrency, body
            )
            rate = done / elapsed
            print(
                f"concurrency {concurrency:3d}: {rate:8.0f} sends/s "
                f"({1000 / rate * concurrency:.2f} ms per send, {args.body_kib} KiB bodies)"
            )
    finally:
        server.close()
        await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
