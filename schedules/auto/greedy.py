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
) -> Played | None:
    """Build a schedule by list scheduling (see the module doc); None if it gets stuck."""
    return _Lister(tables, warmup, rule, forward_first, from_zero).run()


class _Lister(_Player):
    def __init__(self, tables, warmup, rule, forward_first, from_zero) -> None:
        super().__init__(tables, [[] for _ in range(tables.p)], rule, from_zero, [0.0] * tables.p)
        self.warmup, self.forward_first = warmup, forward_first
        self.next_f, self.next_i = [0] * tables.S, [0] * tables.S
        self.freeable = [0.0] * tables.p
        self.sources = self._sources()
        self.room = [limit * (1 + 1e-12) for limit in tables.limit]
        self.left = 3 * tables.S * tables.m

    def run(self) -> Played | None:
        t, heap, free, pending = self.t, self.heap, self.free, self.pending
        while heap:
            now, r = heapq.heappop(heap)
            if now < free[r]:
                continue
            queue = pending[r]
            pick, soonest = self._choose(r, now)
            if pick is None:
                gap = soonest - free[r]
                if queue and (self._all_placed(r) or gap < math.inf and self._fill(r, gap, queue)):
                    self._weight(r)
                elif soonest < math.inf:
                    heapq.heappush(heap, (soonest, r))
                continue
            s, k, j, arrival = pick
            if queue and arrival > free[r] and self._fill(r, arrival - free[r], queue):
                self._weight(r)
                continue
            need = t.delta[F][s] if k == F else t.rise[s]
            if self.held[r] + need > t.limit[r] * (1 + 1e-12):
                if not queue:
                    return None
                self._weight(r)
                continue
            self._commit(r, s, k, j, arrival)
        if self.left:
            return None
        first = tuple(0.0 if f == math.inf else f for f in self.first)
        return Played(self.rows, Timing(first, tuple(free)), self.idle)

    def _choose(self, r: int, now: float):
        """The ready action to run next on rank r, and the earliest known later arrival."""
        ends, m, soonest, backward, forward = self.ends, self.t.m, math.inf, None, None
        next_f, next_i, room = (
            self.next_f,
            self.next_i,
            self.room[r] - self.held[r] + self.freeable[r],
        )
        for s, f_src, f_link, i_src, i_link, need in self.sources[r]:
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
            if forward is None and j < m and j <= next_i[s] + self.warmup[s] and need <= room:
                done = 0.0 if f_src < 0 else ends[f_src + j]
                if done >= 0:
                    arrival = done + f_link
                    if arrival > now:
                        soonest = arrival if arrival < soonest else soonest
                    else:
                        forward = (s, F, j, arrival)
        if self.forward_first and forward is not None:
            return forward, soonest
        return backward or forward, soonest

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

    def _all_placed(self, r: int) -> bool:
        return all(self.next_i[s] == self.t.m for s in self.t.stages[r])

    def _commit(self, r: int, s: int, k: int, j: int, arrival: float) -> None:
        super()._commit(r, s, k, j, arrival)
        if k == F:
            self.next_f[s] += 1
        else:
            self.next_i[s] += 1
            self.freeable[r] -= self.t.delta[W][s]
        self.left -= 1

    def _weight(self, r: int) -> None:
        s, _ = self.pending[r][0]
        self.freeable[r] += self.t.delta[W][s]
        super()._weight(r)
        self.left -= 1
