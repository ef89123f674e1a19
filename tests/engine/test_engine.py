"""The engine as a whole: demo pipeline, self-metrics, commands, wire data model, truncation."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from conftest import free_port, wait_until

from rwconsole.config import schema
from rwconsole.demo.receiver import DemoReceiver
from rwconsole.engine import Engine, EngineError
from rwconsole.labels import make_labels
from rwconsole.model import (
    Exemplar,
    Histogram,
    HistogramSample,
    MetricMetadata,
    MetricType,
)
from rwconsole.pipelines import demo_config


def test_demo_pipeline_delivers_everything_to_the_embedded_receiver(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    config = schema.Config(
        **{
            **config.__dict__,
            "http": schema.HTTPServerConfig(listen_address=f"127.0.0.1:{free_port()}"),
        }
    )
    engine = Engine(config, flush_deadline=5.0)
    engine.start()
    try:
        wait_until(lambda: engine.snapshot().samples_in_total >= 5000)
        names = [e.name for e in engine.snapshot().endpoints]
        assert names == ["demo-v1", "demo-v2"]
        source = engine.sources[0]
    finally:
        engine.stop()
    assert not engine.running
    snap = engine.snapshot()
    appended = snap.samples_in_total
    receiver_stats = engine.demo_receiver.stats()
    for endpoint in snap.endpoints:
        # Everything appended was sent: stop flushes the queues.
        assert endpoint.samples_total == appended, endpoint.name
        assert endpoint.samples_failed == 0
        assert endpoint.pending_samples == 0
        assert endpoint.delivered_position == snap.wal_position
    assert receiver_stats.samples == 2 * appended
    assert receiver_stats.v1_requests > 0 and receiver_stats.v2_requests > 0
    assert receiver_stats.out_of_order == 0
    assert receiver_stats.series >= source.stats().series


@pytest.fixture
def receiver_engine(tmp_path: Path):
    """An engine with one v1 and one v2 endpoint to a demo receiver on its own loop."""
    engines: list[Engine] = []

    def make(**endpoint_options: object) -> tuple[Engine, DemoReceiver]:
        # The receiver runs on the engine's loop: start the engine with the demo switched on.
        config = schema.Config(
            storage=schema.StorageConfig(path=str(tmp_path / "data")),
            http=schema.HTTPServerConfig(listen_address=f"127.0.0.1:{free_port()}"),
            demo=schema.DemoConfig(enabled=True),
            external_labels={"cluster": "test"},
        )
        engine = Engine(config, flush_deadline=5.0)
        engines.append(engine)
        engine.start()
        return engine, engine.demo_receiver

    yield make
    for engine in engines:
        engine.stop()


def test_self_metrics_use_alloys_names(receiver_engine) -> None:
    engine, _ = receiver_engine()
    address = wait_until(lambda: engine.snapshot().metrics_address)
    text = httpx.get(f"http://{address}/metrics", timeout=10).text
    for name in [
        "prometheus_remote_storage_samples_total",
        "prometheus_remote_storage_samples_failed_total",
        "prometheus_remote_storage_samples_retried_total",
        "prometheus_remote_storage_samples_pending",
        "prometheus_remote_storage_exemplars_total",
        "prometheus_remote_storage_histograms_total",
        "prometheus_remote_storage_metadata_total",
        "prometheus_remote_storage_bytes_total",
        "prometheus_remote_storage_metadata_bytes_total",
        "prometheus_remote_storage_enqueue_retries_total",
        "prometheus_remote_storage_sent_batch_duration_seconds_bucket",
        "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
        "prometheus_remote_storage_shard_capacity",
        "prometheus_remote_storage_shards",
        "prometheus_remote_storage_shards_min",
        "prometheus_remote_storage_shards_max",
        "prometheus_remote_storage_shards_desired",
        "prometheus_remote_storage_max_samples_per_send",
        "prometheus_remote_storage_samples_in_total",
        "prometheus_remote_storage_highest_timestamp_in_seconds",
        "prometheus_remote_write_wal_storage_active_series",
        "prometheus_remote_write_wal_samples_appended_total",
    ]:
        assert f"\n{name}" in text, name
    assert 'remote_name="demo-v1",url="http://127.0.0.1:' in text
    assert 'prometheus_remote_storage_shards_max{remote_name="demo-v2"' in text


def test_queue_config_commands(receiver_engine) -> None:
    engine, _ = receiver_engine()
    new = engine.apply_queue_config("demo-v1", {"max_shards": 7, "min_shards": 3}).result(10)
    assert (new.max_shards, new.min_shards) == (7, 3)
    snap = wait_until(
        lambda: (lambda s: s if s.endpoint("demo-v1").shards == 3 else None)(engine.snapshot()),
        timeout=5,
    )
    assert snap.endpoint("demo-v1").queue_config["max_shards"] == 7
    with pytest.raises(EngineError, match=r"queue_config\.max_shards: must be >= min_shards"):
        engine.apply_queue_config("demo-v1", {"max_shards": 2}).result(10)
    with pytest.raises(EngineError, match="unknown queue_config field"):
        engine.apply_queue_config("demo-v1", {"max_shard": 2}).result(10)
    with pytest.raises(EngineError, match="no endpoint named"):
        engine.pause("nope").result(10)
    with pytest.raises(EngineError, match="no config file"):
        engine.apply_queue_config("demo-v1", {"max_shards": 8}, save=True).result(10)
    engine.pause("demo-v2").result(10)
    wait_until(lambda: engine.snapshot().endpoint("demo-v2").status == "paused", timeout=5)
    engine.resume("demo-v2").result(10)
    wait_until(lambda: engine.snapshot().endpoint("demo-v2").status == "healthy", timeout=5)


def test_exemplars_histograms_and_metadata_reach_the_wire(receiver_engine) -> None:
    engine, receiver = receiver_engine()
    now = int(time.time() * 1000)
    counter = make_labels({"__name__": "req_total", "job": "model"})
    hist = make_labels({"__name__": "latency_seconds", "job": "model"})
    histogram = Histogram(
        schema=1,
        zero_threshold=0.001,
        zero_count=1,
        count=6,
        sum=12.5,
        positive_spans=((0, 2), (1, 1)),
        positive_buckets=(2, 1, -1),
        negative_spans=((-1, 1),),
        negative_buckets=(1,),
    )

    async def write() -> None:
        appender = engine.appender
        ref_c, ref_h = appender.series_refs([counter, hist])
        appender.append_metadata(
            [
                MetricMetadata(ref_c, MetricType.COUNTER, "", "Requests."),
                MetricMetadata(ref_h, MetricType.HISTOGRAM, "seconds", "Latency."),
            ]
        )
        appender.append_samples([ref_c], now, [5.0])
        appender.append_exemplars([Exemplar(ref_c, now, 1.0, make_labels({"trace_id": "abc"}))])
        appender.append_histograms([HistogramSample(ref_h, now, histogram)])
        appender.commit()

    engine.submit(write).result(10)
    stats = wait_until(
        lambda: (lambda s: s if s.samples >= 2 and s.exemplars >= 2 else None)(receiver.stats())
    )
    # send_native_histograms is off by default: histograms are dropped and counted.
    assert stats.histograms == 0
    text = engine.registry.expose()
    assert 'prometheus_remote_storage_histograms_dropped_total{remote_name="demo-v1"' in text
    for endpoint in engine.snapshot().endpoints:
        assert endpoint.exemplars_total == 1
    series = receiver.series()
    key = make_labels({"__name__": "req_total", "job": "model", "cluster": "test"})
    assert series[key].samples == 2  # once per endpoint
    assert series[key].exemplars == 2
    assert series[key].last_value == 5.0


def test_native_histograms_when_enabled(tmp_path: Path) -> None:
    receiver_port = free_port()
    engine_holder: list[Engine] = []
    config = schema.Config(
        storage=schema.StorageConfig(path=str(tmp_path / "data")),
        http=schema.HTTPServerConfig(listen_address=f"127.0.0.1:{free_port()}"),
        demo=schema.DemoConfig(enabled=True),
    )
    engine = Engine(config, flush_deadline=5.0)
    engine_holder.append(engine)
    del receiver_port
    engine.start()
    try:
        receiver = engine.demo_receiver
        url = receiver.url
        # A second engine on its own data dir sends to the first one's receiver.
        second = Engine(
            schema.Config(
                storage=schema.StorageConfig(path=str(tmp_path / "second")),
                endpoint=[
                    schema.EndpointConfig(
                        url=url,
                        name="v1",
                        send_native_histograms=True,
                        write_relabel_config=[
                            schema.RelabelConfig(target_label="via", replacement="v1")
                        ],
                        queue_config=schema.QueueConfig(batch_send_deadline=0.1),
                    ),
                    schema.EndpointConfig(
                        url=url,
                        name="v2",
                        send_native_histograms=True,
                        write_relabel_config=[
                            schema.RelabelConfig(target_label="via", replacement="v2")
                        ],
                        protobuf_message=schema.PROTOBUF_V2,
                        queue_config=schema.QueueConfig(batch_send_deadline=0.1),
                    ),
                ],
            ),
            serve_metrics=False,
        )
        second.start()
        try:
            labels = make_labels({"__name__": "lat", "job": "h"})
            now = int(time.time() * 1000)

            async def write() -> None:
                appender = second.appender
                (ref,) = appender.series_refs([labels])
                appender.append_histograms(
                    [
                        HistogramSample(
                            ref,
                            now + i,
                            Histogram(
                                schema=0,
                                zero_threshold=0.0,
                                zero_count=0,
                                count=3 + i,
                                sum=1.5,
                                positive_spans=((0, 1),),
                                positive_buckets=(3 + i,),
                            ),
                        )
                        for i in range(3)
                    ]
                )
                appender.commit()

            second.submit(write).result(10)
            wait_until(lambda: receiver.stats().histograms >= 6)
            series = receiver.series()
            for via in ("v1", "v2"):
                key = make_labels({**dict(labels), "via": via})
                assert series[key].histograms == 3
            assert receiver.stats().out_of_order == 0
        finally:
            second.stop()
    finally:
        engine.stop()


def test_metadata_v1_sender(tmp_path: Path) -> None:
    from rwconsole.remote.metadata import MetadataSender, families

    labels_h = make_labels({"__name__": "lat_bucket", "le": "1"})
    labels_c = make_labels({"__name__": "reqs_total"})
    entries = [
        (labels_h, MetricMetadata(1, MetricType.HISTOGRAM, "seconds", "Latency.")),
        (
            make_labels({"__name__": "lat_sum"}),
            MetricMetadata(2, MetricType.HISTOGRAM, "seconds", "Latency."),
        ),
        (labels_c, MetricMetadata(3, MetricType.COUNTER, "", "Requests.")),
    ]
    assert [name for name, _ in families(entries)] == ["lat", "reqs_total"]

    import asyncio

    from rwconsole.metrics import Registry
    from rwconsole.remote.client import RemoteWriteClient
    from rwconsole.remote.queue_metrics import QueueMetrics

    async def body() -> None:
        receiver = DemoReceiver("127.0.0.1:0")
        await receiver.start()
        registry = Registry()
        metrics = QueueMetrics(registry, "m", receiver.url)
        client = RemoteWriteClient(schema.EndpointConfig(url=receiver.url), user_agent="t")
        try:
            sender = MetadataSender(
                name="m",
                client=client,
                metrics=metrics,
                entries=lambda: entries,
                send_interval=60,
                max_per_send=1,
                min_backoff=0.01,
                max_backoff=0.02,
                retry_on_http_429=True,
            )
            assert await sender.send_once() == 2
            assert receiver.stats().metadata == 2
            assert metrics.sent["metadata"].value == 2
            assert metrics.metadata_bytes_total.value > 0
            receiver.set_fault("bad_request")
            assert await sender.send_once() == 0
            assert metrics.failed["metadata"].value == 2
        finally:
            await client.aclose()
            await receiver.stop()

    asyncio.run(body())


def test_truncation_keeps_what_a_stalled_endpoint_needs(tmp_path: Path) -> None:
    """A paused endpoint holds truncation back; max_keepalive_time forces it and counts the loss."""
    config = schema.Config(
        storage=schema.StorageConfig(path=str(tmp_path / "data")),
        http=schema.HTTPServerConfig(listen_address=f"127.0.0.1:{free_port()}"),
        demo=schema.DemoConfig(enabled=True),
        wal=schema.WALConfig(
            segment_size=65536,
            compression=False,
            truncate_frequency=3600.0,
            min_keepalive_time=0.001,
            max_keepalive_time=28800.0,
            # The paused queue must stop taking chunks: with a spool it would park them
            # all, and a truncation would find nothing lost.
            spool_max_size=0,
        ),
    )
    engine = Engine(config, flush_deadline=2.0)
    engine.start()
    try:
        engine.pause("demo-v2").result(10)
        labels = [make_labels({"__name__": "t", "i": str(i)}) for i in range(200)]
        old = int(time.time() * 1000) - 4 * 3600 * 1000

        async def write(start: int, rounds: int) -> None:
            appender = engine.appender
            refs = appender.series_refs(labels)
            for r in range(rounds):
                appender.append_samples(refs, start + r * 1000, [r * 0.37] * len(refs))
                appender.commit()

        engine.submit(lambda: write(old, 200)).result(30)
        wait_until(lambda: engine.snapshot().endpoint("demo-v1").samples_total >= 40000)
        assert len(engine.wal.segments_info()) >= 4
        first_segment = min(i.index for i in engine.wal.segments_info())

        async def truncate(now: float):
            return engine.truncate_wal(now=now)

        # demo-v2 delivered nothing: its segments stay.
        engine.submit(lambda: truncate(time.time())).result(30)
        assert min(i.index for i in engine.wal.segments_info()) == first_segment
        v2 = engine.endpoints[1].queue
        assert v2.metrics.total_dropped("samples") == 0
        # The paused queue stops taking chunks: at a commit a second later its follower
        # gives its memory buffer up and keeps only what the queue took.
        follower = engine.endpoints[1].follower
        rounds, fallbacks = 200, follower.fallbacks
        for _ in range(100):
            if follower.fallbacks > fallbacks:
                break
            time.sleep(0.1)
            engine.submit(lambda r=rounds: write(old + r * 1000, 1)).result(30)
            rounds += 1
        assert follower.fallbacks > fallbacks
        total = rounds * len(labels)
        wait_until(lambda: engine.snapshot().endpoint("demo-v1").samples_total >= total)
        # Eight hours later the data is past max_keepalive_time: truncated and counted.
        report = engine.submit(lambda: truncate(time.time() + 8 * 3600)).result(30)
        assert report.folded_segments
        remaining = min(i.index for i in engine.wal.segments_info())
        assert remaining > first_segment
        lost = engine.registry.value(
            "prometheus_remote_storage_samples_dropped_total",
            remote_name="demo-v2",
            url=v2.url,
            reason="wal_truncated_max_keepalive",
        )
        # Independent count: what is left in the segments equals what was not lost.
        from rwconsole.wal.records import count_samples
        from rwconsole.wal.segment import iter_segment, segment_name

        left = 0
        for info in engine.wal.segments_info():
            path = Path(engine.wal_dir) / segment_name(info.index)
            left += sum(count_samples(r.data) for r in iter_segment(path, info.index))
        assert lost > 0
        # What the paused queue holds in memory is not lost: it goes out on resume.
        held = total - left - lost
        assert held >= 0
        assert engine.endpoints[0].queue.metrics.total_dropped("samples") == 0
        engine.resume("demo-v2").result(10)
        wait_until(lambda: engine.snapshot().endpoint("demo-v2").samples_accepted >= left + held)
        accepted = engine.snapshot().endpoint("demo-v2").samples_accepted
        assert accepted + lost == total, (accepted, lost, left, held)
        # demo-v1 had delivered everything: it lost nothing.
        assert engine.endpoints[0].queue.metrics.total_dropped("samples") == 0
    finally:
        engine.stop()


def test_scrape_target_back_after_its_series_were_collected(tmp_path: Path) -> None:
    """Truncation collects a down target's series; when it comes back it gets new refs."""
    import http.server
    import threading

    state = {"up": True, "value": 1.0}

    class Target(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not state["up"]:
                self.send_error(503)
                return
            body = f'comeback_metric{{k="a"}} {state["value"]}\ncomeback_other 7\n'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = schema.Config(
        storage=schema.StorageConfig(path=str(tmp_path / "data")),
        http=schema.HTTPServerConfig(listen_address=f"127.0.0.1:{free_port()}"),
        demo=schema.DemoConfig(enabled=True),
        scrape=[
            schema.ScrapeConfig(
                job_name="comeback",
                targets=[f"127.0.0.1:{server.server_address[1]}"],
                scrape_interval=0.2,
                scrape_timeout=0.2,
            )
        ],
        wal=schema.WALConfig(truncate_frequency=3600.0, min_keepalive_time=0.001),
    )
    engine = Engine(config, flush_deadline=2.0)
    engine.start()

    def last_value() -> float | None:
        for labels, stats in engine.demo_receiver.series().items():
            if ("__name__", "comeback_metric") in labels:
                return stats.last_value
        return None

    try:
        wait_until(lambda: last_value() == 1.0)
        state["up"] = False
        down = time.time()
        # Failed scrapes end the series with staleness markers; truncation collects them
        # once every endpoint has sent past them (the watermark is in whole seconds).
        wait_until(
            lambda: all(
                e.queue.metrics.queue_highest_sent.value > down + 1 for e in engine.endpoints
            ),
            timeout=20,
        )

        async def truncate():
            return engine.truncate_wal(now=time.time())

        report = engine.submit(truncate).result(30)
        assert report.collected_refs, "the down target's series were collected"
        state.update(up=True, value=2.0)
        wait_until(lambda: last_value() == 2.0, timeout=15)
        targets = engine.sources[-1].targets()
        assert targets[0].health == "up", targets[0]
    finally:
        engine.stop()
        server.shutdown()
        server.server_close()


def test_long_lived_objects_are_frozen_while_running_and_released_at_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    import rwconsole.engine as engine_module

    monkeypatch.setattr(engine_module, "GC_FIRST_FREEZE", 0.2)
    config = demo_config(tmp_path)
    config = schema.Config(
        **{
            **config.__dict__,
            "http": schema.HTTPServerConfig(listen_address=f"127.0.0.1:{free_port()}"),
        }
    )
    engine = Engine(config, flush_deadline=2.0)
    engine.start()
    try:
        wait_until(lambda: gc.get_freeze_count() > 0, timeout=10)
    finally:
        engine.stop()
    assert gc.get_freeze_count() == 0
