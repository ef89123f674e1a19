"""Certificate rotation on running engines: no restart, no lost sample; reloads that rebuild.

A forwarding engine takes remote-write pushes on a plain receiver and sends them
over TLS to a relay engine's TLS receiver. The CA the forwarder trusts is
replaced by a new CA, and the relay's certificate by one the new CA signed
(a symlinked directory switched, as in a Kubernetes secret volume); the
samples pushed around the rotation are counted at the relay. Reload tests use
one engine and a config file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import snappy
from conftest import free_port, wait_until
from http_helpers import Pki, point_link, replace_file, server_file_versions
from text_targets import text_targets

from rwconsole.config import schema
from rwconsole.config.load import load_config
from rwconsole.engine import Engine
from rwconsole.protocol.proto import remote_v1_pb2
from rwconsole.sources.receiver import RemoteWriteReceiver

pytestmark = pytest.mark.timeout(120)
SERIES = 50
RECEIVED = "rwconsole_receiver_received_total"
RETRIED = "prometheus_remote_storage_samples_retried_total"


@contextlib.contextmanager
def running(config: schema.Config) -> Iterator[Engine]:
    engine = Engine(config, serve_metrics=False, serve_admin=False, flush_deadline=2.0)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


def push(port: int, timestamp: int) -> None:
    """One sample for each of SERIES series at ``timestamp``, into a plain receiver."""
    request = remote_v1_pb2.WriteRequest()
    for index in range(SERIES):
        series = request.timeseries.add()
        series.labels.add(name="__name__", value="rotation_test")
        series.labels.add(name="series", value=str(index))
        series.samples.add(value=float(timestamp), timestamp=timestamp)
    response = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/write",
        content=snappy.compress(request.SerializeToString()),
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"},
        timeout=10,
    )
    assert response.status_code == 204, response.text


def received(relay: Engine) -> float:
    return relay.registry.value(RECEIVED, kind="samples")


def drop_connections(relay: Engine) -> None:
    """The relay drops its open connections (as a load balancer or an idle timeout does);
    its TLS settings stay the objects they were."""
    receiver = next(s for s in relay.sources if isinstance(s, RemoteWriteReceiver))
    server = receiver._server

    async def bounce() -> None:
        await server.close_listener(drop_connections=True)
        await server.open_listener()

    relay.submit(bounce).result(10)


def test_sends_go_on_through_a_ca_rotation_without_a_restart_or_a_lost_sample(
    pki_pair: tuple[Pki, Pki], tmp_path: Path, look_every_time: None
) -> None:
    old, new = pki_pair
    live, versions = server_file_versions(tmp_path, old, new)
    trusted = tmp_path / "forwarder-ca.pem"
    trusted.write_text(old.ca_pem)

    relay_port, input_port = free_port(), free_port()
    relay_config = schema.Config(
        receiver=schema.ReceiverConfig(
            listen_address=f"127.0.0.1:{relay_port}",
            tls_config=schema.ReceiverTLSConfig(
                cert_file=str(live / "tls.crt"), key_file=str(live / "tls.key")
            ),
        ),
        storage=schema.StorageConfig(path=str(tmp_path / "relay")),
    )
    forwarder_config = schema.Config(
        receiver=schema.ReceiverConfig(listen_address=f"127.0.0.1:{input_port}"),
        endpoint=[
            schema.EndpointConfig(
                url=f"https://127.0.0.1:{relay_port}/api/v1/write",
                name="relay",
                tls_config=schema.TLSConfig(ca_file=str(trusted)),
                queue_config=schema.QueueConfig(
                    batch_send_deadline=0.05, min_backoff=0.05, max_backoff=0.5
                ),
            )
        ],
        storage=schema.StorageConfig(path=str(tmp_path / "forwarder")),
    )
    with running(relay_config) as relay, running(forwarder_config) as forwarder:
        for step in range(3):
            push(input_port, 1_000 + step)
        wait_until(lambda: received(relay) == 3 * SERIES)

        # The forwarder trusts the new CA only; the relay still shows the old certificate.
        replace_file(trusted, new.ca_pem)
        drop_connections(relay)
        for step in range(3, 6):
            push(input_port, 1_000 + step)
        wait_until(lambda: forwarder.registry.total(RETRIED) > 0)
        assert received(relay) == 3 * SERIES  # nothing got through the old certificate
        # The relay switches to the certificate the new CA signed; the retries get through.
        point_link(live, versions[1])
        wait_until(lambda: received(relay) == 6 * SERIES)
        for step in range(6, 9):
            push(input_port, 1_000 + step)
        wait_until(lambda: received(relay) == 9 * SERIES)
        registry = forwarder.registry
        failed = registry.total("prometheus_remote_storage_samples_failed_total")
        dropped = registry.total("prometheus_remote_storage_samples_dropped_total")
        exposed = registry.expose()
    assert (failed, dropped) == (0, 0)
    assert f'rwconsole_tls_reloads_total{{file="{trusted}"}} 1' in exposed
    assert f'rwconsole_tls_reloads_total{{file="{live / "tls.crt"}"}} 1' in exposed
    assert f'rwconsole_tls_reload_failures_total{{file="{trusted}"}}' not in exposed


def _job_targets(engine: Engine, job: str) -> list[tuple[str, str]]:
    return [(t.health, t.last_error) for t in engine.snapshot().targets if t.job == job]


def test_reload_builds_a_scrape_job_whose_tls_file_was_missing_and_reports_rotated_files(
    pki_pair: tuple[Pki, Pki], tmp_path: Path
) -> None:
    old = pki_pair[0]
    ca = tmp_path / "scrape-ca.pem"  # not there yet (the secret is mounted late)
    trusted = tmp_path / "endpoint-ca.pem"
    trusted.write_text(old.ca_pem)
    config_path = tmp_path / "rwconsole.toml"
    with text_targets(1, lambda path: b"rotation_target 1\n") as (address,):
        _reload_a_job_with_a_late_file(pki_pair, tmp_path, config_path, address, ca, trusted)


def _reload_a_job_with_a_late_file(
    pki_pair: tuple[Pki, Pki],
    tmp_path: Path,
    config_path: Path,
    address: str,
    ca: Path,
    trusted: Path,
) -> None:
    old, new = pki_pair
    config_path.write_text(
        f"""
[storage]
path = "{tmp_path / "data"}"

[[scrape]]
job_name = "late"
scrape_interval = "100ms"
scrape_timeout = "100ms"
targets = ["{address}"]

[scrape.tls_config]
ca_file = "{ca}"

[[endpoint]]
name = "tls"
url = "https://127.0.0.1:{free_port()}/api/v1/write"

[endpoint.tls_config]
ca_file = "{trusted}"
"""
    )
    engine = Engine(
        load_config(config_path), config_path=config_path, serve_metrics=False, serve_admin=False
    )
    engine.start()
    try:
        broken = wait_until(lambda: _job_targets(engine, "late"))
        assert broken[0][0] == "down" and "ca_file" in broken[0][1]

        # Still missing: the job is built again and still fails; the report says so.
        report = engine.reload().result(30)
        assert report.ok
        assert any("scrape job late built again, still failing" in c for c in report.changes)

        ca.write_text(old.ca_pem)
        replace_file(trusted, new.ca_pem)  # rotated under an unchanged config
        report = engine.reload().result(30)
        assert report.ok, report.summary()
        assert "scrape job late built again after failing (running now)" in report.changes
        assert any(str(trusted) in c and "reloaded" in c for c in report.changes)
        wait_until(lambda: _job_targets(engine, "late") == [("up", "")])

        # A file that does not load is reported by the reload; the previous one stays.
        trusted.write_text("-----BEGIN CERTIFICATE-----\nMIIB")
        report = engine.reload().result(30)
        assert report.ok
        assert any(str(trusted) in c and "previous ones stay in use" in c for c in report.changes)
    finally:
        engine.stop()


def test_a_receiver_restarted_by_a_reload_keeps_its_tls(
    pki_pair: tuple[Pki, Pki], tmp_path: Path
) -> None:
    old = pki_pair[0]
    tls_config = schema.ReceiverTLSConfig(
        cert_file=old.server_cert_file, key_file=old.server_key_file
    )
    first, second = free_port(), free_port()
    config = schema.Config(
        receiver=schema.ReceiverConfig(listen_address=f"127.0.0.1:{first}", tls_config=tls_config),
        storage=schema.StorageConfig(path=str(tmp_path / "data")),
    )
    with running(config) as engine:
        moved = schema.Config(
            receiver=schema.ReceiverConfig(
                listen_address=f"127.0.0.1:{second}", tls_config=tls_config
            ),
            storage=config.storage,
        )
        report = engine.reload(moved).result(30)
        assert report.ok and "receiver restarted" in report.changes
        receiver = next(s for s in engine.sources if isinstance(s, RemoteWriteReceiver))
        assert receiver.url.startswith("https://") and receiver.port == second
        response = httpx.post(receiver.url, content=b"", verify=_trust(old), timeout=10)
        assert response.status_code in (204, 400)  # answered over TLS
        # Settings that cannot work fail the reload; the running receiver stays.
        broken = schema.Config(
            receiver=schema.ReceiverConfig(
                listen_address=f"127.0.0.1:{first}",
                tls_config=schema.ReceiverTLSConfig(cert_file=str(tmp_path / "missing.pem")),
            ),
            storage=config.storage,
        )
        report = engine.reload(broken).result(30)
        assert not report.ok and "receiver" in report.error
        response = httpx.post(receiver.url, content=b"", verify=_trust(old), timeout=10)
        assert response.status_code in (204, 400)


def _trust(pki: Pki) -> object:
    import ssl

    return ssl.create_default_context(cafile=pki.ca_file)
