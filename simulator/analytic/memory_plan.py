"""Where inside an action each layer's cached bytes change: the analytic executor's memory.

Memory follows each layer's ``footprint`` (the same rule the real layers obey), placed inside the
action in proportion to each layer's FLOPs, so the analytic peaks equal a measured run's exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from schedules.dependencies import PIPELINE_RULE, DependencyRule, Flow
from simulator.model.partitioning import Partition
from simulator.model.spec import ModelSpec


@dataclass(frozen=True)
class MemoryPlan:
    """For one (stage, kind): (layer_index, net bytes, time fraction) per layer, in run order;
    and (layer_index, time fraction) where each parametric layer's weight gradient is added."""

    changes: tuple[tuple[int, int, float], ...]
    weight_grads: tuple[tuple[int, float], ...]


def memory_plans(
    spec: ModelSpec, partition: Partition, rows: int, rule: DependencyRule = PIPELINE_RULE
) -> dict[tuple[int, str], MemoryPlan]:
    """Per (stage, kind), the cache changes an action makes, from the layers' footprints.

    Within one action a layer's changes all have the same sign, so netting them per layer keeps
    every prefix maximum, hence the peak, identical to the per-tensor sequence. Stages made of
    the same layers share one plan (shifted to their layer indices): a 10,000-stage model of
    equal blocks evaluates its footprints once.
    """
    infos = spec.layers()
    by_shape: dict[tuple, dict[str, MemoryPlan]] = {}
    plans: dict[tuple[int, str], MemoryPlan] = {}
    for stage_index, layer_range in enumerate(partition.stage_layers):
        stage_infos = [infos[i] for i in layer_range]
        shape = tuple((i.kind, i.in_features, i.out_features) for i in stage_infos)
        if shape not in by_shape:
            by_shape[shape] = _stage_plans(stage_infos, rows, spec.itemsize, rule)
        first = layer_range[0]
        for kind, plan in by_shape[shape].items():
            plans[(stage_index, kind)] = _shifted(plan, first)
    return plans


def _shifted(plan: MemoryPlan, first: int) -> MemoryPlan:
    """``plan`` (layer indices relative to the stage's first layer) at layer ``first``."""
    return MemoryPlan(
        tuple((first + layer, delta, fraction) for layer, delta, fraction in plan.changes),
        tuple((first + layer, fraction) for layer, fraction in plan.weight_grads),
    )


def _stage_plans(stage_infos, rows: int, itemsize: int, rule: DependencyRule):
    """Per kind, the plan of one stage, with layer indices relative to its first layer."""
    first = stage_infos[0].index
    flops = [info.flops() for info in stage_infos]
    footprints = [info.footprint(rows, itemsize) for info in stage_infos]
    out = {}
    for kind, kind_rule in rule.kinds.items():
        forward = kind_rule.output is Flow.ACTIVATION  # runs the layers first to last
        order = list(range(len(stage_infos)))
        if not forward:
            order.reverse()
        weights = [flops[j].of(kind) for j in order]
        total = sum(weights) or 1.0
        changes, grads, done = [], [], 0.0
        for j, weight in zip(order, weights, strict=True):
            info = stage_infos[j]
            before, done = done, done + weight
            delta = sum(footprints[j].phase(kind))
            if delta:
                # forward caches as a layer starts; a backward frees as a layer finishes
                changes.append((info.index - first, delta, (before if forward else done) / total))
            if info.has_params and kind_rule.completes_weight_gradient:
                grads.append((info.index - first, done / total))
        out[kind] = MemoryPlan(tuple(changes), tuple(grads))
    return out
