"""Starting and leaving the console: the demo's temporary data directory is cleaned up."""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rwconsole.exitcodes import EXIT_USAGE
from rwconsole.tui.app import ConsoleApp
from rwconsole.tui.launch import open_wal, run_console


@pytest.fixture
def quick_exit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[str]]:
    """The console quits at once; temporary directories go under tmp_path."""
    seen: list[str] = []

    def run(app: ConsoleApp) -> None:
        seen.append(app.snapshot.wal_dir or "started")

    monkeypatch.setattr(ConsoleApp, "run", run)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    logger = logging.getLogger("rwconsole")
    level, propagate = logger.level, logger.propagate
    yield seen
    logger.setLevel(level)
    logger.propagate = propagate


def test_the_demo_temporary_directory_is_removed_on_exit(
    quick_exit: list[str], tmp_path: Path
) -> None:
    args = argparse.Namespace(config=None, data_dir=None, theme_dir=None)
    assert run_console(args) == 0
    assert quick_exit  # the console did run
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_data_dir_the_user_named_is_kept(quick_exit: list[str], tmp_path: Path) -> None:
    data = tmp_path / "mine"
    args = argparse.Namespace(config=None, data_dir=str(data), theme_dir=None)
    assert run_console(args) == 0
    assert (data / "wal").is_dir()


def test_a_path_with_brackets_is_reported_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "wal[/x]"
    directory.mkdir(parents=True)
    assert open_wal(directory) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "wal[/x]" in err and "not a WAL directory" in err
