"""A planned run, predicted: the analytic executor's front door.

Why a front door: ``simulate`` is the engine and takes the pieces a caller already has (tests
drive it with hand-made costs); ``simulate_plan`` takes a whole ``RunPlan`` and derives nothing
from it again, so the CLI, ``compare``, ``advise``, the notebooks and the benchmarks all predict
a run the same way.
"""

from __future__ import annotations

from dataclasses import replace

from schedules.validate import DryRun
from simulator.analytic.cost_source import cost_model, hardware_preset
from simulator.analytic.costs import CostModel
from simulator.analytic.executor import simulate
from simulator.analytic.offload_costs import HostLink, OffloadRun, host_link
from simulator.analytic.offload_joint import is_joint, solve_joint
from simulator.analytic.offload_solve import solve_offload
from simulator.run.plan import RunPlan
from simulator.timeline import Timeline


def simulate_plan(
    plan: RunPlan,
    costs: CostModel | None = None,
    run: DryRun | None = None,
    link: HostLink | None = None,
) -> Timeline:
    """The predicted Timeline of ``plan`` (at ``costs``, default the plan's own cost source),
    with the device's capacity and peak FLOP/s when its hardware is a preset. An offload copies
    over ``link`` (default: the rank's share of the preset's host link; a Ray run's prediction
    passes the link its copies measured); ``selective`` and ``budget:`` are solved here, on
    these costs."""
    costs = costs if costs is not None else cost_model(plan)
    plan, offload = solved_plan(plan, costs, run, link)
    timeline = with_device(plan_simulator(plan, costs, run)(offload), plan.costs.hardware)
    if offload is not None:
        preset = hardware_preset(plan.costs.hardware)
        share = preset.host_memory_bytes // preset.gpus_per_node if preset else None
        timeline.meta = replace(
            timeline.meta, offload=offload.plan.policy, host_memory_capacity=share
        )
    return timeline


def solved_plan(
    plan: RunPlan, costs: CostModel, run: DryRun | None = None, link: HostLink | None = None
) -> tuple[RunPlan, OffloadRun | None]:
    """``plan`` with its offload solved at ``costs`` (``selective``, ``budget:``; with both
    budgets its recompute too), and the offload as the executor runs it (None: none). The Ray
    executor solves a run's offload here too, at its calibrated costs and measured host link."""
    if plan.offload is None:
        return plan, None
    if link is None:
        preset = hardware_preset(plan.costs.hardware)
        link = host_link(preset, plan.layout.devices, costs.time_unit)
    solved = plan.offload

    def simulator(plan: RunPlan):
        return plan_simulator(plan, costs, run)

    if is_joint(plan):  # both budgets: recompute and offload chosen together
        plan, solved = solve_joint(plan, simulator, link, costs)
    elif solved.pending is not None:
        solved = solve_offload(plan, simulator(plan), link, costs)
    return replace(plan, offload=solved), OffloadRun(solved, link)


def plan_simulator(plan: RunPlan, costs: CostModel, run: DryRun | None = None):
    """``simulate_with(offload_run)``: ``plan`` timed at ``costs`` with that offload (the
    solvers time plan after plan with it, and the tests a plan at hand-made costs)."""

    def simulate_with(offload: OffloadRun | None) -> Timeline:
        return simulate(
            plan.schedule,
            costs,
            plan.spec,
            plan.partition,
            plan.microbatch_rows,
            steps=plan.steps,
            sync=plan.sync,
            layout=plan.layout,
            run=run,
            cores=plan.cores,
            recompute=plan.recompute,
            offload=offload,
        )

    return simulate_with


def with_device(timeline: Timeline, hardware: str | None) -> Timeline:
    """The Timeline with the device's capacity and peak FLOP/s, when ``hardware`` names a
    preset: whole-rank memory then says fits or over, and the summary gives MFU."""
    preset = hardware_preset(hardware)
    if preset is not None:
        timeline.meta = replace(
            timeline.meta, memory_capacity=preset.memory_bytes, peak_flops=preset.peak_flops
        )
    return timeline
