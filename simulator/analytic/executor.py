"""The analytic executor: a schedule, a cost model and a model spec in, a Timeline out.

Why it exists: it answers "how big a bubble, how much memory" for any scale in milliseconds,
without touching a tensor, and it is the prediction the Ray executor's measurement is held to.

How: the validator returns a dry-run order in which every action comes after everything it
depends on. Walking that order once, an action starts when its rank is free and its inputs have
arrived (the producer's end, plus a transfer if the producer sits on another rank) and runs for
its cost. Memory follows each layer's ``footprint`` (the same rule the real layers obey), placed
inside the action in proportion to each layer's FLOPs, so peaks match a measured run exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from schedules.actions import Schedule
from schedules.validate import validate
from simulator.analytic.costs import CostModel
from simulator.model import ModelSpec, Partition
from simulator.timeline import (
    AllReduce,
    CacheChange,
    CommEvent,
    ComputeEvent,
    GradReady,
    OptimizerStep,
    Timeline,
)


@dataclass(frozen=True)
class MemoryPlan:
    """For one (stage, kind): (layer_index, net bytes, time fraction) per layer, in run order;
    and (layer_index, time fraction) where each parametric layer's weight gradient is added."""

    changes: tuple[tuple[int, int, float], ...]
    weight_grads: tuple[tuple[int, float], ...]


def memory_plans(
    spec: ModelSpec, partition: Partition, rows: int
) -> dict[tuple[int, str], MemoryPlan]:
    """Per (stage, kind), the cache changes an action makes, from the layers' footprints.

    Within one action a layer's changes all have the same sign, so netting them per layer keeps
    every prefix maximum, hence the peak, identical to the per-tensor sequence.
    """
    infos = spec.layers()
    plans: dict[tuple[int, str], MemoryPlan] = {}
    for stage_index, layer_range in enumerate(partition.stage_layers):
        stage_infos = [infos[i] for i in layer_range]
        for kind in ("F", "I", "W", "B"):
            order = stage_infos if kind == "F" else stage_infos[::-1]
            weights = []
            for info in order:
                flops = info.flops()
                weights.append(flops.I + flops.W if kind == "B" else getattr(flops, kind))
            total = sum(weights) or 1.0
            changes, grads, done = [], [], 0.0
            for info, weight in zip(order, weights, strict=True):
                before, done = done, done + weight
                delta = sum(info.footprint(rows, spec.itemsize).phase(kind))
                if delta:
                    # forward caches as a layer starts; a backward frees as a layer finishes
                    changes.append((info.index, delta, (before if kind == "F" else done) / total))
                if info.has_params and kind in ("W", "B"):
                    grads.append((info.index, done / total))
            plans[(stage_index, kind)] = MemoryPlan(tuple(changes), tuple(grads))
    return plans


def timeline_meta(
    schedule: Schedule,
    spec: ModelSpec,
    partition: Partition,
    *,
    source: str,
    steps: int,
    dp: int,
    time_unit: str,
    microbatch_rows: int,
) -> dict:
    """The ``meta`` block both executors write."""
    layers = []
    for info in spec.layers():
        stage_index = partition.stage_of_layer(info.index)
        layers.append(
            {
                "index": info.index,
                "name": info.name,
                "kind": info.kind,
                "stage": stage_index,
                "rank": schedule.stage_to_rank[stage_index],
                "has_params": info.has_params,
            }
        )
    return {
        "schedule": schedule.name,
        "ranks": schedule.num_ranks,
        "microbatches": schedule.num_microbatches,
        "chunks": schedule.chunks,
        "stages": schedule.num_stages,
        "steps": steps,
        "dp": dp,
        "source": source,
        "model": spec.to_text(),
        "microbatch_rows": microbatch_rows,
        "time_unit": time_unit,
        "stage_to_rank": list(schedule.stage_to_rank),
        "layers": layers,
    }


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
) -> Timeline:
    """Predict ``steps`` training steps of ``schedule``.

    ``sync`` (the default) makes every step wait for the previous optimizer step on all ranks
    (and the data-parallel all-reduce); without it each rank starts its next step as soon as it
    has finished its own part of the previous one (the zero-bubble paper's post-validation).
    """
    order = validate(schedule)
    if partition.num_stages != schedule.num_stages:
        raise ValueError("partition and schedule disagree on the number of stages")
    plans = memory_plans(spec, partition, microbatch_rows)
    num_mb = schedule.num_microbatches
    num_stages = schedule.num_stages
    stage_to_rank = schedule.stage_to_rank
    cost_of = {
        (s, k): costs.stage_costs[s].of(k) for s in range(num_stages) for k in ("F", "I", "W", "B")
    }
    send = [costs.transfer_time(s) for s in range(num_stages)]
    rank_actions = schedule.actions

    timeline = Timeline(
        meta=timeline_meta(
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
    events, comms, cache = timeline.events, timeline.comms, timeline.cache
    rank_free = [0.0] * schedule.num_ranks
    barrier = 0.0
    boundary = costs.boundary_bytes or (0,) * num_stages
    for step in range(steps):
        if sync:
            rank_free = [barrier] * schedule.num_ranks
        end_f = [0.0] * (num_stages * num_mb)
        end_bi = [0.0] * (num_stages * num_mb)
        grad_time: dict[int, float] = {}
        for rank, position in order:
            stage, kind, mb = rank_actions[rank][position]
            slot = stage * num_mb + mb
            ready = rank_free[rank]
            if kind == "F":
                if stage > 0:
                    t = end_f[slot - num_mb]
                    if stage_to_rank[stage - 1] != rank:
                        arrive = t + send[stage - 1]
                        comms.append(
                            CommEvent(
                                stage_to_rank[stage - 1],
                                rank,
                                stage,
                                "activation",
                                mb,
                                step,
                                t,
                                arrive,
                                boundary[stage - 1],
                            )
                        )
                        t = arrive
                    if t > ready:
                        ready = t
            elif kind == "W":
                t = end_bi[slot]
                if t > ready:
                    ready = t
            else:
                t = end_f[slot]
                if t > ready:
                    ready = t
                if stage < num_stages - 1:
                    t = end_bi[slot + num_mb]
                    if stage_to_rank[stage + 1] != rank:
                        arrive = t + send[stage]
                        comms.append(
                            CommEvent(
                                stage_to_rank[stage + 1],
                                rank,
                                stage,
                                "gradient",
                                mb,
                                step,
                                t,
                                arrive,
                                boundary[stage],
                            )
                        )
                        t = arrive
                    if t > ready:
                        ready = t
            duration = cost_of[(stage, kind)]
            end = ready + duration
            rank_free[rank] = end
            if kind == "F":
                end_f[slot] = end
            elif kind != "W":
                end_bi[slot] = end
            events.append(ComputeEvent(rank, stage, kind, mb, step, ready, end))
            plan = plans[(stage, kind)]
            for layer, delta, fraction in plan.changes:
                cache.append(CacheChange(ready + fraction * duration, rank, layer, mb, step, delta))
            for layer, fraction in plan.weight_grads:
                grad_time[layer] = ready + fraction * duration
        for layer in sorted(grad_time):
            timeline.grad_ready.append(GradReady(layer, step, grad_time[layer]))
        step_end = max(rank_free)
        if dp > 1:
            channel_free: dict[int, float] = {}
            for layer, ready_time in sorted(grad_time.items(), key=lambda kv: kv[1]):
                rank = stage_to_rank[partition.stage_of_layer(layer)]
                start = max(ready_time, channel_free.get(rank, 0.0))
                end = start + costs.allreduce_time(layer, dp)
                channel_free[rank] = end
                timeline.allreduce.append(AllReduce(layer, step, start, end))
                step_end = max(step_end, end)
        if sync:
            timeline.optimizer.append(
                OptimizerStep(step, step_end, step_end + costs.optimizer_time)
            )
            barrier = step_end + costs.optimizer_time
    return timeline
