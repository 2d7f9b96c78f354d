"""Where inside an action each layer's cached bytes change: the analytic executor's memory.

Memory follows each layer's ``footprint`` (the same rule the real layers obey), placed inside the
action in proportion to each layer's FLOPs, so the analytic peaks equal a measured run's exactly.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from schedules.dependencies import PIPELINE_RULE, DependencyRule
from simulator.model.action_work import action_work
from simulator.model.partitioning import Partition
from simulator.model.recompute import NO_RECOMPUTE, StageRecompute
from simulator.model.spec import ModelSpec


@dataclass(frozen=True)
class MemoryPlan:
    """For one (stage, kind): (layer_index, bytes, time fraction) per cache change, in run order;
    (layer_index, time fraction) where each parametric layer's weight gradient is added; the
    recompute sub-spans, (start, end) fractions of the action; ``held``, the action's net
    change of stored activations; and ``peak``, the most bytes it holds above what was stored
    when it started: the cache it adds (recomputed activations included) plus the gradient
    tensors a backward holds while a layer runs (``WorkItem.working``)."""

    changes: tuple[tuple[int, int, float], ...]
    weight_grads: tuple[tuple[int, float], ...]
    recompute: tuple[tuple[float, float], ...] = ()
    held: int = 0
    peak: int = 0


@dataclass(frozen=True)
class StageShapes:
    """Stages grouped by their layers: ``plans[shape][kind]`` is the plan of every stage of
    that shape, with layer indices relative to the stage's ``first_layer``."""

    shape_of_stage: tuple[int, ...]
    first_layer: tuple[int, ...]
    plans: tuple[Mapping[str, MemoryPlan], ...]


def stage_shapes(
    spec: ModelSpec,
    partition: Partition,
    rows: int,
    rule: DependencyRule = PIPELINE_RULE,
    recompute: tuple[StageRecompute, ...] | None = None,
    recompute_share: tuple[dict[str, float], ...] | None = None,
) -> StageShapes:
    """Evaluate the footprints once per distinct stage (a 10,000-stage model of equal blocks
    has two or three shapes); ``recompute``: each stage's plan (None: no recomputation);
    ``recompute_share``: per stage and kind, the share of the action's time its recompute takes
    (default: its share of the action's FLOPs)."""
    infos = spec.layers()
    shape_ids: dict[tuple, int] = {}
    plans: list[Mapping[str, MemoryPlan]] = []
    shape_of_stage, first_layer = [], []
    for stage_index, layer_range in enumerate(partition.stage_layers):
        stage_infos = [infos[i] for i in layer_range]
        first = layer_range[0]
        plan = recompute[stage_index].relative(first) if recompute else NO_RECOMPUTE
        share = recompute_share[stage_index] if recompute_share and plan.active else {}
        shape = (
            shape_key(stage_infos),
            plan,
            tuple(sorted(share.items())),
        )
        if shape not in shape_ids:
            shape_ids[shape] = len(plans)
            inputs = tuple(input_bytes(spec, infos, first + a, rows) for a, _ in plan.segments)
            plans.append(
                _cached_stage_plans(
                    tuple(stage_infos), rows, spec.itemsize, rule, plan, inputs, shape[2]
                )
            )
        shape_of_stage.append(shape_ids[shape])
        first_layer.append(first)
    return StageShapes(tuple(shape_of_stage), tuple(first_layer), tuple(plans))


def shape_key(stage_infos) -> tuple:
    """What makes two stages alike for their plans: their layers' kinds and widths."""
    return tuple((i.kind, i.in_features, i.out_features) for i in stage_infos)


def input_bytes(spec: ModelSpec, infos, first: int, rows: int) -> int:
    """Bytes of a microbatch's input to layer ``first`` (what a checkpoint there keeps)."""
    if first == 0:
        return rows * infos[0].in_features * spec.itemsize
    return spec.output_bytes(infos[first - 1], rows)


def memory_plans(
    spec: ModelSpec,
    partition: Partition,
    rows: int,
    rule: DependencyRule = PIPELINE_RULE,
    recompute: tuple[StageRecompute, ...] | None = None,
) -> dict[tuple[int, str], MemoryPlan]:
    """Per (stage, kind), the cache changes an action makes, from the layers' footprints."""
    shapes = stage_shapes(spec, partition, rows, rule, recompute)
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
        plan.recompute,
        plan.held,
        plan.peak,
    )


@functools.lru_cache(maxsize=4096)
def _cached_stage_plans(stage_infos, rows, itemsize, rule, recompute, checkpoint_bytes, share):
    """``_stage_plans`` once per distinct stage across runs: ``advise`` simulates hundreds of
    configurations whose stages repeat (the same layers, rows and recompute plan), and the
    work items of a stage were half of its search time."""
    plans = _stage_plans(
        stage_infos, rows, itemsize, rule, recompute, checkpoint_bytes, dict(share)
    )
    return MappingProxyType(plans)  # shared by every run that asks: read-only


def _stage_plans(stage_infos, rows, itemsize, rule, recompute, checkpoint_bytes, share=None):
    """Per kind, the plan of one stage, with layer indices relative to its first layer.

    The action is a list of work items (``action_work``) in run order, each taking time in
    proportion to its FLOPs (the recompute items together ``share[kind]`` of the action, when
    the cost model says so: unit or measured costs are not proportional to FLOPs); a forward
    item caches as it starts, a backward item frees as it finishes. One item's changes all have
    the same sign, so netting them per item keeps every prefix maximum, hence the peak,
    identical to the per-tensor sequence the real layers make.
    """
    out = {}
    for kind, kind_rule in rule.kinds.items():
        items = action_work(stage_infos, rows, itemsize, kind_rule, recompute, checkpoint_bytes)
        weights = _weights(items, (share or {}).get(kind))
        total = sum(weights) or 1.0
        changes, grads, spans, done = [], [], [], 0.0
        for item, weight in zip(items, weights, strict=True):
            before, done = done, done + weight
            if item.delta:
                at = before if item.at_start else done
                changes.append((item.layer, item.delta, at / total))
            if item.weight_grad:
                grads.append((item.layer, done / total))
            if item.recompute:
                if spans and spans[-1][1] == before / total:
                    spans[-1] = (spans[-1][0], done / total)
                else:
                    spans.append((before / total, done / total))
        held, peak = working_peak(items)
        out[kind] = MemoryPlan(tuple(changes), tuple(grads), tuple(spans), held, peak)
    return out


def working_peak(items) -> tuple[int, int]:
    """(net change, highest level above the start) of an action's work items, each item's
    ``working`` bytes counted while it runs, after the changes at its start and before those at
    its end."""
    level = peak = 0
    for item in items:
        if item.at_start:
            level += item.delta
        peak = max(peak, level + item.working)
        if not item.at_start:
            level += item.delta
            peak = max(peak, level)
    return level, peak


def action_memory(
    spec: ModelSpec,
    partition: Partition,
    rows: int,
    rule: DependencyRule = PIPELINE_RULE,
    recompute: tuple[StageRecompute, ...] | None = None,
) -> tuple[tuple[int, str, int, int], ...]:
    """Per stage and kind of ``rule``: (stage, kind, held, peak), its plan's net change of
    stored activations and most bytes above its start (microbatches of ``rows``)."""
    shapes = stage_shapes(spec, partition, rows, rule, recompute)
    return tuple(
        (stage_index, kind, plan.held, plan.peak)
        for stage_index, shape in enumerate(shapes.shape_of_stage)
        for kind, plan in shapes.plans[shape].items()
    )


def _weights(items, share: float | None) -> list[float]:
    """Each item's share of the action's time: its FLOPs, the recompute items scaled so that
    together they take ``share`` of the action (None: as their FLOPs say)."""
    flops = [item.flops for item in items]
    redone = sum(f for f, item in zip(flops, items, strict=True) if item.recompute)
    own = sum(flops) - redone
    if share is None or not redone or not own or not 0.0 < share < 1.0:
        return flops
    scale = share / (1.0 - share) * own / redone
    return [f * scale if item.recompute else f for f, item in zip(flops, items, strict=True)]
