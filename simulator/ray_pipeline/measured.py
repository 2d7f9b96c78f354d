"""What a Ray run produced, assembled on the driver: the measured Timeline (every actor's
records with the run's meta) and the order each actor ran its actions.

Why apart from the step driver (``executor``): driving steps (submit, wait, recover) and
turning what came back into the contract are two jobs; this one reads the pipeline's plan,
records and calibration and changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

import numpy as np

from simulator.analytic.profile import Profile
from simulator.analytic.recompute_costs import rank_recompute_flops
from simulator.ray_pipeline.records import timeline_from_records
from simulator.run.meta import run_meta
from simulator.timeline import Timeline


@dataclass
class RayRunResult:
    """What a Ray run produced: the measured Timeline, losses, state for checking."""

    timeline: Timeline
    losses: list[float]
    weights: dict[tuple[int, str], np.ndarray]
    first_step_gradients: dict[tuple[int, str], np.ndarray] | None
    profile: Profile
    restarts: int = 0
    action_order: dict[tuple[int, int], list[str]] = field(default_factory=dict)


def measured_timeline(pipeline, steps: int) -> Timeline:
    """Every actor's records of ``pipeline`` as one Timeline, times from the first action."""
    plan = pipeline.plan
    meta = run_meta(
        plan.schedule,
        plan.spec,
        plan.partition,
        source="ray",
        steps=steps,
        layout=plan.layout,
        time_unit="s",
        microbatch_rows=plan.microbatch_rows,
        rule=pipeline.run_order.rule,
        recompute=plan.recompute,
    )
    recompute = plan.recompute
    if recompute is not None and recompute.active:
        flops = rank_recompute_flops(
            plan.schedule, plan.spec, plan.partition, recompute, plan.microbatch_rows
        )
        meta = replace(
            meta,
            recompute=recompute.policy,
            recompute_flops=tuple(f * plan.layout.data for f in flops),
        )
    if plan.offload is not None:  # even when a solved policy sent nothing: it was asked for
        meta = replace(meta, offload=plan.offload.policy)
    calibration = pipeline.calibration
    if calibration is not None:
        meta = replace(meta, cores=calibration.cores, alone_costs=tuple(calibration.costs))
    return timeline_from_records(
        pipeline.records, pipeline.run_order, meta, pipeline.reduce_times, pipeline.actors.origin
    )


def action_order(timeline: Timeline) -> dict[tuple[int, int], list[str]]:
    """Per (replica, rank), the actions in the order the actor ran them (first step)."""
    order: dict[tuple[int, int], list[str]] = defaultdict(list)
    for e in timeline.events:
        if e.step == 0:
            order[(e.replica, e.rank)].append(f"{e.stage}{e.kind}{e.microbatch}")
    return dict(order)
