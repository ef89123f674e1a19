"""Saving changes back to the file: raw document kept, validated, atomic."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from rwconsole.config import schema
from rwconsole.config.errors import ConfigError
from rwconsole.config.load import load_config
from rwconsole.config.save import dump_effective, update_config_file

ORIGINAL = """\
external_labels = { cluster = "c1" }

[[endpoint]]
name = "a"
url = "http://127.0.0.1:9090/api/v1/write"
bearer_token = { env = "RWCONSOLE_SAVE_TEST_TOKEN" }

[endpoint.queue_config]
max_shards = 10

[[endpoint]]
name = "b"
url = "http://127.0.0.1:9091/api/v1/write"

[endpoint.basic_auth]
username = "u"
password = { file = "pw.txt" }

[synthetic]
series = 50
"""


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RWCONSOLE_SAVE_TEST_TOKEN", "tok")
    (tmp_path / "pw.txt").write_text("pw", encoding="utf-8")
    path = tmp_path / "rw.toml"
    path.write_text(ORIGINAL, encoding="utf-8")
    path.chmod(0o640)
    return path


def _raw(path: Path) -> dict:  # type: ignore[type-arg]
    return tomllib.loads(path.read_text(encoding="utf-8"))


def test_update_int_keeps_everything_else(config_file: Path) -> None:
    before = _raw(config_file)
    update_config_file(config_file, {("endpoint", 0, "queue_config", "max_shards"): 20})
    after = _raw(config_file)
    assert after["endpoint"][0]["queue_config"]["max_shards"] == 20
    before["endpoint"][0]["queue_config"]["max_shards"] = 20
    assert after == before
    assert after["endpoint"][0]["bearer_token"] == {"env": "RWCONSOLE_SAVE_TEST_TOKEN"}
    assert after["endpoint"][1]["basic_auth"]["password"] == {"file": "pw.txt"}
    assert load_config(config_file).endpoint[0].queue_config.max_shards == 20


def test_durations_written_as_strings(config_file: Path) -> None:
    update_config_file(
        config_file,
        {
            ("endpoint", 1, "queue_config", "min_backoff"): 0.25,
            ("endpoint", 1, "queue_config", "max_backoff"): 90.0,
            ("wal", "max_keepalive_time"): 36000.0,
        },
    )
    raw = _raw(config_file)
    assert raw["endpoint"][1]["queue_config"] == {"min_backoff": "250ms", "max_backoff": "1m30s"}
    assert raw["wal"] == {"max_keepalive_time": "10h"}
    assert load_config(config_file).endpoint[1].queue_config.min_backoff == 0.25


def test_whole_block_as_dataclass(config_file: Path) -> None:
    queue = schema.QueueConfig(max_shards=8, min_shards=2, batch_send_deadline=2.0)
    update_config_file(config_file, {("endpoint", 1, "queue_config"): queue})
    raw = _raw(config_file)
    assert raw["endpoint"][1]["queue_config"] == {
        "max_shards": 8,
        "min_shards": 2,
        "batch_send_deadline": "2s",
    }
    assert load_config(config_file).endpoint[1].queue_config == queue


def test_none_deletes(config_file: Path) -> None:
    update_config_file(config_file, {("endpoint", 0, "queue_config", "max_shards"): None})
    assert "max_shards" not in _raw(config_file)["endpoint"][0]["queue_config"]
    assert load_config(config_file).endpoint[0].queue_config.max_shards == 50


def test_invalid_change_leaves_file_untouched(config_file: Path) -> None:
    before = config_file.read_bytes()
    with pytest.raises(ConfigError) as info:
        update_config_file(config_file, {("endpoint", 0, "queue_config", "min_shards"): 11})
    assert "endpoint[0].queue_config.max_shards: must be >= min_shards (11), got 10" in str(
        info.value
    )
    with pytest.raises(ConfigError):
        update_config_file(config_file, {("endpoint", 0, "queue_config", "max_shard"): 3})
    with pytest.raises(ConfigError):
        update_config_file(config_file, {("endpoint", 5, "name"): "x"})
    assert config_file.read_bytes() == before
    assert sorted(p.name for p in config_file.parent.iterdir()) == ["pw.txt", "rw.toml"]


def test_mode_kept_and_no_temp_files(config_file: Path) -> None:
    update_config_file(config_file, {("synthetic", "series"): 60})
    assert config_file.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in config_file.parent.iterdir()) == ["pw.txt", "rw.toml"]


def test_failed_write_keeps_old_file(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = config_file.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        update_config_file(config_file, {("synthetic", "series"): 70})
    assert config_file.read_bytes() == before
    assert sorted(p.name for p in config_file.parent.iterdir()) == ["pw.txt", "rw.toml"]


def test_new_tables_are_created(config_file: Path) -> None:
    update_config_file(config_file, {("endpoint", 0, "metadata_config", "send"): False})
    assert _raw(config_file)["endpoint"][0]["metadata_config"] == {"send": False}


def test_comments_are_not_kept(config_file: Path) -> None:
    # Documented limitation of tomli-w: the settings survive, comments do not.
    config_file.write_text("# a comment\n" + ORIGINAL, encoding="utf-8")
    update_config_file(config_file, {("synthetic", "series"): 51})
    text = config_file.read_text(encoding="utf-8")
    assert "# a comment" not in text
    assert _raw(config_file)["synthetic"]["series"] == 51


def test_dump_effective_fills_defaults() -> None:
    config = schema.Config(endpoint=[schema.EndpointConfig(url="http://h/w")])
    data = dump_effective(config)
    assert data["endpoint"][0]["queue_config"]["min_backoff"] == "30ms"
    assert data["endpoint"][0]["url"] == "http://h/w"
    assert data["wal"]["truncate_frequency"] == "2h"
    assert "receiver" not in data
