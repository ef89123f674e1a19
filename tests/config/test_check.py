"""check-config without the secrets at hand (the default) and with ``--resolve``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from http_helpers import make_pki

from rwconsole.cli import main

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "sample-configs").glob("*.toml"))
SAMPLE_ENV = ("RW_PASSWORD", "VM_TOKEN")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, " ".join(out.err.split())


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_samples_pass_with_referenced_variables_unset(
    sample: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in SAMPLE_ENV:
        monkeypatch.delenv(name, raising=False)
    code, _, err = _run(["check-config", str(sample)], capsys)
    assert code == 0, err
    if any(f'{{ env = "{name}" }}' in sample.read_text() for name in SAMPLE_ENV):
        assert "is not set here (not resolved; --resolve requires it)" in err
        assert _run(["check-config", "--resolve", str(sample)], capsys)[0] == 1


def test_missing_references_are_warnings_and_errors_with_resolve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RWCONSOLE_TEST_UNSET_42", raising=False)
    path = tmp_path / "c.toml"
    path.write_text(
        '[[endpoint]]\nurl = "http://h/w"\nbearer_token = { env = "RWCONSOLE_TEST_UNSET_42" }\n'
        '[[endpoint]]\nurl = "http://h/w2"\n'
        '[endpoint.basic_auth]\nusername = "u"\npassword = { file = "pw.txt" }\n'
    )
    code, out, err = _run(["check-config", "--json", str(path)], capsys)
    assert code == 0, err
    warnings = {w["path"]: w["message"] for w in json.loads(out)["warnings"]}
    assert "RWCONSOLE_TEST_UNSET_42 is not set here" in warnings["endpoint[0].bearer_token"]
    assert "does not exist here" in warnings["endpoint[1].basic_auth.password"]

    code, _, err = _run(["check-config", "--resolve", str(path)], capsys)
    assert code == 1
    assert "endpoint[0].bearer_token: environment variable RWCONSOLE_TEST_UNSET_42" in err
    assert "endpoint[1].basic_auth.password: cannot read secret file" in err

    monkeypatch.setenv("RWCONSOLE_TEST_UNSET_42", "tok")
    (tmp_path / "pw.txt").write_text("pw\n")
    code, _, err = _run(["check-config", "--resolve", str(path)], capsys)
    assert code == 0, err
    assert "not set here" not in err


def test_resolve_reports_a_key_that_does_not_match_its_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = make_pki(tmp_path)
    path = tmp_path / "c.toml"
    path.write_text(
        f"""
[[endpoint]]
url = "https://127.0.0.1:1/api/v1/write"
[endpoint.tls_config]
ca_file = "{pki.ca_file}"
cert_file = "{pki.client_cert_file}"
key_file = "{pki.server_key_file}"
"""
    )
    assert _run(["check-config", str(path)], capsys)[0] == 0  # files are not loaded by default
    code, _, err = _run(["check-config", "--resolve", str(path)], capsys)
    assert code == 1
    assert "endpoint[0].tls_config: cert_file/key_file: cannot load the client certificate" in err
    assert "KEY_VALUES_MISMATCH" in err
    path.write_text(path.read_text().replace(pki.server_key_file, pki.client_key_file))
    code, _, err = _run(["check-config", "--resolve", str(path)], capsys)
    assert code == 0, err
