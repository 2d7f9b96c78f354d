"""What one pipeline rank holds besides activations: parameters, gradients, optimizer state and
point-to-point receive buffers, from the model split alone.

Precision (bytes per parameter), as mixed-precision training keeps them:

* 2-byte models (bf16/fp16): weights 2, gradients 2, Adam state 12 (fp32 master weights,
  momentum and variance: 4 + 4 + 4). Korthikanti et al. 2022 and Rajbhandari et al. 2020
  (ZeRO) count the same 16 bytes per parameter.
* numpy models (float32/64): weights, gradients, and Adam's two moments in the model's own
  dtype (itemsize, itemsize, 2 x itemsize).

With a distributed optimizer (ZeRO-1), the optimizer state is sharded over the data-parallel
replicas. A receive buffer holds one incoming activation (from the previous stage, when it
lives on another rank) and one incoming gradient (from the next stage, likewise).
"""

from __future__ import annotations

from collections.abc import Sequence

from schedules.actions import Schedule
from simulator.model.layout import Layout
from simulator.model.partitioning import Partition, boundary_bytes
from simulator.timeline import RankMemory

MIXED_PRECISION_OPTIMIZER_BYTES = 12  # fp32 master weights + Adam momentum + variance


def bytes_per_parameter(itemsize: int) -> tuple[int, int, int]:
    """(weights, gradients, optimizer state) bytes per parameter for a model of ``itemsize``."""
    if itemsize == 2:
        return 2, 2, MIXED_PRECISION_OPTIMIZER_BYTES
    return itemsize, itemsize, 2 * itemsize


def static_memory(
    spec,
    schedule: Schedule,
    partition: Partition,
    microbatch_rows: int,
    layout: Layout | None = None,
) -> list[RankMemory]:
    """Per rank, the memory that does not depend on the schedule's timing; ``layout`` (default:
    one replica, nothing sharded) says over how many replicas the optimizer state is split."""
    infos = spec.layers()
    stage_params = [
        sum(spec.param_count(infos[i]) for i in layers) for layers in partition.stage_layers
    ]
    return rank_static_memory(
        schedule.stage_to_rank,
        stage_params,
        boundary_bytes(spec, partition, microbatch_rows),
        spec.itemsize,
        layout.optimizer_shards if layout is not None else 1,
    )


def rank_static_memory(
    owner: Sequence[int],
    stage_params: Sequence[int],
    sends: Sequence[int],
    itemsize: int,
    shards: int = 1,
) -> list[RankMemory]:
    """Per rank, from each stage's rank (``owner``), parameters and bytes sent to the next
    stage per microbatch: the weights, gradients and optimizer state (split ``shards`` ways) of
    its stages, and a receive buffer for each neighbouring stage on another rank (the activation
    coming in, the gradient coming back). ``advise``'s bounds count the same way."""
    weight, gradient, state = bytes_per_parameter(itemsize)
    last = len(owner) - 1
    params = [0] * (max(owner) + 1)
    buffers = [0] * len(params)
    for stage, rank in enumerate(owner):
        params[rank] += stage_params[stage]
        if stage > 0 and owner[stage - 1] != rank:
            buffers[rank] += sends[stage - 1]  # the activation coming in
        if stage < last and owner[stage + 1] != rank:
            buffers[rank] += sends[stage]  # the gradient coming back
    return [
        RankMemory(
            parameters=p * weight,
            gradients=p * gradient,
            optimizer_state=-(-p * state // shards),
            receive_buffers=b,
        )
        for p, b in zip(params, buffers, strict=True)
    ]


def model_flops_per_row(spec) -> float:
    """FLOPs of one forward and backward (F + I + W) of the whole, unsharded model for one row
    (one sequence of a transformer): what model FLOPs utilisation counts."""
    total = 0.0
    for info in spec.layers():
        flops = info.flops(tp=1, sp=False) if spec.is_transformer else info.flops()
        total += flops.F + flops.I + flops.W
    return total
