"""A cost model from the per-operation roofline (``roofline``) and collectives priced as NCCL
runs them: what ``--hardware PRESET`` times a run with unless ``efficiency=`` is given.

Why a collective model and not the raw link: NCCL's ring all-reduce of M bytes over n ranks
sends 2 (n-1)/n M per rank in 2 (n-1) steps, at the bus bandwidth it achieves (nccl-tests'
``busbw``), which is below the datasheet's link rate; every step also pays a latency.

Placement follows Megatron-LM's default rank order (tensor innermost, then context, expert,
data, pipeline outermost; ``parallel_state.py``, ``--order tp-cp-ep-dp-pp``): a group whose
members lie within ``gpus_per_node`` consecutive ranks talks over NVLink, otherwise over the
network, one NIC per GPU.
"""

from __future__ import annotations

import math
from functools import lru_cache

from schedules.dependencies import PIPELINE_RULE, WORK_PARTS, DependencyRule
from simulator.analytic.costs import CostModel, StageCost
from simulator.analytic.hardware import HardwarePreset
from simulator.analytic.roofline import Device, layer_seconds, selective_seconds
from simulator.analytic.sharded_comm import (
    EP_OVERLAP,
    Unit,
    all_to_all_seconds,
    buckets,
    exposed_seconds,
    ring_seconds,
)
from simulator.analytic.tensor_comm import COLUMN_PARALLEL_KINDS, TensorGroup
from simulator.model.layer_shapes import in_block, per_layer_shape
from simulator.model.partitioning import boundary_bytes
from simulator.model.sharding import Sharding
from simulator.model.transformer.context_parallel import context_parallel_bytes
from simulator.model.transformer.expert_parallel import moe_all_to_all_bytes

NVLINK_EFFICIENCY = 0.77
"""Bus bandwidth NCCL's all-reduce reaches over NVLink as a share of the per-direction link rate:
nccl-tests on DGX A100 report ~230 GB/s busbw against 300 GB/s; DGX H100 ~350-370 of 450."""
NETWORK_EFFICIENCY = 0.90
"""The same over InfiniBand, one NIC per GPU: nccl-tests across DGX nodes reach ~90% of the
NIC's line rate (e.g. ~22-23 GB/s per 200 Gb/s HDR port)."""
NVLINK_LATENCY = 5e-6  # seconds per ring step inside a node (NCCL's LL protocol, order of)
NETWORK_LATENCY = 15e-6  # seconds per ring step across nodes


def device_of(preset: HardwarePreset) -> Device:
    """The roofline's view of a preset."""
    return Device(
        peak_flops=preset.peak_flops,
        memory_bandwidth=preset.memory_bandwidth,
        gemm_efficiency=preset.gemm_efficiency,
        gemm_dimension=preset.gemm_dimension,
        kernel_floor=preset.kernel_floor,
    )


def ring_time(nbytes: float, ranks: int, bandwidth: float, latency: float, factor=2.0) -> float:
    """Seconds of a ring collective of ``nbytes`` over ``ranks``: ``factor`` (n-1)/n of the
    bytes over the bus bandwidth plus ``factor`` (n-1) latencies (factor 2: an all-reduce;
    1: a reduce-scatter or an all-gather)."""
    if ranks <= 1 or nbytes <= 0:
        return 0.0
    return factor * (ranks - 1) * latency + factor * (ranks - 1) / ranks * nbytes / bandwidth


def link_of(preset: HardwarePreset, span: int) -> tuple[float, float]:
    """(bus bandwidth, latency per step) of a group whose members lie ``span`` ranks apart end
    to end (inside one node when ``span <= gpus_per_node``). Across nodes every GPU's group
    runs its collective at the same time (one program on every rank), so GPUs that share a NIC
    (``gpus_per_nic``) share its bandwidth."""
    if span <= preset.gpus_per_node:
        return preset.nvlink_bandwidth * NVLINK_EFFICIENCY, NVLINK_LATENCY
    # the GPUs that share a NIC run their groups' collectives at once: each gets its share
    share = preset.internode_bandwidth * NETWORK_EFFICIENCY / preset.gpus_per_nic
    return share, NETWORK_LATENCY


def roofline_costs(plan, preset: HardwarePreset, rule: DependencyRule = PIPELINE_RULE):
    """The plan's per-stage F, I and W seconds on ``preset``: each layer's kernels on the
    roofline, plus each transformer block's exposed tensor-parallel collectives in the passes
    that carry activations, the context and expert exchanges, and sharded data parallelism's
    gathers and reduce-scatters inside the passes (``sharded_comm``); transfers and the
    once-a-step gradient reduction as NCCL runs them."""
    spec, partition, rows, layout = plan.spec, plan.partition, plan.microbatch_rows, plan.layout
    device = device_of(preset)
    stage_costs, stage_comm = stage_seconds(spec, partition, rows, preset, layout, rule)
    inner = layout.tensor * layout.context
    p2p_bandwidth, p2p_latency = link_of(preset, inner * layout.data + 1)
    dp_bandwidth, dp_latency = link_of(preset, inner * layout.data)
    grads = spec.recipe.gradients
    return CostModel(
        optimizer_time=_optimizer_seconds(plan, preset, device, dp_bandwidth, dp_latency),
        stage_costs=stage_costs,
        boundary_bytes=boundary_bytes(spec, partition, rows),
        comm_latency=p2p_latency,
        comm_bandwidth=p2p_bandwidth,
        allreduce_latency=dp_latency,
        allreduce_bandwidth=dp_bandwidth,
        param_bytes=tuple(spec.param_count(info) * grads for info in spec.layers()),
        time_unit="s",
        tensor_comm=stage_comm,
        overlap_grad_reduce=bool(preset.dp_overlap),
        grad_reduce_factor=STEP_REDUCE_FACTOR[min(layout.sharding, 3)],
        recompute_seconds=layer_recompute_seconds(spec, rows, preset),
    )


def layer_recompute_seconds(spec, rows: int, preset: HardwarePreset):
    """Per layer, (its forward's seconds, its selective recompute's seconds) on the roofline at
    ``rows`` sequences a microbatch: what a recompute of it re-runs (``recompute_costs``)."""
    device = device_of(preset)

    def timed(info) -> tuple[float, float]:
        forward = _layer(info, rows, spec.itemsize, device)["F"]
        if not spec.is_transformer:  # an MLP has no selective recompute
            return forward, 0.0
        return forward, selective_seconds(info, rows, spec.itemsize, device)

    return tuple(per_layer_shape(spec, timed))


STEP_REDUCE_FACTOR = {0: 2.0, 1: 1.0, 2: 0.0, 3: 0.0}
"""The executor's once-a-step gradient reduction per sharding stage, as the ring's factor on
``(D - 1) / D`` of the gradient bytes: z0 all-reduces (2), z1's distributed optimizer
reduce-scatters (1; Megatron-LM ``docs/source/distrib_optimizer.md``: reduce-scatter the
gradients, all-gather the updated weights, the latter in ``_optimizer_seconds``), z2 and z3
reduce-scatter inside every microbatch's backward instead (``sharded_comm``)."""


def stage_seconds(spec, partition, rows, preset, layout, rule=PIPELINE_RULE):
    """Per stage, its ``StageCost`` on the roofline and its exposed communication seconds per
    pass (what ``roofline_costs`` charges; ``advise``'s bounds read the same numbers). A
    stage's passes are its blocks in order (``sharded_comm.Unit``): each block's kernels, its
    exposed tensor-parallel collectives (the hidden ``tp_overlap`` share costs its compute the
    contention), its K/V exchange and its all-to-all; then sharded data parallelism's gathers
    and reduce-scatters overlap them (``sharded_comm.overlap_chain``)."""
    table = _layer_table(spec, rows, preset, layout)
    tensor = _tensor_group(spec, rows, preset, layout)
    sharded = _sharded_links(spec, layout, preset)
    stage_costs, stage_comm = [], []
    for layers in partition.stage_layers:
        sums: dict[int, list[float]] = {}
        columns: dict[int, list[tuple[float, float]]] = {}
        in_blocks: set[int] = set()
        for index in layers:
            block, values, column, is_block = table[index]
            unit = sums.get(block)
            if unit is None:
                unit = sums[block] = [0.0] * len(_UNIT_KEYS)
            for k, value in enumerate(values):
                unit[k] += value
            if column is not None:
                columns.setdefault(block, []).append(column)
            if is_block:
                in_blocks.add(block)
        blocks = {block: dict(zip(_UNIT_KEYS, unit, strict=True)) for block, unit in sums.items()}
        if tensor is not None:
            for block in in_blocks:
                collectives = tensor.of_block(tuple(columns.get(block, ())))
                for part in ("F", "I"):
                    blocks[block][part] += collectives.charged(part, preset.comm_contention)
                    blocks[block]["comm" + part] += getattr(collectives, part)
        units = list(blocks.values())
        totals = {part: sum(u[part] for u in units) for part in WORK_PARTS}
        comm = {part: sum(u["comm" + part] for u in units if part != "W") for part in WORK_PARTS}
        if sharded is not None:
            for part, seconds in sharded.exposed(units, spec.recipe, preset).items():
                totals[part] += seconds
                comm[part] += seconds
        stage_costs.append(StageCost(**totals, rule=rule))
        # one number a pass for the breakdown (which labels it in each F and I or B action):
        # half the exposed communication of a microbatch's three parts
        stage_comm.append(sum(comm.values()) / 2)
    return tuple(stage_costs), tuple(stage_comm)


_UNIT_KEYS = ("F", "I", "W", "commF", "commI", "netF", "netI", "params", "experts")


@lru_cache(maxsize=256)
def _layer_table(spec, rows: int, preset: HardwarePreset, layout):
    """Per layer of ``spec``: its block, what it adds to the block's unit (``_UNIT_KEYS``'
    values: its kernels' seconds, its exchanges, its parameters), its ``(dX, dW)`` GEMM seconds
    if it is a column-parallel linear, and whether it is in a transformer block. Worked out once
    per shape (``per_layer_shape``) and cached: ``advise`` times every split of the same model
    many times over."""
    device = device_of(preset)

    def unit_of(info):
        unit = dict.fromkeys(_UNIT_KEYS, 0.0)
        seconds_of = _layer(info, rows, spec.itemsize, device)
        for part, seconds in seconds_of.items():
            unit[part] += seconds
        unit["params"] += spec.param_count(info)
        unit["experts"] += _expert_params(info)
        for part, seconds, network in _exchanges(spec, layout, rows, preset, device, info):
            unit[part] += seconds
            unit["comm" + part] += seconds
            unit["net" + part] += network
        column = (seconds_of["I"], seconds_of["W"]) if info.kind in COLUMN_PARALLEL_KINDS else None
        return tuple(unit[key] for key in _UNIT_KEYS), column

    rows_of = per_layer_shape(spec, unit_of)
    return tuple(
        (info.block, values, column, in_block(info))
        for info, (values, column) in zip(spec.layers(), rows_of, strict=True)
    )


def _expert_params(info) -> int:
    count = getattr(info, "expert_param_count", None)
    return count() if count is not None else 0


def _exchanges(spec, layout, rows, preset, device: Device, info):
    """A layer's exposed exchanges as (part, seconds, seconds on the node's network): the
    context-parallel K/V exchange of an attention core (``context_parallel.KVExchange``) and
    the all-to-all dispatch and combine of a MoE block (``sharded_comm.all_to_all_seconds``),
    each in the forward and the input-backward."""
    if not spec.is_transformer:
        return ()
    out = []
    if info.kind == "attention" and layout.context > 1:
        exchange = context_parallel_bytes(spec.config, layout, rows, spec.itemsize)
        span = layout.tensor * layout.context
        bandwidth, latency = link_of(preset, span)
        core = _cached_layer(info, rows, spec.itemsize, device)
        for part, backward in (("F", False), ("I", True)):
            exposed = exchange.exposed_seconds(core[part], bandwidth, latency, backward=backward)
            sent = exchange.backward if backward else exchange.forward
            hidden = max(0.0, sent / bandwidth - exposed) if exchange.overlapped else 0.0
            seconds = exposed + preset.comm_contention * min(hidden, core[part])
            out.append((part, seconds, exposed if span > preset.gpus_per_node else 0.0))
    if info.kind == "moe" and layout.expert > 1:
        volume = moe_all_to_all_bytes(spec.config, layout, rows, spec.itemsize)
        span = layout.tensor * layout.expert
        bandwidth, latency = link_of(preset, span)
        one = all_to_all_seconds(volume.busiest_receive, layout.expert, bandwidth, latency)
        seconds = 2 * one * (1.0 - EP_OVERLAP)  # dispatch and combine
        network = seconds if span > preset.gpus_per_node else 0.0
        out += [("F", seconds, network), ("I", seconds, network)]
    return out


class _ShardedLinks:
    """The groups z2 and z3 gather and reduce over, with their links (``sharded_comm``)."""

    def __init__(self, sharding: Sharding, link, expert_link, network: bool):
        self.sharding, self.link, self.expert_link, self.network = (
            sharding,
            link,
            expert_link,
            network,
        )

    def _collective(self, params: float, experts: float, nbytes: int) -> float:
        dense = ring_seconds((params - experts) * nbytes, self.sharding.replicas, *self.link)
        routed = ring_seconds(experts * nbytes, self.sharding.expert_replicas, *self.expert_link)
        return dense + routed

    def exposed(self, units, recipe, preset: HardwarePreset) -> dict[str, float]:
        """What the stage's gathers (z3, in F and again in I) and per-bucket reduce-scatters
        (z2, z3, in W) add to each pass, overlapped as ``overlap_chain`` says."""
        s, kappa = self.sharding, preset.comm_contention
        out = {}
        if s.gathers_parameters:
            gathers = [self._collective(u["params"], u["experts"], recipe.weights) for u in units]
            forward = [Unit(u["F"], g, 0.0, u["netF"]) for u, g in zip(units, gathers, strict=True)]
            backward = [
                Unit(u["I"], g, 0.0, u["netI"]) for u, g in zip(units, gathers, strict=True)
            ][::-1]
            out["F"] = exposed_seconds(forward, kappa, self.network)
            out["I"] = exposed_seconds(backward, kappa, self.network)
        if s.splits_gradients:
            order = units[::-1]
            closes = set(buckets([u["params"] for u in order], s.bucket_params))
            reduces, held = [], [0.0, 0.0]
            for i, u in enumerate(order):
                held = [held[0] + u["params"], held[1] + u["experts"]]
                if i in closes:
                    reduces.append(self._collective(*held, recipe.gradients))
                    held = [0.0, 0.0]
                else:
                    reduces.append(0.0)
            weight = [Unit(u["W"], 0.0, r) for u, r in zip(order, reduces, strict=True)]
            out["W"] = exposed_seconds(weight, kappa, self.network)
        return out


def _sharded_links(spec, layout, preset: HardwarePreset) -> _ShardedLinks | None:
    """z2 and z3's groups and links, or None when nothing is gathered or reduced in a pass:
    the dense weights over the ``d c`` replicas and the routed experts over ``d c / e``, both
    spanning the tensor, context and data ranks (Megatron's order)."""
    sharding = Sharding.of_layout(layout)
    if not sharding.splits_gradients:
        return None
    span = layout.tensor * layout.context * layout.data
    link = link_of(preset, span)
    return _ShardedLinks(sharding, link, link, span > preset.gpus_per_node)


def _optimizer_seconds(plan, preset, device: Device, bandwidth: float, latency: float) -> float:
    """The optimizer step of the fullest rank: Adam reads and writes every byte of its
    parameters' weights, gradients, main weights and moments once (memory bound), over its
    shard with a distributed optimizer (over the ``d c`` replicas, Megatron Core's
    data-and-context group; ``Layout.optimizer_shards``), whose updated weights z1 and z2 then
    all-gather (Megatron's distributed optimizer); z3 keeps them sharded and gathers them in
    each pass (``sharded_comm``)."""
    spec, layout = plan.spec, plan.layout
    infos = spec.layers()
    per_rank: dict[int, int] = {}
    for stage, layers in enumerate(plan.partition.stage_layers):
        rank = plan.schedule.stage_to_rank[stage]
        per_rank[rank] = per_rank.get(rank, 0) + sum(spec.param_count(infos[i]) for i in layers)
    params = max(per_rank.values(), default=0)
    recipe = spec.recipe
    shards = layout.gradient_replicas if layout.sharding >= 1 else 1
    step = device.memory_time(2 * params / shards * recipe.total)
    if layout.sharding >= 3:
        return step
    gather = ring_time(params * recipe.weights, shards, bandwidth, latency, factor=1.0)
    return step + gather


def _layer(info, rows: int, itemsize: int, device: Device) -> dict[str, float]:
    if getattr(info, "config", None) is None:  # an MLP layer: GEMM or element-wise
        return _mlp_layer(info.kind, info.in_features, info.out_features, rows, itemsize, device)
    return _cached_layer(info, rows, itemsize, device)


@lru_cache(maxsize=4096)
def _cached_layer(info, rows: int, itemsize: int, device: Device) -> dict[str, float]:
    return layer_seconds(info, rows, itemsize, device)


def _mlp_layer(kind, n_in, n_out, rows, itemsize, device: Device) -> dict[str, float]:
    if kind == "linear":
        return {
            "F": device.gemm_time(rows, n_out, n_in),
            "I": device.gemm_time(rows, n_in, n_out),
            "W": device.gemm_time(n_in, n_out, rows),
        }
    moved = rows * (n_in + n_out) * itemsize
    return {"F": device.memory_time(moved), "I": device.memory_time(1.5 * moved), "W": 0.0}


def _tensor_group(spec, rows: int, preset: HardwarePreset, layout) -> TensorGroup | None:
    """The tensor-parallel group of a transformer run with ``t > 1`` (None otherwise). Its
    message is the ``s b h`` activations of a rank's ``s / c`` tokens: with sequence
    parallelism the ring moves the same bytes in its all-gathers and reduce-scatters
    (Korthikanti et al. 2022, 4.2.2)."""
    if not spec.is_transformer or layout.tensor <= 1:
        return None
    message = rows * math.ceil(spec.config.seq / layout.context) * spec.config.hidden
    return TensorGroup(
        message * spec.itemsize,
        layout.tensor,
        layout.sequence_parallel,
        link_of(preset, layout.tensor),
        preset.tp_overlap,
    )
