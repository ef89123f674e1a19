"""Durations (parse/format round-trip) and the Secret type."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from rwconsole.config.durations import (
    DurationError,
    format_duration,
    format_duration_ns,
    parse_duration,
    parse_duration_ns,
)
from rwconsole.config.secrets import Secret, SecretError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("0s", 0.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("30ms", 0.03),
        ("1m30s", 90.0),
        ("1s500ms", 1.5),
        ("100us", 0.0001),
        ("100µs", 0.0001),
        ("10ns", 1e-8),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("+5s", 5.0),
    ],
)
def test_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-12)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (90.0, "1m30s"),
        (0.03, "30ms"),
        (7200.0, "2h"),
        (5400.0, "1h30m"),
        (1.5, "1s500ms"),
        (28800.0, "8h"),
        (0.0001, "100us"),
        (3723.004, "1h2m3s4ms"),
    ],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["", "30", "-5s", "5 s", "1d", "s", "5sec", "1h-5m", "abc", "."])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


def test_fraction_is_exact() -> None:
    assert parse_duration_ns("1.1s") == 1_100_000_000
    assert parse_duration_ns("0.000000001s") == 1


def test_format_rejects_negative() -> None:
    with pytest.raises(DurationError):
        format_duration(-1.0)


@given(st.integers(min_value=0, max_value=10**16))
def test_round_trip_ns(ns: int) -> None:
    assert parse_duration_ns(format_duration_ns(ns)) == ns


@given(st.integers(min_value=0, max_value=10**9).map(lambda ms: ms / 1000))
def test_round_trip_seconds(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-9)
    assert format_duration(parse_duration(format_duration(seconds))) == format_duration(seconds)


# --- secrets ----------------------------------------------------------------------------

VALUE = "hunter2-Pq7x"


def test_secret_never_prints_value() -> None:
    secret = Secret(VALUE, key_path="endpoint[0].bearer_token")
    renderings = [
        str(secret),
        repr(secret),
        f"{secret}",
        f"{secret!r}",
        f"{secret:>20}",
        "%s %r" % (secret, secret),  # noqa: UP031 - the old style must be safe too
        "{}".format(secret),  # noqa: UP032
        json.dumps({"token": secret}),
        json.dumps([secret]),
        tomli_w.dumps({"token": secret}),
        repr({"a": [secret]}),
    ]
    for text in renderings:
        assert VALUE not in text
        assert "<secret>" in text
    assert VALUE not in str(vars(secret))
    assert secret.reveal() == VALUE


def test_secret_copy_and_pickle() -> None:
    secret = Secret(VALUE)
    assert copy.copy(secret) is secret
    assert copy.deepcopy({"s": secret})["s"] is secret
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_secret_equality() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "<secret>"
    assert Secret("a") != "a"
    assert Secret.from_env("X") != Secret("X")
    assert len({Secret("a"), Secret("a"), Secret("b")}) == 2


def test_env_secret_is_read_at_reveal(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = Secret.from_env("RWCONSOLE_TEST_SECRET_ENV", key_path="endpoint[0].bearer_token")
    monkeypatch.setenv("RWCONSOLE_TEST_SECRET_ENV", "first")
    assert secret.reveal() == "first"
    monkeypatch.setenv("RWCONSOLE_TEST_SECRET_ENV", "second")
    assert secret.reveal() == "second"
    assert secret.reference == {"env": "RWCONSOLE_TEST_SECRET_ENV"}
    assert str(secret) == "<secret>"
    monkeypatch.delenv("RWCONSOLE_TEST_SECRET_ENV")
    with pytest.raises(SecretError) as info:
        secret.reveal()
    assert str(info.value) == (
        "endpoint[0].bearer_token: environment variable RWCONSOLE_TEST_SECRET_ENV is not set"
    )


def test_file_secret_is_reread(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("one\n", encoding="utf-8")
    secret = Secret.from_file(str(path), key_path="endpoint[2].basic_auth.password")
    assert secret.reveal() == "one"
    path.write_text("  two  \n", encoding="utf-8")
    assert secret.reveal() == "two"
    path.unlink()
    with pytest.raises(SecretError) as info:
        secret.reveal()
    message = str(info.value)
    assert message.startswith("endpoint[2].basic_auth.password: cannot read secret file")
    assert str(path) in message


def test_file_secret_relative_to_base(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("v", encoding="utf-8")
    secret = Secret.from_file("k", base_dir=tmp_path)
    assert secret.file_path() == tmp_path / "k"
    assert secret.reveal() == "v"
    assert secret.reference == {"file": "k"}
