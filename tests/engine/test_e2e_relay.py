"""The relay as a real receiver: Prometheus 2.42 (agent mode) and vmagent push into [receiver].

A small target serves OpenMetrics with exemplars; the pushers scrape it and
remote-write into rwconsole, which stores everything in its WAL and forwards
it to demo receivers (one 1.0 and one 2.0 endpoint). Samples, exemplars and
metadata must all arrive; metadata is also checked in rwconsole's own WAL.
A last test serves the relay over TLS with client certificates and basic
auth, and Prometheus pushes to it with its remote_write tls_config/basic_auth.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ProcessManager, free_port, peer_binary, wait_until
from http_helpers import Pki, ThreadedDemoReceiver, make_pki

from rwconsole.config import schema
from rwconsole.config.secrets import Secret
from rwconsole.demo.receiver import DemoReceiver
from rwconsole.engine import Engine
from rwconsole.wal.tools import inspect

pytestmark = pytest.mark.peer


class Target:
    """Serves an OpenMetrics counter with a fresh exemplar per scrape, and a gauge."""

    def __init__(self) -> None:
        self.scrapes = 0
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                target.scrapes += 1
                n = target.scrapes
                body = (
                    "# TYPE relay_requests counter\n"
                    "# HELP relay_requests Requests handled by the relay test target.\n"
                    f'relay_requests_total{{path="/a"}} {n} # {{trace_id="t{n}"}} 1.0\n'
                    "# TYPE relay_temperature_celsius gauge\n"
                    "# UNIT relay_temperature_celsius celsius\n"
                    "# HELP relay_temperature_celsius A temperature.\n"
                    f"relay_temperature_celsius {20 + n % 5}\n"
                    "# EOF\n"
                ).encode()
                self.send_response(200)
                self.send_header(
                    "Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8"
                )
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    yield t
    t.stop()


@pytest.fixture
def demo() -> Iterator[DemoReceiver]:
    d = ThreadedDemoReceiver()
    yield d.receiver
    d.close()


@contextlib.contextmanager
def relay(data_dir: Path, demo: DemoReceiver, receiver: schema.ReceiverConfig) -> Iterator[Engine]:
    """A running engine with ``receiver`` as its source and two endpoints to ``demo``."""
    queue = schema.QueueConfig(batch_send_deadline=0.2, min_backoff=0.05, max_backoff=0.5)
    metadata = schema.MetadataConfig(send_interval=1.0)
    config = schema.Config(
        receiver=receiver,
        endpoint=[
            schema.EndpointConfig(
                url=demo.url, name="v1", queue_config=queue, metadata_config=metadata
            ),
            schema.EndpointConfig(
                url=demo.url + "?v=2",
                name="v2",
                protobuf_message=schema.PROTOBUF_V2,
                queue_config=queue,
            ),
        ],
        storage=schema.StorageConfig(path=str(data_dir)),
    )
    engine = Engine(config, serve_metrics=False, flush_deadline=2.0)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


def prometheus_agent(
    processes: ProcessManager, directory: Path, target_port: int, remote_write: str
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: relay-target\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
        f"remote_write:\n{remote_write}"
    )
    processes.start(
        [
            peer_binary("prometheus"),
            "--enable-feature=agent",
            "--enable-feature=exemplar-storage",
            f"--config.file={config}",
            f"--storage.agent.path={directory / 'agent'}",
            f"--web.listen-address=127.0.0.1:{free_port()}",
        ],
        stderr=open(directory / "prometheus.log", "wb"),  # noqa: SIM115 - closed with the process
    )


def test_prometheus_agent_samples_exemplars_and_metadata_are_forwarded(
    tmp_path: Path, processes: ProcessManager, target: Target, demo: DemoReceiver
) -> None:
    port = free_port()
    receiver = schema.ReceiverConfig(listen_address=f"127.0.0.1:{port}")
    with relay(tmp_path / "rw", demo, receiver) as engine:
        prometheus_agent(
            processes,
            tmp_path / "agent",
            target.port,
            f"  - url: http://127.0.0.1:{port}/api/v1/write\n"
            "    send_exemplars: true\n"
            "    metadata_config: {send_interval: 1s}\n"
            "    queue_config: {batch_send_deadline: 1s}\n",
        )

        def forwarded() -> object:
            stats = demo.stats()
            done = stats.samples >= 20 and stats.exemplars >= 4 and stats.metadata >= 4
            return stats if done else None

        stats = wait_until(forwarded, timeout=60)
        assert stats.by_status.get(204, 0) == stats.requests
        families = dict(engine.wal.metadata_families())
        requests = families["relay_requests_total"]
        assert requests.help == "Requests handled by the relay test target."
        temperature = families["relay_temperature_celsius"]
        assert (temperature.help, temperature.unit) == ("A temperature.", "celsius")
        source = engine.snapshot().sources[0]
        assert source.last_error == ""
    report = inspect(engine.wal_dir)
    assert report.records.get("metadata", 0) > 0, report.records
    assert report.exemplars > 0
    series = {labels for labels in demo.series()}
    assert any(dict(s).get("__name__") == "relay_requests_total" for s in series)


def test_vmagent_samples_are_forwarded(
    tmp_path: Path, processes: ProcessManager, target: Target, demo: DemoReceiver
) -> None:
    port = free_port()
    receiver = schema.ReceiverConfig(listen_address=f"127.0.0.1:{port}")
    with relay(tmp_path / "rw", demo, receiver) as engine:
        scrape = tmp_path / "scrape.yml"
        scrape.write_text(
            "global:\n  scrape_interval: 1s\n"
            "scrape_configs:\n  - job_name: relay-target\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{target.port}']}}]\n"
        )
        processes.start(
            [
                peer_binary("vmagent"),
                f"-promscrape.config={scrape}",
                f"-remoteWrite.url=http://127.0.0.1:{port}/api/v1/write",
                f"-remoteWrite.tmpDataPath={tmp_path / 'vmagent'}",
                "-remoteWrite.flushInterval=200ms",
                f"-httpListenAddr=127.0.0.1:{free_port()}",
            ]
        )

        def forwarded() -> object:
            names = {dict(s).get("__name__") for s in demo.series()}
            wanted = {"relay_requests_total", "relay_temperature_celsius"}
            return names if wanted <= names and demo.stats().samples >= 20 else None

        wait_until(forwarded, timeout=60)
        stats = engine.snapshot().sources[0]
        assert stats.last_error == ""
    assert demo.stats().by_status.get(204, 0) == demo.stats().requests


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_prometheus_pushes_over_mutual_tls_with_basic_auth(
    tmp_path: Path, processes: ProcessManager, target: Target, demo: DemoReceiver, pki: Pki
) -> None:
    port = free_port()
    receiver = schema.ReceiverConfig(
        listen_address=f"127.0.0.1:{port}",
        tls_config=schema.ReceiverTLSConfig(
            cert_file=pki.server_cert_file,
            key_file=pki.server_key_file,
            ca_file=pki.ca_file,
            client_auth_type="RequireAndVerifyClientCert",
        ),
        basic_auth_users={"agent": Secret("relay-pw")},
    )
    with relay(tmp_path / "rw", demo, receiver) as engine:
        prometheus_agent(
            processes,
            tmp_path / "agent",
            target.port,
            f"  - url: https://127.0.0.1:{port}/api/v1/write\n"
            "    queue_config: {batch_send_deadline: 1s}\n"
            "    basic_auth: {username: agent, password: relay-pw}\n"
            "    tls_config:\n"
            f"      ca_file: {pki.ca_file}\n"
            f"      cert_file: {pki.client_cert_file}\n"
            f"      key_file: {pki.client_key_file}\n",
        )
        wait_until(lambda: demo.stats().samples >= 10, timeout=60)
        status = engine.snapshot().sources[0]
        assert status.last_error == ""
