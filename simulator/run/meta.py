"""The ``meta`` block both executors write: which schedule, model split and units a run used.

Its parts that follow from the model, its split and the stages' placement alone (each layer's
place, each rank's static memory, the model's FLOPs, each action's activation memory) are
worked out once per split (``lru_cache``): a search such as ``advise`` simulates many runs of
one model on few splits.
"""

from __future__ import annotations

from functools import lru_cache

from schedules.actions import Schedule
from schedules.dependencies import PIPELINE_RULE, DependencyRule
from simulator.model.layout import Layout
from simulator.model.memory_plan import action_memory
from simulator.model.partitioning import Partition
from simulator.model.recompute import RecomputePlan
from simulator.model.spec import ModelSpec
from simulator.run.rank_memory import model_flops_per_row, placed_static_memory
from simulator.timeline import LayerMeta, TimelineMeta
from simulator.timeline.meta import ActionMemory, RankMemory


def run_meta(
    schedule: Schedule,
    spec: ModelSpec,
    partition: Partition,
    *,
    source: str,
    steps: int,
    layout: Layout,
    time_unit: str,
    microbatch_rows: int,
    rule: DependencyRule = PIPELINE_RULE,
    recompute: RecomputePlan | None = None,
) -> TimelineMeta:
    """The meta of a run of ``schedule`` on ``spec`` split by ``partition`` under ``layout``
    (its data-parallel replicas and sharding set the whole-rank memory and the device count),
    with each (stage, kind)'s activation memory under ``rule`` and ``recompute``."""
    dp = layout.data
    rows_per_step = microbatch_rows * schedule.num_microbatches * dp
    tokens = rows_per_step * (spec.config.seq if spec.is_transformer else 1)
    return TimelineMeta(
        schedule=schedule.name,
        ranks=schedule.num_ranks,
        microbatches=schedule.num_microbatches,
        chunks=schedule.chunks,
        stages=schedule.num_stages,
        steps=steps,
        dp=dp,
        source=source,
        model=spec.to_text(),
        microbatch_rows=microbatch_rows,
        time_unit=time_unit,
        stage_to_rank=tuple(schedule.stage_to_rank),
        layers=_layers(spec, partition, tuple(schedule.stage_to_rank)),
        rank_memory=_rank_memory(
            spec, tuple(schedule.stage_to_rank), partition, microbatch_rows, layout
        ),
        flops_per_step=_flops_per_row(spec) * rows_per_step,
        tokens_per_step=tokens,
        devices=layout.devices,
        layout=layout.to_text(),
        action_memory=_action_memory(
            spec,
            partition,
            microbatch_rows,
            rule,
            recompute.stages if recompute is not None and recompute.active else None,
        ),
    )


@lru_cache(maxsize=64)
def _layers(spec: ModelSpec, partition: Partition, stage_to_rank: tuple[int, ...]):
    """Each layer's ``LayerMeta``: its stage under ``partition``, and that stage's rank."""
    stage_of = partition.layer_stages()
    return tuple(
        LayerMeta(
            index=info.index,
            name=info.name,
            kind=info.kind,
            stage=stage_of[info.index],
            rank=stage_to_rank[stage_of[info.index]],
            has_params=info.has_params,
            block=info.block,
        )
        for info in spec.layers()
    )


@lru_cache(maxsize=64)
def _rank_memory(spec, stage_to_rank, partition, rows, layout) -> tuple[RankMemory, ...]:
    return tuple(placed_static_memory(spec, stage_to_rank, partition, rows, layout))


@lru_cache(maxsize=64)
def _flops_per_row(spec: ModelSpec) -> float:
    return model_flops_per_row(spec)


@lru_cache(maxsize=64)
def _action_memory(spec, partition, rows, rule, recompute) -> tuple[ActionMemory, ...]:
    """``action_memory``'s entries as ``ActionMemory`` (see ``run_meta``)."""
    return tuple(
        ActionMemory(*entry) for entry in action_memory(spec, partition, rows, rule, recompute)
    )
