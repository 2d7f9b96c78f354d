"""The list-scheduling candidate: each rank, when free, runs whatever is ready, by priority.

Why beside the fixed skeletons: a skeleton makes a rank wait for its next planned action even
when another is ready. Here the order itself is chosen as time goes: an input-gradient backward
(I) first, since the pipeline's critical path runs through them and each frees memory; else a
forward (F), at most ``warmup[s] + 1`` microbatches ahead of the stage's Is and only if memory
stays feasible; else a pending W, under the same gap rules as ``execute`` (a W is timed from
when its rank was free, so deciding it late costs nothing). ``forward_first`` swaps the first
two priorities. With a generous limit and a 1F1B-shaped warmup this finds the paper's ZB-2p
shapes; it is one candidate among several and never the only one.

Memory is kept safe from deadlock: a forward is admitted only if, with every pending W freed,
the rank still has room for the rise of an I and for the forwards its deeper stages still owe
the oldest microbatch (on a V, the chunk-1 forward of a microbatch whose chunk-0 forward ran).
"""

from __future__ import annotations

import heapq
import math

from schedules.auto.execute import Played, _Player
from schedules.auto.problem import F, I, W
from schedules.auto.timing import Tables, Timing


def list_schedule(
    tables: Tables,
    warmup: list[int],
    rule: str = "worst",
    forward_first: bool = False,
    from_zero: bool = False,
    give_up: float = math.inf,
) -> Played | None:
    """Build a schedule by list scheduling (see the module doc); None if it gets stuck, or
    as soon as some rank surely ends after ``give_up`` (as ``execute.play``)."""
    return _Lister(tables, warmup, rule, forward_first, from_zero, give_up).run()


class _Lister(_Player):
    def __init__(self, tables, warmup, rule, forward_first, from_zero, give_up) -> None:
        super().__init__(
            tables, [[] for _ in range(tables.p)], rule, from_zero, [0.0] * tables.p, give_up
        )
        cost = tables.cost
        self.owed = [
            tables.m * sum(cost[F][s] + cost[I][s] + cost[W][s] for s in stages)
            for stages in tables.stages
        ]
        self.warmup, self.forward_first = warmup, forward_first
        self.next_f, self.next_i = [0] * tables.S, [0] * tables.S
        self.freeable = [0.0] * tables.p
        self.sources = self._sources()
        self.room = [limit * (1 + 1e-12) for limit in tables.limit]
        self.left = 3 * tables.S * tables.m
        self.unplaced_i = [tables.m * len(stages) for stages in tables.stages]  # per rank

    def run(self) -> Played | None:
        """The event loop (``_Player.run``'s, inlined for speed): the ready I (F first with
        ``forward_first``), else an admissible F, else a pending W by the gap rules."""
        t, heap, free, pending = self.t, self.heap, self.free, self.pending
        held, first, idle, rows, ends = self.held, self.first, self.idle, self.rows, self.ends
        owed, give_up, slack, worst = self.owed, self.give_up, self.slack, self.worst
        next_f, next_i, freeable, room_of = self.next_f, self.next_i, self.freeable, self.room
        sources, forward_first = self.sources, self.forward_first
        cost, delta, rise, targets, limit = t.cost, t.delta, t.rise, t.targets, t.limit
        delta_w = delta[W]
        pop, push, inf = heapq.heappop, heapq.heappush, math.inf
        left, unplaced_i = self.left, self.unplaced_i
        while heap:
            now, r = pop(heap)
            at = free[r]
            if now < at:
                continue
            queue = pending[r]
            room = room_of[r] - held[r] + freeable[r]
            soonest, backward, forward = self._ready(sources[r], now, room)
            pick = forward if forward_first and forward is not None else backward or forward
            weight = False  # run the oldest pending W now (else ``pick``)
            if pick is None:
                if queue:
                    gap = soonest - at
                    if not unplaced_i[r]:  # every I of the rank placed
                        weight = True
                    elif gap < inf:  # a W in the gap before the next arrival?
                        weight = self._w_now(queue, gap, idle[r], max(worst, slack[r]))
                if not weight:
                    if soonest < inf:
                        push(heap, (soonest, r))
                    continue
            else:
                s, k, j, arrival = pick
                if queue and arrival > at:
                    gap = arrival - at
                    weight = self._w_now(queue, gap, idle[r], max(worst, slack[r]))
                over = held[r] + rise[k][s] > limit[r] * (1 + 1e-12)
                if not weight and over:
                    if not queue:
                        return None
                    weight = True
            if weight:  # the oldest pending W, timed from when the rank was free
                s, j = queue.popleft()
                freeable[r] += delta_w[s]
                k, start = W, at
            else:
                start = arrival if arrival > at else at
            if first[r] == inf:
                first[r] = start
            elif start > at:
                idle[r] += start - at
                worst = idle[r] if idle[r] > worst else worst
            free[r] = end = start + (step := cost[k][s])
            owed[r] -= step
            if end + owed[r] > give_up:
                return None  # surely ends after give_up
            held[r] += delta[k][s]
            rows[r].append((s, k, j))
            push(heap, (end, r))
            left -= 1
            if k == W:
                continue
            out, wake, wake_link = targets[k][s]
            if out >= 0:
                ends[out + j] = end
            if out >= 0 and wake >= 0:
                push(heap, (end + wake_link, wake))
            if k == F:
                next_f[s] += 1
            else:
                next_i[s] += 1
                unplaced_i[r] -= 1
                freeable[r] -= delta_w[s]
                queue.append((s, j))
        if left:
            return None
        first = tuple(0.0 if f == math.inf else f for f in first)
        return Played(rows, Timing(first, tuple(free)), idle)

    def _ready(self, sources, now: float, room: float):
        """(the earliest known arrival after ``now``, the ready I with the earliest arrival,
        the first admissible ready F) among a rank's stages, deepest first (``_sources``)."""
        next_f, next_i, ends, warmup, m = self.next_f, self.next_i, self.ends, self.warmup, self.t.m
        soonest, backward, forward = math.inf, None, None
        for s, f_src, f_link, i_src, i_link, need in sources:
            j = next_i[s]
            if j < next_f[s]:
                done = ends[i_src + j]
                if done >= 0:
                    arrival = done + i_link
                    if arrival > now:
                        soonest = arrival if arrival < soonest else soonest
                    elif backward is None or arrival < backward[3]:
                        backward = (s, I, j, arrival)
            j = next_f[s]
            if forward is None and j < m and j <= next_i[s] + warmup[s] and need <= room:
                done = 0.0 if f_src < 0 else ends[f_src + j]
                if done >= 0:
                    arrival = done + f_link
                    if arrival > now:
                        soonest = arrival if arrival < soonest else soonest
                    else:
                        forward = (s, F, j, arrival)
        return soonest, backward, forward

    def _sources(self) -> list[list[tuple]]:
        """Per rank, deepest stage first: where each stage's F and I inputs end up in the flat
        ``ends`` (offset to add the microbatch to; -1: stage 0's F reads the data) with the
        link's transfer (``links``), and the memory room an admitted F needs (see the module
        doc)."""
        t = self.t
        found = []
        for r, stages in enumerate(t.stages):
            row = []
            for s in sorted(stages, reverse=True):
                (f_src, f_link), (i_src, i_link) = t.sources[F][s], t.sources[I][s]
                later = sum(t.delta[F][q] for q in stages if q > s)
                row.append(
                    (s, f_src, f_link, i_src, i_link, t.delta[F][s] + t.rank_rise[r] + later)
                )
            found.append(row)
        return found
