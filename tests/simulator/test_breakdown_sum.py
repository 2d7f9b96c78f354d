"""The step-time breakdown: its six parts add up to each step's time on every rank, for every
schedule family, predicted and measured; and the parts are the ones the published formulas name.

Source of the bubble check: GPipe (Huang et al. 2019) and PipeDream-Flush / 1F1B (Narayanan et
al. 2021): with F = I = W = 1 and free transfers, a rank idles (p-1)/(m+p-1) of the step.
"""

from __future__ import annotations

import numpy as np
import pytest

from schedules.registry import build_schedule, list_schedules
from simulator.analytic.auto_plan import empty_schedule, schedule_for
from simulator.analytic.cost_source import cost_model
from simulator.analytic.costs import unit_costs
from simulator.analytic.executor import simulate
from simulator.analytic.run_plan import simulate_plan
from simulator.model import ModelSpec, partition
from simulator.run import CostSource, Layout, make_schedule, plan_run
from simulator.timeline.breakdown import PARTS, step_breakdown

FAMILIES = [name for name, _ in list_schedules()]
V_FAMILIES = ("interleaved-1f1b", "zb-v", "dualpipe-v")
MODEL = "transformer:layers=16,hidden=256,heads=8,seq=128,vocab=1000"
A100 = CostSource(hardware="a100-80gb")


def part(breakdown, name) -> np.ndarray:
    return breakdown.parts[:, :, PARTS.index(name)]


def assert_adds_up(timeline) -> None:
    breakdown = step_breakdown(timeline)
    assert len(breakdown.step_times) == len(timeline.step_times()) > 0
    assert breakdown.step_times == pytest.approx(timeline.step_times(), rel=1e-12)
    assert (breakdown.parts >= 0).all()
    sums = breakdown.parts.sum(axis=2)
    expected = np.broadcast_to(breakdown.step_times[:, None], sums.shape)
    np.testing.assert_allclose(sums, expected, rtol=1e-12, atol=0)
    return breakdown


def hardware_run(name, sync=True, recompute="full", tensor=2, data=2):
    schedule = make_schedule(name, 4, 8, 2 if name in V_FAMILIES else None, steps=2)
    plan = plan_run(
        schedule,
        MODEL,
        layout=Layout(tensor=tensor, data=data),
        costs=A100,
        steps=2,
        sync=sync,
        recompute=recompute,
    )
    return simulate_plan(plan)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("sync", [True, False])
def test_parts_add_up_on_every_family_predicted(name, sync):
    breakdown = assert_adds_up(hardware_run(name, sync=sync))
    # the run has them all: recompute (full), tensor parallelism, an optimizer step (a run
    # without the barrier records none: each rank steps on its own)
    for name_ in ("compute", "recompute", "tensor_comm", "pipeline_wait"):
        assert part(breakdown, name_).sum() > 0, name_
    assert (part(breakdown, "optimizer").sum() > 0) == sync


@pytest.mark.parametrize("layout", ["loop", "v"])
def test_parts_add_up_on_auto(layout):
    plan = plan_run(empty_schedule(4, 8, layout), MODEL, costs=A100, layout=Layout(tensor=2))
    costs = cost_model(plan)
    schedule = schedule_for(plan, costs, "6x", layout)
    timeline = simulate(
        schedule, costs, plan.spec, plan.partition, plan.microbatch_rows, layout=plan.layout
    )
    assert part(assert_adds_up(timeline), "tensor_comm").sum() > 0


@pytest.mark.parametrize("name", ["gpipe", "1f1b"])
@pytest.mark.parametrize(("p", "m"), [(2, 4), (4, 8), (3, 7)])
def test_bubble_is_the_published_fraction(name, p, m):
    schedule = build_schedule(name, p, m)
    spec = ModelSpec.uniform(p, width=8)
    parts = partition(spec, p)
    timeline = simulate(schedule, unit_costs(schedule, parts), spec, parts, 4)
    breakdown = assert_adds_up(timeline)
    wait = part(breakdown, "pipeline_wait")
    np.testing.assert_allclose(wait / breakdown.step_times[:, None], (p - 1) / (m + p - 1))
    np.testing.assert_allclose(part(breakdown, "compute"), 3 * m)
    for idle in ("recompute", "tensor_comm", "data_comm", "optimizer"):
        assert part(breakdown, idle).sum() == 0


def test_tensor_comm_is_each_actions_share_of_its_stage():
    """F and B each carry one F or I part: every microbatch's actions on a stage expose
    2 x its per-part seconds; the rank's share is the sum over its stages."""
    timeline = hardware_run("1f1b", recompute=None)
    breakdown = assert_adds_up(timeline)
    per_part = np.asarray(timeline.meta.tensor_comm)
    assert per_part.min() > 0
    expected = np.zeros(4)
    for stage, rank in enumerate(timeline.meta.stage_to_rank):
        expected[rank] += 2 * 8 * per_part[stage]
    np.testing.assert_allclose(part(breakdown, "tensor_comm")[0], expected, rtol=1e-12)
    assert part(breakdown, "recompute").sum() == 0


def test_no_data_comm_without_replicas_and_none_without_tensor_parallelism():
    breakdown = assert_adds_up(hardware_run("zb-h1", tensor=1, data=1))
    assert part(breakdown, "data_comm").sum() == 0
    assert part(breakdown, "tensor_comm").sum() == 0


def test_exposed_data_comm_is_the_tail_of_the_reduction():
    """With 8 replicas the reduction of the last gradients outlasts some rank's backward: that
    rank's tail is exposed data-parallel communication, not pipeline wait."""
    timeline = hardware_run("1f1b", data=8)
    breakdown = assert_adds_up(timeline)
    assert part(breakdown, "data_comm").max() > 0


def test_an_empty_timeline_has_no_steps():
    from simulator.timeline import Timeline

    breakdown = step_breakdown(Timeline())
    assert breakdown.parts.shape[0] == 0
    assert breakdown.rows() == [{**dict.fromkeys(PARTS, 0.0), "rank": 0, "step_time": 0.0}][:0]


def test_parts_add_up_measured_with_replicas_and_recompute(ray_session):
    """Every family's measured run adds up in test_ray_executor (one replica, no recompute);
    here the V family with split backward, two replicas and full recompute."""
    name = "zb-v"
    from simulator.model.optim import OptimizerConfig
    from simulator.model.reference import TrainConfig
    from simulator.ray_pipeline.executor import RayOptions, RayPipeline
    from simulator.run import plan_training

    schedule = build_schedule(name, 2, 4, 2 if name in V_FAMILIES else None)
    hidden = (16,) * max(2, schedule.num_stages - 1)
    config = TrainConfig(
        model=ModelSpec(widths=(2, *hidden, 3), activation="tanh", dtype="float64", seed=7),
        batch_size=64,
        microbatches=4,
        steps=2,
        optimizer=OptimizerConfig("sgd", lr=0.1),
    )
    plan = plan_training(schedule, config, layout=Layout(data=2), recompute="full")
    with RayPipeline(plan, config, RayOptions(calibrate=False)) as pipeline:
        timeline = pipeline.run(config.steps).timeline
    breakdown = assert_adds_up(timeline)
    assert part(breakdown, "compute").min() > 0
    assert part(breakdown, "optimizer").sum() > 0
