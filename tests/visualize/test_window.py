"""--window: phases read off the events, times with units, one sentence for a mistake."""

from __future__ import annotations

import pytest

from simulator.analytic.run_plan import simulate_plan
from simulator.errors import PebbleError
from simulator.run import make_schedule, plan_run
from tests.visualize.synthetic import gpipe_timeline
from visualize import grads_figure, memory_figure, pebble_figure
from visualize.pipeline import pipeline_figure
from visualize.window import parse_window, phase_bounds


def one_f_one_b(p: int = 4, m: int = 8):
    return simulate_plan(plan_run(make_schedule("1f1b", p, m), "2-64-64-64-64-3"))


def test_phases_of_1f1b_in_unit_costs():
    """1F1B, p=4, m=8, F=1, B=2 (unit costs): rank 0's first backward ends last of the ranks'
    first backwards (read from the events); the cool-down starts at rank 0's
    last forward, the earliest of the ranks' last forwards."""
    run = one_f_one_b()
    start, warm_end, cool_start, end = phase_bounds(run)
    first_b = {r: min(e.end for e in run.events if e.rank == r and e.kind == "B") for r in range(4)}
    last_f = {
        r: max(e.start for e in run.events if e.rank == r and e.kind == "F") for r in range(4)
    }
    assert (start, warm_end, cool_start) == (0.0, max(first_b.values()), min(last_f.values()))
    assert warm_end == first_b[0] and cool_start == last_f[0]
    assert end == run.summary().makespan
    steady = parse_window("steady", run)
    assert (steady.start, steady.end, steady.name) == (warm_end, cool_start, "steady state")


def test_times_with_units_and_mistakes():
    run = gpipe_timeline(3, 4, scale=1e-3, time_unit="s", source="ray")
    window = parse_window("2ms:5ms", run)
    assert (window.start, window.end) == pytest.approx((0.002, 0.005))
    assert parse_window("0.002:0.005", run) == window
    assert parse_window(None, run) is None
    for text, words in (
        ("later", "is not warmup, steady, cooldown or T0:T1"),
        ("5:2", "ends before it starts"),
        ("a:b", "is not a number"),
    ):
        with pytest.raises(PebbleError, match=words):
            parse_window(text, run)
    with pytest.raises(PebbleError, match="has a unit"):
        parse_window("1s:2s", gpipe_timeline())
    with pytest.raises(PebbleError, match="no steady state"):
        parse_window("steady", gpipe_timeline())


def test_every_time_axis_figure_zooms_and_says_so():
    run = one_f_one_b()
    window = parse_window("warmup", run)
    for figure in (pipeline_figure, memory_figure, pebble_figure, grads_figure):
        fig = figure(run, window=window)
        axes = fig.axes[-1] if figure is memory_figure else fig.axes[0]
        assert axes.get_xlim() == pytest.approx((window.start, window.end))
        titles = " ".join([ax.get_title() for ax in fig.axes] + [fig.get_suptitle()])
        assert "window: warm-up" in titles
    boxes = [p for p in pipeline_figure(run, window=window).axes[0].patches]
    inside = [p for p in boxes if (p.get_gid() or "").startswith("box:")]
    expected = [e for e in run.events if e.end > window.start and e.start < window.end]
    assert len(inside) == len(expected) < len(run.events)
