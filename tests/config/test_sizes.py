"""Byte sizes in the config: ``[wal] max_size`` and its checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from rwconsole.config.load import load_config
from rwconsole.config.sizes import SizeError, format_size, parse_size
from tests.config.test_validation import EP, _check


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (0, 0),
        (1048576, 1048576),
        ("0", 0),
        ("0.0", 0),
        ("512MiB", 512 * 1024**2),
        ("20GB", 20 * 1000**3),
        ("1.5GiB", 3 * 1024**3 // 2),
        ("64kib", 65536),
        ("100 B", 100),
    ],
)
def test_sizes_parse(text: int | str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("12XB", "unknown unit 'XB'"),
        ("100", "missing unit"),
        ("2.0", "missing unit"),
        ("-1MiB", "invalid size"),
        (-5, "negative"),
        ("0.5B", "whole number of bytes"),
        ("MiB", "invalid size"),
    ],
)
def test_bad_sizes_are_named(text: int | str, fragment: str) -> None:
    with pytest.raises(SizeError, match=fragment):
        parse_size(text)


def test_sizes_format_back() -> None:
    for size in (0, 1, 65536, 512 * 1024**2, 3 * 1024**3 // 2, 20 * 1000**3):
        assert parse_size(format_size(size) if size else 0) == size


def test_max_size_loads_with_units(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(EP + '[wal]\nmax_size = "1GiB"\non_full = "reject"\n', encoding="utf-8")
    config = load_config(path)
    assert config.wal.max_size == 1024**3 and config.wal.on_full == "reject"


@pytest.mark.parametrize(
    ("text", "key_path", "fragment"),
    [
        ('[wal]\nmax_size = "12XB"\n', "wal.max_size", "unknown unit"),
        ("[wal]\nmax_size = true\n", "wal.max_size", "expected a size"),
        ('[wal]\nmax_size = "100MiB"\n', "wal.max_size", "at least two segments (256MiB"),
        (
            '[wal]\nmax_size = "100KiB"\nsegment_size = 65536\n',
            "wal.max_size",
            "at least two segments (128KiB",
        ),
        ('[wal]\non_full = "block"\n', "wal.on_full", "'drop_oldest', 'reject'"),
    ],
)
def test_bad_budget_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key_path: str, fragment: str
) -> None:
    code, err = _check(tmp_path, capsys, EP + text)
    assert code == 1, err
    lines = [line for line in err.splitlines() if f": {key_path}: " in line]
    assert lines and any(fragment in line for line in lines), err
