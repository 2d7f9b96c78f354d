"""Play a skeleton (each rank's F, I and B in a fixed order) and slot the W actions in.

Why: a W has no consumer but the optimizer step, so where it goes is the one free choice left
once the F/I order is fixed, and it is the choice that fills bubbles. Ranks advance in time
order (a heap of events); when a rank's next skeleton action is not ready, its oldest pending
W runs if it fits before the input arrives. A W that would delay the input's action by a part of
its length runs only under the rule asked for:

* ``fit``: never (the gap stays idle);
* ``worst``: when leaving the gap idle would make this rank the most idle so far (the
  zero-bubble authors' rule: keep the largest per-rank bubble small);
* ``always``: always.

A W also runs when the next action needs memory that only freeing a W gives. Times are the
analytic executor's rules exactly (a W starts when its rank is free; anything else when its rank
is free and its input has arrived), so the result needs no separate timing pass.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

from schedules.auto.links import TABLES
from schedules.auto.problem import B, I, W
from schedules.auto.timing import Rows, Tables, Timing

RULES = ("fit", "worst", "always")


class Played:
    """A played skeleton: the rows with Ws, their timing and each rank's idle time.

    Why the timing comes along: playing already computes every start by the analytic
    executor's rules, so the search scores a played candidate without timing it again; and every
    action but a W (which only frees) was admitted against the limit with the rise an I or a B
    climbs to, so it fits without a second memory pass (``tests/schedules/test_auto_schedule``
    holds both)."""

    def __init__(self, rows: Rows, timing: Timing, idle: list[float]) -> None:
        self.rows, self.timing, self.idle = rows, timing, idle


def play(
    tables: Tables,
    skeleton: Rows,
    rule: str = "worst",
    from_zero: bool = False,
    slack: list[float] | None = None,
    give_up: float = math.inf,
) -> Played | None:
    """Slot Ws into ``skeleton`` (rows of F, I and B only); None if memory cannot be met.

    ``from_zero`` counts a rank's wait before its first action as idle (for the makespan);
    ``slack`` lets a rank stay idle up to that much before ``worst`` fills a gap (the
    zero-bubble authors' second pass: the idle other ranks had in a first pass is approved).
    ``give_up``: None as soon as some rank surely ends after it (its clock plus the work it
    still owes), when only a faster candidate is of use.
    """
    return _Player(tables, skeleton, rule, from_zero, slack or [0.0] * tables.p, give_up).run()


class _Player:
    def __init__(self, tables, skeleton, rule, from_zero, slack, give_up=math.inf) -> None:
        self.t, self.skeleton, self.rule, self.slack = tables, skeleton, rule, slack
        self.give_up = give_up
        self.owed = [0.0] * tables.p  # per rank, the cost of the actions it has still to run
        p, S, m = tables.p, tables.S, tables.m
        self.ends = [-1.0] * (len(TABLES) * S * m)  # per flow sent: (table * S + s) * m + mb
        self.sources, self.targets = tables.sources, tables.targets
        self.free = [0.0] * p
        self.first = [0.0 if from_zero else math.inf] * p
        self.idle = [0.0] * p
        self.worst = 0.0
        self.held = [0.0] * p
        self.pending = [deque() for _ in range(p)]
        self.rows: Rows = [[] for _ in range(p)]
        self.heap = [(0.0, r) for r in range(p)]

    def run(self) -> Played | None:
        """The event loop, inlined for speed (it runs once per action of every candidate)."""
        t, heap, free, held, first, idle = (
            self.t,
            self.heap,
            self.free,
            self.held,
            self.first,
            self.idle,
        )
        plans, pending, rows = self._compile(), self.pending, self.rows
        ends, owed, give_up = self.ends, self.owed, self.give_up
        cost_w, delta_w, worst, slack = t.cost[W], t.delta[W], self.worst, self.slack
        room = [limit * (1 + 1e-12) for limit in t.limit]
        position, lengths = [0] * t.p, [len(plan) for plan in plans]
        pop, push = heapq.heappop, heapq.heappush
        while heap:
            now, r = pop(heap)
            if now < free[r]:
                continue
            queue, plan = pending[r], plans[r]
            if position[r] < lengths[r]:
                s, k, j, cost, delta, need, src, link, out, wake, wake_link = plan[position[r]]
                arrival = 0.0 if src < 0 else ends[src]
                if arrival < 0:
                    continue  # its producer has not run; committing it wakes this rank
                arrival += link
                at = free[r]
                fill = bool(queue) and arrival > at
                if fill:
                    fill = self._w_now(queue, arrival - at, idle[r], max(worst, slack[r]))
                if not fill and arrival > now:
                    push(heap, (arrival, r))  # a late-decided W moved the clock back
                    continue
                if not fill and held[r] + need > room[r]:
                    if not queue:
                        return None
                    fill = True
                if not fill:
                    at = arrival if arrival > at else at
                    position[r] += 1
                    if k == I:
                        queue.append((s, j))
            elif queue:
                s, k, j, at, fill = 0, W, 0, free[r], True
            else:
                continue
            if fill:  # the oldest pending W, timed from when the rank was free
                s, j = queue.popleft()
                k, cost, delta, out, wake, at = W, cost_w[s], delta_w[s], -1, -1, free[r]
            if first[r] == math.inf:
                first[r] = at
            elif at > free[r]:
                idle[r] += at - free[r]
                worst = idle[r] if idle[r] > worst else worst
            free[r] = end = at + cost
            owed[r] -= cost
            if end + owed[r] > give_up:
                return None  # surely ends after give_up
            held[r] += delta
            rows[r].append((s, k, j))
            push(heap, (end, r))
            if out >= 0:
                ends[out] = end
                if wake >= 0:
                    push(heap, (end + wake_link, wake))
        if any(position[r] < len(plans[r]) for r in range(t.p)):
            return None
        first = tuple(0.0 if f == math.inf else f for f in self.first)
        return Played(rows, Timing(first, tuple(free)), idle)

    def _w_now(self, queue, gap: float, idle: float, worst: float) -> bool:
        """Whether the oldest pending W runs in a ``gap`` before the next action (the gap
        rules: it fits, or the rule says always, or, under ``worst``, waiting would make the
        rank's idle time the step's worst)."""
        rule = self.rule
        return (
            self.t.cost[W][queue[0][0]] <= gap
            or rule == "always"
            or (rule != "fit" and idle + gap > worst)
        )

    def _compile(self) -> list[list[tuple]]:
        """Each skeleton action with what the loop needs: cost, memory, the flat index of the
        end it waits for (-1: none) plus the link's transfer, the index of the end it sets, and
        the rank its output wakes (-1: none) with that link's transfer (``links``). Sets each
        rank's ``owed``: its actions' costs, a W for every I."""
        t, sources, targets = self.t, self.sources, self.targets
        cost, delta, rise = t.cost, t.delta, t.rise
        plans = []
        for r, row in enumerate(self.skeleton):
            plan = []
            for s, k, j in row:
                self.owed[r] += cost[k][s] + (cost[W][s] if k == I else 0.0)
                base, link = sources[k][s]
                out, wake, wake_link = targets[k][s]
                need = rise[k][s]
                src = base + j if base >= 0 else -1
                out = out + j if out >= 0 else -1
                plan.append(
                    (s, k, j, cost[k][s], delta[k][s], need, src, link, out, wake, wake_link)
                )
            plans.append(plan)
        return plans


def split_backward(rows: Rows) -> Rows:
    """The F/I skeleton of a schedule: Ws dropped, each B read as an I (its W is re-slotted)."""
    return [[(s, I if k == B else k, j) for s, k, j in row if k != W] for row in rows]
