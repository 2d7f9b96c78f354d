"""Candidate orders for the search: the hand-written families, 1F1B-shaped skeletons with a
warmup per stage, and the one-microbatch-at-a-time order that fits any feasible limit.

Why several: no single shape wins everywhere. With little memory the answer is 1F1B's shape
with the Ws placed well (the paper's ZB-1p equals ZB-H1); with more, deeper warmups; on a V,
ZB-V's interleaving of the two chunks. Each generator here is cheap and returns rows
(``timing.Rows``); the search plays and scores them all.

The hand-written families and the one-at-a-time order depend on the sizes alone (ranks,
microbatches, placement), not on the costs or the limit, and ``advise`` asks auto for many
problems of the same sizes: they are built once per size (``lru_cache``) and shared, as tuples
so no caller can change them.
"""

from __future__ import annotations

import math
from functools import lru_cache

from schedules.auto.problem import B, F, I, W
from schedules.auto.timing import Rows, Tables, rows_of_schedule
from schedules.registry import build_schedule

LOOP_FAMILIES = ("zb-h1", "zb-h2", "1f1b", "gpipe", "naive")
V_FAMILIES = ("zb-v", "dualpipe-v")


def families(tables: Tables) -> list[str]:
    """The registry's families for this layout that accept these sizes."""
    if tables.S == tables.p:
        return list(LOOP_FAMILIES)
    return [n for n in V_FAMILIES if n != "dualpipe-v" or tables.m >= 2 * tables.p]


def hand_written(tables: Tables, name: str) -> Rows:
    """The registry's ``name`` schedule for these sizes, as rows (read-only: shared)."""
    return _hand_written(name, tables.p, tables.m)


@lru_cache(maxsize=64)
def _hand_written(name: str, p: int, m: int) -> Rows:
    return tuple(tuple(row) for row in rows_of_schedule(build_schedule(name, p, m)))


def v_depths(tables: Tables) -> list[int]:
    """``v_shape`` depths worth trying: ZB-V's own (0), and the deepest every rank's limit
    allows when that is deeper (ZB-V holds 2p chunk activations on every rank; each unit of
    depth is one more)."""
    p = tables.p
    units = min(
        (tables.limit[r] - tables.rank_rise[r])
        / max([tables.delta[F][s] for s in tables.stages[r]] + [1e-300])
        for r in range(p)
    )
    deepest = int(min(units, 4.0 * p)) - 2 * p
    return [0, deepest] if deepest > 0 else [0]


def one_at_a_time(tables: Tables, split: bool) -> Rows:
    """Each microbatch down every stage and back before the next starts: the least memory any
    schedule needs (with ``split``, I then W at once on each stage; else a full B). Read-only:
    shared between problems of the same sizes."""
    return _one_at_a_time(tables.p, tables.m, tuple(tables.rank), split)


@lru_cache(maxsize=16)
def _one_at_a_time(p: int, m: int, rank: tuple[int, ...], split: bool) -> Rows:
    rows: Rows = [[] for _ in range(p)]
    for j in range(m):
        for s in range(len(rank)):
            rows[rank[s]].append((s, F, j))
        for s in reversed(range(len(rank))):
            if split:
                rows[rank[s]] += [(s, I, j), (s, W, j)]
            else:
                rows[rank[s]].append((s, B, j))
    return tuple(tuple(row) for row in rows)


def one_f_one_b_shape(tables: Tables, warmup: list[int]) -> Rows:
    """Per stage, ``warmup[s] + 1`` forwards, then (I, F) pairs, then the last Is: the 1F1B
    skeleton with a chosen depth per stage (one stage per rank; Ws are slotted in later)."""
    rows: Rows = [[] for _ in range(tables.p)]
    m = tables.m
    for s in range(tables.S):
        ahead = min(m, warmup[s] + 1)
        row = rows[tables.rank[s]]
        row += [(s, F, j) for j in range(ahead)]
        for j in range(m):
            row.append((s, I, j))
            if ahead < m:
                row.append((s, F, ahead))
                ahead += 1
    return rows


def first_backward_counts(tables: Tables) -> list[int]:
    """Per stage, how many forwards it can run before the first microbatch's input-gradient
    comes back, if nothing waits but for the first microbatch's own chain (each hop's transfer
    is the one its consumer waits for, ``links``)."""
    S, cost, sources = tables.S, tables.cost, tables.sources
    start, clock = [0.0] * S, 0.0
    for s in range(S):
        start[s] = clock
        clock += cost[F][s] + (sources[F][s + 1][1] if s + 1 < S else 0.0)
    counts = [1] * S
    back = start[-1] + cost[F][-1]
    for s in reversed(range(S)):
        counts[s] = max(1, int((back - start[s]) // max(cost[F][s], 1e-300)))
        back += cost[I][s] + (sources[I][s - 1][1] if s else 0.0)
    return counts


def warmups(tables: Tables, extra: int) -> list[int]:
    """Extra forwards per stage before its first I: at least one more than the next stage
    on another rank (so the steady state pipelines), as many as the first microbatch's round
    trip leaves time for (plus ``extra``), within each rank's memory."""
    S, rank = tables.S, tables.rank
    depth = [0] * S
    for s in reversed(range(S - 1)):
        depth[s] = depth[s + 1] + (rank[s] != rank[s + 1])
    warm = [0] * S
    for s in reversed(range(S)):  # the minimal pipelining depth, as memory allows
        warm[s] = _within_memory(tables, warm, s, depth[s])
    wanted = first_backward_counts(tables)
    for s in range(S):  # then deeper where the first round trip leaves time
        target = min(max(warm[s], wanted[s] - 1 + extra), tables.m - 1)
        if s and rank[s - 1] != rank[s]:
            target = min(target, warm[s - 1] - 1)
        warm[s] = max(warm[s], _within_memory(tables, warm, s, target))
    return warm


def _within_memory(tables: Tables, warm: list[int], s: int, target: int) -> int:
    """The largest warmup up to ``target`` for stage s that keeps its rank within its limit
    with every stage of the rank at its current warmup (one microbatch each at least)."""
    r = tables.rank[s]
    others = sum((warm[q] + 1) * tables.delta[F][q] for q in tables.stages[r] if q != s)
    room = tables.limit[r] - tables.rank_rise[r] - others
    size = tables.delta[F][s]
    if size <= 0 or room == math.inf:
        return max(target, 0)
    return max(0, min(target, int(room * (1 + 1e-12) // size) - 1))


def v_shape(tables: Tables, deeper: int) -> Rows:
    """ZB-V's order of forwards and input-gradients (``schedules.zbv``), with ``deeper`` more
    (or fewer) chunk-0 forwards in each rank's warmup: the V skeleton for a looser or tighter
    memory limit. Ws are slotted in later; planned microbatches past m are dropped."""
    p, m = tables.p, tables.m
    planned = max(m, 2 * p - 1 + max(deeper, 0))
    rows: Rows = []
    for r in range(p):
        down, up = r, 2 * p - 1 - r
        count = {(down, F): 0, (down, I): 0, (up, F): 0, (up, I): 0}
        row: list[tuple[int, int, int]] = []

        def add(s: int, k: int, row=row, count=count) -> None:
            j = count[(s, k)]
            count[(s, k)] = j + 1
            if j < m:
                row.append((s, k, j))

        for _ in range(max(1, 2 * (p - r) - 1 + deeper)):
            add(down, F)
        for _ in range(r):
            add(up, F)
            add(down, F)
        for _ in range(p - r):
            add(up, F)
            add(up, I)
        while count[(down, F)] < planned or count[(up, F)] < count[(down, F)]:
            if count[(down, F)] < planned:
                add(down, F)
            add(down, I)
            add(up, F)
            add(up, I)
        for _ in range(r):  # cooldown: the chunk-0 backward first, as ZB-V
            add(down, I)
            add(up, I)
        while count[(down, I)] < planned or count[(up, I)] < planned:
            if count[(down, I)] < planned:
                add(down, I)
            if count[(up, I)] < count[(up, F)]:
                add(up, I)
        rows.append(row)
    return rows
