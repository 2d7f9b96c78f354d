"""``--recompute budget:X`` with ``--offload budget:Y``: recompute and offload chosen together,
for the fastest step that keeps every rank's device peak within one budget.

Why together: both moves lower the device's peak and both cost time (recompute runs the forward
again; an offload that cannot hide makes a backward wait), but at different places. A rank
whose copies hide (a long wait between its forward and its backward) offloads for free, and one
whose copies cannot hide (the last stages of 1F1B) is better off recomputing. Fixing recompute
first (as a lone ``--recompute budget:`` does) spends FLOPs where a free copy would have done.

The budget is the smaller of the two (each in bytes; a share is of the fullest rank's peak
with neither move). The search space:

* recompute: the least-FLOPs plan (``recompute_budget.solve_budget``, exact) at ``LEVELS``
  budgets spaced evenly from half the budget up to the peak with neither move (no recompute
  at all), on every rank, and on the ranks free offload (``selective``) cannot bring within
  the budget alone; and full recomputation; duplicates dropped;
* offload: for each of those, the least-exposed plan within the budget
  (``offload_solve.solve_offload``: exact over every choice of microbatches, up to its plan
  limit).

The answer is the pair with the shortest predicted step (the executor's makespan), ties going
to less recomputation. It is exact over that space, not over every recompute placement: a
finer ``LEVELS`` searches more of the recompute solver's Pareto front at a proportional cost.
"""

from __future__ import annotations

from dataclasses import replace

from schedules.validate import validate
from simulator.analytic.offload_budget import plan_limit
from simulator.analytic.offload_costs import OffloadRun
from simulator.analytic.offload_solve import solve_offload
from simulator.errors import PebbleError
from simulator.model.offload import OffloadPlan, OffloadPolicy
from simulator.model.recompute import RecomputePlan, RecomputePolicy, plan_stages
from simulator.run.recompute_budget import solve_budget
from simulator.units import human_bytes

LEVELS = 7  # recompute budgets tried, from half the joint budget to the peak with neither move
SELECTIVE = OffloadPolicy("selective")


def is_joint(plan) -> bool:
    """Are both a recompute budget and an offload budget given?"""
    pending = plan.offload.pending if plan.offload is not None else None
    if pending is None or pending.budget is None or plan.recompute is None:
        return False
    return RecomputePolicy.parse(plan.recompute.policy).budget is not None


def solve_joint(plan, simulator, link, costs):
    """``(plan with its recompute chosen, offload plan solved)`` for the fastest step within
    the budget; ``simulator(plan)`` returns that plan's ``simulate_with(offload_run)``."""
    bare = replace(plan, recompute=None, offload=None)
    ceiling = max(r.true_peak_bytes for r in simulator(bare)(None).summary().per_rank)
    budget = _joint_budget(plan, ceiling)
    best, tried = None, set()
    free = _free_ranks(plan, simulator, link, costs, budget)
    # each recompute plan's exact offload search gets a LEVELS-th of a lone budget's plans
    limit = max(50, plan_limit(len(validate(plan.schedule))) // LEVELS)
    for recompute in _recompute_candidates(plan, budget, ceiling, free):
        key = None if recompute is None else recompute.stages
        if key in tried:
            continue
        tried.add(key)
        trial = replace(plan, recompute=recompute)
        found = _fastest_offload(trial, simulator, link, costs, budget, limit, best)
        if found is not None and (best is None or found[0] < best[0]):
            best = found
    if best is None:
        raise PebbleError(
            f"no plan recomputing and offloading keeps every rank within "
            f"{human_bytes(budget)} of activations (with neither, the fullest peaks at "
            f"{human_bytes(ceiling)})."
        )
    _, trial, offload = best
    text = f"{plan.recompute.policy} with offload {plan.offload.policy}"
    recompute = trial.recompute
    if recompute is not None:
        recompute = RecomputePlan(text, recompute.stages)
    policy = f"{offload.policy} with recompute {plan.recompute.policy}"
    return replace(trial, recompute=recompute), OffloadPlan(policy, offload.stages)


def _recompute_candidates(plan, budget: int, ceiling: int, free: set[int]):
    """The recompute plans tried, least recomputation first: at each of ``LEVELS`` budgets
    spaced evenly from the peak with neither move down to half the joint budget, the
    least-FLOPs plan recomputing only on the ranks ``free`` offload cannot bring within the
    budget, then the same on every rank; then full recomputation. Levels below the budget
    too: with offload beside it, a rank may do best recomputing more than the budget asks
    (its copies then hide behind the longer backward)."""
    low = budget // 2
    ranks = range(plan.schedule.num_ranks)
    for k in range(LEVELS - 1, -1, -1):
        level = low + (ceiling - low) * k // (LEVELS - 1)
        if free:
            yield _least_flops(plan, {r: 2 * ceiling if r in free else level for r in ranks})
        yield _least_flops(plan, level)
    yield plan_stages(RecomputePolicy.parse("full"), plan.spec, plan.partition)


def _solved(trial, policy: OffloadPolicy, simulator, link, costs, limit=None):
    """``(plan, offload plan, summary)`` of ``policy`` solved over ``trial`` and timed (None:
    no plan of that policy within its budget)."""
    pending = replace(trial, offload=OffloadPlan(policy.to_text(), (), pending=policy))
    try:
        offload = solve_offload(pending, simulator(pending), link, costs, limit)
    except PebbleError:
        return None
    return pending, offload, simulator(pending)(OffloadRun(offload, link)).summary()


def _free_ranks(plan, simulator, link, costs, budget: int) -> set[int]:
    """The ranks that ``selective`` offload (every copy that hides: free) brings within the
    budget without recomputation."""
    solved = _solved(replace(plan, recompute=None), SELECTIVE, simulator, link, costs)
    if solved is None:
        return set()
    return {r.rank for r in solved[2].per_rank if r.true_peak_bytes <= budget}


def _fastest_offload(trial, simulator, link, costs, budget: int, limit: int, best=None):
    """``(makespan, plan, offload plan)`` of the fastest offload within ``budget`` over
    ``trial``'s recompute (None: none fits, or none can beat ``best``). Cheapest first: no
    offload; then ``selective`` (it hides every copy, so its step is the one without offload);
    then the exact budget, on ``limit`` plans. An offload never shortens a step, so a
    recompute plan slower without offload than ``best`` is out."""
    plain = simulator(replace(trial, offload=None))(None).summary()
    if best is not None and plain.makespan >= best[0]:
        return None
    if max(r.true_peak_bytes for r in plain.per_rank) <= budget:
        return plain.makespan, trial, OffloadPlan("none", ())
    for policy in (SELECTIVE, replace(trial.offload.pending, budget=budget)):
        solved = _solved(trial, policy, simulator, link, costs, limit)
        if solved is not None and max(r.true_peak_bytes for r in solved[2].per_rank) <= budget:
            pending, offload, summary = solved
            return summary.makespan, pending, offload
    return None


def _joint_budget(plan, ceiling: int) -> int:
    """The smaller of the two budgets, in bytes (a share is of ``ceiling``)."""
    budgets = (
        RecomputePolicy.parse(plan.recompute.policy).budget,
        plan.offload.pending.budget,
    )
    return min(int(b * ceiling) if isinstance(b, float) else int(b) for b in budgets)


def _least_flops(plan, level: int | dict[int, int]) -> RecomputePlan | None:
    """The recompute solver's least-FLOPs plan within ``level`` bytes, or each rank's own
    (None: none needed); full recomputation where nothing meets ``level`` (offload may close
    the gap)."""
    try:
        solved = solve_budget(plan.schedule, plan.spec, plan.partition, plan.microbatch_rows, level)
    except PebbleError:
        solved = plan_stages(RecomputePolicy.parse("full"), plan.spec, plan.partition)
    return solved if solved.active else None
