"""The chart widget's y scale: fitted to the newest data, so old spikes age out."""

from __future__ import annotations

from rwconsole.tui.widgets.charts import _scale


def test_the_scale_fits_the_newest_data_and_an_old_spike_ages_out() -> None:
    lag = [30.0] + [0.5] * 299  # a start-up spike, then half a second
    top, peak = _scale([lag], recent=225)
    assert top == 0.5 and peak == 30.0


def test_a_recent_spike_always_fits() -> None:
    values = [0.5] * 290 + [12.0] + [0.5] * 9
    top, peak = _scale([values], recent=225)
    assert top == peak == 12.0


def test_sustained_old_values_still_count() -> None:
    # Most of the older part was high: the 90th percentile keeps it on the scale.
    values = [8.0] * 200 + [1.0] * 25 + [1.0] * 75
    top, _peak = _scale([values], recent=225)
    assert top == 8.0


def test_nan_and_empty_do_not_fail() -> None:
    assert _scale([[float("nan")] * 3], recent=1) == (0.0, 0.0)
    assert _scale([], recent=0) == (0.0, 0.0)
