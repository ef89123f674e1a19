"""Secret-looking query parameters in URLs are redacted wherever a URL is shown."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from conftest import free_port, wait_until

from rwconsole.cli import main
from rwconsole.config import schema
from rwconsole.config.secrets import redact_url
from rwconsole.engine import Engine
from rwconsole.snapshot import to_dict

SECRET = "LEAK-query-7Hs1"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://h/w?api_key=K&tenant=a", "https://h/w?api_key=<secret>&tenant=a"),
        ("https://h/w?tenant=a&APIKEY=K", "https://h/w?tenant=a&APIKEY=<secret>"),
        ("https://h/w?Token=K#top", "https://h/w?Token=<secret>#top"),
        ("https://h/w?access_token=K&key=K2", "https://h/w?access_token=<secret>&key=<secret>"),
        ("https://h/w?password=K&secret=K&signature=K", None),
        ("https://h/w?X-Amz-Signature=K&x-amz-credential=K", None),
        ("https://u:pw@h/w?api_key=K", "https://u:<secret>@h/w?api_key=<secret>"),
        ("https://h/w?monkey=1&keyring=2&tokens=3", "https://h/w?monkey=1&keyring=2&tokens=3"),
    ],
)
def test_redact_url(url: str, expected: str | None) -> None:
    redacted = redact_url(url)
    if expected is not None:
        assert redacted == expected
    assert "=K" not in redacted


def test_redact_url_inside_a_message() -> None:
    text = f"POST https://h/w?api_key={SECRET} failed: connection refused"
    assert redact_url(text) == "POST https://h/w?api_key=<secret> failed: connection refused"


def test_check_config_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[[endpoint]]\nurl = "https://h.example/api/v1/write?api_key={SECRET}&tenant=a"\n',
        encoding="utf-8",
    )
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert "api_key=<secret>&tenant=a" in out.out
    assert main(["check-config", "--json", str(path)]) == 0
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    data = json.loads(out.out)
    assert data["config"]["endpoint"][0]["url"].endswith("?api_key=<secret>&tenant=a")


def test_metrics_labels_and_snapshot(tmp_path: Path) -> None:
    receiver_port = free_port()
    config = schema.Config(
        storage=schema.StorageConfig(path=str(tmp_path / "data")),
        http=schema.HTTPServerConfig(listen_address=f"127.0.0.1:{free_port()}"),
        endpoint=[
            schema.EndpointConfig(
                name="keyed",
                url=f"http://127.0.0.1:{receiver_port}/api/v1/write?token={SECRET}",
            )
        ],
    )
    engine = Engine(config, flush_deadline=1.0)
    engine.start()
    try:
        address = wait_until(lambda: engine.snapshot().metrics_address)
        text = httpx.get(f"http://{address}/metrics", timeout=10).text
        snapshot = json.dumps(to_dict(engine.snapshot()))
    finally:
        engine.stop()
    assert SECRET not in text and SECRET not in snapshot
    assert "/api/v1/write?token=<secret>" in text
    assert "token=<secret>" in snapshot
