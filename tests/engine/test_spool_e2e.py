"""The spool end to end: an outage is read and encoded ahead, then drained, with a clean
restart in the middle or without one, and every sample arrives exactly once.

A demo receiver in its own thread counts every sample it is sent, duplicates
included; the WAL on disk says how many samples there were.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import wait_until
from test_restart_delivery import ThreadReceiver, settled, wal_samples

from rwconsole.config import schema
from rwconsole.engine import Engine


def _config(data: Path, url: str, *, synthetic: bool) -> schema.Config:
    return schema.Config(
        endpoint=[
            schema.EndpointConfig(
                url=url,
                queue_config=schema.QueueConfig(
                    batch_send_deadline=0.2,
                    max_shards=4,
                    capacity=1000,
                    max_samples_per_send=500,
                    min_backoff=0.05,
                    max_backoff=0.2,
                ),
            )
        ],
        storage=schema.StorageConfig(path=str(data)),
        synthetic=schema.SyntheticConfig(series=2000, metrics=10, interval=0.1)
        if synthetic
        else None,
    )


def _spooled(engine: Engine) -> tuple[float, float]:
    return (
        engine.registry.total("rwconsole_remote_spool_batches"),
        engine.registry.total("rwconsole_remote_spool_bytes"),
    )


def _switch(receiver: ThreadReceiver, up: bool) -> None:
    step = receiver.receiver.up() if up else receiver.receiver.down()
    asyncio.run_coroutine_threadsafe(step, receiver.loop).result(10)


@pytest.mark.parametrize("restart_during_outage", [False, True])
def test_an_outage_drains_from_the_spool_and_nothing_arrives_twice(
    tmp_path: Path, restart_during_outage: bool
) -> None:
    receiver = ThreadReceiver()
    url = receiver.receiver.url
    data = tmp_path / "data"
    try:
        engine = Engine(_config(data, url, synthetic=True), serve_metrics=False)
        engine.start()
        try:
            wait_until(lambda: receiver.samples > 20_000, timeout=60)
            _switch(receiver, up=False)
            wait_until(lambda: _spooled(engine)[0] >= 40, timeout=60)
            if not restart_during_outage:
                _switch(receiver, up=True)
                wait_until(lambda: _spooled(engine) == (0, 0), timeout=60)
                assert receiver.samples > 40 * 500
        finally:
            engine.stop()
        assert list((data / "spool").glob("*.spool")) == []
        if restart_during_outage:
            _switch(receiver, up=True)
        stale = data / "spool" / "queue-7.spool"  # as a kill -9 would leave one
        stale.write_bytes(b"\0" * 4096)
        engine = Engine(_config(data, url, synthetic=False), serve_metrics=False)
        engine.start()
        try:
            assert not stale.exists()
            in_wal = wal_samples(data / "wal")
            received = settled(lambda: receiver.samples, in_wal)
        finally:
            engine.stop()
        assert received == in_wal, f"{received - in_wal} samples sent twice (or lost if < 0)"
    finally:
        receiver.close()
