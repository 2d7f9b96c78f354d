"""The prefetch issue table of a planned run, for an executor to follow.

Why its own module: the table is planned on the analytic executor's timing (``run_plan``),
while the rule itself (``prefetch_plan``) sits under the executor's clock; here the two meet
without an import cycle. The Ray executor calls ``plan_issue_points(plan)`` and issues each
prefetch where the analytic executor does.
"""

from __future__ import annotations

from dataclasses import replace

from simulator.analytic.prefetch_plan import IssuePoint, prefetch_issue_points
from simulator.analytic.run_plan import simulate_plan


def _kind(kind) -> str:
    return getattr(kind, "value", kind)


def plan_issue_points(
    plan, copy_times: dict[tuple[int, int], float] | None = None, costs=None, link=None
) -> dict[tuple[int, int], IssuePoint]:
    """``prefetch_issue_points`` of a planned run with offload (``RunPlan``): the table the
    analytic executor follows for it (first step), for the Ray executor to follow too.
    ``copy_times``: each offloaded ``(stage, microbatch)``'s copy time, where the plan's own
    costs cannot price a copy (unit costs; default: from the prediction with offload);
    ``costs`` and ``link``: ``simulate_plan``'s (default: the plan's own)."""
    copies = dict(copy_times) if copy_times is not None else {}
    if copy_times is None:
        copied = simulate_plan(plan, costs, link=link).offload.columns()
        columns = ("kind", "stage", "microbatch", "step", "start", "end", "replica")
        for kind, stage, mb, step, start, end, replica in zip(
            *(copied[c] for c in columns), strict=True
        ):
            if str(kind) == "prefetch" and step == 0 and replica == 0:
                copies[(int(stage), int(mb))] = float(end - start)
    plain = simulate_plan(replace(plan, offload=None), costs).events.columns()
    starts, ends = {}, {}
    for stage, kind, mb, step, start, end, replica in zip(
        *(plain[c] for c in ("stage", "kind", "microbatch", "step", "start", "end", "replica")),
        strict=True,
    ):
        if step == 0 and replica == 0:
            key = (int(stage), str(kind), int(mb))
            starts[key], ends[key] = float(start), float(end)
    order = {
        rank: [(a.stage_index, _kind(a.kind), a.microbatch_index) for a in actions]
        for rank, actions in enumerate(plan.schedule.actions)
    }
    return prefetch_issue_points(order, ends, starts, copies)
