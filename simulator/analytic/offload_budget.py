"""``--offload budget:BYTES|P%`` solved exactly: the least exposed transfer time keeping every
rank's device peak within the budget.

The plan space
--------------
A plan says, per stage, which microbatches go to the host: any subset of the *movable* pairs
(stage, microbatch), those full offload sends (``PlanTimer``; the clock keeps on the device a
microbatch whose backward follows its forward at once, and a stage with nothing offloadable
sends nothing). Every subset is a plan: ``N`` movable pairs make ``2^N`` plans. A plan is timed
on one step by the offload clock itself (``offload_timing``); its cost is ``(exposed, moved)``,
compared in that order: the backwards' total wait for prefetches, all ranks (times within
``TIE`` seconds count as equal), then the bytes sent. Among plans of equal cost the first in
the search order wins (pairs in dry-run order of their forwards, keeping before sending): the
answer is deterministic.

Neither the exposed time nor a rank's peak is monotone in the set sent (a copy more on a
stream can delay another's offload past a peak, or fill a wait a later prefetch would have
shown: a test finds both on a two-rank run), and the clock plans each prefetch from the whole
rank's copies (``prefetch_plan`` walks the backwards from the last), so a later choice can move
an earlier copy. The search therefore prunes only with what holds for *every* plan, whatever
the clock does between a forward and its backward; each fact is checked by a test on every
plan of small runs:

1. **Cover.** While action ``a`` runs (and when it ends), what is off its rank's device is at
   most the bytes of the sent pairs of its rank in flight at ``a`` (forward before ``a``,
   backward after): a copy leaves after its forward and is back before its backward. So ``a``'s
   level is at least its no-offload level less those bytes, in every plan.
2. **Separation.** A plan in which nothing waits runs every action when it would without
   offload; a rank's copies then depend only on its own pairs, so the ranks' choices are
   independent. And a plan with a wait keeps one when pairs are added (dropping a copy only
   frees a stream; the plans without a wait are closed under taking subsets).

The search
----------
A depth-first branch and bound over the pairs in dry-run order of their forwards, keeping
before sending. A node has decided a prefix of the pairs; it is timed with the rest kept (so
every node is itself a plan, and a candidate). It is cut off when (by 1) the undecided pairs
cannot take enough off some action even all together, or when even a plan with no wait and
the fewest bytes the cover still needs would not beat the best plan found.

First (by 2) each rank alone, among its plans with no wait, cutting off a node that waits
(its completions all wait): if every rank has one within the budget, their union is the
optimum (exposed 0, and the fewest bytes, each rank's fewest being independent; the union is
timed again to confirm). Otherwise the whole run, seeded by a greedy plan (the selective set,
then the pairs that waited least under full offload, PipeOffload's order): no sound lower bound
on the exposed time holds there, so this part is an exhaustive search pruned only by the
cover, exact but exponential.

Both parts are exponential in the worst case. The search stops after ``limit`` plans timed
(``plan_limit``: ``PLAN_LIMIT``, fewer on a run so large that timing them would take more than
seconds), each rank of the first part on its share of half of them; it then returns the best
plan found (the union of the ranks' best plans with no wait when each found one, else the best
of the whole run's search, at worst the greedy seed), and the policy text says so
(``budget:60% (best of 195 plans searched, not proven least)``). On a large run (Llama 3 70B,
16 ranks, 64 microbatches: 195 plans, a few seconds) that is the usual outcome today: the
first part cannot yet prove a rank's fewest bytes among 64 pairs in a few dozen plans. No plan
within the budget: one sentence naming the rank and the least it holds (the cover's bound
before any search; else the least peak of the plans the search timed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.analytic.offload_timing import Choice, PlanTimer, Timing
from simulator.errors import PebbleError
from simulator.units import human_bytes

PLAN_LIMIT = 3000  # plans timed before the search stops with its best plan found
WORK_LIMIT = 400_000  # ... and actions timed (plans times actions): seconds on a large run


def plan_limit(actions: int) -> int:
    """The default number of plans to time on a run of ``actions`` actions."""
    return max(50, min(PLAN_LIMIT, WORK_LIMIT // max(1, actions)))


TIE = 1e-12  # seconds: exposed times closer than this are equal (float sums of waits)


@dataclass(frozen=True)
class Pair:
    """A movable (stage, microbatch): its rank, the dry-run indices of its forward and of the
    backward that fetches it back, and the bytes it sends."""

    stage: int
    microbatch: int
    rank: int
    forward: int
    backward: int
    size: int


@dataclass(frozen=True)
class Solved:
    """A budget's answer: the plan, its exposed time and bytes, whether the search finished
    (so the plan is the least of the space) and how many plans it timed."""

    chosen: Choice
    exposed: float
    moved: int
    proven: bool
    plans: int


def movable_pairs(timer: PlanTimer) -> list[Pair]:
    """The pairs full offload sends, in dry-run order of their forwards."""
    run = timer.run
    m = timer.plan.schedule.num_microbatches
    everything = tuple(frozenset(range(m)) if size else frozenset() for size in timer.stage_bytes)
    sent = timer.time(everything).sent
    forward, backward = {}, {}
    fwd = np.isin(timer.kinds, run.rule.having("is_forward"))
    back = np.isin(timer.kinds, run.rule.having("sends_gradient"))
    for i in range(len(run)):
        key = (int(run.stages[i]), int(run.microbatches[i]))
        if fwd[i]:
            forward[key] = i
        elif back[i]:
            backward[key] = i
    pairs = [
        Pair(
            s,
            mb,
            int(run.ranks[forward[(s, mb)]]),
            forward[(s, mb)],
            backward[(s, mb)],
            timer.stage_bytes[s],
        )
        for s, mb in sent
    ]
    return sorted(pairs, key=lambda p: (p.forward, p.stage, p.microbatch))


def choice(pairs: list[Pair], sent, stages: int) -> Choice:
    """Per stage, the microbatches of the pairs indexed by ``sent``."""
    out: list[set[int]] = [set() for _ in range(stages)]
    for k in sent:
        out[pairs[k].stage].add(pairs[k].microbatch)
    return tuple(frozenset(s) for s in out)


class _Search:
    """The branch and bound over ``pairs`` (a subset of the movable ones, in forward order)
    with the budget checked on ``ranks``; ``zero_wait`` keeps only plans in which nothing
    waits. ``best``: (exposed, bytes, indices sent) of the best plan known."""

    def __init__(self, timer, pairs, budget, ranks, zero_wait, limit, best=None) -> None:
        self.timer, self.pairs, self.budget, self.limit = timer, pairs, budget, limit
        self.zero_wait, self.best = zero_wait, best
        run = timer.run
        self.rows = np.flatnonzero(np.isin(run.ranks, list(ranks)))
        self.size = np.array([p.size for p in pairs], dtype=np.int64)
        # in flight (fact 2): action a of the pair's rank with forward < a < backward
        a = self.rows[:, None]
        self.inflight = (
            (run.ranks[a] == np.array([p.rank for p in pairs], dtype=np.int64)[None, :])
            & (a > np.array([p.forward for p in pairs], dtype=np.int64)[None, :])
            & (a < np.array([p.backward for p in pairs], dtype=np.int64)[None, :])
        ).astype(np.int64) * self.size[None, :]
        self.need = np.maximum(timer.during, timer.after)[self.rows] - budget
        # what the pairs from each depth on could still take off each action
        self.open = np.cumsum(self.inflight[:, ::-1], axis=1)[:, ::-1]
        self.stages = timer.plan.partition.num_stages
        self.plans = 0
        self.least: dict[int, int] = {}  # rank -> least peak of any plan timed

    def _better(self, exposed: float, moved: int) -> bool:
        if self.best is None:
            return True
        if exposed < self.best[0] - TIE:
            return True
        return exposed <= self.best[0] + TIE and moved < self.best[1]

    def run(self) -> bool:
        """Search; True when it finished (the best plan found is the optimum)."""
        stack: list[tuple[int, tuple[int, ...]]] = [(0, ())]
        while stack:
            depth, sent = stack.pop()
            if self.plans >= self.limit:
                return False
            if self._visit(depth, sent):
                stack.append((depth + 1, (*sent, depth)))
                stack.append((depth + 1, sent))
        return True

    def _visit(self, depth: int, sent: tuple[int, ...]) -> bool:
        """Time the node's plan (the pairs ``sent``, the undecided kept), keep it if it is
        the best so far; True to branch on pair ``depth``."""
        before = self.timer.calls
        timing: Timing = self.timer.time(choice(self.pairs, sent, self.stages))
        self.plans += self.timer.calls - before
        ranks = self.timer.run.ranks[self.rows]
        levels = timing.levels[self.rows]
        for r in np.unique(ranks).tolist():
            peak = int(levels[ranks == r].max())
            self.least[r] = min(self.least.get(r, peak), peak)
        moved = int(self.size[list(sent)].sum())
        exposed = float(timing.waits[self.rows].sum()) if self.zero_wait else timing.exposed
        waits = self.zero_wait and exposed > TIE
        if levels.max(initial=0) <= self.budget and not waits and self._better(exposed, moved):
            self.best = (exposed, moved, sent)
        if depth == len(self.pairs) or waits:
            return False  # a leaf, or (fact 3) every completion sends more and waits too
        covered = self.inflight[:, list(sent)].sum(axis=1)
        short = self.need - covered
        if (short > self.open[:, depth]).any():
            return False  # (fact 2) no choice of the rest takes enough off some action
        # no completion costs less than (0, these bytes plus what the cover still needs)
        return self._better(0.0, moved + int(max(short.max(initial=0), 0)))


def solve_budget_exact(
    timer: PlanTimer, budget: int, seed: Choice | None = None, limit: int | None = None
) -> Solved:
    """The least (exposed, moved) plan within ``budget`` bytes on every rank (see the module's
    docstring); ``seed``: a plan within the budget to start from, if one is known."""
    limit = limit if limit is not None else plan_limit(len(timer.run))
    pairs = movable_pairs(timer)
    ranks = range(timer.ranks)
    _check_cover(timer, pairs, budget)
    stages = timer.plan.partition.num_stages
    spent = 0
    # 1. each rank alone, with no wait (separation), on an equal share of half the limit
    union: list[int] = []
    proven = True
    share = max(1, limit // (2 * timer.ranks))
    for r in ranks:
        mine = [k for k, p in enumerate(pairs) if p.rank == r]
        search = _Search(timer, [pairs[k] for k in mine], budget, [r], True, share)
        proven = search.run() and proven
        spent += search.plans
        if search.best is None:
            break
        union += [mine[k] for k in search.best[2]]
    else:
        chosen = choice(pairs, union, stages)
        timing = timer.time(chosen)
        if max(timing.peaks) <= budget and timing.exposed <= TIE:  # separation, checked
            return Solved(chosen, timing.exposed, timing.moved, proven, spent)
    # 2. the whole run
    best = None
    if seed is not None:
        index = {(p.stage, p.microbatch): k for k, p in enumerate(pairs)}
        sent = tuple(sorted(index[(s, mb)] for s, mbs in enumerate(seed) for mb in mbs))
        timing = timer.time(seed)
        if max(timing.peaks) <= budget:
            best = (timing.exposed, timing.moved, sent)
    search = _Search(timer, pairs, budget, ranks, False, max(limit - spent, 1), best)
    finished = search.run()
    spent += search.plans
    if search.best is None:
        _refuse(timer, budget, search.least, finished and proven, spent)
    exposed, moved, sent = search.best
    return Solved(choice(pairs, sent, stages), exposed, moved, finished, spent)


def _check_cover(timer: PlanTimer, pairs: list[Pair], budget: int) -> None:
    """One sentence when a rank is over the budget even with every pair it may send off the
    device (the cover bound, before any search)."""
    run = timer.run
    index = np.arange(len(run))
    for r in range(timer.ranks):
        mine = run.ranks == r
        off = np.zeros(len(run), dtype=np.int64)
        for p in pairs:
            if p.rank == r:
                off[(index > p.forward) & (index < p.backward) & mine] += p.size
        least = int((np.maximum(timer.during, timer.after) - off)[mine].max(initial=0))
        if least > budget:
            raise PebbleError(
                f"no offload plan keeps rank {r} within {human_bytes(budget)} of activations: "
                f"even with everything it may send on the host it holds "
                f"{_bytes(least, budget)} at least."
            )


def _bytes(value: int, budget: int) -> str:
    """``value`` for a sentence beside ``budget``: exact bytes where both would read alike."""
    text = human_bytes(value)
    return f"{text} ({value:,} bytes)" if text == human_bytes(budget) else text


def _refuse(timer, budget, least: dict, finished: bool, plans: int) -> None:
    rank = max(least, key=lambda r: (least[r], -r))
    if least[rank] <= budget:  # each rank fits in some plan, never all in one
        raise PebbleError(
            f"no offload plan keeps every rank within {human_bytes(budget)} of activations at "
            f"once{'' if finished else f' in the {plans} plans searched'}."
        )
    if not finished:
        raise PebbleError(
            f"no offload plan within {human_bytes(budget)} found in {plans} plans searched "
            f"(the search stops there); rank {rank} peaks at {_bytes(least[rank], budget)} at "
            "the least of them."
        )
    raise PebbleError(
        f"no offload plan keeps rank {rank} within {human_bytes(budget)} of activations: "
        f"it peaks at {_bytes(least[rank], budget)} at the least of the {plans} plans timed."
    )
