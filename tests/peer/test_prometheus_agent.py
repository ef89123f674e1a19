"""A real Prometheus 2.42 agent, attached read-only through its metrics page."""

from __future__ import annotations

from pathlib import Path

import pytest

from rwconsole.peer import PeerEngine, ReadOnlyError
from rwconsole.snapshot import EndpointSnapshot
from tests.conftest import ProcessManager, wait_until
from tests.peer.conftest import Agent, running_agent

pytestmark = [pytest.mark.peer, pytest.mark.slow]


def test_the_agents_queue_is_shown_with_its_shards_and_lag(prometheus_agent: Agent) -> None:
    engine = PeerEngine(prometheus_agent.metrics_url, wal_dir=str(prometheus_agent.storage))
    engine.start()
    try:

        def sending() -> bool:
            endpoint = engine.snapshot().endpoint("recv")
            return bool(endpoint and endpoint.samples_total > 0 and len(endpoint.history) >= 3)

        wait_until(sending, timeout=60)
        snap = engine.snapshot()
        assert snap.source_kind == f"Prometheus agent at {prometheus_agent.metrics_url}"
        endpoint = snap.endpoint("recv")
        assert endpoint is not None
        assert endpoint.url.endswith("/api/v1/write")
        assert endpoint.shards == 2  # min_shards, and the receiver keeps up
        assert endpoint.queue_config["min_shards"] == 2
        assert endpoint.queue_config["max_shards"] == 7
        assert endpoint.queue_config["max_samples_per_send"] > 0
        # Lag: highest timestamp in - highest sent, both whole seconds; the batch
        # deadline is 1s and it scrapes every second.
        assert 0 <= endpoint.lag_seconds < 30
        assert snap.samples_in_per_second > 0
        wait_until(
            lambda: any(
                p.samples_out_per_second > 0 for p in engine.snapshot().endpoints[0].history
            ),
            timeout=30,
        )
        refused = engine.apply_queue_config("recv", {"max_shards": 50}).exception(timeout=1)
        assert isinstance(refused, ReadOnlyError)
        assert "remote_write (name: recv) queue_config: {max_shards: 50}" in str(refused)
    finally:
        engine.stop()


def test_an_agent_retrying_against_a_failing_receiver_shows_retries_and_lag(
    processes: ProcessManager, tmp_path: Path
) -> None:
    with running_agent(processes, tmp_path, "--fault", "error_5xx") as agent:
        engine = PeerEngine(agent.metrics_url)
        engine.start()
        try:

            def retrying() -> EndpointSnapshot | None:
                endpoint = engine.snapshot().endpoint("recv")
                if endpoint and endpoint.status == "retrying" and endpoint.lag_seconds >= 3:
                    return endpoint
                return None

            endpoint = wait_until(retrying, timeout=60)
            assert endpoint.samples_retried > 0
            assert any(p.retried_per_second > 0 for p in endpoint.history)
            assert endpoint.pending_samples > 0
        finally:
            engine.stop()
