"""The embedded demo remote-write receiver, with fault injection.

``DemoReceiver`` accepts v1 and v2 write requests on the shared HTTP server,
counts what arrives (per series: samples, last value and timestamp, samples
that went back in time), and can be told at run time to misbehave, for all or
a fraction of requests:

- ``ok``                 answer normally (204)
- ``error_5xx``          answer ``status`` (default 503)
- ``too_many_requests``  answer 429 with ``Retry-After: retry_after`` seconds
- ``bad_request``        answer 400 with ``reason``
- ``latency``            wait ``delay`` seconds, then answer normally
- ``hang``               never answer; the connection is held until the client
                         gives up (or the fault changes, or ``hang_max`` passes)
- ``down``               close the listening socket and every connection;
                         any other mode (or ``up()``) reopens the same port

It runs on the caller's asyncio loop (``await start()`` / ``await stop()``);
``set_fault`` and ``stats`` may be called from any thread. Standalone:
``python -m rwconsole.demo.receiver --listen 127.0.0.1:PORT``.

Going back in time is judged per sender: a sender is the request path plus the
protocol version, so two endpoints writing the same series (the demo's 1.0 and
2.0 endpoints) are not counted as reordering each other. Every fault change
is logged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import math
import random
import signal
import threading
from dataclasses import dataclass, replace
from typing import Any

from rwconsole.http.server import (
    DEFAULT_MAX_BODY,
    CloseConnection,
    HttpServer,
    Request,
    Response,
)
from rwconsole.labels import Labels
from rwconsole.snapshot import FAULT_MODES, DemoStats, Fault
from rwconsole.sources.receiver import (
    DecodeFn,
    WriteRejected,
    check_write_request,
    decode_write,
    default_decode,
    is_v2,
    parse_listen_address,
    written_headers,
)

log = logging.getLogger("rwconsole.demo")


@dataclass(slots=True)
class SeriesStats:
    samples: int = 0
    exemplars: int = 0
    histograms: int = 0
    last_timestamp: int | None = None
    last_value: float | None = None
    out_of_order: int = 0


class _Totals:
    __slots__ = (
        "by_status",
        "bytes",
        "exemplars",
        "histograms",
        "last_error",
        "metadata",
        "out_of_order",
        "requests",
        "samples",
        "v1_requests",
        "v2_requests",
    )

    def __init__(self) -> None:
        self.requests = self.v1_requests = self.v2_requests = 0
        self.samples = self.exemplars = self.histograms = self.metadata = 0
        self.bytes = self.out_of_order = 0
        self.by_status: dict[int, int] = {}
        self.last_error = ""


class DemoReceiver:
    """An in-process remote-write receiver that counts and misbehaves on request."""

    def __init__(
        self,
        listen: str = "127.0.0.1:0",
        *,
        decode: DecodeFn | None = None,
        seed: int | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        max_concurrency: int = 256,
        track_series: bool = True,
        hang_max: float = 600.0,
    ) -> None:
        self._address = parse_listen_address(listen)
        self._decode = decode
        self._rng = random.Random(seed)
        self._server = HttpServer(self._handle, max_body=max_body, max_concurrency=max_concurrency)
        self._track_series = track_series
        self._hang_max = hang_max
        self._lock = threading.Lock()
        self._fault = Fault()
        self._totals = _Totals()
        self._series: dict[Labels, SeriesStats] = {}
        self._newest: dict[tuple[str, Labels], int] = {}
        """Per (sender, series): the newest timestamp that sender sent."""
        self._hung = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener_lock: asyncio.Lock | None = None
        self._started = False

    # --- lifecycle -------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}/api/v1/write"

    async def start(self) -> None:
        if self._decode is None:
            self._decode = default_decode()
        self._loop = asyncio.get_running_loop()
        self._listener_lock = asyncio.Lock()
        self._started = True
        self._server.set_address(*self._address)
        if self.fault().mode != "down":
            await self._server.open_listener()

    async def stop(self) -> None:
        self._started = False
        await self._server.stop()

    async def down(self) -> None:
        """Close the listening socket and every connection (mode ``down``)."""
        self.set_fault("down")
        await self._sync_listener()

    async def up(self) -> None:
        """Reopen the listening socket on the same port and answer normally."""
        self.set_fault("ok")
        await self._sync_listener()

    # --- faults and stats (any thread) ------------------------------------------------

    def set_fault(
        self,
        mode: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        reason: str | None = None,
        delay: float | None = None,
        fraction: float = 1.0,
    ) -> None:
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; one of {', '.join(FAULT_MODES)}")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fault fraction {fraction} is not within 0..1")
        fault = Fault(mode=mode, fraction=fraction)
        if status is not None:
            if not 100 <= status <= 599:
                raise ValueError(f"status {status} is not an HTTP status")
            fault = replace(fault, status=status)
        if retry_after is not None:
            fault = replace(fault, retry_after=retry_after)
        if reason is not None:
            fault = replace(fault, reason=reason)
        if delay is not None:
            if delay < 0 or math.isnan(delay):
                raise ValueError(f"delay {delay} must be >= 0")
            fault = replace(fault, delay=delay)
        with self._lock:
            changed = fault != self._fault
            self._fault = fault
        if changed:
            log.info("demo receiver fault: %s", fault.describe())
        loop = self._loop
        if loop is not None and self._started and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: loop.create_task(self._sync_listener()))

    def fault(self) -> Fault:
        with self._lock:
            return self._fault

    def stats(self) -> DemoStats:
        with self._lock:
            t = self._totals
            host, port = self._server.host, self._server.port
            return DemoStats(
                address=f"{host}:{port}",
                listening=self._server.listening,
                fault=self._fault,
                requests=t.requests,
                v1_requests=t.v1_requests,
                v2_requests=t.v2_requests,
                by_status=dict(t.by_status),
                samples=t.samples,
                exemplars=t.exemplars,
                histograms=t.histograms,
                metadata=t.metadata,
                bytes=t.bytes,
                series=len(self._series),
                out_of_order=t.out_of_order,
                hung=self._hung,
                last_error=t.last_error,
            )

    def series(self) -> dict[Labels, SeriesStats]:
        """A copy of the per-series statistics."""
        with self._lock:
            return {labels: replace(stats) for labels, stats in self._series.items()}

    def reset(self) -> None:
        with self._lock:
            self._totals = _Totals()
            self._series = {}
            self._newest = {}

    # --- request handling --------------------------------------------------------------

    async def _sync_listener(self) -> None:
        assert self._listener_lock is not None
        async with self._listener_lock:
            if not self._started:
                return
            if self.fault().mode == "down":
                if self._server.listening or self._server.connections:
                    await self._server.close_listener(drop_connections=True)
            elif not self._server.listening:
                await self._server.open_listener()

    def _count(self, status: int, size: int, error: str = "") -> None:
        with self._lock:
            t = self._totals
            t.requests += 1
            t.bytes += size
            t.by_status[status] = t.by_status.get(status, 0) + 1
            if error:
                t.last_error = error

    def _applies(self, fault: Fault) -> bool:
        if fault.mode == "ok":
            return False
        return fault.fraction >= 1.0 or self._rng.random() < fault.fraction

    async def _handle(self, request: Request) -> Response:
        fault = self.fault()
        if self._applies(fault):
            early = await self._inject(fault, request)
            if early is not None:
                self._count(early.status, len(request.body), f"injected {fault.describe()}")
                return early
        try:
            check_write_request(request)
            assert self._decode is not None
            decoded = decode_write(self._decode, request)
            samples, histograms, exemplars = self._record(decoded, _sender(request, decoded))
        except WriteRejected as exc:
            self._count(exc.status, len(request.body), exc.reason)
            return Response(exc.status, exc.reason.encode("utf-8", "replace") + b"\n")
        self._count(204, len(request.body))
        headers = written_headers(samples, histograms, exemplars) if is_v2(decoded) else {}
        return Response(204, headers=headers)

    async def _inject(self, fault: Fault, request: Request) -> Response | None:
        mode = fault.mode
        if mode == "error_5xx":
            return Response(fault.status, b"injected server error\n")
        if mode == "too_many_requests":
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(max(0, math.ceil(fault.retry_after)))
            return Response(429, b"injected: too many requests\n", headers)
        if mode == "bad_request":
            return Response(400, fault.reason.encode("utf-8", "replace") + b"\n")
        if mode == "latency":
            await asyncio.sleep(fault.delay)
            return None
        if mode == "hang":
            await self._hang(request)
        raise CloseConnection  # hang ended or "down" raced with this request

    async def _hang(self, request: Request) -> None:
        with self._lock:
            self._hung += 1
        disconnected = asyncio.ensure_future(request.wait_disconnected())
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._hang_max
            while not disconnected.done() and loop.time() < deadline:
                if self.fault().mode != "hang" or not self._started:
                    break
                await asyncio.wait({disconnected}, timeout=0.1)
        finally:
            disconnected.cancel()
            with contextlib.suppress(BaseException):
                await disconnected
            with self._lock:
                self._hung -= 1

    def _record(self, decoded: Any, sender: str) -> tuple[int, int, int]:
        v2 = is_v2(decoded)
        samples = histograms = exemplars = metadata = out_of_order = 0
        updates: list[tuple[Labels, int, int, int, int | None, float | None, int]] = []
        for index, series in enumerate(decoded.series):
            labels = series.labels  # the decoder guarantees sorted, unique, non-empty labels
            if not labels:
                raise WriteRejected(400, f"series {index} has no labels")
            points = list(series.samples)
            hists = list(series.histograms or ())
            n_ex = len(series.exemplars or ())
            samples += len(points)
            histograms += len(hists)
            exemplars += n_ex
            if getattr(series, "metadata", None) is not None:
                metadata += 1
            last_t: int | None = None
            last_v: float | None = None
            back = 0
            for stream in (points, hists):
                back += sum(1 for a, b in itertools.pairwise(stream) if b[0] < a[0])
            if points:
                last_t, last_v = points[-1]
            if hists and (last_t is None or hists[-1][0] >= last_t):
                last_t, last_v = hists[-1][0], None
            updates.append((labels, len(points), len(hists), n_ex, last_t, last_v, back))
        metadata += len(getattr(decoded, "metadata", None) or ())
        with self._lock:
            t = self._totals
            if v2:
                t.v2_requests += 1
            else:
                t.v1_requests += 1
            if self._track_series:
                table = self._series
                newest = self._newest
                for labels, n_s, n_h, n_e, last_t, last_v, back in updates:
                    entry = table.get(labels)
                    if entry is None:
                        entry = table[labels] = SeriesStats()
                    entry.samples += n_s
                    entry.histograms += n_h
                    entry.exemplars += n_e
                    entry.out_of_order += back
                    out_of_order += back
                    if last_t is None:
                        continue
                    key = (sender, labels)
                    previous = newest.get(key)
                    if previous is not None and last_t < previous:
                        entry.out_of_order += 1
                        out_of_order += 1
                        continue
                    newest[key] = last_t
                    if entry.last_timestamp is None or last_t >= entry.last_timestamp:
                        entry.last_timestamp = last_t
                        entry.last_value = last_v
            t.samples += samples
            t.histograms += histograms
            t.exemplars += exemplars
            t.metadata += metadata
            t.out_of_order += out_of_order
        return samples, histograms, exemplars


def _sender(request: Request, decoded: Any) -> str:
    """Who sent a request, as far as ordering goes: its path and protocol version."""
    return f"{request.path} {'2.0' if is_v2(decoded) else '1.0'}"


async def _serve_forever(args: argparse.Namespace) -> None:
    receiver = DemoReceiver(args.listen, seed=args.seed)
    if args.fault != "ok":
        receiver.set_fault(
            args.fault,
            status=args.status,
            retry_after=args.retry_after,
            reason=args.reason,
            delay=args.delay,
            fraction=args.fraction,
        )
    await receiver.start()
    print(f"demo receiver listening on {receiver.url} (fault: {receiver.fault().describe()})")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await receiver.stop()
    stats = receiver.stats()
    print(
        f"requests={stats.requests} samples={stats.samples} series={stats.series} "
        f"exemplars={stats.exemplars} histograms={stats.histograms} by_status={stats.by_status}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rwconsole.demo.receiver",
        description="Run the demo remote-write receiver on its own.",
    )
    parser.add_argument(
        "--listen", default="127.0.0.1:9201", help="host:port (default %(default)s)"
    )
    parser.add_argument("--fault", default="ok", choices=FAULT_MODES)
    parser.add_argument("--status", type=int, default=None, help="status for error_5xx")
    parser.add_argument("--retry-after", type=float, default=None, help="seconds for 429")
    parser.add_argument("--reason", default=None, help="reason for bad_request")
    parser.add_argument("--delay", type=float, default=None, help="seconds for latency")
    parser.add_argument("--fraction", type=float, default=1.0, help="share of requests hit")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        parse_listen_address(args.listen)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(_serve_forever(args))
    except OSError as exc:
        print(f"error: cannot listen on {args.listen}: {exc.strerror or exc}")
        return 1
    except ValueError as exc:
        print(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
