"""What one pipeline rank holds besides activations: parameters, gradients, optimizer state and
point-to-point receive buffers, from the model split alone.

Bytes per parameter come from the spec's precision recipe (``spec.recipe``, a
``simulator.model.precision.Precision``): weights, gradients, and the optimizer state (master
weights and moments). A 2-byte model counts the 2-byte default recipe unless its spec names
another; a numpy model (float32/64) keeps weights, gradients and Adam's two moments in its own
dtype (itemsize, itemsize, 2 x itemsize).

With a distributed optimizer (ZeRO-1), the parts of the optimizer state the recipe lets it shard
(master weights and moments) are split over the data-parallel replicas; a mixture of experts'
routed experts, which expert parallelism already splits ``e`` ways, are replicated only over
the expert data-parallel group (``Layout.expert_optimizer_shards``: ``d * c / e`` ranks), so
their state is split that many ways (Megatron Core's distributed optimizer). A receive buffer holds
one incoming activation (from the previous stage, when it lives on another rank) and one
incoming gradient (from the next stage, likewise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from schedules.actions import Schedule
from simulator.model.layout import Layout
from simulator.model.partitioning import Partition, boundary_bytes
from simulator.model.precision import Precision, default_precision
from simulator.timeline import RankMemory


def bytes_per_parameter(itemsize: int) -> tuple[int, int, int]:
    """(weights, gradients, optimizer state) bytes per parameter of the default recipe of a
    model of ``itemsize`` (``default_precision``)."""
    recipe = default_precision(itemsize)
    return recipe.weights, recipe.gradients, recipe.optimizer_state


def static_memory(
    spec,
    schedule: Schedule,
    partition: Partition,
    microbatch_rows: int,
    layout: Layout | None = None,
) -> list[RankMemory]:
    """Per rank, the memory that does not depend on the schedule's timing, counted by the spec's
    precision recipe; ``layout`` (default: one replica, nothing sharded) says over how many
    replicas the optimizer state is split."""
    infos = spec.layers()
    stage_params = [
        sum(spec.param_count(infos[i]) for i in layers) for layers in partition.stage_layers
    ]
    stage_experts = [
        sum(_expert_params(infos[i]) for i in layers) for layers in partition.stage_layers
    ]
    return rank_static_memory(
        schedule.stage_to_rank,
        stage_params,
        boundary_bytes(spec, partition, microbatch_rows),
        spec.recipe,
        layout.optimizer_shards if layout is not None else 1,
        expert_params=stage_experts,
        expert_shards=layout.expert_optimizer_shards if layout is not None else 1,
    )


def _expert_params(info) -> int:
    """The routed-expert parameters of one layer (0 for any other layer, and an MLP's)."""
    count = getattr(info, "expert_param_count", None)
    return count() if count is not None else 0


def rank_static_memory(
    owner: Sequence[int],
    stage_params: Sequence[int],
    sends: Sequence[int],
    recipe: Precision,
    shards: int = 1,
    expert_params: Sequence[int] | None = None,
    expert_shards: int = 1,
) -> list[RankMemory]:
    """Per rank, from each stage's rank (``owner``), parameters and bytes sent to the next
    stage per microbatch: the weights, gradients and optimizer state of its stages under the
    precision ``recipe`` (its sharded part split ``shards`` ways), and a receive buffer for each
    neighbouring stage on another rank (the activation coming in, the gradient coming back).
    ``expert_params`` is the part of each stage's parameters that is routed experts, whose
    sharded state is split ``expert_shards`` ways instead. ``advise``'s bounds count the same
    way."""
    last = len(owner) - 1
    params = [0] * (max(owner) + 1)
    experts = [0] * len(params)
    buffers = [0] * len(params)
    for stage, rank in enumerate(owner):
        params[rank] += stage_params[stage]
        if expert_params is not None:
            experts[rank] += expert_params[stage]
        if stage > 0 and owner[stage - 1] != rank:
            buffers[rank] += sends[stage - 1]  # the activation coming in
        if stage < last and owner[stage + 1] != rank:
            buffers[rank] += sends[stage]  # the gradient coming back
    memory = []
    for p, x, b in zip(params, experts, buffers, strict=True):
        dense = recipe.rank_bytes(p - x, shards)
        routed = recipe.rank_bytes(x, expert_shards)
        weights, gradients, state = (d + r for d, r in zip(dense, routed, strict=True))
        memory.append(
            RankMemory(
                parameters=weights, gradients=gradients, optimizer_state=state, receive_buffers=b
            )
        )
    return memory


def model_flops_per_row(spec) -> float:
    """FLOPs of one forward and backward (F + I + W) of the whole, unsharded model for one row
    (one sequence of a transformer, every token of it under context parallelism too): what model
    FLOPs utilisation counts. A fused attention's
    backward rebuilds its scores; that is recomputation, which MFU leaves out by convention
    (Chowdhery et al. 2022, PaLM, appendix B; Korthikanti et al. 2022), so the model's FLOPs are
    counted as its math core's."""
    if spec.is_transformer and spec.config.attention_kind != "math":
        spec = replace(spec, config=replace(spec.config, attention="math"))
    if spec.is_transformer and spec.layout.context > 1:  # every token of the sequence
        spec = replace(spec, layout=replace(spec.layout, context=1, cp_comm="ring"))
    total = 0.0
    for info in spec.layers():
        flops = info.flops(tp=1, sp=False) if spec.is_transformer else info.flops()
        total += flops.F + flops.I + flops.W
    return total
