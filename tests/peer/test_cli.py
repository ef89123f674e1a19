"""``rwconsole attach --metrics``: the errors before any console opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from rwconsole.cli import main
from rwconsole.exitcodes import EXIT_BAD, EXIT_USAGE
from tests.conftest import free_port


def test_a_peer_wal_needs_a_metrics_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Without --metrics, attach means rwconsole's own admin API; --wal belongs to a peer.
    assert main(["attach", "--wal", str(tmp_path)]) == EXIT_USAGE
    assert "--wal goes with --metrics" in capsys.readouterr().err


def test_target_and_metrics_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attach", "some-dir", "--metrics", "http://127.0.0.1:1/metrics"]) == EXIT_USAGE
    assert "either TARGET or --metrics" in capsys.readouterr().err


def test_the_metrics_url_must_be_http(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attach", "--metrics", "localhost:9090/metrics"]) == EXIT_USAGE
    assert "--metrics: 'localhost:9090/metrics' is not an http:// or https:// URL" in (
        capsys.readouterr().err.replace("\n", "")
    )


def test_a_wal_that_is_not_one_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert main(["attach", "--metrics", "http://127.0.0.1:1/metrics", "--wal", str(missing)]) == (
        EXIT_USAGE
    )
    err = capsys.readouterr().err
    assert "--wal:" in err and "nowhere" in err.replace("\n", "")


def test_an_unreachable_peer_is_reported_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    assert main(["attach", "--metrics", url]) == EXIT_BAD
    err = capsys.readouterr().err.replace("\n", "")
    assert f"cannot attach: cannot read {url}" in err
    assert "Traceback" not in err
