"""``rwconsole wal ...`` commands, run through the real entry point."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from wal_helpers import copy_wal

from rwconsole.cli import main
from rwconsole.wal.segment import list_segments


@pytest.fixture
def data_dir(tmp_path: Path, fixtures_dir: Path) -> Path:
    copy_wal(fixtures_dir / "agent-uncompressed" / "wal", tmp_path / "data" / "wal")
    return tmp_path / "data"


def test_inspect_json(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wal", "inspect", str(data_dir), "--json", "--top", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {
        "segments",
        "checkpoint",
        "records",
        "series",
        "samples",
        "exemplars",
        "histograms",
        "min_time_ms",
        "max_time_ms",
        "top_metrics",
        "corruption",
    } <= set(out)
    assert out["series"] == 352 and out["samples"] == 11692 and out["exemplars"] == 1820
    assert out["top_metrics"][0] == {"name": "fx_gauge", "series": 200}
    assert len(out["top_metrics"]) == 3
    assert out["corruption"] is None


def test_inspect_text(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wal", "inspect", str(data_dir / "wal")]) == 0
    out = capsys.readouterr().out
    assert "00000000" in out and "11,692" in out and "fx_gauge" in out


def test_dump_json_with_selector_and_range(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "wal",
                "dump",
                str(data_dir),
                "--match",
                'fx_special{kind=~"neg.*"}',
                "--format",
                "json",
            ]
        )
        == 0
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    kinds = {x["labels"]["kind"] for x in lines}
    assert kinds == {"negzero", "neginf"}
    values = {x["labels"]["kind"]: set() for x in lines}
    for x in lines:
        values[x["labels"]["kind"]].add(str(x["value"]))
    assert values["neginf"] == {"-Inf", "stale"}
    assert values["negzero"] == {"-0.0", "stale"}
    t0 = min(x["timestamp"] for x in lines)
    assert (
        main(
            [
                "wal",
                "dump",
                str(data_dir),
                "--match",
                "fx_special",
                "--format",
                "json",
                "--start",
                str(t0),
                "--end",
                str(t0),
            ]
        )
        == 0
    )
    window = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {x["timestamp"] for x in window} == {t0} and len(window) == 6


def test_dump_exemplars_and_openmetrics(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "wal",
                "dump",
                str(data_dir),
                "--match",
                'fx_requests_total{path="/p0"}',
                "--format",
                "json",
            ]
        )
        == 0
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    exemplars = [x for x in lines if x.get("type") == "exemplar"]
    assert len(exemplars) == 35
    assert exemplars[0]["exemplar_labels"] == {"trace_id": "t0_0"}
    assert (
        main(
            [
                "wal",
                "dump",
                str(data_dir),
                "--match",
                'fx_special{kind="nan"}',
                "--format",
                "openmetrics",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "# EOF"
    assert out[0].startswith('fx_special{instance="127.0.0.1:18081",job="om",kind="nan"} NaN ')


def test_dump_rfc3339_and_bad_arguments(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wal", "dump", str(data_dir), "--start", "2100-01-01T00:00:00Z"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["wal", "dump", str(data_dir), "--start", "yesterday"]) == 2
    assert "--start" in capsys.readouterr().err
    assert main(["wal", "dump", str(data_dir), "--match", 'up{job=~"("}']) == 2
    assert "character" in capsys.readouterr().err


def test_verify_and_repair(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wal_dir = data_dir / "wal"
    assert main(["wal", "verify", str(data_dir)]) == 0
    capsys.readouterr()
    seg = wal_dir / "00000000"
    data = bytearray(seg.read_bytes())
    data[40_000] ^= 0xFF
    seg.write_bytes(bytes(data))
    assert main(["wal", "verify", str(data_dir)]) == 1
    out = capsys.readouterr().out
    assert "corruption" in out and "00000000" in out and "offset" in out and "samples" in out

    assert main(["wal", "repair", str(data_dir), "--dry-run"]) == 0
    assert "drops at least" in capsys.readouterr().out
    assert seg.read_bytes() == bytes(data)  # dry run changed nothing

    assert main(["wal", "repair", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "kept" in out
    backups = [p for p in data_dir.iterdir() if p.name.startswith("wal.repair-backup-")]
    assert len(backups) == 1 and (backups[0] / "00000000.damaged").read_bytes() == bytes(data)
    assert main(["wal", "verify", str(data_dir)]) == 0
    assert [s.index for s in list_segments(wal_dir)] == [0]


def test_usage_errors_are_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wal", "inspect", str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert main(["wal", "verify", str(tmp_path)]) == 2
    assert "not a WAL directory" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0)
    try:
        code = main(["wal", "inspect", str(locked)])
        err = capsys.readouterr().err
        if os.geteuid() != 0:
            assert code == 2 and "permission denied" in err
        else:
            assert code == 2 and "Traceback" not in err
    finally:
        os.chmod(locked, 0o755)
    with pytest.raises(SystemExit) as info:
        main(["wal", "dump"])
    assert info.value.code == 2
    assert main(["wal", "open", str(tmp_path)]) == 2
    assert "not a WAL directory" in capsys.readouterr().err


def test_inspect_text_piped_shows_readable_whole_times(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["wal", "inspect", str(data_dir)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "00000000" in line and "│" in line)
    # Both times of the segment, readable and whole (not raw milliseconds cut at 80 columns).
    stamps = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", row)
    assert len(stamps) == 2 and "1795238741841" not in row
    assert "…" not in out


def test_repair_dry_run_says_where_it_would_cut_and_what_it_keeps(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seg = data_dir / "wal" / "00000000"
    data = bytearray(seg.read_bytes())
    data[40_000] ^= 0xFF
    seg.write_bytes(bytes(data))
    assert main(["wal", "repair", str(data_dir), "--dry-run"]) == 0
    out = capsys.readouterr().out
    cut = re.search(
        r"would cut segment 00000000 at byte offset ([\d,]+): keep (\d+) record\(s\) before it, "
        r"drop at least (\d+) record\(s\) \(([\d,]+) samples\)",
        out,
    )
    assert cut is not None, out
    assert int(cut.group(2)) > 0 and int(cut.group(3)) > 0
    assert "would move the removed data to wal.repair-backup-<time>" in out
    assert seg.read_bytes() == bytes(data)
    assert main(["wal", "repair", str(data_dir), "--dry-run", "--no-backup"]) == 0
    assert "would delete the removed data" in capsys.readouterr().out
    # The real repair keeps as many records as the dry run said.
    assert main(["wal", "repair", str(data_dir)]) == 0
    assert f"kept {cut.group(2)} record(s)" in capsys.readouterr().out
