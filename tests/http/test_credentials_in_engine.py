"""A running engine with an instance-role SigV4 endpoint: status shown, secrets nowhere.

A threaded loopback server stands in for both EC2 instance metadata (IMDSv2,
its documented requests) and the Amazon Managed Prometheus workspace (it
checks every request's SigV4 signature with the independent verifier).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.server
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from cloud_fakes import iso, isolate_aws_environment
from conftest import free_port, wait_until
from http_helpers import Request
from sigv4_verifier import verify_sigv4

from rwconsole.config import schema
from rwconsole.engine import Engine
from rwconsole.http.credential_cache import CredentialStatus
from rwconsole.tui.screens.endpoints import credentials_markup, detail_markup

pytestmark = pytest.mark.timeout(60)
SECRET = "instance-secret-Zq81"
SESSION = "instance-session-Jm42"
IMDS_TOKEN = "imds-token-Pw55"


class _CloudAndWorkspace(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    verified: ClassVar[list[bool]] = []

    def _reply(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        if self.path == "/latest/api/token":
            return self._reply(200, IMDS_TOKEN.encode())
        return self._reply(404)

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
            return self._reply(401)
        base = "/latest/meta-data/iam/security-credentials/"
        if self.path == base:
            return self._reply(200, b"forwarder-role")
        if self.path == base + "forwarder-role":
            payload = {
                "Code": "Success",
                "AccessKeyId": "ASIAINSTANCE",
                "SecretAccessKey": SECRET,
                "Token": SESSION,
                "Expiration": iso(time.time() + 6 * 3600),
            }
            return self._reply(200, json.dumps(payload).encode())
        return self._reply(404)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = Request("POST", self.path, list(self.headers.items()), body)
        try:
            ok = verify_sigv4(request, SECRET)["access_key"] == "ASIAINSTANCE"
        except (AssertionError, KeyError, ValueError):
            ok = False
        self.verified.append(ok and self.headers.get("X-Amz-Security-Token") == SESSION)
        self._reply(204 if ok else 403)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def cloud() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CloudAndWorkspace)
    server.daemon_threads = True
    _CloudAndWorkspace.verified = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_instance_role_endpoint_in_snapshot_console_and_metrics(
    cloud: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rwconsole")
    isolate_aws_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", cloud)
    config = schema.Config(
        storage=schema.StorageConfig(path=str(tmp_path / "data")),
        http=schema.HTTPServerConfig(listen_address=f"127.0.0.1:{free_port()}"),
        synthetic=schema.SyntheticConfig(series=20, metrics=2, interval=1.0),
        endpoint=[
            schema.EndpointConfig(
                url=cloud + "/workspaces/ws-1/api/v1/remote_write",
                name="amp",
                sigv4=schema.SigV4Config(region="us-west-2"),
            )
        ],
    )
    engine = Engine(config, flush_deadline=5.0)
    engine.start()
    try:
        endpoint = wait_until(lambda: _delivered(engine))
        address = wait_until(lambda: engine.snapshot().metrics_address)
        metrics = httpx.get(f"http://{address}/metrics", timeout=10).text
        snapshot = engine.snapshot()
    finally:
        engine.stop()
    assert _CloudAndWorkspace.verified and all(_CloudAndWorkspace.verified)
    status = endpoint.credentials
    assert status.source == "EC2 instance role forwarder-role" and status.last_error is None
    expires = dt.datetime.fromtimestamp(status.expires_at, dt.UTC)
    assert dt.timedelta(hours=5) < expires - dt.datetime.now(dt.UTC) < dt.timedelta(hours=7)
    detail = detail_markup(endpoint)
    assert "credentials: EC2 instance role forwarder-role, expire at" in detail
    logs = "\n".join(entry.message for entry in snapshot.logs)
    assert "credentials from EC2 instance role forwarder-role" in logs
    dumped = repr(dataclasses.asdict(snapshot))
    for text in (metrics, detail, logs, dumped):
        for value in (SECRET, SESSION, IMDS_TOKEN):
            assert value not in text


def _delivered(engine: Engine) -> object:
    endpoint = engine.snapshot().endpoint("amp")
    if endpoint is None or not (_CloudAndWorkspace.verified and endpoint.credentials.source):
        return None
    return endpoint


def test_console_text_for_each_credential_state() -> None:
    now = 1_800_000_000.0
    assert credentials_markup(CredentialStatus(""), now) == "credentials: [dim]not fetched yet[/]"
    static = CredentialStatus("environment (AWS_ACCESS_KEY_ID)")
    assert credentials_markup(static, now).endswith("(do not expire)")
    due = credentials_markup(CredentialStatus("EC2 instance role r", now + 600), now)
    assert due.startswith("credentials: EC2 instance role r, expire at ") and "(in 10m)" in due
    failing = CredentialStatus("web identity (role [x])", now - 5, "STS said [no]")
    text = credentials_markup(failing, now)
    assert "[$error]expired at" in text and "web identity (role \\[x])" in text
    assert text.endswith("[$error]credential refresh failed: STS said \\[no][/]")
