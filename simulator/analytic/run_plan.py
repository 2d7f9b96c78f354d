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
from simulator.run.plan import RunPlan
from simulator.timeline import Timeline


def simulate_plan(
    plan: RunPlan, costs: CostModel | None = None, run: DryRun | None = None
) -> Timeline:
    """The predicted Timeline of ``plan`` (at ``costs``, default the plan's own cost source),
    with the device's capacity and peak FLOP/s when its hardware is a preset."""
    timeline = simulate(
        plan.schedule,
        costs if costs is not None else cost_model(plan),
        plan.spec,
        plan.partition,
        plan.microbatch_rows,
        steps=plan.steps,
        sync=plan.sync,
        layout=plan.layout,
        run=run,
        cores=plan.cores,
        recompute=plan.recompute,
    )
    return with_device(timeline, plan.costs.hardware)


def with_device(timeline: Timeline, hardware: str | None) -> Timeline:
    """The Timeline with the device's capacity and peak FLOP/s, when ``hardware`` names a
    preset: whole-rank memory then says fits or over, and the summary gives MFU."""
    preset = hardware_preset(hardware)
    if preset is not None:
        timeline.meta = replace(
            timeline.meta, memory_capacity=preset.memory_bytes, peak_flops=preset.peak_flops
        )
    return timeline
