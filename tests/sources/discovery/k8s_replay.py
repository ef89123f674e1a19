"""A loopback stand-in for the Kubernetes API server that replays recorded responses.

No API server runs in the tests. This server answers list requests with the
JSON files in ``k8s_fixtures/`` (written from the Kubernetes API reference
in the shape a real API server returns) and keeps watch requests open,
streaming the newline-delimited watch events the test pushes, as a real
API server does. Every request is recorded (path, query, headers).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).parent / "k8s_fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class ReplayAPIServer:
    def __init__(self) -> None:
        self.lists: dict[str, Any] = {}  # path -> list response body
        self.requests: list[Seen] = []
        self.watch_status: dict[str, int] = {}  # path -> status for the next watch
        self._watches: dict[str, list[asyncio.Queue[dict[str, Any] | None]]] = {}
        self._watch_opened = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._scheme = "http"

    async def start(self, tls: ssl.SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=tls)
        self._scheme = "https" if tls is not None else "http"

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for queues in self._watches.values():
            for queue in queues:
                queue.put_nowait(None)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}"

    def watches(self, path: str) -> int:
        return len(self._watches.get(path, []))

    async def wait_watch(self, path: str, count: int = 1, timeout: float = 10) -> None:
        async def opened() -> None:
            async with self._watch_opened:
                await self._watch_opened.wait_for(lambda: self.watches(path) >= count)

        await asyncio.wait_for(opened(), timeout)

    def push(self, path: str, event_type: str, obj: dict[str, Any]) -> None:
        """Send one event on the newest watch of ``path``."""
        self._watches[path][-1].put_nowait({"type": event_type, "object": obj})

    def end_watch(self, path: str) -> None:
        self._watches[path][-1].put_nowait(None)

    def lists_of(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path and "watch" not in r.query)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, *header_lines = head.decode().split("\r\n")
            target = line.split(" ")[1]
            headers = {}
            for header in header_lines:
                if ":" in header:
                    name, _, value = header.partition(":")
                    headers[name.strip().lower()] = value.strip()
            parts = urlsplit(target)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            self.requests.append(Seen(parts.path, query, headers))
            if query.get("watch") == "1":
                await self._stream(parts.path, writer)
            else:
                await self._answer_list(parts.path, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer_list(self, path: str, writer: asyncio.StreamWriter) -> None:
        body = self.lists.get(path)
        status = "200 OK"
        if body is None:
            status = "404 Not Found"
            body = {"kind": "Status", "status": "Failure", "message": "not found", "code": 404}
        raw = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(raw)}\r\nConnection: close\r\n\r\n".encode()
            + raw
        )
        await writer.drain()

    async def _stream(self, path: str, writer: asyncio.StreamWriter) -> None:
        status = self.watch_status.pop(path, 200)
        if status != 200:
            raw = json.dumps({"kind": "Status", "code": status, "message": "expired"}).encode()
            writer.write(
                f"HTTP/1.1 {status} Gone\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(raw)}\r\nConnection: close\r\n\r\n".encode()
                + raw
            )
            await writer.drain()
            return
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        async with self._watch_opened:
            self._watches.setdefault(path, []).append(queue)
            self._watch_opened.notify_all()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        while (event := await queue.get()) is not None:
            line = json.dumps(event).encode() + b"\n"
            writer.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
