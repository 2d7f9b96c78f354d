"""``--offload selective`` and ``--offload budget:BYTES|P%``: which microbatches go to the host,
decided against the run's own timing.

Why against the timing: whether a round trip hides depends on how much compute the schedule
leaves between a microbatch's forward and its backward on that rank (the no-overhead condition
of ``offload_clock``), and that depends on the costs, the schedule and the stage. So both
policies are solved here, where the costs are known, with the offload clock itself as the
oracle (``offload_timing``: one step of the analytic executor, plan after plan); the plan
returned is checked against the executor's own Timeline.

* ``selective`` (PipeOffload, Wan, Qi et al. 2025, arXiv 2503.01328, section 4: offload the
  activations whose lifespan covers the transfer): every offloadable block of every microbatch
  whose round trip hides. It starts from full offload and keeps every microbatch whose
  backward never waited, dropping the ones that did, until no backward waits (dropping a copy
  only frees its stream, so each round can only shorten the others' copies). The result
  exposes no transfer time and sends as much as that allows.
* ``budget:BYTES`` (or ``P%`` of the fullest rank's activation peak without offload): the
  least exposed transfer time, then the fewest bytes sent, among every choice of which
  microbatches each stage sends, keeping every rank's device peak within the budget: an exact
  branch and bound (``offload_budget``, which states the plan space and why its cut-offs are
  sound). It is seeded with the greedy this policy used to be (the selective set, then the
  microbatches that waited least under full offload); past ``plan_limit`` plans timed it
  returns the best plan found and its policy text says it is not proven least. No plan within
  the budget is one sentence naming the rank and how low it gets.

A recompute plan given beside it is fixed first (``--recompute``), and the offload is solved on
top, except that ``--recompute budget:X`` with ``--offload budget:Y`` is solved jointly
(``offload_joint``).
"""

from __future__ import annotations

from simulator.analytic.offload_budget import solve_budget_exact
from simulator.analytic.offload_timing import Choice, PlanTimer, Timing, with_microbatches
from simulator.errors import PebbleError
from simulator.model.offload import OffloadPlan, OffloadPolicy
from simulator.timeline.report import offload_waits


def solve_offload(plan, simulate_with, link, costs, limit: int | None = None) -> OffloadPlan:
    """``plan.offload`` solved at ``costs``: ``simulate_with(offload_run_or_None)`` times the
    whole plan (the check of the answer); ``limit``: plans the budget's search may time
    (None: ``offload_budget.plan_limit``)."""
    policy: OffloadPolicy = plan.offload.pending
    timer = PlanTimer(plan, costs, link, simulate_with(None))
    text = policy.to_text()
    if policy.budget is None:
        chosen = selective(timer)
    else:
        budget = budget_bytes(policy.budget, timer)
        solved = solve_budget_exact(timer, budget, greedy(timer, budget), limit)
        chosen = solved.chosen
        if not solved.proven:
            text += f" (best of {solved.plans} plans searched, not proven least)"
    check(timer, chosen, simulate_with)
    return with_microbatches(text, timer.full, chosen)


def budget_bytes(budget: int | float, timer: PlanTimer) -> int:
    """A budget in bytes: a share (a float) is of the fullest rank's peak without offload."""
    return int(budget * max(timer.none_peaks)) if isinstance(budget, float) else int(budget)


def _all(timer: PlanTimer) -> Choice:
    m = timer.plan.schedule.num_microbatches
    return tuple(frozenset(range(m)) if b else frozenset() for b in timer.stage_bytes)


def _pairs(chosen: Choice) -> set[tuple[int, int]]:
    return {(s, mb) for s, mbs in enumerate(chosen) for mb in mbs}


def _choice(pairs: set, stages: int) -> Choice:
    return tuple(frozenset(mb for s2, mb in pairs if s2 == s) for s in range(stages))


def _waits(timer: PlanTimer, timing: Timing) -> dict[tuple[int, int], float]:
    """(stage, microbatch) -> the time its backward waited."""
    run = timer.run
    return {
        (int(run.stages[i]), int(run.microbatches[i])): float(timing.waits[i])
        for i in timing.waits.nonzero()[0].tolist()
    }


def selective(timer: PlanTimer) -> Choice:
    """Full offload less every microbatch that waits, until none does."""
    stages = len(timer.stage_bytes)
    chosen = _pairs(_all(timer)) & set(timer.time(_all(timer)).sent)
    while chosen:
        waits = _waits(timer, timer.time(_choice(chosen, stages)))
        if not waits:
            break
        chosen -= set(waits)
    return _choice(chosen, stages)


def greedy(timer: PlanTimer, budget: int) -> Choice | None:
    """The selective set, then, while a rank is over ``budget``, the microbatch of that rank
    that waited least under full offload: a plan within the budget, or None. The exact
    search's seed, not its answer."""
    full = timer.time(_all(timer))
    waits = _waits(timer, full)
    stages = len(timer.stage_bytes)
    chosen = _pairs(selective(timer))
    rank_of = timer.plan.schedule.stage_to_rank
    extra = sorted(set(full.sent) - chosen, key=lambda k: (waits.get(k, 0.0), k))
    while True:
        peaks = timer.time(_choice(chosen, stages)).peaks
        over = {r for r, peak in enumerate(peaks) if peak > budget}
        if not over:
            return _choice(chosen, stages)
        pick = next((k for k in extra if rank_of[k[0]] in over), None)
        if pick is None:
            return None
        extra.remove(pick)
        chosen = chosen | {pick}


def check(timer: PlanTimer, chosen: Choice, simulate_with) -> None:
    """The executor's Timeline of ``chosen`` agrees with the timer's figures (peaks and
    exposed time on the first step): the solver's oracle is the executor's clock."""
    timing = timer.time(chosen)
    timeline = simulate_with(timer.offload_run("check", chosen))
    peaks = tuple(r.true_peak_bytes for r in timeline.summary().per_rank)
    steps = max(1, timeline.meta.steps)
    exposed = sum(offload_waits(timeline).values()) / steps
    if timer.plan.sync and (
        peaks != timing.peaks or abs(exposed - timing.exposed) > 1e-9 * (1 + exposed)
    ):
        raise PebbleError(
            "the offload solver's timing of its plan disagrees with the executor's (peaks "
            f"{timing.peaks} against {peaks}); this is a bug, please report it."
        )
