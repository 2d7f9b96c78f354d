"""``train --offload selective`` and ``budget:``: solved on this machine, before step 0.

Why before step 0 and here: which microbatches go out depends on the timing (does a round trip
hide between a forward and its backward?), and a Ray run's timing is this machine's, not a
preset's. Calibration has just timed each stage's actions alone (``calibration``), and a rank
can time a copy to the object store and back; the analytic executor then solves the policy at
those costs over that link (``run_plan.solved_plan``, the same solver ``simulate`` uses), and
every rank is told what to send and when to fetch it back. The ranks' recompute plans are
built with them, so a joint recompute budget is refused (``offload_setup.check_offload_runs``).
"""

from __future__ import annotations

from dataclasses import replace

from simulator.analytic.offload_costs import HostLink
from simulator.analytic.offload_timing import full_offload
from simulator.analytic.profile import Profile, profile_costs
from simulator.analytic.run_plan import solved_plan
from simulator.model.offload import stage_offload_bytes

COPY_REPEATS = 3  # copies timed per direction; the median is kept


def needs_solving(plan) -> bool:
    return plan.offload is not None and plan.offload.pending is not None


def solve_on_ray(pipeline):
    """``(plan with its offload solved, costs, link)`` of ``pipeline`` (calibrated)."""
    import ray

    plan = pipeline.plan
    costs = calibrated_costs(pipeline)
    nbytes = _one_microbatch_bytes(plan, pipeline.run_order.rule)
    rank = plan.schedule.stage_to_rank[0]
    put, get = ray.get(pipeline.actors[0][rank].host_copy_seconds.remote(nbytes, COPY_REPEATS))
    link = HostLink(nbytes / max(put, get, 1e-9))
    solved, _ = solved_plan(replace(plan, cores=None), costs, pipeline.run_order, link)
    return replace(plan, offload=solved.offload), costs, link


def calibrated_costs(pipeline):
    """The plan's costs in seconds from calibration's alone times, each rank on a core of its
    own and no runtime cost per call (the offload clock models neither)."""
    plan, calibration = pipeline.plan, pipeline.calibration
    profile = Profile(
        model=plan.spec.to_text(),
        microbatch_rows=plan.microbatch_rows,
        stages=[[layers[0], layers[-1]] for layers in plan.partition.stage_layers],
        costs=[dict(c) for c in calibration.costs],
    )
    return profile_costs(
        profile, plan.spec, plan.partition, plan.microbatch_rows, pipeline.run_order.rule
    )


def _one_microbatch_bytes(plan, rule) -> int:
    """What the first stage's forward sends per microbatch under full offload: the copy timed."""
    recompute = plan.recompute.stages if plan.recompute is not None else None
    sent = stage_offload_bytes(
        plan.spec, plan.partition, plan.microbatch_rows, rule, full_offload(plan), recompute
    )
    sizes = [sum(b for _, b in layers) for layers in sent if layers]
    return max(sizes, default=8)
