"""``--offload selective`` and ``--offload budget:BYTES|P%``: which microbatches go to the host,
decided against the run's own timing.

Why against the timing: whether a round trip hides depends on how much compute the schedule
leaves between a microbatch's forward and its backward on that rank (the no-overhead condition
of ``offload_clock``), and that depends on the costs, the schedule and the stage. So both
policies are solved here, where the costs are known, by running the analytic executor itself
and reading its ``wait`` spans; nothing is estimated beside it.

* ``selective`` (PipeOffload, Wan, Qi et al. 2025, arXiv 2503.01328, section 4: offload the
  activations whose lifespan covers the transfer): every offloadable block of every microbatch
  whose round trip hides. It starts from full offload and keeps every microbatch whose
  backward never waited, dropping the ones that did, until no backward waits (dropping a copy
  only frees its stream, so each round can only shorten the others' copies). The result
  exposes no transfer time and sends as much as that allows.
* ``budget:BYTES`` (or ``P%`` of the fullest rank's activation peak without offload): the
  selective set first (free); while a rank's activation peak is above the budget, add the
  microbatch of that rank's stages that waited least under full offload, and time again. A
  greedy, verified by the executor at each step, not an exhaustive search: it stops at the
  first plan within the budget, or says in one sentence how low full offload gets.

A recompute plan given beside it is fixed first (``--recompute``); the offload is solved on top.
"""

from __future__ import annotations

from dataclasses import replace

from simulator.analytic.offload_clock import WAIT
from simulator.analytic.offload_costs import OffloadRun
from simulator.errors import PebbleError
from simulator.model.offload import OffloadPlan, OffloadPolicy, StageOffload, offload_units
from simulator.units import human_bytes


def solve_offload(plan, simulate_with, link) -> OffloadPlan:
    """``plan.offload`` solved: ``simulate_with(offload_run_or_None)`` times the plan."""
    policy: OffloadPolicy = plan.offload.pending
    full = _full(plan)
    run = OffloadRun(full, link)
    waits = _waits(simulate_with(run))
    chosen = {key for key in _candidates(plan, full)}
    free = _hide(chosen - set(waits), plan, full, simulate_with, link)
    if policy.budget is None:
        return _plan(policy.to_text(), plan, full, free)
    return _within_budget(policy, plan, full, free, waits, simulate_with, link)


def _full(plan) -> OffloadPlan:
    infos = plan.spec.layers()
    stages = tuple(
        StageOffload(offload_units([infos[i] for i in layers]))
        for layers in plan.partition.stage_layers
    )
    return OffloadPlan("full", stages)


def _candidates(plan, full: OffloadPlan) -> list[tuple[int, int]]:
    """(stage, microbatch) of every microbatch a full offload could send."""
    m = plan.schedule.num_microbatches
    return [(s, mb) for s, st in enumerate(full.stages) if st.active for mb in range(m)]


def _plan(text: str, plan, full: OffloadPlan, chosen: set) -> OffloadPlan:
    stages = tuple(
        replace(stage, microbatches=frozenset(mb for s2, mb in chosen if s2 == s))
        for s, stage in enumerate(full.stages)
    )
    return OffloadPlan(text, stages)


def _waits(timeline) -> dict[tuple[int, int], float]:
    """(stage, microbatch) -> exposed time of its backward's prefetch (first step, replica)."""
    spans = timeline.offload.columns()
    out: dict[tuple[int, int], float] = {}
    for kind, stage, mb, step, start, end, replica in zip(
        spans["kind"],
        spans["stage"],
        spans["microbatch"],
        spans["step"],
        spans["start"],
        spans["end"],
        spans["replica"],
        strict=True,
    ):
        if str(kind) == WAIT and step == 0 and replica == 0:
            key = (int(stage), int(mb))
            out[key] = out.get(key, 0.0) + float(end - start)
    return out


def _hide(chosen: set, plan, full, simulate_with, link) -> set:
    """``chosen`` less every microbatch that waits, until none does."""
    while chosen:
        waits = _waits(simulate_with(OffloadRun(_plan("selective", plan, full, chosen), link)))
        if not waits:
            break
        chosen -= set(waits)
    return chosen


def _peaks(timeline) -> dict[int, int]:
    return {r.rank: r.true_peak_bytes for r in timeline.summary().per_rank}


def _within_budget(policy, plan, full, chosen, waits, simulate_with, link) -> OffloadPlan:
    budget = policy.budget
    if isinstance(budget, float):
        budget = budget * max(_peaks(simulate_with(None)).values())
    rank_of = plan.schedule.stage_to_rank
    # the costliest last: what waited least under full offload goes out first
    extra = sorted(set(_candidates(plan, full)) - chosen, key=lambda k: (waits.get(k, 0.0), k))
    while True:
        trial = _plan(policy.to_text(), plan, full, chosen)
        peaks = _peaks(simulate_with(OffloadRun(trial, link) if chosen else None))
        over = {r for r, peak in peaks.items() if peak > budget}
        if not over:
            return trial
        pick = next((k for k in extra if rank_of[k[0]] in over), None)
        if pick is None:
            rank = max(over, key=lambda r: peaks[r])
            raise PebbleError(
                f"no offload plan keeps rank {rank} within {human_bytes(budget)} of "
                f"activations: sending every block it may, it still peaks at "
                f"{human_bytes(peaks[rank])}."
            )
        extra.remove(pick)
        chosen = chosen | {pick}
