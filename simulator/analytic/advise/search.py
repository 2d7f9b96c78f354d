"""Branch and bound over ``advise``'s configurations: bound everything, simulate the few that
could be in the top k.

1. Every candidate gets its closed-form memory and time bounds (``bounding``). One whose memory
   bound is over the limit cannot fit: dropped.
2. The rest are simulated in order of their time bound (a configuration with activation offload
   right after the same one without, which has the same bound; it is skipped when that one fits,
   since offload never makes a step shorter). Once k fitting configurations are known,
   a candidate whose time bound is above the k-th best step time cannot enter the top k, and
   neither can any after it: the search stops. The answer is the same top k an exhaustive search
   would give (``prune=False`` runs that search; the tests compare them).

Simulation is the caller's ``evaluate(candidate) -> Outcome``, so the CLI runs each configuration
exactly as ``pebblesim simulate`` would, and this module prints nothing.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

from simulator.analytic.advise.bounding import Spread, bounded
from simulator.analytic.advise.enumeration import candidates
from simulator.analytic.advise.families import family_traits
from simulator.analytic.advise.fates import (
    FITS,
    OVER,
    REFUSED,
    SAME,
    TIME,
    UNNEEDED,
    Fate,
)
from simulator.analytic.advise.memory_bounds import with_budget
from simulator.analytic.advise.space import Candidate, Request
from simulator.analytic.costs import Hardware
from simulator.errors import PebbleError

MEMORY_BINDS = 0.90  # peak at or above this share of the limit: memory binds
BUBBLE_BINDS = 0.10  # the busiest rank idle at least this share of the step: the bubble binds
SLACK = 1e-9  # relative: a bound equal to a time (up to rounding) does not prune it


@dataclass(frozen=True)
class Outcome:
    """What the analytic executor predicts for one configuration."""

    candidate: Candidate
    step_time: float  # seconds
    tokens_per_second: float
    mfu: float
    bubble: float  # idle share of ranks x step
    busy: float  # the busiest rank's compute time, seconds
    peak_memory: int  # whole-rank bytes of the fullest rank
    peak_rank: int
    fits: bool  # the device (within the limit) and, with offload, the host memory of each GPU
    schedule_key: str = ""  # a digest of the schedule run: equal keys on one layout, one run
    # each part of the step time (``simulator.timeline.breakdown.PARTS``: compute, recompute,
    # exposed TP comm, pipeline wait, exposed DP comm, optimizer) as a share of ranks x step
    step_shares: tuple[float, ...] = ()
    host_peak: int = 0  # with offload: the most offloaded bytes one GPU's host share held
    offload_wait: float = 0.0  # with offload: the longest exposed prefetch wait of a rank, s
    host_fits: bool = True  # every GPU's offloaded bytes within its share of the node's host

    def binds(self, limit: int) -> str:
        """What stops this configuration going faster:

        * ``memory``: its fullest rank is at >= 90% of the limit, so the next step towards
          speed (more microbatches in flight, a bigger microbatch, less recompute) is over;
        * ``bubble``: otherwise, when its busiest rank idles >= 10% of the step (pipeline fill
          and drain, transfers, an exposed all-reduce): a schedule or split with less bubble
          would be faster;
        * ``compute``: otherwise; the busiest rank computes >= 90% of the step, so only fewer
          FLOPs per GPU (or less tensor-parallel communication) would help.
        """
        if self.peak_memory >= MEMORY_BINDS * limit:
            return "memory"
        if self.step_time > 0 and 1 - self.busy / self.step_time >= BUBBLE_BINDS:
            return "bubble"
        return "compute"


@dataclass
class SearchResult:
    """The top configurations that fit, fastest first, with the search's bookkeeping."""

    top: list[Outcome]
    simulated: list[Outcome] = field(default_factory=list)  # every one simulated, fit or not
    considered: int = 0
    pruned_memory: int = 0  # memory bound over the limit
    pruned_time: int = 0  # time bound above the k-th best step time
    refused: int = 0  # evaluate raised PebbleError: the schedule could not be built (a size its
    # family refuses, or no auto schedule within the activation budget)
    too_large: int = 0  # more Timeline rows than ``Request.max_rows``: not simulated
    unneeded: int = 0  # offload configurations whose twin without offload fits: not simulated
    smallest_memory_bound: int = 0  # over every candidate: what not fitting looks like
    fates: list[Fate] = field(default_factory=list)  # every configuration's verdict and numbers
    time_cutoff: float | None = None  # the k-th best step time the time bound pruned against
    aliases: dict[str, list[str]] = field(default_factory=dict)  # a row's label: the labels of
    # configurations that ran the same schedule on the same layout (auto v that is zb-v)

    @property
    def pruned(self) -> int:
        return self.pruned_memory + self.pruned_time


Evaluate = Callable[[Candidate], Outcome]
Progress = Callable[[str, int, int, SearchResult | None], None]  # (phase, done, total, result)


def _rank_key(outcome: Outcome) -> tuple:
    c = outcome.candidate
    return (outcome.step_time, outcome.peak_memory, c.label())


def search(
    request: Request,
    hardware: Hardware,
    evaluate: Evaluate,
    top: int = 10,
    prune: bool = True,
    progress: Progress | None = None,
    batch: Batch | Stream | None = None,
) -> SearchResult:
    """The ``top`` fastest configurations of ``request`` that fit its memory limit.

    ``prune=False`` simulates every candidate with at most ``request.max_rows`` rows
    (the exhaustive search the tests hold the pruned one to). ``batch`` runs the simulations
    several at a time: a ``Batch`` (e.g. Ray tasks) or a ``Stream`` (e.g. local worker
    processes); the results are read in the same order and by the same stopping rule, so the
    answer is the one-at-a-time search's exactly (runs past the stop are dropped unread)."""
    if top < 1:
        raise PebbleError(f"--top must be at least 1, got {top}.")
    spread = batch.spread if isinstance(batch, Stream) else None
    kept, counts = bounded(request, hardware, progress, spread)
    if not prune:  # every candidate small enough to simulate, in enumeration order
        traits = {name: family_traits(name) for name in request.families}
        layers, kept = len(request.spec.layers()), []
        for c in candidates(request):
            t = traits[c.schedule]
            if c.rows(t.split, layers) <= request.max_rows:
                kept.append((0.0, with_budget(c, t, request.memory_limit)))
        counts["pruned_memory"] = 0
        counts["fates"] = []
    result = SearchResult(top=[], **counts)
    best: list[tuple[float, int]] = []  # max-heap of the top step times: (-time, order)
    runs: set[tuple] = set()  # the distinct runs that fit so far (``same_run``)
    bounds_of: dict[int, float] = {}  # id(outcome): its time bound
    first_refusal = ""
    fitted: set[Candidate] = set()  # configurations without offload that were simulated and fit
    runs_in_order = _in_order(kept, evaluate, batch)
    for done, (bound, c), run in runs_in_order:
        if prune and len(best) >= top and bound * (1 - SLACK) > -best[0][0]:
            result.pruned_time = len(kept) - done
            result.time_cutoff = -best[0][0]
            result.fates += [Fate(later, TIME, time_bound=b) for b, later in kept[done:]]
            break
        if c.offload != "none" and c.without_offload() in fitted:
            result.unneeded += 1
            result.fates.append(
                Fate(c, UNNEEDED, time_bound=bound, same_as=c.without_offload().label())
            )
            continue
        ran = run()
        if isinstance(ran, PebbleError):
            result.refused += 1
            result.fates.append(Fate(c, REFUSED, time_bound=bound, reason=str(ran)))
            first_refusal = first_refusal or str(ran)
            continue
        outcome = ran
        result.simulated.append(outcome)
        bounds_of[id(outcome)] = bound
        if outcome.fits and c.offload == "none":
            fitted.add(c)
        if outcome.fits and same_run(outcome) not in runs:
            runs.add(same_run(outcome))
            heapq.heappush(best, (-outcome.step_time, done))
            if len(best) > top:
                heapq.heappop(best)
        if progress is not None:
            progress("simulate", done + 1, len(kept), result)
    runs_in_order.close()  # a stream's workers stop running ahead
    if progress is not None:
        progress("simulate", len(kept), len(kept), result)
    if first_refusal and not result.simulated:  # the model or hardware, not the memory
        raise PebbleError(
            f"none of the {result.refused:,} configurations that might fit could be simulated; "
            f"the first: {first_refusal}"
        )
    fitting = _one_per_run(result, bounds_of)
    result.top = fitting[:top]
    return result


def run_one(evaluate: Evaluate, c: Candidate) -> Outcome | PebbleError:
    """``evaluate(c)``, or the PebbleError it raised (a refusal is a result, not an error)."""
    try:
        return evaluate(c)
    except PebbleError as exc:
        return exc


def _in_order(
    kept: list[tuple[float, Candidate]], evaluate: Evaluate, batch: Batch | Stream | None
):
    """(index, (bound, candidate), a call giving its Outcome or PebbleError) in ``kept``'s
    order. One at a time, nothing runs before the call; a ``Batch`` runs the ``batch.width``
    candidates from there on the first call in it; a ``Stream`` runs ahead on its own, and a
    call reads its results up to that index."""
    if batch is None:
        for done, pair in enumerate(kept):
            yield done, pair, partial(run_one, evaluate, pair[1])
        return
    if isinstance(batch, Stream):
        source, read = batch.results([c for _, c in kept]), []

        def upto(index: int):
            while len(read) <= index:
                read.append(next(source))
            return read[index]

        try:
            for done, pair in enumerate(kept):
                yield done, pair, partial(upto, done)
        finally:
            source.close()  # the search stopped reading: what runs ahead is not wanted
        return
    for start in range(0, len(kept), batch.width):
        chunk = kept[start : start + batch.width]
        results: list = []

        def ran(offset: int, chunk=chunk, results=results):
            if not results:
                results.extend(batch.run([c for _, c in chunk]))
            return results[offset]

        for offset, pair in enumerate(chunk):
            yield start + offset, pair, partial(ran, offset)


@dataclass(frozen=True)
class Batch:
    """Simulations run ``width`` at a time: ``run(candidates)`` gives each one's Outcome, or the
    PebbleError its run raised, in order (``simulator.ray_pipeline.advise_tasks`` runs them as
    Ray tasks)."""

    run: Callable[[list[Candidate]], list[Outcome | PebbleError]]
    width: int


@dataclass(frozen=True)
class Stream:
    """Simulations run ahead of the search: ``results(candidates)`` yields each one's Outcome,
    or the PebbleError its run raised, in order, while later ones run (``local_pool`` runs them
    on this machine's other cores). The search reads them in its order and by its stopping rule,
    so the answer is the one-at-a-time search's exactly; runs past the stop are dropped."""

    results: Callable[[list[Candidate]], Iterator[Outcome | PebbleError]]
    spread: Spread | None = None  # bounds the search's groups of configurations there too

    def run(self, candidates: list[Candidate]) -> list[Outcome | PebbleError]:
        """Every candidate's result at once, as ``Batch.run`` gives them."""
        return list(self.results(candidates))


def same_run(outcome: Outcome) -> tuple:
    """What makes two configurations one row: the layout, the microbatching, the recompute
    policy and the schedule actually run with what it sent to the host (auto that resolves to
    ZB-V, and ZB-V; selective offload that sends what full does, and full)."""
    c = outcome.candidate
    run = outcome.schedule_key or c.label()
    return (c.layout.to_text(), c.microbatches, c.microbatch_size, c.recompute, run)


def _one_per_run(result: SearchResult, bounds_of: dict[int, float]) -> list[Outcome]:
    """Every distinct run that fits, fastest first, each shown as its named family where one
    runs it (auto's twin is an alias of the row); every simulated configuration's fate."""
    groups: dict[tuple, list[Outcome]] = {}
    for o in sorted(result.simulated, key=_rank_key):
        if o.fits:
            groups.setdefault(same_run(o), []).append(o)
        else:
            result.fates.append(Fate(o.candidate, OVER, time_bound=bounds_of.get(id(o)), outcome=o))
    fitting = []
    for group in groups.values():
        group.sort(key=lambda o: (o.candidate.schedule == "auto", o.candidate.label()))
        head, *twins = group
        fitting.append(head)
        label = head.candidate.label()
        result.fates.append(
            Fate(head.candidate, FITS, time_bound=bounds_of.get(id(head)), outcome=head)
        )
        for twin in twins:
            result.fates.append(
                Fate(
                    twin.candidate,
                    SAME,
                    time_bound=bounds_of.get(id(twin)),
                    outcome=twin,
                    same_as=label,
                )
            )
        if twins:
            result.aliases[label] = [twin.candidate.label() for twin in twins]
    return sorted(fitting, key=_rank_key)
