"""Predicted vs measured: both runs' boxes on one chart, the makespan error in the title."""

from __future__ import annotations

import pytest

from simulator.errors import PebbleError
from tests.visualize.synthetic import gpipe_timeline, patches_with
from visualize.overlay import makespan_error, overlay_figure


def stretched(timeline, factor):
    out = gpipe_timeline(3, 4, time_unit=timeline.time_unit, source="ray")
    out.events = [e._replace(start=e.start * factor, end=e.end * factor) for e in out.events]
    out.optimizer = [o._replace(start=o.start * factor, end=o.end * factor) for o in out.optimizer]
    return out


def test_makespan_error():
    predicted = gpipe_timeline(3, 4, time_unit="s")
    measured = stretched(predicted, 1.25)
    error = makespan_error(predicted, measured)
    assert error.predicted == 19.0 and error.measured == 19.0 * 1.25
    assert error.error == pytest.approx(-0.2)
    assert error.text() == "predicted 19 s, measured 23.8 s, error 20.0% (under)"


def test_both_runs_drawn_box_for_box():
    predicted = gpipe_timeline(3, 4, time_unit="s")
    measured = stretched(predicted, 1.25)
    fig = overlay_figure(predicted, measured)
    pred = {p.get_gid(): p for p in patches_with(fig, "predicted:")}
    meas = {p.get_gid(): p for p in patches_with(fig, "measured:")}
    assert len(pred) == len(meas) == len(predicted.events)
    for e in measured.events:
        box = meas[f"measured:{e.rank}:{e.stage}{e.kind}{e.microbatch}:{e.step}"]
        assert box.get_x() == pytest.approx(e.start)
        assert box.get_width() == pytest.approx(e.end - e.start)
        other = pred[f"predicted:{e.rank}:{e.stage}{e.kind}{e.microbatch}:{e.step}"]
        assert other.get_y() < box.get_y()  # prediction above measurement in each rank
    assert "error 20.0%" in fig.axes[0].get_title()


def test_runs_are_aligned_at_their_first_event():
    predicted = gpipe_timeline(3, 4, time_unit="s")
    measured = gpipe_timeline(3, 4, time_unit="s")
    measured.events = [e._replace(start=e.start + 5, end=e.end + 5) for e in measured.events]
    fig = overlay_figure(predicted, measured)
    xs = sorted(p.get_x() for p in patches_with(fig, "measured:"))
    assert xs[0] == 0.0


def test_different_units_fall_back_to_fractions_of_the_makespan():
    fig = overlay_figure(gpipe_timeline(3, 4), gpipe_timeline(3, 4, scale=1e-3, time_unit="s"))
    ax = fig.axes[0]
    assert "fraction" in ax.get_xlabel()
    assert max(p.get_x() + p.get_width() for p in patches_with(fig, "measured:")) <= 1.0


def test_different_configurations_are_refused():
    with pytest.raises(PebbleError, match="microbatches"):
        overlay_figure(gpipe_timeline(3, 4), gpipe_timeline(3, 5))
