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
    every prefix maximum, hence the peak, identical to the per-tensor sequence.
    """
    infos = spec.layers()
    plans: dict[tuple[int, str], MemoryPlan] = {}
    for stage_index, layer_range in enumerate(partition.stage_layers):
        stage_infos = [infos[i] for i in layer_range]
        for kind, kind_rule in rule.kinds.items():
            forward = kind_rule.output is Flow.ACTIVATION  # runs the layers first to last
            order = stage_infos if forward else stage_infos[::-1]
            weights = []
            for info in order:
                flops = info.flops()
                weights.append(flops.of(kind))
            total = sum(weights) or 1.0
            changes, grads, done = [], [], 0.0
            for info, weight in zip(order, weights, strict=True):
                before, done = done, done + weight
                delta = sum(info.footprint(rows, spec.itemsize).phase(kind))
                if delta:
                    # forward caches as a layer starts; a backward frees as a layer finishes
                    changes.append((info.index, delta, (before if forward else done) / total))
                if info.has_params and kind_rule.completes_weight_gradient:
                    grads.append((info.index, done / total))
            plans[(stage_index, kind)] = MemoryPlan(tuple(changes), tuple(grads))
    return plans
