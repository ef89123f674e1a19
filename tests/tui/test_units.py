"""The console's pure helpers: estimates, themes, chart reduction, WAL distances."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from rwconsole.snapshot import HistoryPoint, ShardHour
from rwconsole.tui import estimates, themes
from rwconsole.tui.widgets.charts import window_ticks
from rwconsole.wal.browse import behind_bytes
from rwconsole.wal.segment import segment_name


def _point(t: float, desired: float, latency: float = 0.05) -> HistoryPoint:
    return HistoryPoint(t, 1, desired, 1, 50, 0, 100, 100, 0, 0, 0, 0, latency)


def test_suggest_max_shards_uses_4x_p90_with_floor_50() -> None:
    small = [_point(i, 2.0) for i in range(100)]
    advice = estimates.suggest_max_shards(small)
    assert advice is not None
    assert advice.max_shards == 50 and advice.percentile_desired == 2.0
    assert advice.points == 100 and advice.window_seconds == 99
    # 90 points at 10, 10 points at 40: the 90th percentile is 10 → 40 → floor 50.
    mixed = [_point(i, 10.0) for i in range(90)] + [_point(90 + i, 40.0) for i in range(10)]
    assert estimates.suggest_max_shards(mixed).max_shards == 50  # type: ignore[union-attr]
    big = [_point(i, 30.0 + i % 2) for i in range(100)]
    assert estimates.suggest_max_shards(big).max_shards == 124  # type: ignore[union-attr]
    assert estimates.suggest_max_shards([]) is None


def test_suggest_max_shards_against_the_current_value_raises_lowers_or_keeps() -> None:
    idle = [_point(i, 0.02) for i in range(100)]
    assert estimates.suggest_max_shards(idle, 10).change == "raise"  # type: ignore[union-attr]
    keep = estimates.suggest_max_shards(idle, 50)
    assert keep is not None and (keep.change, keep.max_shards) == ("keep", 50)
    # 4 × p90 = 8, far below 200: lower, to the floor of the rule.
    lower = estimates.suggest_max_shards([_point(i, 2.0) for i in range(100)], 200)
    assert lower is not None and (lower.change, lower.max_shards) == ("lower", 50)
    # 4 × p90 = 124 against 150: not far below, keep.
    busy = [_point(i, 30.0 + i % 2) for i in range(100)]
    assert estimates.suggest_max_shards(busy, 150).change == "keep"  # type: ignore[union-attr]
    lower = estimates.suggest_max_shards(busy, 400)
    assert lower is not None and (lower.change, lower.max_shards) == ("lower", 124)


def test_throughput_estimate_and_latency() -> None:
    history = [_point(i, 1, latency=0.0 if i % 2 else 0.1) for i in range(10)]
    latency = estimates.average_latency(history)
    assert latency == pytest.approx(0.1)
    assert estimates.max_throughput({"max_shards": 50, "max_samples_per_send": 2000}, latency) == (
        pytest.approx(1_000_000)
    )
    assert estimates.max_throughput({"max_shards": 5}, None) is None
    assert estimates.average_latency([_point(0, 1, latency=0)]) is None


def test_window_points_selects_the_recent_tail() -> None:
    history = [_point(float(i), 1) for i in range(100)]
    assert [p.time for p in estimates.window_points(history, 10, 99)] == [
        float(i) for i in range(89, 100)
    ]
    assert estimates.window_points(history, 1000, 99) == history


def test_window_ticks_are_round() -> None:
    assert window_ticks(300)[1] == ["-5m", "-4m", "-3m", "-2m", "-1m", "now"]
    assert window_ticks(3600)[1] == ["-1h", "-45m", "-30m", "-15m", "now"]
    assert window_ticks(60)[1] == ["-1m", "-45s", "-30s", "-15s", "now"]


def test_shipped_themes_load_and_match_the_repository_copies() -> None:
    found, problems = themes.load_themes()
    assert problems == []
    assert {"rwconsole-dark", "rwconsole-light", "rwconsole-high-contrast"} <= set(found)
    assert found["rwconsole-light"].dark is False
    repo = Path(themes.__file__).resolve().parents[2] / "themes"
    package = Path(themes.__file__).resolve().parent / "themes"
    for path in repo.glob("*.toml"):
        assert (package / path.name).read_bytes() == path.read_bytes(), path.name


def test_user_theme_dir_overrides_and_reports_bad_files(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text('name = "mine"\nprimary = "#123456"\ndark = false\n')
    (tmp_path / "dark.toml").write_text(
        'name = "rwconsole-dark"\nprimary = "#ff0000"\nbackground = "#000000"\n'
    )
    (tmp_path / "broken.toml").write_text('name = "x"\nprimary = "not-a-colour"\n')
    (tmp_path / "typo.toml").write_text('name = "y"\nprimary = "#fff"\nprimay = "#000"\n')
    found, problems = themes.load_themes(tmp_path)
    assert found["mine"].primary == "#123456"
    assert found["rwconsole-dark"].primary == "#ff0000"
    messages = {p.path.name: p.message for p in problems}
    assert "'primary'" in messages["broken.toml"] and "not a colour" in messages["broken.toml"]
    assert "primay" in messages["typo.toml"]
    _, missing = themes.load_themes(tmp_path / "nope")
    assert any("not a directory" in str(p) for p in missing)


def test_theme_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "env.toml").write_text('name = "from-env"\nprimary = "#00ff00"\n')
    monkeypatch.setenv(themes.THEME_DIR_ENV, str(tmp_path))
    assert "from-env" in themes.load_themes()[0]


def test_theme_choice_is_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(themes.CONFIG_DIR_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert themes.saved_theme() is None
    assert themes.save_theme("rwconsole-light") is None
    assert (tmp_path / "xdg" / "rwconsole" / themes.STATE_FILE).is_file()
    assert themes.saved_theme() == "rwconsole-light"
    (tmp_path / "xdg" / "rwconsole" / themes.STATE_FILE).write_text("not = [toml")
    assert themes.saved_theme() is None


def test_theme_state_write_failure_is_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(themes.CONFIG_DIR_ENV, str(blocker / "sub"))
    message = themes.save_theme("x")
    assert message is not None and "cannot remember the theme" in message


def test_behind_bytes_counts_across_segments(tmp_path: Path) -> None:
    for index, size in ((0, 1000), (1, 2000), (2, 500)):
        with open(tmp_path / segment_name(index), "wb") as handle:
            handle.write(os.urandom(size))
    assert behind_bytes(tmp_path, (0, 400), (2, 100)) == 600 + 2000 + 100
    assert behind_bytes(tmp_path, (1, 10), (1, 30)) == 20
    assert behind_bytes(tmp_path, (2, 100), (1, 30)) == 0


def test_suggest_max_shards_prefers_the_persisted_hourly_history() -> None:
    # A week of quiet hours (p90 2) and a busy day (p90 40): 4 × the weighted p90.
    quiet = [ShardHour(i * 3600.0, 3600.0, 2.0) for i in range(6 * 24)]
    busy = [ShardHour((6 * 24 + i) * 3600.0, 3600.0, 40.0) for i in range(24)]
    last_hour = [_point(i, 0.5) for i in range(100)]
    advice = estimates.suggest_max_shards(last_hour, 50, [*quiet, *busy])
    assert advice is not None
    assert (advice.change, advice.max_shards, advice.hours) == ("raise", 160, 7 * 24)
    assert advice.points == 7 * 24 * 3600 and advice.window_seconds == 7 * 24 * 3600
    # A one-second peak weighs one second, not one hour: the 90th percentile stays.
    short_peak = [*quiet[:-4], ShardHour(0.0, 1.0, 99.0)]
    shorter = estimates.suggest_max_shards(last_hour, None, short_peak)
    assert shorter is not None and shorter.percentile_desired == 2.0
    # Without hours: the one-second history, as before.
    fallback = estimates.suggest_max_shards(last_hour, None, [])
    assert fallback is not None and (fallback.hours, fallback.points) == (0, 100)


def test_average_rate_spans_the_window_so_a_slow_scrape_does_not_read_zero() -> None:
    # A 5 s scrape: 500 samples arrive every fifth second.
    history = [
        dataclasses.replace(_point(i, 1.0), accepted_per_second=500.0 if i % 5 == 0 else 0.0)
        for i in range(60)
    ]
    assert estimates.average_rate(history, "accepted_per_second", 1.0) == 0.0
    assert estimates.average_rate(history, "accepted_per_second", 10.0) == 100.0
    assert estimates.average_rate(history[:3], "accepted_per_second", 10.0) == 500.0 / 3
    assert estimates.average_rate([], "accepted_per_second", 10.0) == 0.0
