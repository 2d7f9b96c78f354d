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


@dataclass(frozen=True)
class StageShapes:
    """Stages grouped by their layers: ``plans[shape][kind]`` is the plan of every stage of
    that shape, with layer indices relative to the stage's ``first_layer``."""

    shape_of_stage: tuple[int, ...]
    first_layer: tuple[int, ...]
    plans: tuple[dict[str, MemoryPlan], ...]


def stage_shapes(
    spec: ModelSpec, partition: Partition, rows: int, rule: DependencyRule = PIPELINE_RULE
) -> StageShapes:
    """Evaluate the footprints once per distinct stage (a 10,000-stage model of equal blocks
    has two or three shapes)."""
    infos = spec.layers()
    shape_ids: dict[tuple, int] = {}
    plans: list[dict[str, MemoryPlan]] = []
    shape_of_stage, first_layer = [], []
    for layer_range in partition.stage_layers:
        stage_infos = [infos[i] for i in layer_range]
        shape = tuple((i.kind, i.in_features, i.out_features) for i in stage_infos)
        if shape not in shape_ids:
            shape_ids[shape] = len(plans)
            plans.append(_stage_plans(stage_infos, rows, spec.itemsize, rule))
        shape_of_stage.append(shape_ids[shape])
        first_layer.append(layer_range[0])
    return StageShapes(tuple(shape_of_stage), tuple(first_layer), tuple(plans))


def memory_plans(
    spec: ModelSpec, partition: Partition, rows: int, rule: DependencyRule = PIPELINE_RULE
) -> dict[tuple[int, str], MemoryPlan]:
    """Per (stage, kind), the cache changes an action makes, from the layers' footprints.

    Within one action a layer's changes all have the same sign, so netting them per layer keeps
    every prefix maximum, hence the peak, identical to the per-tensor sequence.
    """
    shapes = stage_shapes(spec, partition, rows, rule)
    return {
        (stage_index, kind): _shifted(plan, first)
        for stage_index, (shape, first) in enumerate(
            zip(shapes.shape_of_stage, shapes.first_layer, strict=True)
        )
        for kind, plan in shapes.plans[shape].items()
    }


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
