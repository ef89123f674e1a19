"""Load generator: K scrape targets on loopback, each exposing S series (text format 0.0.4).

Usage: python benchmarks/loadgen.py --targets 10 --series 10000 [--procs 2]
       [--variants 8] [--family-size 100] [--ports-file FILE] [--max-seconds 3600]

Every target listens on its own free port of 127.0.0.1 and answers any GET
with the same S series (the forwarder's ``instance`` label tells the targets
apart). Values change on every scrape: ``--variants`` bodies are rendered at
start-up and a target serves the next one on each request, so a request costs
one ``write`` of a prepared buffer and the generator stays far from being the
bottleneck. ``--procs`` spreads the targets over several processes.

When every target listens, one JSON line ``{"targets": ["127.0.0.1:PORT", ...],
"series_per_target": S, "body_bytes": N}`` is printed to stdout (and written to
``--ports-file``). The generator serves until SIGTERM/SIGINT or ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

_METHODS = ("GET", "POST", "PUT", "DELETE")
_CODES = ("200", "201", "400", "404", "500")
_MAX_HEADER_BYTES = 64 * 1024


def render_bodies(series: int, variants: int, family_size: int, seed: int = 1) -> list[bytes]:
    """``variants`` text-format payloads with the same ``series`` series, different values."""
    rng = random.Random(seed)
    keys: list[str] = []
    headers: dict[int, str] = {}
    for i in range(series):
        family, member = divmod(i, family_size)
        name = f"loadgen_requests_{family}_total"
        if member == 0:
            headers[i] = (
                f"# HELP {name} Requests handled, family {family}.\n# TYPE {name} counter\n"
            )
        keys.append(
            f'{name}{{handler="/api/v1/items/{member}",method="{_METHODS[member % 4]}",'
            f'code="{_CODES[member % 5]}",zone="zone-{member % 3}"}} '
        )
    base = [rng.randrange(1, 10_000_000) for _ in range(series)]
    steps = [rng.randrange(1, 1000) for _ in range(series)]
    bodies = []
    for v in range(variants):
        parts = []
        for i, key in enumerate(keys):
            header = headers.get(i)
            if header:
                parts.append(header)
            parts.append(f"{key}{base[i] + v * steps[i]}\n")
        bodies.append("".join(parts).encode())
    return bodies


class _TargetProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive: every complete request head gets the target's next body."""

    def __init__(self, target: _Target) -> None:
        self._target = target
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        transport = self._transport
        assert transport is not None
        for _ in range(64):
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEADER_BYTES:
                    transport.close()
                return
            head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
            transport.writelines(self._target.response(head))


class _Target:
    def __init__(self, bodies: Sequence[tuple[bytes, bytes]]) -> None:
        self._responses = bodies
        self._next = 0
        self.requests = 0

    def response(self, head: bytes) -> tuple[bytes, bytes]:
        if not head.startswith(b"GET "):
            return (b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n", b"")
        self.requests += 1
        response = self._responses[self._next]
        self._next = (self._next + 1) % len(self._responses)
        return response


def _prepared(bodies: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
    prepared = []
    for body in bodies:
        head = (
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        prepared.append((head, body))
    return prepared


async def _serve(sockets: Sequence[socket.socket], bodies: Sequence[bytes], seconds: float) -> None:
    loop = asyncio.get_running_loop()
    prepared = _prepared(bodies)
    servers = []
    for index, sock in enumerate(sockets):
        # Each target starts at a different variant so targets do not serve identical values.
        rotated = prepared[index % len(prepared) :] + prepared[: index % len(prepared)]
        target = _Target(rotated)
        servers.append(await loop.create_server(lambda t=target: _TargetProtocol(t), sock=sock))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    for server in servers:
        server.close()


def _worker(sockets: Sequence[socket.socket], bodies: Sequence[bytes], seconds: float) -> None:
    asyncio.run(_serve(sockets, bodies, seconds))


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", "-k", type=int, default=10, help="number of targets (K)")
    parser.add_argument("--series", "-s", type=int, default=1000, help="series per target (S)")
    parser.add_argument("--procs", type=int, default=1, help="serving processes")
    parser.add_argument("--variants", type=int, default=8, help="pre-rendered value sets")
    parser.add_argument("--family-size", type=int, default=100, help="series per metric family")
    parser.add_argument("--ports-file", type=Path, help="also write the JSON line here")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="serve at most this long")
    args = parser.parse_args(argv)
    if args.targets < 1 or args.series < 1 or args.procs < 1 or args.variants < 1:
        parser.error("--targets, --series, --procs and --variants must be at least 1")
    if args.family_size < 1:
        parser.error("--family-size must be at least 1")

    bodies = render_bodies(args.series, args.variants, args.family_size)
    sockets = [_listen() for _ in range(args.targets)]
    addresses = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    procs = min(args.procs, args.targets)
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(
            target=_worker, args=(sockets[i::procs], bodies, args.max_seconds), daemon=True
        )
        for i in range(procs)
    ]
    for worker in workers:
        worker.start()
    for sock in sockets:
        sock.close()  # the workers hold their own copies
    line = json.dumps(
        {"targets": addresses, "series_per_target": args.series, "body_bytes": len(bodies[0])}
    )
    if args.ports_file is not None:
        args.ports_file.write_text(line + "\n")
    print(line, flush=True)

    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    deadline = time.monotonic() + args.max_seconds + 5
    while not stopping and time.monotonic() < deadline and any(w.is_alive() for w in workers):
        time.sleep(0.2)
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            os.kill(worker.pid, signal.SIGTERM)
    for worker in workers:
        worker.join(timeout=5)
        if worker.is_alive():
            worker.kill()
            worker.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
