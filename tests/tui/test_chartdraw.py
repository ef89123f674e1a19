"""The braille chart renderer: where dots land, axes, legend, and spikes that survive reduction."""

from __future__ import annotations

from rwconsole.tui import chartdraw
from rwconsole.tui.chartdraw import Line, draw
from rwconsole.tui.format import number

WIDTH, HEIGHT = 40, 10  # plot rows = HEIGHT - 3


def _draw(lines: list[Line], *, y_max: float = 10.0, x_range: tuple[float, float] = (0, 100)):
    return draw(
        WIDTH,
        HEIGHT,
        "Lag (seconds)",
        lines,
        x_range=x_range,
        x_ticks=[(0.0, "-1m"), (50.0, "-30s"), (100.0, "now")],
        y_max=y_max,
        y_label=number,
    )


def _text(row: list[tuple[str, str]]) -> str:
    return "".join(text for text, _key in row)


def _plot_cells(rows: list[list[tuple[str, str]]]) -> list[str]:
    """The plot area of each plot row (after the y axis)."""
    out = []
    for row in rows[1:-2]:
        text = _text(row)
        out.append(text[text.index("┤") + 1 :] if "┤" in text else text[text.index("│") + 1 :])
    return out


def test_every_row_has_the_full_width() -> None:
    rows = _draw([Line("lag", [0, 50, 100], [1, 5, 9], "primary")])
    assert len(rows) == HEIGHT
    assert all(len(_text(row)) == WIDTH for row in rows)


def test_a_constant_line_is_one_horizontal_row_of_dots() -> None:
    xs = [float(x) for x in range(101)]
    rows = _draw([Line("flat", xs, [10.0] * 101, "primary")], y_max=10.0)
    cells = _plot_cells(rows)
    assert set(cells[0].strip()) == {chr(0x2800 + 0x01 + 0x08)}  # top dot row, both columns
    assert all(not row.strip() for row in cells[1:])


def test_zero_sits_on_the_bottom_dot_row() -> None:
    rows = _draw([Line("zero", [0.0, 100.0], [0.0, 0.0], "primary")])
    cells = _plot_cells(rows)
    assert set(cells[-1].strip()) == {chr(0x2800 + 0x40 + 0x80)}
    assert all(not row.strip() for row in cells[:-1])


def test_a_one_point_spike_among_thousands_stays_visible() -> None:
    xs = [i / 36 for i in range(3600)]
    ys = [0.0] * 3600
    ys[1234] = 10.0
    cells = _plot_cells(_draw([Line("x", xs, ys, "primary")]))
    assert cells[0].strip(), "the spike reaches the top row"


def test_lines_are_connected_across_rows() -> None:
    cells = _plot_cells(_draw([Line("ramp", [0.0, 100.0], [0.0, 10.0], "primary")]))
    assert all(row.strip() for row in cells), "a ramp from 0 to max crosses every row"


def test_first_line_is_drawn_on_top_and_keeps_its_colour() -> None:
    xs = [0.0, 100.0]
    rows = _draw([Line("a", xs, [5.0, 5.0], "primary"), Line("b", xs, [5.0, 5.0], "warning")])
    colours = {key for row in rows[1:-2] for text, key in row if text.strip() and key != "axis"}
    assert colours == {"primary"}


def test_axes_labels_legend_and_clipping() -> None:
    rows = _draw([Line("lag", [0.0, 100.0], [50.0, float("nan")], "primary")], y_max=2000.0)
    title = _text(rows[0])
    assert title.startswith("Lag (seconds)") and chartdraw.LEGEND_MARK + " lag" in title
    assert _text(rows[1]).lstrip().startswith("2k ┤")
    assert _text(rows[HEIGHT - 3]).lstrip().startswith("0 ┤")
    assert "└" in _text(rows[-2]) and _text(rows[-2]).count("┬") == 3
    labels = _text(rows[-1])
    assert labels.index("-1m") < labels.index("-30s") < labels.index("now")
    assert labels.rstrip().endswith("now")


def test_points_outside_the_range_are_left_out_and_tiny_sizes_do_not_fail() -> None:
    rows = _draw([Line("x", [-50.0, 150.0], [5.0, 5.0], "primary")])
    assert not any(row.strip() for row in _plot_cells(rows))
    assert draw(0, 0, "t", [], x_range=(0, 1), x_ticks=[], y_max=1, y_label=number) == []
    small = draw(6, 2, "Title", [], x_range=(0, 1), x_ticks=[], y_max=1, y_label=number)
    assert [_text(row) for row in small] == ["Title ", "      "]


def _legend_text(rows: list[list[tuple[str, str]]]) -> str:
    """Title and legend rows (everything above the first y axis row) as one string."""
    header = []
    for row in rows:
        text = _text(row)
        if "┤" in text or "│" in text:
            break
        header.append(text)
    return " ".join(header)


def test_the_legend_names_every_series_however_narrow_the_chart() -> None:
    names = ["retried", "failed", "dropped"]
    lines = [Line(name, [0.0, 100.0], [1.0, 2.0], "primary") for name in names]
    for width in (26, 30, 40, 60, 120):
        rows = draw(
            width,
            12,
            "Retried / failed / dropped (samples/s)",
            lines,
            x_range=(0, 100),
            x_ticks=[],
            y_max=3.0,
            y_label=number,
        )
        assert len(rows) == 12 and all(len(_text(row)) == width for row in rows)
        legend = _legend_text(rows)
        assert all(name in legend for name in names), (width, legend)
    # Too narrow for whole names in the rows available: every series still has its mark.
    rows = draw(12, 6, "Title", lines, x_range=(0, 100), x_ticks=[], y_max=3.0, y_label=number)
    assert _legend_text(rows).count(chartdraw.LEGEND_MARK) == 3


def test_notes_join_the_legend_without_a_line() -> None:
    rows = _draw(
        [Line("shards", [0.0, 100.0], [1.0, 1.0], "primary")],
        y_max=2.0,
    )
    noted = draw(
        WIDTH,
        HEIGHT,
        "Shards",
        [Line("shards", [0.0, 100.0], [1.0, 1.0], "primary")],
        x_range=(0, 100),
        x_ticks=[],
        y_max=2.0,
        y_label=number,
        notes=[chartdraw.LegendNote("max 50 ↑", "error")],
    )
    assert "max 50 ↑" in _legend_text(noted) and "max" not in _legend_text(rows)
    assert not any(key == "error" for row in noted[1:] for _piece, key in row)
