"""What recomputation costs a run: per stage its FLOPs, and the longer backward they make.

Why apart from the memory plan: the plan places bytes inside an action; this says how long the
action becomes and how many FLOPs each rank spends recomputing per step (``--json``'s
``recompute_flops``), from the same work items (``action_work``), so time and memory agree.
"""

from __future__ import annotations

import numpy as np

from schedules.actions import Schedule
from schedules.dependencies import PIPELINE_RULE, DependencyRule
from simulator.analytic.costs import CostModel, with_recompute
from simulator.model.action_work import recompute_flops, recompute_time_share
from simulator.model.memory_plan import shape_key
from simulator.model.partitioning import Partition
from simulator.model.recompute import RecomputePlan


def stage_recompute_flops(
    spec, partition: Partition, plan: RecomputePlan, rule: DependencyRule = PIPELINE_RULE
) -> list[tuple[float, float]]:
    """Per stage, (recompute FLOPs, forward FLOPs) of one microbatch row."""
    infos = spec.layers()
    out, seen = [], {}
    for stage_index, layers in enumerate(partition.stage_layers):
        stage_plan = plan.stages[stage_index].relative(layers[0])
        stage_infos = [infos[i] for i in layers]
        key = (shape_key(stage_infos), stage_plan)
        if key not in seen:
            seen[key] = recompute_flops(stage_infos, 1, spec.itemsize, rule, stage_plan)
        out.append(seen[key])
    return out


def apply_recompute(
    costs: CostModel,
    spec,
    partition: Partition,
    plan: RecomputePlan | None,
    rule: DependencyRule = PIPELINE_RULE,
    per_stage: list[tuple[float, float]] | None = None,
) -> CostModel:
    """``costs`` with every recomputing stage's backward longer by its recompute: by the cost
    model's own timing of what it re-runs where it has one (the roofline's), else by the
    recomputed FLOPs' share of the forward (``per_stage``: ``stage_recompute_flops``, when the
    caller has it already)."""
    if plan is None or not plan.active:
        return costs
    if costs.recompute_seconds:
        return with_recompute(costs, stage_recompute_shares(costs, spec, partition, plan, rule))
    per_stage = per_stage or stage_recompute_flops(spec, partition, plan, rule)
    ratios = tuple(r / f if f else 0.0 for r, f in per_stage)
    return with_recompute(costs, ratios)


def stage_recompute_shares(
    costs: CostModel,
    spec,
    partition: Partition,
    plan: RecomputePlan,
    rule: DependencyRule = PIPELINE_RULE,
) -> tuple[float, ...]:
    """Per stage, its recompute's seconds over its forward's, from the cost model's own timing
    of each layer's forward and selective part (``CostModel.recompute_seconds``)."""
    infos = spec.layers()
    out, seen = [], {}
    for stage_index, layers in enumerate(partition.stage_layers):
        stage_plan = plan.stages[stage_index].relative(layers[0])
        stage_infos = [infos[i] for i in layers]
        seconds = tuple(costs.recompute_seconds[i] for i in layers)
        # the spec's config and layout are the stages' own: kinds, plan and seconds say it all
        key = (tuple(info.kind for info in stage_infos), stage_plan, seconds)
        if key not in seen:
            seen[key] = recompute_time_share(stage_infos, spec.itemsize, rule, stage_plan, seconds)
        out.append(seen[key])
    return tuple(out)


def rank_recompute_flops(
    schedule: Schedule,
    spec,
    partition: Partition,
    plan: RecomputePlan,
    microbatch_rows: int,
    rule: DependencyRule = PIPELINE_RULE,
    per_stage: list[tuple[float, float]] | None = None,
) -> tuple[float, ...]:
    """Per rank, the FLOPs one step spends recomputing (every microbatch's backward;
    ``per_stage`` as in ``apply_recompute``)."""
    totals = [0.0] * schedule.num_ranks
    per_stage = per_stage or stage_recompute_flops(spec, partition, plan, rule)
    for stage_index, (extra, _) in enumerate(per_stage):
        rank = schedule.stage_to_rank[stage_index]
        totals[rank] += extra * microbatch_rows * schedule.num_microbatches
    return tuple(totals)


def recompute_spans(arrays, shapes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per recompute sub-span of the dry run's actions: (action, start fraction, end fraction),
    from each (stage shape, kind)'s plan (``PlanArrays`` gives the actions' stages and kinds)."""
    kinds = [str(kind) for kind in arrays.kind_names]
    spans = [
        shapes.plans[shape][kind].recompute for shape in range(len(shapes.plans)) for kind in kinds
    ]
    counts = np.array([len(s) for s in spans], dtype=np.int64)
    key = np.asarray(shapes.shape_of_stage, dtype=np.int64)[arrays.stage] * len(kinds) + arrays.kind
    per_action = counts[key]
    action = np.repeat(np.arange(len(key)), per_action)
    if not len(action):
        empty = np.zeros(0)
        return action, empty, empty
    flat = [s for entry in spans for s in entry]
    offsets = np.r_[0, np.cumsum(counts)[:-1]]
    within = np.arange(len(action)) - np.repeat(np.cumsum(per_action) - per_action, per_action)
    index = offsets[key][action] + within
    table = np.array(flat, dtype=float)
    return action, table[index, 0], table[index, 1]
