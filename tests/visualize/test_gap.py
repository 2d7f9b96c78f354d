"""The overlay's lower panel: each rank's time split into parts, and the excess per part.

Closed forms on an analytic run whose every start is known (``test_sharing.runtime_timeline``:
GPipe, 2 ranks, m = 1, F = 1, B = 2, a call overhead of 0.5, transfers of 0.25).
"""

from __future__ import annotations

import pytest

from schedules.registry import build_schedule
from simulator.analytic.costs import CostModel, StageCost
from simulator.analytic.executor import simulate
from simulator.model import ModelSpec, partition
from tests.simulator.test_sharing import runtime_timeline
from tests.visualize.synthetic import gpipe_timeline
from visualize.gap import PARTS, compared_span, time_split, warmup_extra
from visualize.overlay import makespan_error, overlay_figure


def test_each_rank_splits_into_parts_by_hand():
    """r0: 0F0 [0.5, 1.5] (no input), 0B0 [6, 8] (its gradient left rank 1 at 5.25);
    r1: 1F0 [2.25, 3.25] (its input left rank 0 at 1.5), 1B0 [3.25, 5.25] (same call).
    The span is [0.5, 8]. Rank 0 waits for rank 1 from 1.5 to 5.25, then the transfer (0.25)
    and the call (0.5) until 6; rank 1 waits from 0.5 to 1.5, and after 5.25 until the end."""
    split = time_split(runtime_timeline(call_overhead=0.5))
    zero = dict.fromkeys(PARTS, 0.0)
    assert split[0] == {
        **zero,
        "compute": 3.0,
        "transfer wait": 0.75,
        "waiting on other ranks": 3.75,
    }
    assert split[1] == {
        **zero,
        "compute": 3.0,
        "transfer wait": 0.75,
        "waiting on other ranks": 1.0 + 2.75,
    }


@pytest.mark.parametrize("first_step", [0, 1])
def test_parts_add_up_to_the_span_on_every_rank(first_step):
    schedule = build_schedule("zb-h1", 4, 8)
    spec = ModelSpec.uniform(4, width=8)
    costs = CostModel(
        stage_costs=(StageCost(1.0, 1.0, 1.0),) * 4,
        comm_latency=0.3,
        call_overhead=0.2,
        send_overhead=0.1,
        call_cpu=0.3,
        optimizer_time=2.0,
    )
    timeline = simulate(schedule, costs, spec, partition(spec, 4), 4, steps=3, cores=2)
    start, end = compared_span(timeline, first_step)
    for parts in time_split(timeline, first_step).values():
        assert sum(parts.values()) == pytest.approx(end - start, rel=1e-12)
        assert parts["step overhead"] >= 2.0 * (2 - first_step)  # the optimizer, each step
        # compute is each rank's work: 8 F, 8 I and 8 W of cost 1 per step; 4 ranks on 2
        # cores run slower than that at times, and the rest of their spans waited for a core
        assert parts["compute"] == pytest.approx(24.0 * (3 - first_step), rel=1e-12)
        assert parts["waiting for a core"] > 0


def test_step_zero_is_left_out_of_the_error_and_said_so():
    predicted = gpipe_timeline(3, 4, steps=3, time_unit="s")
    measured = gpipe_timeline(3, 4, steps=3, time_unit="s", source="ray")
    slow = [e.step == 0 for e in measured.events]
    measured.events = [
        e._replace(start=e.start + 5 * (e.step > 0), end=e.end + 5 * (e.step > 0 or s))
        for e, s in zip(measured.events, slow, strict=True)
    ]
    measured.optimizer = [o._replace(start=o.start + 5, end=o.end + 5) for o in measured.optimizer]
    error = makespan_error(predicted, measured)
    assert error.first_step == 1 and error.error == pytest.approx(0.0, abs=1e-12)
    assert error.text().startswith("steps 1-2: ")
    assert warmup_extra(measured) == pytest.approx(5.0)
    whole = makespan_error(predicted, measured, skip_warmup=False)
    assert whole.first_step == 0 and whole.error < 0
    title = overlay_figure(predicted, measured).axes[0].get_title()
    assert "steps 1-2: " in title and "step 0 (warm-up, 5 s longer) excluded" in title


def test_the_panel_nets_out_to_the_gap_on_every_rank():
    """A measurement 25% slower throughout: every rank's bars add up to the dotted line, the
    difference of the two spans (in the panel's unit)."""
    predicted = gpipe_timeline(3, 4, time_unit="s")
    measured = gpipe_timeline(3, 4, time_unit="s", source="ray")
    measured.events = [e._replace(start=e.start * 1.25, end=e.end * 1.25) for e in measured.events]
    measured.comms = [c._replace(start=c.start * 1.25, end=c.end * 1.25) for c in measured.comms]
    measured.optimizer = [
        o._replace(start=o.start * 1.25, end=o.end * 1.25) for o in measured.optimizer
    ]
    panel = overlay_figure(predicted, measured).axes[1]
    net: dict[float, float] = {}
    for bar in panel.patches:
        rank = round(bar.get_y() + bar.get_height() / 2)
        net[rank] = net.get(rank, 0.0) + bar.get_width()
    dotted = [line.get_xdata()[0] for line in panel.lines if line.get_linestyle() == ":"]
    gap = makespan_error(predicted, measured)
    assert dotted == [pytest.approx(gap.measured - gap.predicted)]  # 19 s x 0.25, in s
    assert sorted(net) == [0, 1, 2]
    for value in net.values():
        assert value == pytest.approx(dotted[0], rel=1e-9)
    assert "Where the measured time went" in panel.get_title()
