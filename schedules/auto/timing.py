"""The package's own timing and memory model: the analytic executor's rules, on flat lists.

Why its own: ``schedules`` imports nothing outside itself, yet the search must score thousands of
candidate orders. The rules are the analytic executor's (``simulator.analytic.executor``): an
action starts when its rank is free and each input has arrived (the producer's end, plus the
link's transfer when the producer is on another rank), and runs for its stage's cost; memory is
the running total of each rank's deltas in its own order, an ``I`` possibly rising above its
start on the way. A test holds this model's makespan equal to the executor's.

Rows are ``rows[rank] = [(stage, kind, microbatch), ...]`` with kinds ``F, I, W, B = 0..3``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from schedules.actions import Schedule
from schedules.auto.links import LINKS, TABLES
from schedules.auto.problem import KIND_NAMES, AutoProblem, I

Rows = list[list[tuple[int, int, int]]]


class Tables:
    """The problem as flat per-stage lists, which the builders' inner loops index directly.

    ``link[s]`` is the transfer time between stages s and s+1 (0 when both are on one rank);
    ``delta[kind][s]`` the memory change of an action; ``rise[kind][s]`` how far it may climb
    above its start on the way (an F to where it ends, a W not at all, an I and a full B by the
    problem's rises). ``num_microbatches`` may be smaller than the problem's (a quick preview).
    """

    def __init__(self, problem: AutoProblem, num_microbatches: int | None = None) -> None:
        self.problem = problem
        self.p = problem.num_ranks
        self.m = num_microbatches or problem.num_microbatches
        self.rank = list(problem.stage_to_rank)
        self.S = len(self.rank)
        self.stages = [problem.stages_of_rank(r) for r in range(self.p)]
        self.cost = [
            list(problem.forward),
            list(problem.backward_input),
            list(problem.backward_weight),
            list(problem.backward),
        ]
        self.link = [
            0.0 if self.rank[s] == self.rank[s + 1] else problem.transfer[s]
            for s in range(self.S - 1)
        ]
        mf, mw = problem.memory_forward, problem.memory_weight
        self.delta = [
            list(mf),
            [w - f for f, w in zip(mf, mw, strict=True)],
            [-w for w in mw],
            [-f for f in mf],
        ]
        self.rise = [
            list(mf),
            list(problem.memory_input_rise),
            [0.0] * self.S,
            list(problem.memory_backward_rise),
        ]
        limit = problem.memory_limit
        self.limit = [math.inf] * self.p if limit is None else list(limit)
        self.rank_rise = [max(self.rise[I][s] for s in stages) for stages in self.stages]
        # per [kind][stage]: the end an action waits for and the end it sets (``links``)
        self.sources, self.targets = LINKS.sources(self), LINKS.targets(self)


@dataclass(frozen=True)
class Timing:
    """When each rank starts and ends its step, and what the objectives make of it.

    Why only these: both objectives (``makespan``, ``span``) and the bubble rate need no more,
    and keeping candidates' scores this small lets the search hold a dozen at once."""

    first: tuple[float, ...]
    last: tuple[float, ...]

    @property
    def makespan(self) -> float:
        return max(self.last)

    @property
    def span(self) -> float:
        return max(end - start for start, end in zip(self.first, self.last, strict=True))

    def value(self, objective: str) -> float:
        return self.makespan if objective == "makespan" else self.span


def retime(tables: Tables, rows: Rows, give_up: float = math.inf) -> Timing | None:
    """Run ``rows`` as the analytic executor would; None if some rank waits forever, or as
    soon as some rank surely ends after ``give_up`` (its clock plus its actions still to run).
    Each action waits for the one need ``links`` names for its kind and stage."""
    cost, sources, targets = tables.cost, tables.sources, tables.targets
    owed = [sum(cost[k][s] for s, k, _ in row) for row in rows] if give_up < math.inf else None
    done = [-1.0] * (len(TABLES) * tables.S * tables.m)
    waiting: dict[int, int] = {}
    position = [0] * tables.p
    free = [0.0] * tables.p
    first = [math.inf] * tables.p
    work = list(range(tables.p))
    while work:
        r = work.pop()
        row = rows[r]
        while position[r] < len(row):
            s, k, j = row[position[r]]
            start = free[r]
            base, link = sources[k][s]
            if base >= 0:
                ready = done[base + j]
                if ready < 0:
                    waiting[base + j] = r
                    break
                start = max(start, ready + link)
            end = start + cost[k][s]
            if owed is not None:
                owed[r] -= cost[k][s]
                if end + owed[r] > give_up:
                    return None
            out = targets[k][s][0]
            if out >= 0:
                done[out + j] = end
                woken = waiting.pop(out + j, None)
                if woken is not None:
                    work.append(woken)
            first[r] = min(first[r], start)
            free[r] = end
            position[r] += 1
    if any(position[r] < len(rows[r]) for r in range(tables.p)):
        return None
    return Timing(tuple(0.0 if f == math.inf else f for f in first), tuple(free))


def _levels(tables: Tables, row):
    """Every level one rank's memory reaches along ``row``: each action's rise above what is
    held before it, then the running total after it."""
    delta, rise, held = tables.delta, tables.rise, 0.0
    for s, k, _ in row:
        yield held + rise[k][s]
        held += delta[k][s]
        yield held


def peak_memory(tables: Tables, rows: Rows) -> list[float]:
    """Per rank, the highest running total of its memory deltas (each action counted at its
    rise)."""
    return [max(0.0, max(_levels(tables, row), default=0.0)) for row in rows]


def fits(tables: Tables, rows: Rows) -> bool:
    """Every rank's peak (``peak_memory``) within its limit (to a relative 1e-12, for float
    sums); the walk stops at the first level over it."""
    return all(
        all(level <= limit * (1 + 1e-12) for level in _levels(tables, row))
        for row, limit in zip(rows, tables.limit, strict=True)
    )


def rows_of_schedule(schedule: Schedule) -> Rows:
    """A ``Schedule``'s actions as rows of (stage, kind code, microbatch)."""
    code = {name: k for k, name in enumerate(KIND_NAMES)}
    return [
        [(a.stage_index, code[a.kind.value], a.microbatch_index) for a in row]
        for row in schedule.actions
    ]
