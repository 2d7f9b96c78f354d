"""The step breakdown names exposed offload transfer: a backward held back for its prefetch is
``offload_wait``, not the bubble, and the parts still add up to the step time."""

from __future__ import annotations

import pytest

from schedules.registry import build_schedule
from simulator.analytic.run_plan import simulate_plan
from simulator.run.plan import CostSource, plan_run
from simulator.timeline.breakdown import PARTS, breakdown_rows, step_breakdown

MODEL = "transformer:layers=8,hidden=256,heads=4,seq=128,vocab=96,dtype=bfloat16"


def _predict(host: str, offload: str | None):
    schedule = build_schedule("1f1b", 4, 8)
    costs = CostSource(hardware=f"a100-80gb,host={host}")
    return simulate_plan(plan_run(schedule, MODEL, costs=costs, offload=offload, steps=2))


def _waits(timeline) -> dict[int, float]:
    out: dict[int, float] = {}
    for span in timeline.offload:
        if span.kind == "wait" and span.replica == 0:
            out[span.rank] = out.get(span.rank, 0.0) + span.end - span.start
    return out


def test_a_slow_host_link_shows_as_exposed_transfer_not_as_bubble():
    timeline = _predict("1e8", "full")
    waits = _waits(timeline)
    assert waits, "a 0.1 GB/s host link hides nothing"
    breakdown = step_breakdown(timeline)
    column = PARTS.index("offload_wait")
    per_rank = breakdown.parts[:, :, column].sum(axis=0)
    for rank in range(timeline.num_ranks):
        assert per_rank[rank] == pytest.approx(waits.get(rank, 0.0), rel=1e-9, abs=1e-15)
    sums = breakdown.parts.sum(axis=2)
    for rank in range(timeline.num_ranks):
        assert sums[:, rank] == pytest.approx(breakdown.step_times, rel=1e-9)
    rows = breakdown_rows(timeline)
    assert all("offload_wait" in row for row in rows)


def test_without_offload_the_part_is_absent_from_the_rows_and_zero():
    timeline = _predict("25e9", None)
    assert all("offload_wait" not in row for row in breakdown_rows(timeline))
    column = PARTS.index("offload_wait")
    assert not step_breakdown(timeline).parts[:, :, column].any()
