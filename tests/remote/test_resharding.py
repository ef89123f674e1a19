"""Desired shards: the arithmetic against hand-computed cases, and a load step up and down."""

from __future__ import annotations

import asyncio
import time

import pytest
from http_helpers import ThreadedDemoReceiver as _ThreadReceiver
from test_queue import Harness
from waits import eventually

from rwconsole.config.schema import QueueConfig
from rwconsole.demo.receiver import DemoReceiver
from rwconsole.remote.resharding import EwmaRate, LoopLag, desired_shards


def test_ewma_initialises_then_smooths() -> None:
    rate = EwmaRate(10.0)
    rate.tick()
    assert rate.rate == 0.0  # no events yet: stays uninitialised
    rate.add(1000)
    rate.tick()
    assert rate.rate == 100.0  # first non-zero interval initialises
    rate.add(2000)
    rate.tick()
    assert rate.rate == pytest.approx(100 + 0.2 * (200 - 100))


def decide(**overrides: float):
    args = dict(
        current=10,
        min_shards=1,
        max_shards=50,
        rate_in=1000.0,
        rate_out=1000.0,
        rate_dropped=0.0,
        rate_out_duration_ns=10 * 1e9,
        delay_seconds=0.0,
    )
    args.update(overrides)
    return desired_shards(**args)  # type: ignore[arg-type]


def test_desired_shards_cases() -> None:
    # 10 s of sending per second for 1000 samples/s = 10 ms per sample → 10 shards.
    assert decide().desired_raw == pytest.approx(10.0)
    assert decide().shards == 10
    # Within ±30 %: keep the current count.
    assert decide(rate_in=1250).shards == 10
    assert decide(rate_in=750).shards == 10
    # Outside the band: follow it.
    assert decide(rate_in=2000).shards == 20
    assert decide(rate_in=500).shards == 5
    # Backlog: 5 % of the pending samples per second are added to the input rate.
    d = decide(delay_seconds=100)  # pending = 100 s × 1000/s → catch-up 5000/s
    assert d.desired_raw == pytest.approx(0.01 * (1000 + 5000))
    assert d.shards == 50  # 60 wanted, clamped to max_shards
    # No downscale while more than 10 s behind.
    assert decide(rate_in=500, delay_seconds=11).shards == 10
    # Dropped samples lower the kept ratio.
    assert decide(rate_in=2000, rate_dropped=1000).desired_raw == pytest.approx(
        0.01 * 2000 * (1000 / 2000)
    )
    # Clamped to the bounds; nothing known without output.
    assert decide(rate_in=100_000).shards == 50
    assert decide(rate_in=1, min_shards=3).shards == 3
    assert decide(rate_out=0) is None


def _started_step_harness(receiver: DemoReceiver) -> tuple[Harness, EwmaRate]:
    """A started queue of 200 series, 50 per send, reconsidering its shards every 0.5 s."""
    h = Harness(
        receiver,
        QueueConfig(
            min_shards=1,
            max_shards=16,
            max_samples_per_send=50,
            batch_send_deadline=0.05,
            capacity=500,
        ),
        series=200,
        update_interval=0.5,
    )
    # The engine ticks the shared input rate; here the test does, on the same interval.
    data_in = EwmaRate(0.5)
    h.queue._data_in = data_in
    h.queue.start()
    return h, data_in


def test_load_step_up_and_down_moves_shards_without_loss_or_reordering() -> None:
    async def body(receiver: DemoReceiver) -> None:
        receiver.set_fault("latency", delay=0.05)
        h, data_in = _started_step_harness(receiver)

        async def load(rounds: int, start_ms: int) -> int:
            pushed = 0
            for r in range(rounds):
                pushed += h.push_rounds(1, start_ms=start_ms + r * 1000)
                data_in.add(200)
                await asyncio.sleep(0.05)
                if r % 10 == 9:
                    data_in.tick()
            return pushed

        start = int(time.time() * 1000)
        total = await load(100, start)  # ~4000 samples/s against 50 ms per request
        peak = h.queue.shard_count
        assert peak > 1, "shards did not scale up under load"
        assert h.metric("shards_desired") > 1
        total += await load(10, start + 200_000)
        await eventually(h.delivered_everything(total), timeout=60)
        # Load gone: the desired count falls and the queue scales down.
        for _ in range(20):
            data_in.tick()
            await asyncio.sleep(0.3)
            if h.queue.shard_count < peak:
                break
        assert h.queue.shard_count < peak
        await h.queue.stop(5)
        per_series = receiver.series()
        assert len(per_series) == 200
        assert all(s.out_of_order == 0 and s.samples == 110 for s in per_series.values())
        assert h.metric("samples_failed_total") == 0

    async def main() -> None:
        receiver = DemoReceiver("127.0.0.1:0")
        await receiver.start()
        try:
            await body(receiver)
        finally:
            await receiver.stop()

    asyncio.run(main())


async def _busy_loop(stop: asyncio.Event, slice_seconds: float, pause: float) -> None:
    """Keep the event loop busy in slices, as parsing large scrapes does."""
    while not stop.is_set():
        until = time.perf_counter() + slice_seconds
        while time.perf_counter() < until:
            pass
        await asyncio.sleep(pause)


def _peak_desired_under_busy_loop(latency: float, pause: float) -> tuple[float, int]:
    """Feed a queue while the loop runs 100 ms slices of CPU work with ``pause`` between.

    Returns the peak shards_desired and the shards at the end.
    """
    threaded = _ThreadReceiver()
    if latency:
        threaded.loop.call_soon_threadsafe(
            lambda: threaded.receiver.set_fault("latency", delay=latency)
        )

    async def body() -> tuple[float, int]:
        h, data_in = _started_step_harness(threaded.receiver)
        stop = asyncio.Event()
        burner = asyncio.create_task(_busy_loop(stop, 0.1, pause))
        peak = 0.0
        start_ms = int(time.time() * 1000)
        deadline = time.monotonic() + 5.0
        last_tick = time.monotonic()
        rounds = 0
        try:
            while time.monotonic() < deadline:
                h.push_rounds(1, start_ms=start_ms + rounds * 1000)
                rounds += 1
                data_in.add(200)
                await asyncio.sleep(0.01)
                if time.monotonic() - last_tick >= 0.5:
                    data_in.tick()
                    last_tick = time.monotonic()
                peak = max(peak, h.metric("shards_desired"))
        finally:
            stop.set()
            await burner
            shards = h.queue.shard_count
            await h.queue.stop(5)
            await h.client.aclose()
        return peak, shards

    try:
        return asyncio.run(body())
    finally:
        threaded.close()


def test_a_busy_loop_is_not_read_as_a_slow_receiver() -> None:
    """The loop spends all its time on other work; sends themselves are quick: one shard."""
    peak, shards = _peak_desired_under_busy_loop(latency=0.0, pause=0.0)
    assert shards == 1
    assert peak < 1.3, peak


def test_a_slow_receiver_scales_up_on_a_half_busy_loop() -> None:
    peak, shards = _peak_desired_under_busy_loop(latency=0.2, pause=0.1)
    assert peak > 2, peak
    assert shards > 1


def test_loop_lag_probe_counts_blocked_time() -> None:
    async def body() -> None:
        probe = LoopLag.acquire()
        assert LoopLag.acquire() is probe  # one probe per loop
        await asyncio.sleep(0.05)
        before = probe.seconds()
        started = time.monotonic()
        time.sleep(0.2)  # the loop is blocked: visible at once, before the probe runs
        slept = time.monotonic() - started  # more than 0.2 s on a busy machine
        blocked = probe.seconds() - before
        # All of the block but the probe's period (and its slack) counts, and no more.
        assert slept - 0.05 < blocked <= slept + 0.001, (blocked, slept)
        await asyncio.sleep(0.1)
        idle = probe.seconds()
        await asyncio.sleep(0.2)
        # An idle loop is (almost) never late. Widened from 0.05 s: on a busy 2-core
        # machine the process itself can wait for a CPU that long; 0.1 s still tells
        # it apart from the 0.2 s block above.
        assert probe.seconds() - idle < 0.1
        await probe.release()
        assert probe._task is not None  # still used once
        await probe.release()
        assert probe._task is None

    asyncio.run(body())


def test_the_decision_explains_itself() -> None:
    # 10 ms per sample × 1000/s: 10 shards, as many as run.
    assert decide().explain() == (
        "desired 10.00 = (10 ms of network and receiver) per sample × 1000 samples/s "
        "to send → 10 shards"
    )
    kept = decide(rate_in=1250).explain()
    assert kept.startswith("desired 12.50 = ")
    assert kept.endswith("→ 10 shards (kept, within 30% of the 10 running)")
    assert (
        decide(rate_in=200, delay_seconds=11)
        .explain()
        .endswith(
            "(incl. 110/s catching up on the backlog) → 10 shards (no fewer while over 10s behind)"
        )
    )
    assert "= (2.5 µs of network" in decide(rate_out_duration_ns=0.0025 * 1e9).explain()
    assert decide(rate_in=100_000).explain().endswith("→ 50 shards (capped at max_shards 50)")
    assert decide(rate_in=1, min_shards=3).explain().endswith("(raised to min_shards 3)")


def test_waits_for_the_loop_count_only_while_the_loop_has_cpu_to_spare() -> None:
    # 0.5 ms of network per sample and 2 ms waiting for the loop, 1000 samples/s.
    waits = dict(current=1, rate_out_duration_ns=0.5e9, rate_out_wait_ns=2e9)
    assert decide(**waits).shards == 1  # not measured: Prometheus' formula
    spare = decide(**waits, loop_busy=0.5)
    assert spare.desired_raw == pytest.approx(2.5)
    assert spare.shards == 3
    assert spare.explain() == (
        "desired 2.50 = (500 µs of network and receiver + 2 ms waiting for the loop) per "
        "sample × 1000 samples/s to send; loop busy 50% → 3 shards"
    )
    # A busy loop: more shards would not help, and the waits hold what runs.
    busy = decide(**waits, loop_busy=0.95)
    assert busy.shards == 1
    assert busy.explain().endswith(
        "loop busy 95% → 1 shard (the loop is busy 95%: more shards would not help, "
        "fewer might hurt)"
    )
    assert decide(**{**waits, "current": 3}, loop_busy=0.95).shards == 3
    # Waits alone ask for at most BULK_MAX_SHARDS; a slow receiver for more.
    assert (
        decide(current=1, rate_out_duration_ns=0.5e9, rate_out_wait_ns=50e9, loop_busy=0.1).shards
        == 8
    )
    assert decide(current=10, rate_out_wait_ns=50e9, loop_busy=0.1).shards == 10


def test_loop_lag_probe_measures_the_loops_idle_time() -> None:
    async def body() -> None:
        probe = LoopLag.acquire()
        idle = probe.idle_seconds()
        assert idle is not None
        await asyncio.sleep(0.3)  # idle: the loop waits in its selector
        assert probe.idle_seconds() - idle > 0.2
        idle = probe.idle_seconds()
        time.sleep(0.2)  # busy
        await asyncio.sleep(0)
        assert probe.idle_seconds() - idle < 0.05
        await probe.release()
        assert probe.idle_seconds() is None
        assert "select" not in vars(asyncio.get_running_loop()._selector)  # type: ignore[attr-defined]

    asyncio.run(body())
