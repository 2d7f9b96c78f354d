"""The analytic executor: a schedule, a cost model and a model spec in, a Timeline out.

Why it exists: it answers "how big a bubble, how much memory" for any scale in milliseconds,
without touching a tensor, and it is the prediction the Ray executor's measurement is held to.

How: ``validate`` returns a dry run in which every action comes after all of its producers,
each named. Walking it once per step, an action starts when its rank is free and each producer's
output is there (the producer's end, plus a transfer when that output crosses ranks) and runs
for its cost. What an action needs comes only from the dry run and ``schedules.dependencies``.
Memory follows each layer's footprint (``memory_plan``).

By default every rank owns a device. With ``cores=C`` the ranks (and their data-parallel copies)
share ``C`` cores by processor sharing (``sharing``): the same start rule, slower actions while
more of them run than there are cores. A measured cost model may add the runtime's cost of each
call (``CostModel.call_overhead`` and friends), which ``sharing`` charges as well.

With ``offload`` (an ``OffloadRun``: what each stage sends to the host, over what share of the
host link) copies run on two copy streams per rank beside the compute; a backward waits for its
prefetch (``offload_clock``), and copies and waits go to the ``offload`` table.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from schedules.actions import Schedule
from schedules.validate import DryRun, validate
from simulator.analytic.costs import CostModel
from simulator.analytic.offload_costs import OffloadRun, offload_clock
from simulator.analytic.plan_arrays import PlanArrays
from simulator.analytic.ranges import check_plan, check_result
from simulator.analytic.recompute_costs import (
    apply_recompute,
    rank_recompute_flops,
    recompute_spans,
    stage_recompute_flops,
)
from simulator.analytic.sharing import check_cores, runtime_of, shared_action_times
from simulator.errors import PebbleError
from simulator.model.layout import Layout
from simulator.model.memory_plan import stage_shapes
from simulator.model.partitioning import Partition
from simulator.model.recompute import RecomputePlan
from simulator.model.spec import ModelSpec
from simulator.run.meta import run_meta
from simulator.run.plan import check_layout, layout_of_model
from simulator.timeline import (
    ActionCpu,
    AllReduce,
    CacheChange,
    CommEvent,
    ComputeEvent,
    GradReady,
    OffloadSpan,
    OptimizerStep,
    RecomputeSpan,
    RowTable,
    Timeline,
)


def simulate(
    schedule: Schedule,
    costs: CostModel,
    spec: ModelSpec,
    partition: Partition,
    microbatch_rows: int,
    *,
    steps: int = 1,
    sync: bool = True,
    layout: Layout | None = None,
    run: DryRun | None = None,
    cores: int | None = None,
    recompute: RecomputePlan | None = None,
    offload: OffloadRun | None = None,
) -> Timeline:
    """Predict ``steps`` training steps of ``schedule``.

    ``sync`` (the default) makes every step wait for the previous optimizer step on all ranks
    (and the data-parallel all-reduce); without it each rank starts its next step as soon as it
    has finished its own part of the previous one (the zero-bubble paper's post-validation).
    ``run`` is the schedule's dry run if the caller already validated it. ``cores`` (None: every
    rank owns a device) makes the ``ranks x dp`` ranks share that many cores (``sharing``).
    ``layout`` (default: as the model counts it, one replica) says how many data-parallel
    replicas reduce their gradients and how the whole-rank memory is sharded.
    ``recompute`` (``simulator.model.recompute``): what each stage drops and recomputes; its
    backward actions take longer (``recompute_costs``) and carry recompute sub-spans.
    """
    cores = check_cores(cores)
    run = run if run is not None else validate(schedule)
    if partition.num_stages != schedule.num_stages:
        raise PebbleError(
            f"the model is split into {partition.num_stages} stages but the schedule has "
            f"{schedule.num_stages}."
        )
    layout = check_layout(layout or layout_of_model(spec), schedule, spec)
    dp = layout.data
    timeline = Timeline(
        meta=run_meta(
            schedule,
            spec,
            partition,
            source="analytic",
            steps=steps,
            layout=layout,
            time_unit=costs.time_unit,
            microbatch_rows=microbatch_rows,
            rule=run.rule,
            recompute=recompute,
        )
    )
    timeline.meta = replace(timeline.meta, cores=cores, tensor_comm=costs.tensor_comm)
    costs, share, recompute = _with_recompute(
        timeline, costs, spec, partition, microbatch_rows, run, recompute, dp
    )
    walk = _Walk(run, costs, spec, partition, microbatch_rows, timeline, recompute, share)
    check_plan(walk.arrays, costs)  # every time in range before any is summed
    runtime = runtime_of(walk.arrays, costs, run)
    if cores is not None or runtime is not None:
        walk.times = lambda *lists: shared_action_times(
            *lists, cores=cores, replicas=dp, runtime=runtime
        )
    walk.record_work = cores is not None
    walk.attach_offload(offload, costs)
    _run_steps(walk, timeline, costs, schedule.num_ranks, steps, sync, layout.gradient_replicas)
    walk.finish()
    check_result(timeline)
    return timeline


def step_inputs(
    schedule: Schedule,
    costs: CostModel,
    spec: ModelSpec,
    partition: Partition,
    microbatch_rows: int,
    *,
    run: DryRun | None = None,
    recompute: RecomputePlan | None = None,
) -> tuple[DryRun, tuple]:
    """The dry run and the per-action lists ``simulate`` times a step from (rank, duration,
    producers, transfer), with ``recompute``'s longer backwards. Why: a solver that times
    many offload plans of one run (``offload_budget``) calls the clock on these directly
    instead of building a whole Timeline per plan."""
    run = run if run is not None else validate(schedule)
    timeline = Timeline()
    costs, share, recompute = _with_recompute(
        timeline, costs, spec, partition, microbatch_rows, run, recompute, 1
    )
    walk = _Walk(run, costs, spec, partition, microbatch_rows, timeline, recompute, share)
    return run, walk._lists


def _run_steps(walk, timeline, costs, ranks: int, steps: int, sync: bool, replicas: int) -> None:
    """Every step: the actions, then (over ``replicas`` > 1 data and context ranks) the
    gradient reductions, then with ``sync`` the optimizer step all ranks wait for."""
    rank_free = [0.0] * ranks
    barrier = 0.0
    for step in range(steps):
        if sync:
            rank_free = [barrier] * ranks
        grad_time = walk.step(step, rank_free)
        step_end = max(rank_free)
        if replicas > 1:
            after = None if costs.overlap_grad_reduce else list(rank_free)
            step_end = max(step_end, walk.allreduce(step, grad_time, replicas, after))
        if sync:
            timeline.optimizer.append(
                OptimizerStep(step, step_end, step_end + costs.optimizer_time)
            )
            barrier = step_end + costs.optimizer_time


def _with_recompute(timeline, costs, spec, partition, rows, run, recompute, dp):
    """The costs with every recomputing backward longer, each (stage, kind)'s share of its
    time that is recompute, and the plan (None when it recomputes nothing); records the policy
    and each rank's recompute FLOPs in the Timeline's meta."""
    if recompute is None or not recompute.active:
        return costs, None, None
    per_stage = stage_recompute_flops(spec, partition, recompute, run.rule)
    plain = costs
    costs = apply_recompute(costs, spec, partition, recompute, run.rule, per_stage)
    share = tuple(
        {
            kind: 1.0 - plain.stage_costs[s].of(kind) / after.of(kind)
            for kind in run.rule.kinds
            if after.of(kind) > plain.stage_costs[s].of(kind)
        }
        for s, after in enumerate(costs.stage_costs)
    )
    flops = rank_recompute_flops(
        run.schedule, spec, partition, recompute, rows, run.rule, per_stage
    )
    timeline.meta = replace(
        timeline.meta, recompute=recompute.policy, recompute_flops=tuple(f * dp for f in flops)
    )
    return costs, share, recompute


class _Walk:
    """One pass over the dry run per step; rows are built in bulk, as columns."""

    def __init__(
        self, run, costs, spec, partition, rows, timeline, recompute=None, share=None
    ) -> None:
        self.costs = costs
        self.timeline = timeline
        self.partition = partition
        self.stage_to_rank = run.schedule.stage_to_rank
        stages = recompute.stages if recompute is not None else None
        shapes = stage_shapes(spec, partition, rows, run.rule, stages, share)
        self.arrays = PlanArrays(run, costs, shapes)
        no_spans = (np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))
        self.recompute = recompute_spans(self.arrays, shapes) if stages else no_spans
        a = self.arrays
        self._lists = (
            a.rank.tolist(),
            a.duration.tolist(),
            [p.tolist() for p in a.producers],
            [x.tolist() for x in a.transfer],
        )
        self.columns: dict[str, list] = {name: [] for name in _COLUMNS}
        self.times = _action_times  # or shared compute (``sharing``), set by ``simulate``
        # with shared cores, each action's work goes to the ``action_cpu`` table, so its span
        # less its work (the wait for a core) compares with a measured run's
        self.record_work = False
        self.offload = None  # with activation offload, its clock (``offload_clock``)
        self._planned = (run, spec, partition, rows, recompute)

    def attach_offload(self, offload: OffloadRun | None, costs: CostModel) -> None:
        """Time the run with ``offload``'s copies (nothing when it sends nothing)."""
        self.offload = offload_clock(*self._planned, offload, costs)
        if self.offload is not None:
            if self.times is not _action_times:
                raise PebbleError("--offload does not model shared cores (--cores, a profile's).")
            self.times = self.offload

    def step(self, step: int, rank_free: list[float]) -> dict[int, float]:
        """Run every action once from ``rank_free`` (updated in place); returns when each
        layer's weight gradient is complete."""
        start, end = self.times(*self._lists, rank_free)
        start, end = np.array(start), np.array(end)
        a = self.arrays
        steps = np.full(len(start), step, dtype=np.int64)
        kinds = a.kind_names[a.kind]
        self._add("events", [a.rank, a.stage, kinds, a.microbatch, steps, start, end])
        if self.record_work:
            self._add("action_cpu", [a.rank, a.stage, kinds, a.microbatch, steps, a.duration])
        self._add("comms", self._comms(step, end))
        # a change at a fraction of an action's work happens at that fraction of its elapsed
        # time (with shared cores: exact while its speed is constant)
        span = a.duration if self.times is _action_times else end - start
        cache_time = start[a.cache_action] + a.cache_fraction * span[a.cache_action]
        on = a.cache_action
        self._add(
            "cache",
            [cache_time, a.rank[on], a.cache_layer, a.microbatch[on], steps[on], a.cache_bytes],
        )
        on, r_start, r_end = self.recompute
        if len(on):
            self._add(
                "recompute",
                [
                    a.rank[on],
                    a.stage[on],
                    a.microbatch[on],
                    steps[on],
                    start[on] + r_start * span[on],
                    start[on] + r_end * span[on],
                ],
            )
        if self.offload is not None:  # copies, and what they free and take on the device
            spans, cache = self.offload.rows(step)
            if spans:
                self._add("offload", spans)
                self._add("cache", cache)
        grad_time = start[a.grads_action] + a.grads_fraction * span[a.grads_action]
        # a layer's gradient is complete at its last contribution (in order: on one rank)
        layers, last = np.unique(a.grads_layer[::-1], return_index=True)
        times = grad_time[::-1][last]
        ready = dict(zip(layers.tolist(), times.tolist(), strict=True))
        self.timeline.grad_ready.extend(
            GradReady(layer, step, ready[layer]) for layer in sorted(ready)
        )
        return ready

    def _comms(self, step: int, end: np.ndarray) -> list[np.ndarray]:
        """Transfers into each action from producers on other ranks, per need slot."""
        a = self.arrays
        parts = []
        for slot, producer in enumerate(a.producers):
            moved = np.flatnonzero(a.flow[slot] != "")
            source = producer[moved]
            parts.append((moved, slot, source, a.transfer[slot][moved], a.link[slot][moved]))
        action = np.concatenate([p[0] for p in parts])
        slot = np.concatenate([np.full(len(p[0]), p[1]) for p in parts])
        order = np.lexsort((slot, action))
        source = np.concatenate([p[2] for p in parts])[order]
        transfer = np.concatenate([p[3] for p in parts])[order]
        link = np.concatenate([p[4] for p in parts])[order]
        flow = np.concatenate([a.flow[p[1]][p[0]] for p in parts])[order]
        action = action[order]
        sent = end[source]
        return [
            a.rank[source],
            a.rank[action],
            a.stage[action],
            flow,
            a.microbatch[action],
            np.full(len(action), step, dtype=np.int64),
            sent,
            sent + transfer,
            a.boundary[link],
        ]

    def _add(self, table: str, columns: list[np.ndarray]) -> None:
        self.columns[table].append(columns)

    def finish(self) -> None:
        """Move the accumulated columns into the Timeline's tables."""
        for table, row_type in (
            ("events", ComputeEvent),
            ("comms", CommEvent),
            ("cache", CacheChange),
            ("recompute", RecomputeSpan),
            ("action_cpu", ActionCpu),
            ("offload", OffloadSpan),
        ):
            chunks = self.columns[table]
            if not chunks:
                continue
            fields = [f for f in row_type._fields if f != "replica"]
            columns = {f: np.concatenate([c[i] for c in chunks]) for i, f in enumerate(fields)}
            if table == "cache" and self.offload is not None:  # copies' rows, in time order
                order = np.argsort(columns["time"], kind="stable")
                columns = {f: column[order] for f, column in columns.items()}
            setattr(self.timeline, table, RowTable.from_columns(row_type, columns))

    def allreduce(
        self, step: int, grad_time: dict[int, float], dp: int, after: list[float] | None = None
    ) -> float:
        """Each layer's data-parallel all-reduce starts when its gradient is complete (and not
        before its rank's ``after`` time, when given: the end of its backward), one at a time
        per rank; returns when the last one ends."""
        stage_of = self.partition.layer_stages()
        channel_free: dict[int, float] = dict(enumerate(after)) if after is not None else {}
        last = 0.0
        for layer, ready_time in sorted(grad_time.items(), key=lambda kv: kv[1]):
            rank = self.stage_to_rank[stage_of[layer]]
            start = max(ready_time, channel_free.get(rank, 0.0))
            finish = start + self.costs.allreduce_time(layer, dp)
            channel_free[rank] = finish
            self.timeline.allreduce.append(AllReduce(layer, step, start, finish))
            last = max(last, finish)
        return last


_COLUMNS = ("events", "comms", "cache", "recompute", "action_cpu", "offload")


def _action_times(rank, duration, producers, transfer, rank_free):
    """The max-plus recurrence: an action starts when its rank is free and every producer's
    output has arrived (its end plus the transfer); returns (starts, ends) in order."""
    n = len(rank)
    start = [0.0] * n
    end = [0.0] * n
    if len(producers) == 2:  # the pipeline rule: at most two needs per action
        (p0, p1), (x0, x1) = producers, transfer
        for i in range(n):
            r = rank[i]
            t = rank_free[r]
            a = p0[i]
            if a >= 0:
                u = end[a] + x0[i]
                if u > t:
                    t = u
            b = p1[i]
            if b >= 0:
                u = end[b] + x1[i]
                if u > t:
                    t = u
            start[i] = t
            rank_free[r] = end[i] = t + duration[i]
        return start, end
    for i in range(n):
        r = rank[i]
        t = rank_free[r]
        for p, x in zip(producers, transfer, strict=True):
            if p[i] >= 0 and end[p[i]] + x[i] > t:
                t = end[p[i]] + x[i]
        start[i] = t
        rank_free[r] = end[i] = t + duration[i]
    return start, end
