"""The receiver at its edges: metadata-only requests, validation, metrics, logs, TLS and auth."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from http_helpers import (
    Pki,
    cert_serial,
    make_pki,
    peer_serial,
    point_link,
    server_file_versions,
)
from src_helpers import V1_TYPE, V2_TYPE, RecordingAppender, WireSeries, encode_v1, encode_v2

from rwconsole.config.schema import ReceiverConfig, ReceiverTLSConfig
from rwconsole.config.secrets import Secret
from rwconsole.http import tls as http_tls
from rwconsole.http.errors import ConnectivityConfigError
from rwconsole.labels import make_labels
from rwconsole.metrics import Registry
from rwconsole.model import MetricType
from rwconsole.sources.receiver import RemoteWriteReceiver

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

V1_HEADERS = {"Content-Type": V1_TYPE, "Content-Encoding": "snappy"}
V2_HEADERS = {"Content-Type": V2_TYPE, "Content-Encoding": "snappy"}
A = make_labels({"__name__": "http_requests_total", "job": "x"})
B = make_labels({"__name__": "latency_seconds_bucket", "job": "x", "le": "1"})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def started(
    config: ReceiverConfig | None = None,
) -> tuple[RemoteWriteReceiver, RecordingAppender, Registry]:
    app = RecordingAppender()
    registry = Registry()
    rx = RemoteWriteReceiver(app, "127.0.0.1:0", config=config, registry=registry)
    await rx.start()
    return rx, app, registry


@pytest.fixture
async def plain() -> AsyncIterator[tuple[RemoteWriteReceiver, RecordingAppender, Registry]]:
    rx, app, registry = await started()
    try:
        yield rx, app, registry
    finally:
        await rx.stop()


async def post(
    url: str, body: bytes, headers: dict[str, str] = V1_HEADERS, **kw: object
) -> httpx.Response:
    async with httpx.AsyncClient(**kw) as client:  # type: ignore[arg-type]
        return await client.post(url, content=body, headers=headers)


async def test_metadata_only_request_is_kept_and_written_with_the_series(plain) -> None:
    rx, app, registry = plain
    metadata = [
        ("http_requests_total", int(MetricType.COUNTER), "Requests served.", ""),
        ("latency_seconds", int(MetricType.HISTOGRAM), "Latency.", "seconds"),
    ]
    response = await post(rx.url, encode_v1([], metadata=metadata))
    assert response.status_code == 204
    assert rx.stats().metadata == 2
    assert registry.value("rwconsole_receiver_received_total", kind="metadata") == 2
    # The next request carries only samples: the series get the family's metadata.
    response = await post(
        rx.url, encode_v1([WireSeries(A, [(1000, 1.0)]), WireSeries(B, [(1000, 2.0)])])
    )
    assert response.status_code == 204
    meta = app.metadata_by_labels()
    assert (meta[A].type, meta[A].help) == (MetricType.COUNTER, "Requests served.")
    assert (meta[B].type, meta[B].unit) == (MetricType.HISTOGRAM, "seconds")


async def test_metadata_received_counts_the_entries_sent_not_the_series_given_them(
    plain,
) -> None:
    rx, _, registry = plain
    metadata = [("http_requests_total", int(MetricType.COUNTER), "Requests served.", "")]
    assert (await post(rx.url, encode_v1([], metadata=metadata))).status_code == 204
    for _ in range(3):  # samples only: the family's series get the kept metadata
        response = await post(rx.url, encode_v1([WireSeries(A, [(1000, 1.0)])]))
        assert response.status_code == 204
    assert rx.stats().metadata == 1
    assert registry.value("rwconsole_receiver_received_total", kind="metadata") == 1


@pytest.mark.parametrize(
    ("labels", "reason", "text"),
    [
        ({"job": "x"}, "missing_metric_name", "no metric name (__name__)"),
        ({"__name__": "1bad-name"}, "invalid_metric_name", "invalid metric name '1bad-name'"),
        (
            {"__name__": "ok", "bad-label": "1"},
            "invalid_label_name",
            "invalid label name 'bad-label'",
        ),
    ],
)
async def test_series_breaking_a_rule_refuse_the_request(
    plain, labels: dict[str, str], reason: str, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    rx, app, registry = plain
    good = WireSeries(A, [(1000, 1.0)])
    bad = WireSeries(make_labels(labels), [(1000, 1.0), (2000, 2.0)])
    with caplog.at_level(logging.WARNING, logger="rwconsole.receiver"):
        response = await post(rx.url, encode_v1([good, bad]))
    assert response.status_code == 400
    assert text in response.text and "series 1" in response.text
    assert app.series() == {}  # nothing of the request is written
    assert registry.value("rwconsole_receiver_requests_total", code="400") == 1
    assert registry.value("rwconsole_receiver_rejected_total", kind="samples", reason=reason) == 3
    assert registry.value("rwconsole_receiver_rejected_requests_total", reason=reason) == 1
    (line,) = [r.getMessage() for r in caplog.records]
    assert "127.0.0.1:" in line and text in line


async def test_rejections_are_logged_at_most_once_per_interval(
    plain, caplog: pytest.LogCaptureFixture
) -> None:
    rx, _, registry = plain
    bad = encode_v1([WireSeries(make_labels({"job": "x"}), [(1000, 1.0)])])
    with caplog.at_level(logging.WARNING, logger="rwconsole.receiver"):
        for _ in range(5):
            assert (await post(rx.url, bad)).status_code == 400
    assert len(caplog.records) == 1
    assert registry.value("rwconsole_receiver_requests_total", code="400") == 5


async def test_unknown_path_is_404_with_a_clear_body(plain) -> None:
    rx, _, registry = plain
    response = await post(rx.url.replace("/api/v1/write", "/api/v1/push"), encode_v1([]))
    assert response.status_code == 404
    assert "remote write is POST /api/v1/write" in response.text
    assert registry.value("rwconsole_receiver_rejected_requests_total", reason="not_found") == 1


async def test_v2_request_counts_as_received(plain) -> None:
    rx, _, registry = plain
    response = await post(
        rx.url, encode_v2([WireSeries(A, [(1000, 1.0), (2000, 2.0)])]), V2_HEADERS
    )
    assert response.status_code == 204
    assert response.headers["X-Prometheus-Remote-Write-Samples-Written"] == "2"
    assert registry.value("rwconsole_receiver_received_total", kind="samples") == 2
    assert registry.value("rwconsole_receiver_requests_total", code="204") == 1


async def test_basic_auth_and_bearer_tokens(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RWCONSOLE_TEST_RX_PASSWORD", "pw-from-env")
    token_file = tmp_path / "token"
    token_file.write_text("token-from-file\n")
    config = ReceiverConfig(
        basic_auth_users={"alice": Secret.from_env("RWCONSOLE_TEST_RX_PASSWORD")},
        bearer_tokens=[Secret.from_file(str(token_file))],
    )
    rx, app, registry = await started(config)
    body = encode_v1([WireSeries(A, [(1000, 1.0)])])
    try:
        assert (await post(rx.url, body)).status_code == 401
        wrong = await post(rx.url, body, auth=("alice", "nope"))
        assert wrong.status_code == 401 and "pw-from-env" not in wrong.text
        assert (await post(rx.url, body, auth=("bob", "pw-from-env"))).status_code == 401
        assert (await post(rx.url, body, auth=("alice", "pw-from-env"))).status_code == 204
        bearer = {**V1_HEADERS, "Authorization": "Bearer token-from-file"}
        assert (await post(rx.url, body, bearer)).status_code == 204
        bearer["Authorization"] = "Bearer token-from-fil"
        assert (await post(rx.url, body, bearer)).status_code == 401
    finally:
        await rx.stop()
    assert registry.value("rwconsole_receiver_rejected_requests_total", reason="unauthorized") == 4
    assert len(app.series()[A]) == 2


def tls_config(pki: Pki, client_auth_type: str = "NoClientCert") -> ReceiverTLSConfig:
    return ReceiverTLSConfig(
        cert_file=pki.server_cert_file,
        key_file=pki.server_key_file,
        ca_file=pki.ca_file if client_auth_type != "NoClientCert" else "",
        client_auth_type=client_auth_type,
    )


async def test_tls(pki: Pki) -> None:
    rx, app, _ = await started(ReceiverConfig(tls_config=tls_config(pki)))
    try:
        assert rx.url.startswith("https://")
        body = encode_v1([WireSeries(A, [(1000, 1.0)])])
        assert (
            await post(rx.url, body, verify=ssl.create_default_context(cafile=pki.ca_file))
        ).status_code == 204
        with pytest.raises(httpx.ConnectError):
            await post(rx.url, body)  # the test CA is not in the system store
    finally:
        await rx.stop()
    assert app.series()[A] == [(1000, 1.0)]


async def test_mutual_tls_requires_a_client_certificate(pki: Pki) -> None:
    rx, app, _ = await started(
        ReceiverConfig(tls_config=tls_config(pki, "RequireAndVerifyClientCert"))
    )
    body = encode_v1([WireSeries(A, [(1000, 1.0)])])
    try:
        without = ssl.create_default_context(cafile=pki.ca_file)
        with pytest.raises(httpx.HTTPError):
            await post(rx.url, body, verify=without)
        with_cert = ssl.create_default_context(cafile=pki.ca_file)
        with_cert.load_cert_chain(pki.client_cert_file, pki.client_key_file)
        assert (await post(rx.url, body, verify=with_cert)).status_code == 204
    finally:
        await rx.stop()
    assert app.series()[A] == [(1000, 1.0)]


async def test_a_rotated_server_certificate_reaches_new_connections(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The certificate files change under a running receiver (a Kubernetes secret volume):
    new connections get the new certificate, the one opened before goes on."""
    monkeypatch.setattr(http_tls, "CHECK_INTERVAL", 0.0)  # no waiting for the next look
    rotated = make_pki(tmp_path)
    live, versions = server_file_versions(tmp_path, pki, rotated)
    rx, app, _ = await started(
        ReceiverConfig(
            tls_config=ReceiverTLSConfig(
                cert_file=str(live / "tls.crt"), key_file=str(live / "tls.key")
            )
        )
    )
    trust = ssl.create_default_context(cafile=pki.ca_file)
    trust.load_verify_locations(cafile=rotated.ca_file)

    body = encode_v1([WireSeries(A, [(1000, 1.0)])])
    later = encode_v1([WireSeries(A, [(2000, 2.0)])])
    try:
        async with httpx.AsyncClient(verify=trust) as kept:
            assert (await kept.post(rx.url, content=body, headers=V1_HEADERS)).status_code == 204
            before = await peer_serial(rx.host, rx.port, trust)
            point_link(live, versions[1])
            after = await peer_serial(rx.host, rx.port, trust)
            assert (await kept.post(rx.url, content=later, headers=V1_HEADERS)).status_code == 204
    finally:
        await rx.stop()
    assert before == cert_serial(Path(pki.server_cert_file).read_text())
    assert after == cert_serial(Path(rotated.server_cert_file).read_text())
    assert app.series()[A] == [(1000, 1.0), (2000, 2.0)]


def test_bad_tls_settings_name_the_key(pki: Pki) -> None:
    app = RecordingAppender()
    for tls, text in [
        (ReceiverTLSConfig(), "receiver.tls_config: a server needs cert_pem or cert_file"),
        (
            ReceiverTLSConfig(
                cert_file=pki.server_cert_file,
                key_file=pki.server_key_file,
                client_auth_type="Always",
            ),
            "receiver.tls_config.client_auth_type: unknown value 'Always'",
        ),
        (
            ReceiverTLSConfig(
                cert_file=pki.server_cert_file,
                key_file=pki.server_key_file,
                client_auth_type="RequireAndVerifyClientCert",
            ),
            "needs ca_pem or ca_file",
        ),
    ]:
        with pytest.raises(ConnectivityConfigError, match=text):
            RemoteWriteReceiver(app, "127.0.0.1:0", config=ReceiverConfig(tls_config=tls))


def test_check_config_names_bad_receiver_tls_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rwconsole.cli import main

    path = tmp_path / "c.toml"
    path.write_text(
        '[receiver]\nlisten_address = "127.0.0.1:9201"\n'
        '[receiver.tls_config]\ncert_file = "s.pem"\nclient_auth_type = "Always"\n'
        '[receiver.basic_auth_users]\nalice = { env = "RX_PW" }\n',
        encoding="utf-8",
    )
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "receiver.tls_config: a server needs a certificate and a key" in err
    assert "receiver.tls_config.client_auth_type: unknown value 'Always'" in err
