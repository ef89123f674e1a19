"""Loading: defaults, error reporting (all at once, positions, hints), check-config exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rwconsole.cli import main
from rwconsole.config import schema
from rwconsole.config.errors import ConfigError, ConfigFileError
from rwconsole.config.load import load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "sample-configs").glob("*.toml"))
SAMPLE_ENV = {"RW_PASSWORD": "sample-password", "VM_TOKEN": "sample-token"}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_defaults_are_alloys() -> None:
    config = parse_config('[[endpoint]]\nurl = "http://h:9090/api/v1/write"\n')
    endpoint = config.endpoint[0]
    assert endpoint.remote_timeout == 30.0
    assert endpoint.send_exemplars is True
    assert endpoint.send_native_histograms is False
    assert endpoint.follow_redirects is True
    assert endpoint.enable_http2 is True
    assert endpoint.protobuf_message == "prometheus.WriteRequest"
    q = endpoint.queue_config
    assert (q.capacity, q.max_shards, q.min_shards, q.max_samples_per_send) == (10000, 50, 1, 2000)
    assert (q.batch_send_deadline, q.min_backoff, q.max_backoff) == (5.0, 0.03, 5.0)
    assert q.retry_on_http_429 is True
    assert q.sample_age_limit == 0.0
    m = endpoint.metadata_config
    assert (m.send, m.send_interval, m.max_samples_per_send) == (True, 60.0, 2000)
    w = config.wal
    assert (w.truncate_frequency, w.min_keepalive_time, w.max_keepalive_time) == (
        7200.0,
        300.0,
        28800.0,
    )
    assert w.compression is True
    assert w.segment_size == 134217728
    assert config.storage.path == "data-rwconsole"
    assert config.http.listen_address == "127.0.0.1:12345"
    assert config.receiver is None and config.synthetic is None
    assert config.demo.enabled is False


def test_relabel_and_block_defaults() -> None:
    config = parse_config(
        '[[endpoint]]\nurl = "http://h/w"\n[[endpoint.write_relabel_config]]\n'
        'target_label = "a"\n[synthetic]\n[receiver]\n'
    )
    rule = config.endpoint[0].write_relabel_config[0]
    assert (rule.separator, rule.regex, rule.replacement, rule.action, rule.modulus) == (
        ";",
        "(.*)",
        "$1",
        "replace",
        0,
    )
    assert config.synthetic == schema.SyntheticConfig()
    assert config.synthetic.series == 1000 and config.synthetic.interval == 15.0
    assert config.receiver == schema.ReceiverConfig(listen_address="127.0.0.1:9201")


def test_values_are_converted() -> None:
    config = parse_config(
        'external_labels = { cluster = "c1" }\n'
        '[[endpoint]]\nurl = "https://h/w"\nremote_timeout = "1m30s"\n'
        'http_headers = { "X-Key" = ["a", "b"] }\n'
        '[endpoint.queue_config]\nmin_backoff = "250ms"\nmax_shards = 7\n'
        '[[scrape]]\njob_name = "node"\ntargets = ["127.0.0.1:9100"]\n'
        'params = { collect = ["cpu", "meminfo"] }\n'
    )
    endpoint = config.endpoint[0]
    assert endpoint.remote_timeout == 90.0
    assert endpoint.queue_config.min_backoff == 0.25
    assert endpoint.queue_config.max_shards == 7
    assert [s.reveal() for s in endpoint.http_headers["X-Key"]] == ["a", "b"]
    assert config.external_labels == {"cluster": "c1"}
    assert config.scrape[0].params == {"collect": ["cpu", "meminfo"]}


def test_scrape_http2_default() -> None:
    text = '[[scrape]]\njob_name = "a"\ntargets = ["h:1"]\n'
    assert parse_config(text).scrape[0].enable_http2 is True


def test_scrape_timeout_defaults_to_interval_when_shorter() -> None:
    text = '[[scrape]]\njob_name = "a"\ntargets = ["h:1"]\nscrape_interval = "5s"\n'
    assert parse_config(text).scrape[0].scrape_timeout == 5.0
    text = '[[scrape]]\njob_name = "a"\ntargets = ["h:1"]\n'
    assert parse_config(text).scrape[0].scrape_timeout == 10.0


def test_empty_config_is_valid() -> None:
    config = parse_config("")
    assert config.endpoint == [] and not config.has_source()


def test_unknown_key_did_you_mean() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            '[[endpoint]]\nurl = "http://h/w"\n[endpoint.queue_config]\nmax_shard = 3\n'
            '[wal]\ntruncate_frequncy = "1h"\n[bogus_table]\n',
            "c.toml",
        )
    text = str(info.value)
    assert (
        "c.toml: endpoint[0].queue_config.max_shard: unknown key; did you mean 'max_shards'?"
        in text
    )
    assert "c.toml: wal.truncate_frequncy: unknown key; did you mean 'truncate_frequency'?" in text
    bogus = [line for line in info.value.lines() if "bogus_table" in line]
    assert bogus == ["c.toml: bogus_table: unknown key"]


def test_all_errors_reported_at_once() -> None:
    text = (
        '[[endpoint]]\nurl = "ftp://x"\nremote_timeout = 5\n'
        "[endpoint.queue_config]\nmin_shards = 3\nmax_shards = 2\n"
        '[[endpoint]]\nname = "second"\n'
        '[wal]\nsegment_size = 1000\n[http]\nlisten_address = "nope"\n'
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "many.toml")
    paths = {p.path for p in info.value.problems}
    assert paths >= {
        ("endpoint", 0, "url"),
        ("endpoint", 0, "remote_timeout"),
        ("endpoint", 0, "queue_config", "max_shards"),
        ("endpoint", 1, "url"),
        ("wal", "segment_size"),
        ("http", "listen_address"),
    }
    assert len(info.value.problems) == 6
    assert all(line.startswith("many.toml: ") for line in info.value.lines())


def test_type_error_does_not_cascade() -> None:
    # A key with a type problem is reported once, not again by the rules on its default.
    with pytest.raises(ConfigError) as info:
        parse_config("[[endpoint]]\nurl = 12\n")
    assert [p.path for p in info.value.problems] == [("endpoint", 0, "url")]


def test_toml_syntax_error_position(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[[endpoint]]\nurl = "http://h/w"\nname = "unterminated\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problem = info.value.problems[0]
    assert (problem.line, problem.column) == (3, 21)
    code, _, err = _run(["check-config", str(path)], capsys)
    assert code == 1
    assert f"{path}: line 3, column 21: TOML syntax error" in err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.toml"
    code, out, err = _run(["check-config", str(missing)], capsys)
    assert code == 2
    assert f"{missing}: no such file" in err
    assert "Traceback" not in err + out
    with pytest.raises(ConfigFileError):
        load_config(missing)


def test_directory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["check-config", str(tmp_path)], capsys)
    assert code == 2
    assert "is a directory" in err


def test_non_utf8_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    code, _, err = _run(["check-config", str(path)], capsys)
    assert code == 2
    assert "not UTF-8 text (byte offset 11)" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without permission")
def test_unreadable_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "secret.toml"
    path.write_text("", encoding="utf-8")
    path.chmod(0)
    code, _, err = _run(["check-config", str(path)], capsys)
    assert code == 2
    assert "permission denied" in err


def test_check_config_prints_effective_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(
        '[[endpoint]]\nurl = "http://h/w"\n[endpoint.queue_config]\nmin_backoff = "100ms"\n'
        "[synthetic]\n",
        encoding="utf-8",
    )
    code, out, err = _run(["check-config", str(path)], capsys)
    assert code == 0, err
    assert 'min_backoff = "100ms"' in out
    assert 'max_backoff = "5s"' in out
    assert "max_shards = 50" in out
    assert 'max_keepalive_time = "8h"' in out
    assert "is valid" in err


def test_check_config_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.toml"
    path.write_text('[[endpoint]]\nurl = "http://h/w"\n', encoding="utf-8")
    code, out, _ = _run(["check-config", "--json", str(path)], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["valid"] is True
    assert data["config"]["endpoint"][0]["queue_config"]["batch_send_deadline"] == "5s"
    assert data["config"]["wal"]["segment_size"] == 134217728
    assert [w["message"] for w in data["warnings"]] == [
        "no source ([[scrape]], [receiver] or [synthetic]) is configured: "
        "only data already in the WAL will be sent"
    ]


def test_check_config_json_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[wal]\nsegment_size = 5\n[[endpoint]]\n", encoding="utf-8")
    code, out, _ = _run(["check-config", "--json", str(path)], capsys)
    assert code == 1
    data = json.loads(out)
    assert data["valid"] is False
    assert {e["path"] for e in data["errors"]} == {"wal.segment_size", "endpoint[0].url"}


def test_zero_endpoints_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "none.toml"
    path.write_text("[synthetic]\n", encoding="utf-8")
    code, _, err = _run(["check-config", str(path)], capsys)
    assert code == 0
    assert "warning:" in err and "no endpoint is configured" in err


def test_endpoints_without_source_are_valid() -> None:
    config = parse_config('[[endpoint]]\nurl = "http://h/w"\n')
    assert not config.has_source()


def test_queue_name() -> None:
    named = parse_config('[[endpoint]]\nname = "prod"\nurl = "http://h/w"\n').endpoint[0]
    assert named.queue_name() == "prod"
    one = parse_config('[[endpoint]]\nurl = "http://h/w"\n').endpoint[0]
    again = parse_config('[[endpoint]]\nurl = "http://h/w"\n').endpoint[0]
    other = parse_config('[[endpoint]]\nurl = "http://h/w2"\n').endpoint[0]
    assert len(one.queue_name()) == 6
    int(one.queue_name(), 16)
    assert one.queue_name() == again.queue_name()
    assert one.queue_name() != other.queue_name()


def test_unnamed_endpoint_identity_survives_tuning() -> None:
    """Only url and protobuf_message identify an unnamed endpoint (its progress goes with it)."""
    base = parse_config('[[endpoint]]\nurl = "http://h/w"\n').endpoint[0]
    tuned = parse_config(
        """
[[endpoint]]
url = "http://h/w"
remote_timeout = "5s"
headers = { "X-Team" = "a" }
bearer_token = "t0ken"
send_exemplars = false
[endpoint.queue_config]
max_shards = 7
[endpoint.metadata_config]
send = false
[endpoint.tls_config]
insecure_skip_verify = true
[[endpoint.write_relabel_config]]
action = "labeldrop"
regex = "x"
"""
    ).endpoint[0]
    v2 = parse_config(
        '[[endpoint]]\nurl = "http://h/w"\nprotobuf_message = "io.prometheus.write.v2.Request"\n'
    ).endpoint[0]
    assert tuned.queue_name() == base.queue_name()
    assert v2.queue_name() != base.queue_name()
    assert base.legacy_queue_name() != tuned.legacy_queue_name()


def test_relative_secret_file_resolves_against_config_dir(tmp_path: Path) -> None:
    (tmp_path / "token.txt").write_text("tok-123\n", encoding="utf-8")
    path = tmp_path / "c.toml"
    path.write_text(
        '[[endpoint]]\nurl = "http://h/w"\nbearer_token = { file = "token.txt" }\n',
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.endpoint[0].bearer_token is not None
    assert config.endpoint[0].bearer_token.reveal() == "tok-123"


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_configs_pass_check_config(
    sample: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    code, _, err = _run(["check-config", str(sample)], capsys)
    assert code == 0, err


def test_required_samples_exist() -> None:
    names = {p.name for p in SAMPLES}
    assert names >= {
        "minimal.toml",
        "mimir-tenant.toml",
        "basic-auth-env.toml",
        "two-endpoints.toml",
        "relabel.toml",
        "remote-write-v2.toml",
        "node-exporter-scrape.toml",
    }


def test_sample_contents() -> None:
    env = dict(SAMPLE_ENV)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        tenant = load_config(REPO / "sample-configs" / "mimir-tenant.toml")
        assert tenant.endpoint[0].headers["X-Scope-OrgID"].reveal() == "staging"
        basic = load_config(REPO / "sample-configs" / "basic-auth-env.toml")
        assert basic.endpoint[0].basic_auth is not None
        password = basic.endpoint[0].basic_auth.password
        assert password is not None and password.reference == {"env": "RW_PASSWORD"}
        two = load_config(REPO / "sample-configs" / "two-endpoints.toml")
        assert two.endpoint[0].queue_config != two.endpoint[1].queue_config
        relabel = load_config(REPO / "sample-configs" / "relabel.toml")
        actions = {r.action for r in relabel.endpoint[0].write_relabel_config}
        assert len(actions) >= 5
        v2 = load_config(REPO / "sample-configs" / "remote-write-v2.toml")
        assert v2.endpoint[0].protobuf_message == schema.PROTOBUF_V2
        node = load_config(REPO / "sample-configs" / "node-exporter-scrape.toml")
        assert node.scrape[0].targets == ["127.0.0.1:9100"]
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_entry_point_subprocess(tmp_path: Path) -> None:
    """The installed entry point behaves the same (exit codes, no traceback)."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[[endpoint]]\nurl = 1\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "rwconsole", "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"{bad}: endpoint[0].url: expected a string, got 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_legacy_queue_name_reproduces_earlier_versions() -> None:
    """Progress files written before url-based identity are keyed by this hash of the whole
    endpoint config; a key added to an endpoint since must be in schema._NEWER_FIELDS."""
    config = parse_config(
        '[[endpoint]]\nurl = "http://127.0.0.1:9/api/v1/write"\n'
        "[endpoint.queue_config]\nmax_shards = 3\n"
    )
    assert config.endpoint[0].legacy_queue_name() == "831be7"
