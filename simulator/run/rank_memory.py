"""What one pipeline rank holds besides activations: parameters, gradients, optimizer state and
point-to-point receive buffers, from the model split alone.

Bytes per parameter come from the spec's precision recipe (``spec.recipe``, a
``simulator.model.precision.Precision``): weights, gradients, and the optimizer state (master
weights and moments). A 2-byte model counts the 2-byte default recipe unless its spec names
another; a numpy model (float32/64) keeps weights, gradients and Adam's two moments in its own
dtype (itemsize, itemsize, 2 x itemsize).

The layout's sharding stage splits over the ranks that hold the same weights (the ``d * c``
data and context ranks, ``Layout.gradient_replicas``) what the recipe lets it
(``Precision.sharded_parts``): the optimizer state from z1 (ZeRO-1, Megatron's distributed
optimizer), the gradients from z2, the weights from z3 (FSDP). A mixture of experts' routed
experts, which expert parallelism already splits ``e`` ways, are replicated only over the expert
data-parallel group (``Layout.expert_data``: ``d * c / e`` ranks), so their sharded parts are
split that many ways (Megatron Core's distributed optimizer). On top of its shards a rank holds,
while it works (``simulator.model.sharding``): at z2 and z3 a bucket of full gradients before
their reduce-scatter (counted in ``gradients``), at z3 the gathered weights of the block it runs
and the one prefetched (counted in ``parameters``). A receive buffer holds one incoming
activation (from the previous stage, when it lives on another rank) and one incoming gradient
(from the next stage, likewise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from schedules.actions import Schedule
from simulator.model.layout import UNSHARDED, Layout
from simulator.model.partitioning import Partition, boundary_bytes
from simulator.model.precision import Precision, default_precision
from simulator.model.sharding import NOT_SHARDED, Sharding
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
    bucket: int | None = None,
) -> list[RankMemory]:
    """Per rank, the memory that does not depend on the schedule's timing, counted by the spec's
    precision recipe; ``layout`` (default: one replica, nothing sharded) says over how many
    replicas its sharding stage splits what; ``bucket`` overrides the gradient bucket of z2 and
    z3 (parameters; default Megatron Core's, ``sharding.default_bucket``)."""
    return placed_static_memory(
        spec, tuple(schedule.stage_to_rank), partition, microbatch_rows, layout, bucket
    )


def placed_static_memory(
    spec,
    stage_to_rank: tuple[int, ...],
    partition: Partition,
    microbatch_rows: int,
    layout: Layout | None = None,
    bucket: int | None = None,
) -> list[RankMemory]:
    """``static_memory`` from where the stages live alone (all it reads of a schedule)."""
    layers = stage_units(spec, partition.stage_layers)
    return rank_static_memory(
        stage_to_rank,
        [sum(p for p, _ in stage) for stage in layers],
        boundary_bytes(spec, partition, microbatch_rows),
        spec.recipe,
        Sharding.of_layout(layout or UNSHARDED, bucket=bucket),
        expert_params=[sum(x for _, x in stage) for stage in layers],
        layer_params=layers,
    )


def stage_units(spec, stage_layers: Sequence[Sequence[int]]) -> list[tuple[tuple[int, int], ...]]:
    """Per stage, the units sharded data parallelism gathers and reduces at once, each as
    ``(parameters, routed-expert parameters)``: the stage's part of each block (a transformer
    block, the embedding, the head; FSDP wraps one block a unit), in order."""
    infos = spec.layers()
    out = []
    for layers in stage_layers:
        units: dict[int, list[int]] = {}
        for i in layers:
            unit = units.setdefault(infos[i].block, [0, 0])
            unit[0] += spec.param_count(infos[i])
            unit[1] += _expert_params(infos[i])
        out.append(tuple((p, x) for p, x in units.values()))
    return out


def _expert_params(info) -> int:
    """The routed-expert parameters of one layer (0 for any other layer, and an MLP's)."""
    count = getattr(info, "expert_param_count", None)
    return count() if count is not None else 0


def rank_static_memory(
    owner: Sequence[int],
    stage_params: Sequence[int],
    sends: Sequence[int],
    recipe: Precision,
    sharding: Sharding = NOT_SHARDED,
    expert_params: Sequence[int] | None = None,
    layer_params: Sequence[Sequence[tuple[int, int]]] | None = None,
) -> list[RankMemory]:
    """Per rank, from each stage's rank (``owner``), parameters and bytes sent to the next
    stage per microbatch: the weights, gradients and optimizer state of its stages under the
    precision ``recipe``, what the ``sharding`` stage splits split over its replicas, and a
    receive buffer for each neighbouring stage on another rank (the activation coming in, the
    gradient coming back). ``expert_params`` is the part of each stage's parameters that is
    routed experts, split over the expert replicas instead. ``layer_params`` gives each stage's
    blocks (``stage_units``) as ``(parameters, routed-expert parameters)``, which z2's bucket
    and z3's gathered blocks are sized by (required there). ``advise``'s bounds count the same
    way."""
    if layer_params is None and sharding.splits_gradients:
        raise ValueError("sharding stages 2 and 3 need each stage's layer_params")
    last = len(owner) - 1
    ranks = max(owner) + 1
    params, experts, buffers = [0] * ranks, [0] * ranks, [0] * ranks
    layers: list[list[tuple[int, int]]] = [[] for _ in range(ranks)]
    for stage, rank in enumerate(owner):
        params[rank] += stage_params[stage]
        if expert_params is not None:
            experts[rank] += expert_params[stage]
        if layer_params is not None:
            layers[rank] += layer_params[stage]
        if stage > 0 and owner[stage - 1] != rank:
            buffers[rank] += sends[stage - 1]  # the activation coming in
        if stage < last and owner[stage + 1] != rank:
            buffers[rank] += sends[stage]  # the gradient coming back
    memory = []
    for p, x, b, held in zip(params, experts, buffers, layers, strict=True):
        stage = sharding.stage
        dense = recipe.rank_bytes(p - x, sharding.shards_of(expert=False), stage)
        routed = recipe.rank_bytes(x, sharding.shards_of(expert=True), stage)
        weights, gradients, state = (d + r for d, r in zip(dense, routed, strict=True))
        memory.append(
            RankMemory(
                parameters=weights + sharding.in_flight_params(held) * recipe.weights,
                gradients=gradients + sharding.bucket_of(held) * recipe.gradients,
                optimizer_state=state,
                receive_buffers=b,
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
