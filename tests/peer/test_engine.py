"""PeerEngine against a metrics page served on loopback: snapshots, refusals, bad peers."""

from __future__ import annotations

import pytest

from rwconsole.peer import PeerEngine, PeerError, ReadOnlyError
from tests.conftest import free_port, wait_until
from tests.peer.conftest import Page
from tests.peer.exposition import Queue, page


def test_the_snapshot_shows_the_peers_queues(engine: PeerEngine, metrics_page: Page) -> None:
    snap = engine.snapshot()
    assert snap.read_only and snap.running
    (endpoint,) = snap.endpoints
    assert (endpoint.name, endpoint.shards, endpoint.shards_desired) == ("recv", 4, 3.5)
    metrics_page.body = page(Queue("recv", shards=6, desired=5.0))
    wait_until(lambda: engine.snapshot().endpoints[0].shards == 6, timeout=10)
    assert engine.snapshot().endpoints[0].history  # built up since attach


def test_every_command_is_refused_with_what_to_do(engine: PeerEngine) -> None:
    future = engine.apply_queue_config("recv", {"max_shards": 12, "min_backoff": 0.05})
    error = future.exception(timeout=1)
    assert isinstance(error, ReadOnlyError)
    assert str(error) == (
        f"read-only: Prometheus agent at {engine.url} is not operated by rwconsole; copy this "
        "into its config: remote_write (name: recv) queue_config: "
        "{max_shards: 12, min_backoff: 50ms}"
    )
    for refused in (engine.pause("recv"), engine.resume("recv"), engine.set_fault("down")):
        assert isinstance(refused.exception(timeout=1), ReadOnlyError)
        assert "read-only" in str(refused.exception())


def test_alloy_gets_its_own_syntax(metrics_page: Page) -> None:
    metrics_page.body = page(Queue("default"), agent=False) + b"alloy_build_info 1\n"
    peer = PeerEngine(metrics_page.url, interval=0.05)
    peer.start()
    try:
        error = peer.apply_queue_config("default", {"max_shards": 80}).exception(timeout=1)
        assert "queue_config { max_shards = 80 }" in str(error)
        assert "Alloy at" in str(error)
    finally:
        peer.stop()


def test_an_unreachable_peer_cannot_be_attached() -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    peer = PeerEngine(url, timeout=2)
    with pytest.raises(PeerError, match=f"cannot read {url}"):
        peer.start()
    assert not peer.running


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (404, b"not found\n", "HTTP 404"),
        (200, b"<html>\n<body>hello</body>\n", "not a Prometheus metrics page: line 1"),
    ],
)
def test_a_page_that_is_not_metrics_is_named(
    metrics_page: Page, status: int, body: bytes, message: str
) -> None:
    metrics_page.status, metrics_page.body = status, body
    peer = PeerEngine(metrics_page.url)
    with pytest.raises(PeerError, match=message):
        peer.start()


def test_a_peer_that_goes_away_shows_its_error_and_comes_back(
    engine: PeerEngine, metrics_page: Page
) -> None:
    metrics_page.status = 503
    wait_until(lambda: engine.snapshot().endpoints[0].status == "no data", timeout=10)
    assert "HTTP 503" in engine.snapshot().endpoints[0].last_error
    assert engine.running
    metrics_page.status = 200
    wait_until(lambda: engine.snapshot().endpoints[0].status != "no data", timeout=10)


@pytest.mark.parametrize("url", ["http://[::1/metrics", "http://127.0.0.1:99999/metrics"])
def test_a_malformed_url_is_named(url: str) -> None:
    with pytest.raises(PeerError, match="not a valid URL"):
        PeerEngine(url).start()
