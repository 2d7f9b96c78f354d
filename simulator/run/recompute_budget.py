"""``--recompute budget:BYTES``: the fewest recompute FLOPs that keep every rank's peak of
activation memory within a budget, under the chosen pipeline schedule.

Why a solver: how much to recompute depends on the schedule. GPipe holds every microbatch's
activations at once, 1F1B about p of them on its first rank and one on its last; a budget met
by recomputing nothing on the last rank may need full recomputation on the first. The answer
is a checkpoint placement per stage, found exactly within the space of segment plans
(``simulator.model.recompute``: a segment is a run of adjacent blocks kept as its input only).

The algorithm
-------------
**What a placement does to one stage.** Relative to caching everything, a placement drops
``D`` bytes per microbatch after the forward (each segment's cached bytes less its
checkpoint), costs ``R`` FLOPs per microbatch row (each segment's forward again), and changes
how high a backward (``I`` or ``B``) climbs: at the backward of layer ``j`` the stage holds what
it would without recomputation, less the bytes still dropped by the segments *below* ``j``
(a segment is put back whole, just before its own backward). So the backward's climb above
its starting level is ``Q = D + max_j (m_j - D_<j)``, where ``m_j`` is the no-recompute
backward's level at layer ``j`` and ``D_<j`` what segments ending below ``j``'s segment drop.
(These are the work items of ``action_work``; a test checks every quantity against the
analytic executor.)

**Per stage: a dynamic program over the chain** (first block to last). A partial placement of
the blocks below a boundary is summarised by ``(R, D, Q'_I, Q'_B)`` with ``Q' = max (m - D_<)``,
and, while a segment is running, by what it will have dropped when it closes and what was
dropped below it; every continuation treats two partial placements alike except through these
numbers, and each is monotone (less ``R``, more ``D``, less ``Q'`` is never worse), so only the
Pareto front of partial placements is kept. Each block moves every state once (keep it, start a
segment with it, or extend the running one; a running segment may close after any block).
Time ``O(n F^2)`` for ``n`` blocks on the stage and fronts of ``F`` states; for identical
transformer blocks ``F`` grows about as ``n^2``: 8 blocks per stage (a 126-block model over 16
ranks) solve in tens of milliseconds, one stage of 32 blocks in under a second, 48 in about 5 s
and 64 in about 25 s (``benchmarks/recompute.py``). Only the backward kinds the schedule runs on
a stage count (an unused kind's climb never binds).

**Per rank: an exact walk.** A rank's memory depends only on its own action order. Before each
of its actions it holds, per stage, ``K = K_none - D`` bytes for each microbatch between its
forward and its backward and a fixed ``H`` for each between ``I`` and ``W``; the action climbs
``K`` (a forward), ``Q_I`` or ``Q_B`` above that. The peak is a maximum of linear functions of
the rank's stages' ``(K, Q_I, Q_B)``, all monotone, so the optimum uses Pareto-optimal
placements. The rank's stages' fronts are searched in order of FLOPs with branch and bound;
the first plan within the budget at the least total FLOPs is optimal (exact for the segment
plans; a rank with ``v`` stages searches at worst the product of their fronts, in practice a
few hundred combinations).

``budget:P%`` is that share of the no-recompute peak of the fullest rank.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from schedules.actions import Schedule
from schedules.dependencies import PIPELINE_RULE, DependencyRule
from simulator.errors import PebbleError
from simulator.model.action_work import action_work
from simulator.model.memory_plan import input_bytes, shape_key
from simulator.model.recompute import (
    NO_RECOMPUTE,
    RecomputePlan,
    StageRecompute,
    recompute_units,
)
from simulator.units import human_bytes


@dataclass(frozen=True)
class Placement:
    """One stage's placement: recompute FLOPs per row, bytes kept after the forward per
    microbatch, the climbs of its I and B above their starting level, and its segments."""

    flops: float
    kept: int
    climb_i: int
    climb_b: int
    segments: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class _Piece:
    """A run of the stage's layers: a block that may be dropped, or fixed layers."""

    first: int
    last: int
    droppable: bool
    cached: int  # bytes its layers' forwards cache
    checkpoint: int  # its input's bytes
    flops: float  # its forward's FLOPs per row
    level_i: int  # highest no-recompute I level at its layers
    level_b: int


def _levels(items, count: int) -> list[int]:
    """Per layer, the highest running total its backward work items reach, each item's
    ``working`` bytes (the gradient tensors a running backward holds) counted while it runs,
    as ``memory_plan.working_peak`` counts them: the budget bounds the true peak."""
    level, out = 0, [None] * count
    for item in items:
        before = level
        if item.at_start:
            level += item.delta
        top = level + item.working
        if not item.at_start:
            level += item.delta
        j = item.layer
        out[j] = max(before, top, level, out[j] if out[j] is not None else before)
    return [v if v is not None else 0 for v in out]


def backward_roles(rule: DependencyRule = PIPELINE_RULE) -> tuple[str, str]:
    """The rule's two backwards that send the gradient and so climb: the one that leaves the
    weight gradient to a later kind (``I``) and the one that completes it (``B``)."""
    senders = [r for r in rule.kinds.values() if r.sends_gradient]
    split = next(r.kind for r in senders if not r.completes_weight_gradient)
    full = next(r.kind for r in senders if r.completes_weight_gradient)
    return split, full


def _pieces(spec, infos, layers, rows, rule=PIPELINE_RULE) -> tuple[list[_Piece], int, int]:
    """The stage's pieces, its no-recompute kept bytes and what its split backward (I) leaves
    for the weight backward (W). Both backwards' climbs are kept, whichever the schedule runs
    on the stage (the walk only ever reads the one it runs)."""
    stage_infos = [infos[i] for i in layers]
    first = layers[0]
    split, full = backward_roles(rule)
    work = {
        k: action_work(stage_infos, rows, spec.itemsize, r, NO_RECOMPUTE)
        for k, r in rule.kinds.items()
    }
    cached = [0] * len(stage_infos)
    for forward in rule.having("is_forward"):
        for item in work[forward]:
            cached[item.layer] += item.delta
    level_i = _levels(work[split], len(stage_infos))
    level_b = _levels(work[full], len(stage_infos))
    units = {a - first: b - first for a, b in recompute_units(stage_infos)}
    pieces, j = [], 0
    while j < len(stage_infos):
        end = units.get(j, j)
        span = range(j, end + 1)
        pieces.append(
            _Piece(
                j,
                end,
                j in units,
                sum(cached[k] for k in span),
                input_bytes(spec, infos, first + j, rows),
                sum(stage_infos[k].flops().F for k in span),
                max(level_i[k] for k in span),
                max(level_b[k] for k in span),
            )
        )
        j = end + 1
    held = sum(cached) + sum(item.delta for item in work[split])
    return pieces, sum(cached), held


def _pareto(states: list[tuple], dims: int) -> list[tuple]:
    """The states not dominated in their first ``dims`` numbers (all minimised)."""
    if len(states) < 2:
        return states
    states.sort(key=lambda s: s[:dims])
    kept: list[tuple] = []
    front = np.empty((len(states), dims - 1))
    for state in states:
        key = np.asarray(state[1:dims], dtype=float)
        count = len(kept)
        if count and (front[:count] <= key).all(axis=1).any():
            continue  # an earlier (no more FLOPs) state is no worse in every other number
        front[count] = key
        kept.append(state)
    return kept


def stage_placements(pieces: list[_Piece], kept_none: int) -> list[Placement]:
    """The Pareto front of one stage's placements (the dynamic program above).

    Closed states ``(R, -D, Q'_I, Q'_B, segments)`` have no segment running; open states
    ``(R, -D_if_closed, -D_before, Q'_I, Q'_B, segments, first, last)`` are inside a segment
    that began at layer ``first`` with ``D_before`` dropped below it. Each piece moves every
    state once: a closed one keeps the piece or opens a segment with it; an open one extends
    its segment (if the piece is a droppable neighbour). Every open state is also closed after
    each piece. So the work is linear in the pieces times the fronts."""
    low = -(10**30)
    closed: list[tuple] = [(0.0, 0, low, low, ())]
    opened: list[tuple] = []
    for index, piece in enumerate(pieces):
        next_closed, next_open = [], []
        for r, neg_d, qi, qb, segs in closed:
            d = -neg_d
            qi, qb = max(qi, piece.level_i - d), max(qb, piece.level_b - d)
            next_closed.append((r, neg_d, qi, qb, segs))
            if piece.droppable:
                dropped = piece.cached - piece.checkpoint
                opened_state = (r + piece.flops, neg_d - dropped, neg_d, qi, qb, segs)
                next_open.append((*opened_state, piece.first, piece.last))
        adjacent = index > 0 and pieces[index - 1].last + 1 == piece.first
        if piece.droppable and adjacent:
            for r, neg_close, neg_before, qi, qb, segs, first, _ in opened:
                d = -neg_before
                qi, qb = max(qi, piece.level_i - d), max(qb, piece.level_b - d)
                state = (r + piece.flops, neg_close - piece.cached, neg_before, qi, qb, segs)
                next_open.append((*state, first, piece.last))
        opened = _pareto(next_open, 5)
        next_closed += [(r, nc, qi, qb, (*segs, (a, b))) for r, nc, _, qi, qb, segs, a, b in opened]
        closed = _pareto(next_closed, 4)
    return [
        Placement(r, kept_none + neg_d, qi - neg_d, qb - neg_d, segs)
        for r, neg_d, qi, qb, segs in closed
    ]


def _climb_columns(rule: DependencyRule) -> dict[str, int]:
    """Per kind, its column of ``RankWalk.peak``'s climbs: the forward climbs ``kept`` (0),
    the split and the full backward their climbs (1, 2), any other kind nothing (3)."""
    split, full = backward_roles(rule)
    columns = {kind: 3 for kind in rule.kinds}
    columns.update({split: 1, full: 2})
    columns.update(dict.fromkeys(rule.having("is_forward"), 0))
    return columns


@dataclass(frozen=True)
class RankWalk:
    """One rank's actions as a memory walk: before action ``a`` the rank holds
    ``in_flight[a] @ kept + held[a]`` bytes; the action climbs ``kept`` (F), ``climb_i`` (I),
    ``climb_b`` (B) or nothing (W) of its own stage above that."""

    rank: int
    stages: tuple[int, ...]
    in_flight: np.ndarray
    held: np.ndarray
    own_stage: np.ndarray
    own_kind: np.ndarray

    def peak(self, placements) -> int:
        kept = np.array([p.kept for p in placements], dtype=np.int64)
        climbs = np.array([[p.kept, p.climb_i, p.climb_b, 0] for p in placements], dtype=np.int64)
        levels = self.in_flight @ kept + self.held
        return max(0, int((levels + climbs[self.own_stage, self.own_kind]).max()))


def rank_walk(
    schedule: Schedule, rank: int, held_for_w: dict[int, int], rule=PIPELINE_RULE
) -> RankWalk:
    """The walk of ``rank``'s actions; ``held_for_w[stage]``: bytes an I leaves for its W. A
    forward opens a microbatch on its stage, a backward that sends the gradient closes it
    (leaving ``held_for_w`` if it does not complete the weight gradient), and one that only
    completes the weight gradient frees that (``KindRule`` traits)."""
    stages = tuple(schedule.stages_of_rank(rank))
    local = {s: i for i, s in enumerate(stages)}
    actions = schedule.actions[rank]
    columns = _climb_columns(rule)
    in_flight = np.zeros((len(actions), len(stages)), dtype=np.int64)
    held = np.zeros(len(actions), dtype=np.int64)
    own_stage = np.zeros(len(actions), dtype=np.int64)
    own_kind = np.zeros(len(actions), dtype=np.int64)
    counts = np.zeros(len(stages), dtype=np.int64)
    waiting = 0
    for a, action in enumerate(actions):
        s, kind = local[action.stage_index], rule.rule(str(action.kind))
        in_flight[a], held[a] = counts, waiting
        own_stage[a], own_kind[a] = s, columns[kind.kind]
        if kind.is_forward:
            counts[s] += 1
        elif kind.sends_gradient:
            counts[s] -= 1
            waiting += 0 if kind.completes_weight_gradient else held_for_w[action.stage_index]
        elif kind.completes_weight_gradient:
            waiting -= held_for_w[action.stage_index]
    return RankWalk(rank, stages, in_flight, held, own_stage, own_kind)


def _search(walk: RankWalk, fronts: list[list[Placement]], budget: float):
    """The least-FLOPs choice of one placement per stage whose walk peaks within ``budget``
    (branch and bound over the fronts, each sorted by FLOPs); None if there is none."""
    least = [min(front, key=lambda p: (p.kept, p.climb_i, p.climb_b)) for front in fronts]
    floor = [
        Placement(
            0.0, min(p.kept for p in f), min(p.climb_i for p in f), min(p.climb_b for p in f), ()
        )
        for f in fronts
    ]
    rest = np.r_[np.cumsum([f[0].flops for f in fronts][::-1])[::-1], 0.0]
    best: list = [float("inf"), None]

    def dfs(i: int, chosen: list[Placement], flops: float) -> None:
        if i == len(fronts):
            if walk.peak(chosen) <= budget:
                best[0], best[1] = flops, list(chosen)
            return
        for placement in fronts[i]:
            if flops + placement.flops + rest[i + 1] >= best[0]:
                break
            trial = [*chosen, placement]
            if walk.peak(trial + floor[i + 1 :]) > budget:
                continue  # even the smallest choices for the other stages cannot fit
            dfs(i + 1, trial, flops + placement.flops)

    dfs(0, [], 0.0)
    return best[1], _lowest(walk, fronts, least)


def _lowest(walk: RankWalk, fronts: list[list[Placement]], fallback: list[Placement]):
    """The choice with the lowest peak, for the sentence a failed budget prints: every
    combination where there are few (one stage per rank: its front), else ``fallback`` (the
    choice that stores the least)."""
    if math.prod(len(f) for f in fronts) > 10_000:
        return fallback
    return list(min(itertools.product(*fronts), key=walk.peak))


def solve_budget(
    schedule: Schedule,
    spec,
    partition,
    rows: int,
    budget: int | float | dict[int, int],
    text: str = "",
) -> RecomputePlan:
    """The least-FLOPs segment plan per stage keeping every rank's activation peak within
    ``budget`` bytes (an int), that share of the fullest rank's no-recompute peak (a float),
    or each rank's own bytes (a dict by rank: ranks are independent, so each is its own
    search; ``offload_joint`` recomputes only where offload cannot help); a one-sentence
    PebbleError when no plan fits."""
    infos = spec.layers()
    fronts, held, by_shape = {}, {}, {}
    for s, layers in enumerate(partition.stage_layers):
        key = shape_key([infos[i] for i in layers])
        if key not in by_shape:
            pieces, kept_none, held_w = _pieces(spec, infos, layers, rows)
            by_shape[key] = (stage_placements(pieces, kept_none), held_w)
        front, held[s] = by_shape[key]
        shift = layers[0]  # the placements' layers count from the stage's first
        fronts[s] = [
            Placement(
                p.flops,
                p.kept,
                p.climb_i,
                p.climb_b,
                tuple((a + shift, b + shift) for a, b in p.segments),
            )
            for p in sorted(front, key=lambda p: p.flops)
        ]
    walks = [rank_walk(schedule, r, held) for r in range(schedule.num_ranks)]
    if isinstance(budget, float):
        none = [w.peak([fronts[s][0] for s in w.stages]) for w in walks]
        budget = budget * max(none)
    plans: dict[int, tuple] = {}
    for walk in walks:
        mine = budget[walk.rank] if isinstance(budget, dict) else budget
        chosen, least = _search(walk, [fronts[s] for s in walk.stages], mine)
        if chosen is None:
            raise PebbleError(
                f"no recompute plan keeps rank {walk.rank} within {human_bytes(mine)} of "
                "activations: recomputing the most it can, it still peaks at "
                f"{human_bytes(walk.peak(least))}."
            )
        for s, placement in zip(walk.stages, chosen, strict=True):
            plans[s] = placement.segments
    stages = tuple(StageRecompute(plans[s]) for s in range(partition.num_stages))
    default = "budget:per-rank" if isinstance(budget, dict) else f"budget:{budget:.0f}"
    return RecomputePlan(text or default, stages)
