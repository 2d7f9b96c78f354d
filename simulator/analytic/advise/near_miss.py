"""The configurations that missed the memory limit by a little and would have been faster than
every one that fits: what a user weighs against a smaller headroom, a little recompute or one
more degree of sharding.

Why apart from the search: the search never simulates a configuration whose memory bound is over
the limit. Those within ``NEAR_MISS`` of it kept their time bound (``bounding.bounded``); here the
most promising are simulated, a few at most, so every near miss is shown with its real peak and
step time, not a bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from simulator.analytic.advise.bounding import NEAR_MISS
from simulator.analytic.advise.fates import MEMORY_VERDICTS, OVER
from simulator.analytic.advise.search import Evaluate, Outcome, SearchResult, run_one, same_run
from simulator.analytic.advise.space import AUTO, Candidate
from simulator.errors import PebbleError

SHOWN = 3  # near misses listed
SIMULATED_AT_MOST = 6  # extra simulations spent finding them


@dataclass(frozen=True)
class NearMiss:
    """A configuration over ``limit`` by ``over`` bytes (at most ``NEAR_MISS`` of it)."""

    outcome: Outcome
    over: int  # bytes above the usable memory
    fits_device: bool  # within the device (or --memory-limit): only the headroom is missed


def near_misses(
    result: SearchResult,
    limit: int,
    headroom: int,
    evaluate: Evaluate,
    run_all: Callable[[list[Candidate]], list[Outcome | PebbleError]] | None = None,
) -> list[NearMiss]:
    """Up to ``SHOWN`` configurations over ``limit`` by at most ``NEAR_MISS`` of it and faster
    than the best that fits (any speed when none fits), fastest first, one per distinct run.
    ``run_all`` simulates the few candidates at once (the search's workers or Ray tasks); by
    default ``evaluate`` runs them one after the other."""
    best = result.top[0].step_time if result.top else float("inf")
    reach = limit * (1 + NEAR_MISS)
    found = [
        f.outcome
        for f in result.fates
        if f.verdict == OVER and f.outcome.peak_memory <= reach and f.outcome.step_time < best
    ]
    bounded = sorted(
        (
            f
            for f in result.fates
            if f.verdict in MEMORY_VERDICTS
            and f.time_bound is not None
            and f.time_bound < best
            and f.candidate.schedule != AUTO  # auto plans to the limit: it never nearly misses
        ),
        key=lambda f: (f.time_bound, f.candidate.label()),
    )
    chosen = [fate.candidate for fate in bounded[:SIMULATED_AT_MOST]]
    if run_all is None or not chosen:
        ran = [run_one(evaluate, c) for c in chosen]
    else:
        ran = run_all(chosen)
    for outcome in ran:
        if isinstance(outcome, PebbleError):
            continue
        if limit < outcome.peak_memory <= reach and outcome.step_time < best:
            found.append(outcome)
    seen, out = set(), []
    for o in sorted(found, key=lambda o: (o.step_time, o.peak_memory, o.candidate.label())):
        if same_run(o) in seen:
            continue
        seen.add(same_run(o))
        over = o.peak_memory - limit
        out.append(NearMiss(o, over, o.peak_memory <= limit + headroom))
    return out[:SHOWN]
