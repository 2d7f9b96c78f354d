"""``--recompute budget:`` with ``--offload budget:`` chosen together: within the budget, and
faster than recomputing alone where a free copy can stand in for recomputation."""

from __future__ import annotations

import pytest

from schedules.registry import build_schedule
from simulator.analytic.run_plan import simulate_plan
from simulator.errors import PebbleError
from simulator.run.plan import CostSource, plan_run

MODEL = "transformer:layers=4,hidden=2048,heads=16,seq=4096,vocab=32000,dtype=bfloat16"
COSTS = CostSource(hardware="gh200")


def _run(recompute=None, offload=None):
    plan = plan_run(
        build_schedule("1f1b", 4, 8), MODEL, costs=COSTS, recompute=recompute, offload=offload
    )
    return simulate_plan(plan)


def _peaks(timeline) -> list[int]:
    return [r.true_peak_bytes for r in timeline.summary().per_rank]


@pytest.fixture(scope="module")
def runs():
    neither = _run()
    budget = int(0.5 * max(_peaks(neither)))
    return {
        "budget": budget,
        "joint": _run(f"budget:{budget}", f"budget:{budget}"),
        "full": _run("full"),
    }


def test_the_joint_plan_keeps_every_rank_within_the_budget(runs):
    assert max(_peaks(runs["joint"])) <= runs["budget"]


def test_it_offloads_for_free_where_it_can_and_recomputes_less_than_full(runs):
    joint = runs["joint"]
    assert "with recompute" in joint.meta.offload
    assert sum(joint.host_peak_bytes().values()) > 0  # something went to the host
    assert not [o for o in joint.offload if o.kind == "wait"]  # ... and every copy hid
    assert sum(joint.meta.recompute_flops) < sum(runs["full"].meta.recompute_flops)
    assert joint.summary().makespan < runs["full"].summary().makespan


def test_it_is_faster_than_recomputing_alone_within_the_same_budget(runs):
    """Recomputing alone to the same budget: the least recompute that keeps every rank's true
    peak within it."""
    budget = runs["budget"]
    alone = _run(f"budget:{budget}")
    assert max(_peaks(alone)) <= budget
    assert runs["joint"].summary().makespan < alone.summary().makespan


def test_an_impossible_joint_budget_is_one_sentence():
    with pytest.raises(PebbleError, match="no plan recomputing and offloading keeps every rank"):
        _run("budget:1MiB", "budget:1MiB")
