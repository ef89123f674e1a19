"""A peer's metrics page read into queues, and the console's view of them over time."""

from __future__ import annotations

import pytest

from rwconsole.peer.readings import read
from rwconsole.peer.view import PeerView
from rwconsole.sources.textparse import ParseError
from tests.peer.exposition import Queue, page

T0 = 1_800_000_000.0


def test_queues_are_read_by_remote_name_and_url() -> None:
    reading = read(page(Queue("a", shards=3), Queue("b", url="http://other/write"), samples_in=42))
    assert reading.kind == "Prometheus agent"
    assert reading.samples_in == 42
    assert sorted(q.remote_name for q in reading.queues.values()) == ["a", "b"]
    a = next(q for q in reading.queues.values() if q.remote_name == "a")
    assert a.values["shards"] == 3
    assert a.watcher_segment == 3
    assert "sent_batch_duration_seconds_bucket" not in a.values


def test_drops_split_by_reason_are_summed() -> None:
    (queue,) = read(page(Queue(dropped=10))).queues.values()
    assert queue.values["samples_dropped_total"] == 10


def test_the_kind_of_peer_comes_from_its_families() -> None:
    assert read(page(Queue(), agent=False)).kind == "forwarder"
    alloy = page(Queue(), agent=False) + b'alloy_build_info{version="v1.5.0"} 1\n'
    assert read(alloy).kind == "Alloy"


def test_a_page_that_is_not_metrics_names_its_line() -> None:
    with pytest.raises(ParseError, match="line 2"):
        read(b"# fine\n<html>\n")


def test_rates_lag_and_latency_come_from_the_deltas_between_polls() -> None:
    view = PeerView("http://127.0.0.1:9090/metrics", "/wal")
    before = Queue(samples=1000, retried=100, sent_seconds=1.0, sends=10, highest_sent=T0 - 20)
    after = Queue(
        samples=1600, retried=300, failed=50, sent_seconds=1.5, sends=20, highest_sent=T0 - 5
    )
    view.update(read(page(before, samples_in=5000, highest_in=T0 - 10)), T0)
    assert view.snapshot(T0).endpoints[0].history == ()  # no rate from one poll
    view.update(read(page(after, samples_in=5500, highest_in=T0 - 2)), T0 + 2)
    snap = view.snapshot(T0 + 2)
    assert (
        snap.read_only and snap.source_kind == "Prometheus agent at http://127.0.0.1:9090/metrics"
    )
    assert snap.wal_dir == "/wal"
    assert snap.samples_in_per_second == 250
    (endpoint,) = snap.endpoints
    point = endpoint.history[-1]
    assert point.retried_per_second == 100
    assert point.failed_per_second == 25
    # samples_total counts every attempt: out = attempts - retried - failed
    assert point.samples_out_per_second == (600 - 200 - 50) / 2
    assert point.send_latency_seconds == pytest.approx(0.05)
    assert point.lag_seconds == 3  # highest in - highest sent
    assert (point.shards, point.shards_desired, point.shards_min, point.shards_max) == (
        2,
        1.5,
        1,
        7,
    )
    assert endpoint.queue_config == {
        "min_shards": 1,
        "max_shards": 7,
        "capacity": 2500,
        "max_samples_per_send": 500,
    }
    assert endpoint.status == "failing"
    assert endpoint.lag_seconds == 3


def test_a_restarted_peer_counts_from_zero() -> None:
    view = PeerView("http://peer/metrics")
    view.update(read(page(Queue(samples=10_000), samples_in=10_000)), T0)
    view.update(read(page(Queue(samples=300), samples_in=400)), T0 + 1)
    snap = view.snapshot(T0 + 1)
    assert snap.samples_in_per_second == 400
    assert snap.endpoints[0].history[-1].samples_out_per_second == 300


def test_retries_mark_the_queue_retrying_for_a_while() -> None:
    view = PeerView("http://peer/metrics")
    view.update(read(page(Queue())), T0)
    view.update(read(page(Queue(retried=500, samples=500))), T0 + 1)
    for second in range(2, 8):
        view.update(read(page(Queue(retried=500, samples=500))), T0 + second)
    assert view.snapshot(T0 + 7).endpoints[0].status == "retrying"
    for second in range(8, 20):
        view.update(read(page(Queue(retried=500, samples=500))), T0 + second)
    assert view.snapshot(T0 + 19).endpoints[0].status == "healthy"


def test_history_keeps_the_last_hour() -> None:
    view = PeerView("http://peer/metrics", history_seconds=10)
    for second in range(30):
        view.update(read(page(Queue(samples=second * 10))), T0 + second)
    history = view.snapshot(T0 + 29).endpoints[0].history
    assert history[0].time == T0 + 19 and history[-1].time == T0 + 29


def test_a_failed_poll_is_each_queues_error_until_the_next_reading() -> None:
    view = PeerView("http://user:hunter2@peer/metrics")
    view.update(read(page(Queue())), T0)
    view.failed(T0 + 1, "connection refused")
    snap = view.snapshot(T0 + 1)
    assert "hunter2" not in snap.source_kind
    (endpoint,) = snap.endpoints
    assert endpoint.status == "no data" and endpoint.last_error == "connection refused"
    assert any("connection refused" in entry.message for entry in snap.logs)
    view.update(read(page(Queue())), T0 + 2)
    assert view.snapshot(T0 + 2).endpoints[0].last_error == ""


def test_queues_that_come_and_go_are_logged() -> None:
    view = PeerView("http://peer/metrics")
    view.update(read(page(Queue("a"), Queue("b"))), T0)
    view.update(read(page(Queue("a"))), T0 + 1)
    snap = view.snapshot(T0 + 1)
    assert [e.name for e in snap.endpoints] == ["a"]
    assert [entry.message for entry in snap.logs][-1] == "remote-write queue b is gone"


def test_queues_sharing_a_name_are_told_apart_by_their_other_labels() -> None:
    body = "\n".join(
        Queue("default").lines(',component_id="prometheus.remote_write.one"')
        + Queue("default").lines(',component_id="prometheus.remote_write.two"')
    )
    view = PeerView("http://alloy/metrics")
    view.update(read(body.encode() + b"\n"), T0)
    names = [e.name for e in view.snapshot(T0).endpoints]
    assert names == [
        "default (component_id=prometheus.remote_write.one)",
        "default (component_id=prometheus.remote_write.two)",
    ]


def test_endpoint_urls_lose_their_password() -> None:
    view = PeerView("http://peer/metrics")
    view.update(read(page(Queue(url="https://u:s3cret@receiver/write"))), T0)
    (endpoint,) = view.snapshot(T0).endpoints
    assert "s3cret" not in endpoint.url and "s3cret" not in endpoint.name


def test_a_queue_that_never_sent_lags_at_least_since_it_was_first_seen_waiting() -> None:
    view = PeerView("http://peer/metrics")
    view.update(read(page(Queue(pending=0), highest_in=T0 - 100)), T0)
    view.update(read(page(Queue(pending=500), highest_in=T0 - 30)), T0 + 1)
    view.update(read(page(Queue(pending=900), highest_in=T0 - 18)), T0 + 2)
    assert view.snapshot(T0 + 2).endpoints[0].lag_seconds == 12
    view.update(read(page(Queue(pending=0, highest_sent=T0 - 1), highest_in=T0)), T0 + 3)
    assert view.snapshot(T0 + 3).endpoints[0].lag_seconds == 1
