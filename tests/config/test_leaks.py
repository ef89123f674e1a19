"""Secrets never leak: check-config (text and JSON), repr/str, logging, JSON, saved files."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest

from rwconsole.cli import main
from rwconsole.config.load import load_config
from rwconsole.config.save import dump_effective, update_config_file
from rwconsole.config.validate import iter_secrets

UUID = "6f2b1c3e-8c1d-4a57-9a55-2f6f4c0d9e11"
# Values the user wrote literally in the file: allowed in the saved file only.
LITERALS = {
    "password": "LEAK-pw-5Jq2",
    "header": "LEAK-hdr-8Rt1",
    "http_header": "LEAK-httphdr-3Wc9",
    "key_pem": "LEAK-keypem-6Yh4",
    "proxy_header": "LEAK-proxyhdr-1Nb7",
    "bearer": "LEAK-bearer-9Kd3",
    "oauth2": "LEAK-oauth-2Vm8",
    "sigv4": "LEAK-sigv4-4Tz6",
    "azure": "LEAK-azure-7Lp5",
    "scrape": "LEAK-scrape-0Hx2",
    "url_password": "LEAK-urlpw-5Ee3",
}
ENV_VALUE = "LEAK-env-value-8Qs4"
FILE_VALUE = "LEAK-file-value-2Ga6"
ENV_NAME = "RWCONSOLE_LEAK_TEST_CREDENTIALS"

CONFIG = f"""
[[endpoint]]
name = "e0"
url = "https://user:{LITERALS["url_password"]}@mimir.example/api/v1/push"
headers = {{ "X-Api-Key" = "{LITERALS["header"]}" }}
http_headers = {{ "X-Token" = ["{LITERALS["http_header"]}"] }}
proxy_url = "http://127.0.0.1:3128"
proxy_connect_header = {{ "Proxy-Token" = ["{LITERALS["proxy_header"]}"] }}
[endpoint.basic_auth]
username = "someone"
password = "{LITERALS["password"]}"
[endpoint.tls_config]
cert_pem = "certificate text"
key_pem = "{LITERALS["key_pem"]}"

[[endpoint]]
name = "e1"
url = "http://127.0.0.1:9091/api/v1/write"
bearer_token = "{LITERALS["bearer"]}"

[[endpoint]]
name = "e2"
url = "http://127.0.0.1:9092/api/v1/write"
[endpoint.oauth2]
client_id = "client"
client_secret = "{LITERALS["oauth2"]}"
token_url = "https://auth.example/token"

[[endpoint]]
name = "e3"
url = "http://127.0.0.1:9093/api/v1/write"
[endpoint.sigv4]
access_key = "AKIAEXAMPLE"
secret_key = "{LITERALS["sigv4"]}"

[[endpoint]]
name = "e4"
url = "http://127.0.0.1:9094/api/v1/write"
[endpoint.azuread.oauth]
client_id = "{UUID}"
client_secret = "{LITERALS["azure"]}"
tenant_id = "{UUID}"

[[endpoint]]
name = "e5"
url = "http://127.0.0.1:9095/api/v1/write"
[endpoint.authorization]
credentials = {{ env = "{ENV_NAME}" }}

[[endpoint]]
name = "e6"
url = "http://127.0.0.1:9096/api/v1/write"
[endpoint.basic_auth]
username = "u"
password = {{ file = "password.txt" }}

[[scrape]]
job_name = "node"
targets = ["127.0.0.1:9100"]
bearer_token = "{LITERALS["scrape"]}"
"""

ALL_VALUES = [*LITERALS.values(), ENV_VALUE, FILE_VALUE]


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ENV_NAME, ENV_VALUE)
    (tmp_path / "password.txt").write_text(FILE_VALUE + "\n", encoding="utf-8")
    path = tmp_path / "leaky.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def _assert_clean(text: str, values: list[str] = ALL_VALUES) -> None:
    for value in values:
        assert value not in text, f"secret {value!r} leaked"


def test_planted_secrets_are_real(planted: Path) -> None:
    config = load_config(planted)
    revealed = {secret.reveal() for _, secret in iter_secrets(config)}
    expected = set(ALL_VALUES) - {LITERALS["url_password"]}
    assert expected <= revealed


def test_check_config_text(planted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(planted)]) == 0
    out = capsys.readouterr()
    _assert_clean(out.out + out.err)
    assert "<secret>" in out.out
    assert ENV_NAME in out.out  # the reference is shown, not its value


def test_check_config_json(planted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--json", str(planted)]) == 0
    out = capsys.readouterr()
    _assert_clean(out.out + out.err)
    data = json.loads(out.out)
    endpoint5 = data["config"]["endpoint"][5]
    assert endpoint5["authorization"]["credentials"] == {"env": ENV_NAME}
    assert data["config"]["endpoint"][6]["basic_auth"]["password"] == {"file": "password.txt"}
    assert data["config"]["endpoint"][0]["url"] == (
        "https://user:<secret>@mimir.example/api/v1/push"
    )


def test_errors_do_not_leak(planted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = CONFIG.replace('name = "e1"', 'name = "e1"\nremote_timeout = 5').replace(
        'url = "http://127.0.0.1:9096/api/v1/write"', 'url = "ftp://u:LEAK-urlpw-5Ee3@x/"'
    )
    text += f'\n[[endpoint]]\nurl = "http://x/w"\nbearer_token = ["{LITERALS["bearer"]}"]\n'
    planted.write_text(text, encoding="utf-8")
    assert main(["check-config", str(planted)]) == 1
    out = capsys.readouterr()
    assert "endpoint[1].remote_timeout" in out.err and "endpoint[7].bearer_token" in out.err
    _assert_clean(out.out + out.err)
    assert main(["check-config", "--json", str(planted)]) == 1
    out = capsys.readouterr()
    _assert_clean(out.out + out.err)


def test_repr_str_json_logging(planted: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = load_config(planted)
    _assert_clean(repr(config))
    _assert_clean(str(config))
    # asdict() exposes plain string fields as they are: only a password embedded in a
    # URL is such a string (basic_auth keeps it a Secret).
    without_url = [v for v in ALL_VALUES if v != LITERALS["url_password"]]
    _assert_clean(json.dumps(dataclasses.asdict(config)), without_url)
    _assert_clean(json.dumps(dump_effective(config)))
    logger = logging.getLogger("rwconsole.test.leaks")
    with caplog.at_level(logging.DEBUG, logger="rwconsole.test.leaks"):
        logger.info("config %s", config)
        logger.info("config %r", config)
        for path, secret in iter_secrets(config):
            logger.warning("secret at %s: %s / %r", path, secret, secret)
            logger.warning(f"f-string {secret} {secret!r}")
        logger.error("endpoint %s", config.endpoint[0])
    assert len(caplog.records) > 10
    _assert_clean(caplog.text)
    _assert_clean("\n".join(r.getMessage() for r in caplog.records))


def test_saved_file_only_has_what_the_user_wrote(planted: Path) -> None:
    update_config_file(planted, {("endpoint", 1, "queue_config", "max_shards"): 7})
    saved = planted.read_text(encoding="utf-8")
    for value in LITERALS.values():
        assert value in saved  # written literally by the user: kept as written
    assert ENV_VALUE not in saved
    assert FILE_VALUE not in saved
    assert ENV_NAME in saved and "password.txt" in saved
    assert "<secret>" not in saved
    assert load_config(planted).endpoint[1].queue_config.max_shards == 7
