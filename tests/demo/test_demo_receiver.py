"""The demo receiver's counting and fault modes, observed by a real httpx client."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import snappy
from conftest import ProcessManager, free_port, wait_for_port

from rwconsole.demo.receiver import DemoReceiver
from rwconsole.labels import Labels, make_labels
from rwconsole.model import STALE_NAN, is_stale_nan
from rwconsole.protocol.proto import remote_v1_pb2, remote_v2_pb2

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

V1 = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
V2 = {
    "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    "Content-Encoding": "snappy",
}
A = make_labels({"__name__": "a", "job": "demo"})
B = make_labels({"__name__": "b", "job": "demo"})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def body_v1(series: dict[Labels, list[tuple[int, float]]]) -> bytes:
    request = remote_v1_pb2.WriteRequest()
    for labels, points in series.items():
        ts = request.timeseries.add()
        for name, value in labels:
            ts.labels.add(name=name, value=value)
        for t, v in points:
            ts.samples.add(timestamp=t, value=v)
    return snappy.compress(request.SerializeToString())


def body_v2(series: dict[Labels, list[tuple[int, float]]]) -> bytes:
    request = remote_v2_pb2.Request()
    symbols = [""]
    for labels, points in series.items():
        ts = request.timeseries.add()
        for name, value in labels:
            for text in (name, value):
                if text not in symbols:
                    symbols.append(text)
                ts.labels_refs.append(symbols.index(text))
        for t, v in points:
            ts.samples.add(timestamp=t, value=v)
    request.symbols.extend(symbols)
    return snappy.compress(request.SerializeToString())


@pytest.fixture
async def demo() -> AsyncIterator[DemoReceiver]:
    receiver = DemoReceiver("127.0.0.1:0", seed=7)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def post(receiver: DemoReceiver, body: bytes, headers=V1, timeout: float = 5.0):
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.post(receiver.url, content=body, headers=headers)


async def test_counts_and_last_values(demo: DemoReceiver) -> None:
    assert (
        await post(demo, body_v1({A: [(1000, 1.0), (2000, 2.0)], B: [(1000, 5.0)]}))
    ).status_code == 204
    response = await post(demo, body_v2({A: [(3000, 3.0)], B: [(2000, STALE_NAN)]}), V2)
    assert response.status_code == 204
    assert response.headers["X-Prometheus-Remote-Write-Samples-Written"] == "2"
    # going back in time (behind what this sender, v1 on this path, sent before) is counted
    await post(demo, body_v1({A: [(1500, 9.0)]}))
    stats = demo.stats()
    assert (stats.requests, stats.v1_requests, stats.v2_requests) == (3, 2, 1)
    assert (stats.samples, stats.series, stats.out_of_order) == (6, 2, 1)
    assert stats.by_status == {204: 3}
    assert stats.bytes > 0 and stats.listening
    series = demo.series()
    assert (series[A].samples, series[A].last_timestamp, series[A].last_value) == (4, 3000, 3.0)
    assert series[A].out_of_order == 1
    assert series[B].last_timestamp == 2000 and is_stale_nan(series[B].last_value)
    demo.reset()
    assert demo.stats().requests == 0 and demo.series() == {}


async def test_order_is_judged_per_sender_not_across_endpoints(demo: DemoReceiver) -> None:
    # Two endpoints (1.0 and 2.0) write the same series, each in order, interleaved.
    await post(demo, body_v2({A: [(5000, 1.0)]}), V2)
    await post(demo, body_v1({A: [(1000, 1.0)]}))
    await post(demo, body_v2({A: [(6000, 1.0)]}), V2)
    await post(demo, body_v1({A: [(2000, 1.0)]}))
    assert demo.stats().out_of_order == 0
    assert demo.series()[A].last_timestamp == 6000
    await post(demo, body_v2({A: [(5500, 1.0)]}), V2)
    assert demo.stats().out_of_order == 1


async def test_fault_changes_are_logged(
    demo: DemoReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="rwconsole.demo"):
        demo.set_fault("error_5xx", status=502, fraction=0.5)
        demo.set_fault("error_5xx", status=502, fraction=0.5)  # no change: no second line
        demo.set_fault("ok")
    messages = [r.getMessage() for r in caplog.records if r.name == "rwconsole.demo"]
    assert messages == [
        "demo receiver fault: error_5xx 502 (50% of requests)",
        "demo receiver fault: ok",
    ]


async def test_bad_body_is_400_with_reason(demo: DemoReceiver) -> None:
    response = await post(demo, b"\x07not snappy")
    assert response.status_code == 400 and "snappy" in response.text
    response = await post(demo, b"", {"Content-Type": "text/plain", "Content-Encoding": "snappy"})
    assert response.status_code == 415
    assert demo.stats().by_status == {400: 1, 415: 1}
    assert demo.stats().samples == 0


async def test_error_5xx_too_many_requests_bad_request(demo: DemoReceiver) -> None:
    body = body_v1({A: [(1000, 1.0)]})
    demo.set_fault("error_5xx", status=502)
    assert (await post(demo, body)).status_code == 502
    demo.set_fault("error_5xx")
    assert (await post(demo, body)).status_code == 503
    demo.set_fault("too_many_requests", retry_after=2.5)
    response = await post(demo, body)
    assert response.status_code == 429 and response.headers["Retry-After"] == "3"
    demo.set_fault("bad_request", reason="out of order sample")
    response = await post(demo, body)
    assert response.status_code == 400 and response.text.strip() == "out of order sample"
    stats = demo.stats()
    assert stats.samples == 0  # nothing of a rejected request is counted as received
    assert stats.by_status == {502: 1, 503: 1, 429: 1, 400: 1}
    demo.set_fault("ok")
    assert (await post(demo, body)).status_code == 204


async def test_latency(demo: DemoReceiver) -> None:
    demo.set_fault("latency", delay=0.3)
    started = time.monotonic()
    assert (await post(demo, body_v1({A: [(1, 1.0)]}))).status_code == 204
    assert time.monotonic() - started >= 0.3


async def test_hang_until_client_gives_up_then_recovers(demo: DemoReceiver) -> None:
    demo.set_fault("hang")
    with pytest.raises(httpx.ReadTimeout):
        await post(demo, body_v1({A: [(1, 1.0)]}), timeout=0.3)
    for _ in range(50):  # the hung handler notices the client went away
        if demo.stats().hung == 0:
            break
        await asyncio.sleep(0.05)
    assert demo.stats().hung == 0
    demo.set_fault("ok")
    assert (await post(demo, body_v1({A: [(1, 1.0)]}))).status_code == 204


async def test_down_refuses_connections_and_up_reopens_the_port(demo: DemoReceiver) -> None:
    port = demo.port
    await demo.down()
    assert not demo.stats().listening
    with pytest.raises(httpx.ConnectError):
        await post(demo, body_v1({A: [(1, 1.0)]}), timeout=1.0)
    await demo.up()
    assert demo.port == port and demo.stats().listening
    assert (await post(demo, body_v1({A: [(1, 1.0)]}))).status_code == 204


async def test_down_from_another_thread(demo: DemoReceiver) -> None:
    thread = threading.Thread(target=demo.set_fault, args=("down",))
    thread.start()
    thread.join(5)
    for _ in range(50):
        if not demo.stats().listening:
            break
        await asyncio.sleep(0.02)
    assert not demo.stats().listening
    threading.Thread(target=demo.set_fault, args=("ok",)).start()
    for _ in range(50):
        if demo.stats().listening:
            break
        await asyncio.sleep(0.02)
    assert (await post(demo, body_v1({A: [(1, 1.0)]}))).status_code == 204


async def test_fault_on_a_fraction_of_requests(demo: DemoReceiver) -> None:
    demo.set_fault("error_5xx", status=500, fraction=0.5)
    async with httpx.AsyncClient() as client:
        codes = [
            (await client.post(demo.url, content=body_v1({A: [(i, 1.0)]}), headers=V1)).status_code
            for i in range(40)
        ]
    assert set(codes) == {204, 500}
    assert 8 <= codes.count(500) <= 32


def test_invalid_fault_settings_are_rejected() -> None:
    receiver = DemoReceiver("127.0.0.1:0")
    with pytest.raises(ValueError, match="unknown fault mode"):
        receiver.set_fault("explode")
    with pytest.raises(ValueError, match="fraction"):
        receiver.set_fault("error_5xx", fraction=2.0)
    with pytest.raises(ValueError, match="status"):
        receiver.set_fault("error_5xx", status=42)


def test_standalone_process(processes: ProcessManager) -> None:
    port = free_port()
    proc = processes.start(
        [sys.executable, "-m", "rwconsole.demo.receiver", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
    )
    wait_for_port(port)
    response = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/write", content=body_v1({A: [(1, 1.0)]}), headers=V1
    )
    assert response.status_code == 204
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert b"listening on" in out
    assert b"requests=1 samples=1 series=1" in out
