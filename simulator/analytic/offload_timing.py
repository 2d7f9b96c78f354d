"""One step of a run timed under many offload plans: the solvers' oracle.

Why not ``simulate`` each time: a whole Timeline (meta, checks, every table) costs tens of
milliseconds even for a small run, and an exact search times hundreds of plans. Everything that
does not depend on which microbatches go out is built once here (the dry run, the per-action
lists, each stage's bytes, each action's memory); a plan is then timed by the offload clock
itself (``OffloadClock``, called exactly as the executor calls it) and read back as the
Timeline reads it (``on_host`` for what is off the device, the levels ``activation_levels``
sums, the ``wait`` spans for the exposed time). Nothing of the clock's rules is copied here,
so a change of the clock changes the solvers' answers with it; the solver checks the plan it
returns against the executor's own Timeline, and a test compares the two on many plans.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from simulator.analytic.executor import step_inputs
from simulator.analytic.offload_clock import OFFLOAD, WAIT, OffloadClock
from simulator.analytic.offload_costs import HostLink, OffloadRun
from simulator.model.offload import OffloadPlan, StageOffload, offload_units, stage_offload_bytes
from simulator.timeline import OffloadSpan
from simulator.timeline.offload_levels import on_host

Choice = tuple[frozenset[int], ...]  # per stage, the microbatches sent


@dataclass(frozen=True)
class Timing:
    """One plan's figures on one step. Per action (dry-run order): the device's activation
    level (the most it holds while the action runs or once it ends, as ``activation_levels``
    counts it) and the time it waited for its prefetch; per rank their maximum and sum; the
    bytes sent to the host."""

    levels: np.ndarray
    waits: np.ndarray
    peaks: tuple[int, ...]
    rank_waits: tuple[float, ...]
    moved: int
    sent: frozenset[tuple[int, int]]  # (stage, microbatch) of every offload the clock ran

    @property
    def exposed(self) -> float:
        return float(sum(self.rank_waits))


def full_offload(plan) -> OffloadPlan:
    """Every offloadable block of every stage, every microbatch: the plan space's top."""
    infos = plan.spec.layers()
    stages = tuple(
        StageOffload(offload_units([infos[i] for i in layers]))
        for layers in plan.partition.stage_layers
    )
    return OffloadPlan("full", stages)


def with_microbatches(text: str, full: OffloadPlan, chosen: Choice) -> OffloadPlan:
    """``full`` sending only ``chosen[s]`` of stage ``s``."""
    stages = tuple(replace(st, microbatches=chosen[s]) for s, st in enumerate(full.stages))
    return OffloadPlan(text, stages)


class PlanTimer:
    """Times offload plans of ``plan`` (a ``RunPlan``) at ``costs`` over ``link``, caching each
    plan's ``Timing``. ``baseline`` is the no-offload Timeline: its ``action_memory`` gives each
    action's memory, its summary the reference peaks. Every rank's order is its dry-run order,
    so a rank's actions are a subsequence of ``range(len(run))`` and a prefix of the dry run is
    a prefix of every rank's order."""

    def __init__(self, plan, costs, link: HostLink, baseline) -> None:
        self.plan, self.link = plan, link
        self.ranks = plan.schedule.num_ranks
        self.full = full_offload(plan)
        self.run, self.lists = step_inputs(
            plan.schedule,
            costs,
            plan.spec,
            plan.partition,
            plan.microbatch_rows,
            recompute=plan.recompute,
        )
        run = self.run
        stages = plan.recompute.stages if plan.recompute is not None else None
        self.sent = stage_offload_bytes(
            plan.spec, plan.partition, plan.microbatch_rows, run.rule, self.full, stages
        )
        self.stage_bytes = tuple(int(sum(b for _, b in layers)) for layers in self.sent)
        self.kinds = run.kinds.astype(str)
        table = {(e.stage, e.kind): (e.held, e.peak) for e in baseline.meta.action_memory}
        pairs = zip(run.stages.tolist(), self.kinds.tolist(), strict=True)
        held, climb = np.array([table.get(p, (0, 0)) for p in pairs], dtype=np.int64).T
        # per rank, in its order: what it stores once each action ends, and its most during it
        self.after = np.zeros(len(held), dtype=np.int64)
        for r in range(self.ranks):
            mine = np.flatnonzero(run.ranks == r)
            self.after[mine] = np.cumsum(held[mine])
        self.during = self.after - held + climb
        self.none_peaks = tuple(r.true_peak_bytes for r in baseline.summary().per_rank)
        self.cache: dict[Choice, Timing] = {}

    @property
    def calls(self) -> int:
        return len(self.cache)

    def time(self, chosen: Choice) -> Timing:
        """The figures of sending ``chosen[s]`` of each stage ``s`` (cached by plan)."""
        hit = self.cache.get(chosen)
        if hit is None:
            clock = OffloadClock(self.run, self.sent, self.link.bandwidth, list(chosen))
            start, end = clock(*self.lists, [0.0] * self.ranks)
            spans, _ = clock.rows(0)
            hit = self.cache[chosen] = self._read(spans, np.asarray(start), np.asarray(end))
        return hit

    def _read(self, spans, start: np.ndarray, end: np.ndarray) -> Timing:
        run, n = self.run, len(start)
        waits = np.zeros(n)
        after, during, moved, sent = self.after, self.during, 0, frozenset()
        if spans:
            cols = dict(zip(OffloadSpan._fields, spans, strict=False))
            cols["replica"] = np.zeros(len(cols["rank"]), dtype=np.int64)
            kind = cols["kind"]
            out = kind == OFFLOAD
            moved = int(cols["bytes"][out].sum())
            sent = frozenset(
                zip(cols["stage"][out].tolist(), cols["microbatch"][out].tolist(), strict=True)
            )
            waiting = np.flatnonzero(kind == WAIT)
            if len(waiting):
                action = self._backward_index(cols, waiting)
                np.add.at(waits, action, cols["end"][waiting] - cols["start"][waiting])
            # the host's bytes at each action's end and the least while it runs, as
            # ``activation_levels`` takes them (actions sorted by rank, then start)
            order = np.lexsort((start, run.ranks))
            at_end, least = on_host(cols, self.ranks)(run.ranks[order], start[order], end[order])
            host_end, host_least = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
            host_end[order], host_least[order] = at_end, least
            after, during = after - host_end, during - host_least
        levels = np.maximum(during, np.maximum(after, 0))
        peaks = np.zeros(self.ranks, dtype=np.int64)
        np.maximum.at(peaks, run.ranks, levels)
        rank_waits = np.bincount(run.ranks, weights=waits, minlength=self.ranks)
        return Timing(levels, waits, tuple(peaks.tolist()), tuple(rank_waits.tolist()), moved, sent)

    def _backward_index(self, cols, rows: np.ndarray) -> np.ndarray:
        """The dry-run index of the backward each ``wait`` row delays."""
        if not hasattr(self, "_backward_of"):
            back = np.isin(self.kinds, self.run.rule.having("sends_gradient"))
            self._backward_of = {
                (int(self.run.stages[i]), int(self.run.microbatches[i])): i
                for i in np.flatnonzero(back).tolist()
            }
        keys = zip(cols["stage"][rows].tolist(), cols["microbatch"][rows].tolist(), strict=True)
        return np.array([self._backward_of[k] for k in keys], dtype=np.int64)

    def offload_run(self, text: str, chosen: Choice) -> OffloadRun | None:
        """The executor's input for ``chosen`` (None when nothing goes out)."""
        if not any(chosen):
            return None
        return OffloadRun(with_microbatches(text, self.full, chosen), self.link)
