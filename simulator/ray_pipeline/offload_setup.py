"""What a Ray run with activation offload needs beyond training: which policies it can follow,
what each rank sends and when it fetches it back, and the host link its copies achieved.

Why apart from the step driver (``executor``): the plan is read here once, turned into one
frozen ``RankOffload`` per rank (it pickles to the actor), and the driver only hands it over.
"""

from __future__ import annotations

from simulator.analytic.cost_source import cost_model
from simulator.analytic.offload_costs import HostLink
from simulator.analytic.offload_joint import is_joint
from simulator.analytic.prefetch_plan import IssuePoint
from simulator.analytic.prefetch_table import plan_issue_points
from simulator.errors import PebbleError
from simulator.model.offload_pairs import offload_pairs, plan_sends
from simulator.ray_pipeline.copy_streams import RankOffload
from simulator.run.plan import RunPlan
from simulator.timeline import Timeline


def check_offload_runs(plan: RunPlan) -> None:
    """One sentence for an offload a Ray run cannot follow: with both budgets the joint solve
    chooses the recompute plan too, which the rank actors are built with before it runs."""
    if plan.offload is not None and is_joint(plan):
        raise PebbleError(
            f"train solves --offload {plan.offload.policy} on this machine before step 0, "
            "but not jointly with --recompute budget: (the ranks are built with their "
            "recompute plan); give the recompute policy (e.g. full) or see the joint plan with "
            "simulate."
        )


def issue_table(plan, run, costs=None, link=None) -> dict[tuple[int, int], IssuePoint]:
    """Where each prefetch of a Ray run is issued: the analytic executor's own table
    (``prefetch_table``) when the costs (``costs``, default the plan's own) are in seconds;
    unit costs have no seconds to price a copy in, so their copies take no time (each prefetch
    is then issued as the action before its backward ends)."""
    offload = plan.offload
    if offload is None or not offload.active or offload.pending is not None:
        return {}
    if (costs if costs is not None else cost_model(plan)).time_unit == "s":
        return plan_issue_points(plan, costs=costs, link=link)
    pairs = offload_pairs(run, plan_sends(offload.stages))
    instant = {(int(run.stages[b]), int(run.microbatches[b])): 0.0 for b in pairs}
    return plan_issue_points(plan, copy_times=instant)


def rank_offload(plan, run, rank: int, issue: dict) -> RankOffload | None:
    """What ``rank`` sends to the host and when it fetches it back (None: nothing): the
    pairs both executors send (``offload_pairs``), each prefetch issued at its point of
    ``issue`` (``issue_table``) as the rank finishes the action before it; the point's delay
    is dropped (the numpy ranks' timing is not the plan's; issuing at the boundary only brings
    the bytes back earlier, never late)."""
    offload = plan.offload
    if offload is None or not offload.active or offload.pending is not None:
        return None  # a solved policy goes to the ranks once solved (``solve_on_ray``)
    sends, prefetch = set(), []
    for backward in offload_pairs(run, plan_sends(offload.stages)):
        if int(run.ranks[backward]) != rank:
            continue
        stage, mb = int(run.stages[backward]), int(run.microbatches[backward])
        sends.add((stage, mb))
        point = issue.get((stage, mb))
        position = point.position if point is not None else int(run.positions[backward])
        prefetch.append((position, stage, mb))
    if not sends:
        return None
    layers = tuple(
        (s, frozenset(offload.stages[s].layers()))
        for s in plan.schedule.stages_of_rank(rank)
        if offload.stages[s].active
    )
    return RankOffload(layers, frozenset(sends), tuple(sorted(prefetch)))


def measured_host_link(timeline: Timeline) -> HostLink | None:
    """The host link a Ray run's copies achieved: every copy's bytes over every copy's time
    (None without offload). On this machine a copy is mostly the object store's fixed cost per
    call, so this is a mean for the run's copy sizes, not a bandwidth for any size."""
    copies = [o for o in timeline.offload if o.kind != "wait" and o.end > o.start]
    seconds = sum(o.end - o.start for o in copies)
    if not copies or seconds <= 0:
        return None
    return HostLink(sum(o.bytes for o in copies) / seconds)
