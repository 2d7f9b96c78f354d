"""The analytic executor: a schedule, a cost model and a model spec in, a Timeline out.

Why it exists: it answers "how big a bubble, how much memory" for any scale in milliseconds,
without touching a tensor, and it is the prediction the Ray executor's measurement is held to.

How: ``validate`` returns a dry run in which every action comes after all of its producers,
each named. Walking it once per step, an action starts when its rank is free and each producer's
output is there (the producer's end, plus a transfer when that output crosses ranks) and runs
for its cost. What an action needs comes only from the dry run and ``schedules.dependencies``.
Memory follows each layer's footprint (``memory_plan``).
"""

from __future__ import annotations

from schedules.actions import Schedule
from schedules.validate import DryRun, validate
from simulator.analytic.costs import CostModel
from simulator.analytic.memory_plan import memory_plans
from simulator.analytic.run_meta import run_meta
from simulator.errors import PebbleError
from simulator.model.partitioning import Partition
from simulator.model.spec import ModelSpec
from simulator.timeline import (
    AllReduce,
    CacheChange,
    CommEvent,
    ComputeEvent,
    GradReady,
    OptimizerStep,
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
    dp: int = 1,
    run: DryRun | None = None,
) -> Timeline:
    """Predict ``steps`` training steps of ``schedule``.

    ``sync`` (the default) makes every step wait for the previous optimizer step on all ranks
    (and the data-parallel all-reduce); without it each rank starts its next step as soon as it
    has finished its own part of the previous one (the zero-bubble paper's post-validation).
    ``run`` is the schedule's dry run if the caller already validated it.
    """
    run = run if run is not None else validate(schedule)
    if partition.num_stages != schedule.num_stages:
        raise PebbleError(
            f"the model is split into {partition.num_stages} stages but the schedule has "
            f"{schedule.num_stages}."
        )
    timeline = Timeline(
        meta=run_meta(
            schedule,
            spec,
            partition,
            source="analytic",
            steps=steps,
            dp=dp,
            time_unit=costs.time_unit,
            microbatch_rows=microbatch_rows,
        )
    )
    walk = _Walk(run, costs, spec, partition, microbatch_rows, timeline)
    rank_free = [0.0] * schedule.num_ranks
    barrier = 0.0
    for step in range(steps):
        if sync:
            rank_free = [barrier] * schedule.num_ranks
        grad_time = walk.step(step, rank_free)
        step_end = max(rank_free)
        if dp > 1:
            step_end = max(step_end, walk.allreduce(step, grad_time, dp))
        if sync:
            timeline.optimizer.append(
                OptimizerStep(step, step_end, step_end + costs.optimizer_time)
            )
            barrier = step_end + costs.optimizer_time
    return timeline


class _Walk:
    """One pass over the dry run per step, appending rows to the Timeline."""

    def __init__(self, run, costs, spec, partition, rows, timeline) -> None:
        schedule = run.schedule
        self.run = run
        self.costs = costs
        self.timeline = timeline
        self.partition = partition
        self.stage_to_rank = schedule.stage_to_rank
        self.actions = [schedule.actions[r][p] for r, p in run.order]
        self.ranks = [r for r, _ in run.order]
        # per kind: (flow or None, stage offset) of each need, aligned with run.inputs
        self.needs = {
            kind: tuple((need.flow, need.stage_offset) for need in run.rule.needs(kind))
            for kind in run.rule.kinds
        }
        self.cost_of = {
            (s, kind): costs.stage_costs[s].of(kind)
            for s in range(schedule.num_stages)
            for kind in run.rule.kinds
        }
        self.send = [costs.transfer_time(s) for s in range(schedule.num_stages)]
        self.boundary = costs.boundary_bytes or (0,) * schedule.num_stages
        self.plans = memory_plans(spec, partition, rows, run.rule)

    def step(self, step: int, rank_free: list[float]) -> dict[int, float]:
        """Run every action once from ``rank_free``; returns when each layer's gradient is
        complete. ``rank_free`` is updated in place."""
        actions, ranks, inputs, needs = self.actions, self.ranks, self.run.inputs, self.needs
        send, boundary, cost_of, plans = self.send, self.boundary, self.cost_of, self.plans
        events, comms, cache = self.timeline.events, self.timeline.comms, self.timeline.cache
        end = [0.0] * len(actions)
        grad_time: dict[int, float] = {}
        for i, action in enumerate(actions):
            stage, kind, mb = action
            rank = ranks[i]
            ready = rank_free[rank]
            for (flow, offset), producer in zip(needs[kind], inputs[i]):  # noqa: B905 - hot
                if producer < 0:
                    continue
                t = end[producer]
                if flow is not None and ranks[producer] != rank:
                    link = stage if offset > 0 else stage + offset  # the boundary crossed
                    arrive = t + send[link]
                    comms.append(
                        CommEvent(
                            ranks[producer],
                            rank,
                            stage,
                            flow.value,
                            mb,
                            step,
                            t,
                            arrive,
                            boundary[link],
                        )
                    )
                    t = arrive
                if t > ready:
                    ready = t
            duration = cost_of[(stage, kind)]
            finish = ready + duration
            rank_free[rank] = end[i] = finish
            events.append(ComputeEvent(rank, stage, kind, mb, step, ready, finish))
            plan = plans[(stage, kind)]
            for layer, delta, fraction in plan.changes:
                cache.append(CacheChange(ready + fraction * duration, rank, layer, mb, step, delta))
            for layer, fraction in plan.weight_grads:
                grad_time[layer] = ready + fraction * duration
        for layer in sorted(grad_time):
            self.timeline.grad_ready.append(GradReady(layer, step, grad_time[layer]))
        return grad_time

    def allreduce(self, step: int, grad_time: dict[int, float], dp: int) -> float:
        """Each layer's data-parallel all-reduce starts when its gradient is complete, one at a
        time per rank; returns when the last one ends."""
        stage_of = self.partition.layer_stages()
        channel_free: dict[int, float] = {}
        last = 0.0
        for layer, ready_time in sorted(grad_time.items(), key=lambda kv: kv[1]):
            rank = self.stage_to_rank[stage_of[layer]]
            start = max(ready_time, channel_free.get(rank, 0.0))
            finish = start + self.costs.allreduce_time(layer, dp)
            channel_free[rank] = finish
            self.timeline.allreduce.append(AllReduce(layer, step, start, finish))
            last = max(last, finish)
        return last
