"""The analytic executor's clock with activation offload: compute on each rank, and beside it two
copy streams per rank, device to host (``offload``) and host to device (``prefetch``).

Why a clock of its own: a copy does not take compute time, but a backward cannot start before
its activations are back. So the max-plus recurrence gains one term: a backward that consumes
offloaded bytes starts no earlier than its prefetch's end; where the prefetch ends later than the
backward could otherwise start, the difference is *exposed* and recorded as a ``wait`` span.

The rules (``simulator.model.offload`` says what goes out):

* an offload starts when its forward ends and its stream is free (copies on one stream run one
  at a time, in the order their forwards ran) and takes ``bytes / bandwidth``;
* a prefetch is issued at its *issue point* (``prefetch_plan``): once the rank has finished a
  given action of its list, the latest one that still lets the copy end before the backward
  could start (just in time, so the bytes are back on the device for the shortest while), or,
  where no point does, the earliest (as soon as the forward has ended); it starts once its
  offload has ended and its stream is free, and takes ``bytes / bandwidth``. Each step is
  timed twice: without prefetches, to know when each backward could start, then with them;
* the device frees the bytes when the offload ends and allocates them when the prefetch starts
  (``cache`` rows); the host holds them from the offload's start to the prefetch's end;
* a microbatch whose backward is the next action of its rank after its forward stays on the
  device: nothing runs between in which a copy could hide, so it could only wait.

Contention: GPUs that share a host link (``HardwarePreset.gpus_per_host_link``) each get an
equal share of it for the whole run (``offload_costs.host_link``): every rank offloads in the
same rhythm, so a static fair share stands in for the copies' exact overlap.
"""

from __future__ import annotations

import numpy as np

from schedules.validate import DryRun
from simulator.analytic.prefetch_plan import Fetch
from simulator.analytic.prefetch_plan import issue_points as place_prefetches
from simulator.model.offload_pairs import offload_pairs

OFFLOAD, PREFETCH, WAIT = "offload", "prefetch", "wait"
_SLACK = 1e-12  # relative: a just-in-time copy may end this much after its backward's start


class OffloadClock:
    """Callable as the executor's ``times`` function; remembers each step's copies.

    ``stage_bytes[s]``: (layer, bytes) of what stage ``s``'s forward sends to the host per
    microbatch; ``bandwidth``: host-link bytes per time unit, per direction and rank;
    ``chosen[s]``: the microbatches stage ``s`` sends (None: every one); ``issue_points``: a
    ``prefetch_plan`` table to follow instead of planning one (``(stage, microbatch) -> k``)."""

    def __init__(
        self, run: DryRun, stage_bytes, bandwidth: float, chosen=None, issue_points=None
    ) -> None:
        self.bandwidth = float(bandwidth)
        self.stage_bytes = stage_bytes
        total = [sum(b for _, b in layers) for layers in stage_bytes]

        def sends(stage: int, microbatch: int) -> bool:
            picked = chosen[stage] if chosen is not None else None
            return total[stage] > 0 and (picked is None or microbatch in picked)

        n = len(run.ranks)
        self.pair = np.full(n, -1, dtype=np.int64)  # backward -> its forward
        self.moved = np.zeros(n, dtype=np.int64)  # bytes a forward sends / a backward fetches
        for i, j in offload_pairs(run, sends).items():  # the pairs the Ray ranks send too
            self.pair[i] = j
            self.moved[i] = self.moved[j] = total[int(run.stages[i])]
        self.run = run
        self.position = run.positions.tolist()  # each action's place in its rank's list
        self.order: dict[int, list[int]] = {}  # rank -> its actions' run indices, in order
        for i, r in enumerate(run.ranks.tolist()):
            self.order.setdefault(r, []).append(i)
        self.fixed = issue_points  # a given table to follow (None: plan each step)
        self.issue_points: dict = {}  # the last step's table
        self.copies: list[tuple] = []  # (kind, action, start, end) of the last step

    def __call__(self, rank, duration, producers, transfer, rank_free):
        """(starts, ends) of every action, as ``executor._action_times``, with prefetch waits;
        the copies are left in ``self.copies``, the issue points in ``self.issue_points``.

        Two passes: the first times the step without prefetches (when each backward could
        start), from which ``prefetch_plan.issue_points`` places each prefetch (unless a table
        was given); the second times it with the copies issued at those points."""
        lists = (rank, duration, producers, transfer)
        issue = self.fixed
        if issue is None:
            start, end = self._times(*lists, list(rank_free), None)
            issue = self._plan(start, end)
        self.issue_points = issue
        return self._times(*lists, rank_free, issue)

    def _plan(self, start: list[float], end: list[float]) -> dict:
        """Each offloaded backward's issue point, from a timing without prefetch waits."""
        run, rate = self.run, self.bandwidth
        table = {}
        for order in self.order.values():
            keys, fetches = [], []
            for i in order:
                j = self.pair[i]
                if j >= 0:
                    keys.append((int(run.stages[i]), int(run.microbatches[i])))
                    at = self.position
                    fetches.append(Fetch(at[j], at[i], self.moved[i] / rate, start[i]))
            ends = [end[i] for i in order]
            table.update(zip(keys, place_prefetches(ends, fetches), strict=True))
        return table

    def _times(self, rank, duration, producers, transfer, rank_free, issue):
        """One pass of the max-plus recurrence; with ``issue`` (the issue points), the copies
        and the backwards' waits for them too."""
        n = len(rank)
        start, end = [0.0] * n, [0.0] * n
        out_end = [0.0] * n  # when a forward's offload ended
        to_host = {r: 0.0 for r in set(rank)}
        to_device = dict(to_host)
        pair, moved = self.pair.tolist(), self.moved.tolist()
        stages, mbs = self.run.stages.tolist(), self.run.microbatches.tolist()
        order, rate = self.order, self.bandwidth
        copies = []
        for i in range(n):
            r = rank[i]
            t = rank_free[r]
            for p, x in zip(producers, transfer, strict=True):
                if p[i] >= 0 and end[p[i]] + x[i] > t:
                    t = end[p[i]] + x[i]
            j = pair[i]
            if j >= 0 and issue is not None:
                at, delay = issue[(stages[i], mbs[i])]
                issued = end[order[r][at - 1]] + delay
                begin = max(issued, out_end[j], to_device[r])
                done = begin + moved[i] / rate
                to_device[r] = done
                copies.append((PREFETCH, i, begin, done))
                if done > t + _SLACK * max(1.0, t):  # not a rounding error of a just-in-time one
                    copies.append((WAIT, i, t, done))
                    t = done
            start[i] = t
            rank_free[r] = end[i] = t + duration[i]
            if moved[i] and j < 0:  # a forward whose pebbles go out
                begin = max(end[i], to_host[r])
                out_end[i] = to_host[r] = begin + moved[i] / rate
                copies.append((OFFLOAD, i, begin, out_end[i]))
        self.copies = copies
        return start, end

    def rows(self, step: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The last step's ``offload`` rows and the device ``cache`` rows its copies make."""
        a = self.run
        if not self.copies:
            return [], []
        kind = np.array([c[0] for c in self.copies])
        action = np.array([c[1] for c in self.copies], dtype=np.int64)
        begin = np.array([c[2] for c in self.copies])
        done = np.array([c[3] for c in self.copies])
        moved = np.where(kind == WAIT, 0, self.moved[action])
        steps = np.full(len(action), step, dtype=np.int64)
        spans = [a.ranks[action], a.stages[action], kind, a.microbatches[action], steps]
        spans += [begin, done, moved]
        # the device frees each layer's bytes as its offload ends, takes them as the prefetch
        # starts
        times, ranks, layers, mbs, deltas = [], [], [], [], []
        for k, i, b, d in self.copies:
            if k == WAIT:
                continue
            sign, at = (-1, d) if k == OFFLOAD else (1, b)
            for layer, size in self.stage_bytes[int(a.stages[i])]:
                times.append(at)
                ranks.append(a.ranks[i])
                layers.append(layer)
                mbs.append(a.microbatches[i])
                deltas.append(sign * size)
        cache = [
            np.array(times),
            np.array(ranks, dtype=np.int64),
            np.array(layers, dtype=np.int64),
            np.array(mbs, dtype=np.int64),
            np.full(len(times), step, dtype=np.int64),
            np.array(deltas, dtype=np.int64),
        ]
        return spans, cache
