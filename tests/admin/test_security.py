"""Who may use the admin API: socket owner only, TCP with a token or TLS, no secrets out."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rwconsole.admin.client import parse_target
from rwconsole.config.load import load_config
from rwconsole.engine import Engine, EngineError
from tests.conftest import free_port, wait_until
from tests.http_helpers import make_pki

_NOBODY_CLIENT = """
import os, socket, sys
os.setgid(65534)
os.setuid(65534)
try:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(sys.argv[1])
        sock.sendall(b"GET /v1/info HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        print(sock.recv(100).split()[1].decode())
except OSError as err:
    print("refused", type(err).__name__)
"""


@pytest.fixture(autouse=True)
def _info_logs() -> Iterator[None]:
    logger = logging.getLogger("rwconsole")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)


def _engine(tmp_path: Path, admin: str, data: Path | None = None) -> Engine:
    config = tmp_path / "rw.toml"
    config.write_text(
        f"""
[storage]
path = "{data or tmp_path / "data"}"

[synthetic]
series = 20
interval = "1s"

[[endpoint]]
name = "vm"
url = "http://user:hunter2@127.0.0.1:1/api/v1/write"
{admin}
"""
    )
    return Engine(load_config(config), config_path=config, serve_metrics=False)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Engine]:
    # Outside pytest's private temporary tree, so that only the socket's own mode protects it.
    data = Path(tempfile.mkdtemp(prefix="rwconsole-admin-"))
    data.chmod(0o755)
    engine = _engine(tmp_path, "", data)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()
        shutil.rmtree(data, ignore_errors=True)


def _as_nobody(socket: Path) -> str:
    return subprocess.run(
        [sys.executable, "-c", _NOBODY_CLIENT, str(socket)],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()


@pytest.mark.skipif(os.getuid() != 0, reason="switching to another uid needs root")
def test_other_uid_cannot_use_the_socket(running: Engine) -> None:
    socket = running.data_dir / "rwconsole.sock"
    assert (os.stat(socket).st_mode & 0o777) == 0o600
    assert _as_nobody(socket).startswith("refused")
    # Even if someone widens the file's mode, the peer's uid is checked.
    os.chmod(socket, 0o666)
    assert _as_nobody(socket) == "403"


def test_socket_answers_without_secrets(running: Engine) -> None:
    client = httpx.Client(
        transport=httpx.HTTPTransport(uds=str(running.data_dir / "rwconsole.sock"))
    )
    for path in ("/v1/info", "/v1/snapshot"):
        text = client.get(f"http://x{path}").text
        assert "hunter2" not in text
    assert "<secret>" in client.get("http://x/v1/snapshot").text


def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "rwconsole.sock").write_text("left over by a crash")
    engine = _engine(tmp_path, "")
    engine.start()
    try:
        client = httpx.Client(transport=httpx.HTTPTransport(uds=str(data / "rwconsole.sock")))
        assert client.get("http://x/v1/health").json() == {"ok": True}
    finally:
        engine.stop()


def test_tcp_needs_tls_or_a_token(tmp_path: Path) -> None:
    engine = _engine(tmp_path, f'[admin]\nlisten_address = "0.0.0.0:{free_port()}"\n')
    with pytest.raises(EngineError, match=r"admin.listen_address .* needs TLS"):
        engine.start()
    engine.stop()
    assert not (tmp_path / "data" / "rwconsole.sock").exists()


def _ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rwconsole", "ctl", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_tcp_bearer_token(tmp_path: Path) -> None:
    port = free_port()
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("guess\n")
    engine = _engine(
        tmp_path, f'[admin]\nlisten_address = "127.0.0.1:{port}"\nbearer_token_file = "{token}"\n'
    )
    engine.start()
    try:
        url = f"http://127.0.0.1:{port}"
        refused = _ctl("--token-file", str(wrong), url, "status", "--json")
        assert refused.returncode == 3
        assert json.loads(refused.stdout)["error"] == "missing or wrong bearer token"
        assert _ctl(url, "status").returncode == 3
        status = _ctl("--token-file", str(token), url, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["endpoints"][0]["name"] == "vm"
        assert "s3cret-token" not in json.dumps(engine.snapshot().logs, default=str)
    finally:
        engine.stop()


def test_tcp_mutual_tls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    port = free_port()
    engine = _engine(
        tmp_path,
        f'[admin]\nlisten_address = "127.0.0.1:{port}"\ntls_cert_file = "{pki.server_cert_file}"\n'
        f'tls_key_file = "{pki.server_key_file}"\nclient_ca_file = "{pki.ca_file}"\n',
    )
    engine.start()
    try:
        url = f"https://127.0.0.1:{port}"
        no_cert = _ctl("--ca-file", pki.ca_file, url, "status")
        assert no_cert.returncode == 3
        tls = ["--ca-file", pki.ca_file, "--cert-file", pki.client_cert_file]
        done = _ctl(*tls, "--key-file", pki.client_key_file, url, "pause", "vm")
        assert done.returncode == 0, done.stderr
        wait_until(lambda: engine.snapshot().endpoint("vm").paused)  # type: ignore[union-attr]

        def logged() -> bool:
            messages = [e.message for e in engine.snapshot().logs]
            return any(
                "admin: pause vm from 127.0.0.1" in m and "TLS subject" in m for m in messages
            )

        wait_until(logged)
    finally:
        engine.stop()


def test_data_directory_path_too_long_for_a_socket_address(tmp_path: Path) -> None:
    data = tmp_path / ("d" * 60) / ("e" * 60)
    assert len(str(data / "rwconsole.sock")) > 108
    engine = _engine(tmp_path, "", data)
    engine.start()
    try:
        assert (data / "rwconsole.sock").is_socket()
        status = _ctl(str(data), "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["endpoints"][0]["name"] == "vm"
    finally:
        engine.stop()
    assert not (data / "rwconsole.sock").exists()


@pytest.mark.parametrize("text", ["https://[::1", "http://127.0.0.1:99999/"])
def test_malformed_admin_url_is_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a valid URL"):
        parse_target(text)
