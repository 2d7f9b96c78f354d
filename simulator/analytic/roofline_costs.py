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
from simulator.analytic.roofline import Device, layer_seconds
from simulator.model.partitioning import boundary_bytes
from simulator.model.transformer.context_parallel import context_parallel_bytes

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
    to end (inside one node when ``span <= gpus_per_node``)."""
    if span <= preset.gpus_per_node:
        return preset.nvlink_bandwidth * NVLINK_EFFICIENCY, NVLINK_LATENCY
    return preset.internode_bandwidth * NETWORK_EFFICIENCY, NETWORK_LATENCY


def roofline_costs(plan, preset: HardwarePreset, rule: DependencyRule = PIPELINE_RULE):
    """The plan's per-stage F, I and W seconds on ``preset``: each layer's kernels on the
    roofline, plus each transformer block's exposed tensor-parallel collectives in the passes
    that carry activations; transfers and the data-parallel reduction as NCCL runs them."""
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
    )


def stage_seconds(spec, partition, rows, preset, layout, rule=PIPELINE_RULE):
    """Per stage, its ``StageCost`` on the roofline and its exposed tensor-parallel seconds per
    pass (what ``roofline_costs`` charges; ``advise``'s bounds read the same numbers)."""
    device = device_of(preset)
    infos = spec.layers()
    tp_comm = _tp_seconds(spec, rows, preset, layout) * (1.0 - preset.tp_overlap)
    stage_costs, stage_comm = [], []
    for layers in partition.stage_layers:
        totals = dict.fromkeys(WORK_PARTS, 0.0)
        for index in layers:
            seconds = _layer(infos[index], rows, spec.itemsize, device)
            for part in totals:
                totals[part] += seconds[part]
        blocks = {infos[i].block for i in layers if getattr(infos[i], "is_transformer_block", 0)}
        for part in ("F", "I"):
            totals[part] += len(blocks) * tp_comm
        exchange = _kv_exchange(spec, layout, rows, preset, device, layers)
        for part, seconds in exchange.items():
            totals[part] += seconds
        stage_costs.append(StageCost(**totals, rule=rule))
        # one number a pass for the breakdown: the K/V exchange's F and I mean with the TP's
        stage_comm.append(len(blocks) * tp_comm + sum(exchange.values()) / 2)
    return tuple(stage_costs), tuple(stage_comm)


def _kv_exchange(spec, layout, rows, preset, device: Device, layers) -> dict[str, float]:
    """Context parallelism's exposed K/V exchange in each attention layer's forward and
    input-backward (``context_parallel.KVExchange``), over the context group's link."""
    if layout.context <= 1 or not spec.is_transformer:
        return {}
    infos = spec.layers()
    itemsize = spec.itemsize
    exchange = context_parallel_bytes(spec.config, layout, rows, itemsize)
    bandwidth, latency = link_of(preset, layout.tensor * layout.context)
    out = {"F": 0.0, "I": 0.0}
    for index in layers:
        if infos[index].kind != "attention":
            continue
        core = _cached_layer(infos[index], rows, itemsize, device)
        out["F"] += exchange.exposed_seconds(core["F"], bandwidth, latency)
        out["I"] += exchange.exposed_seconds(core["I"], bandwidth, latency, backward=True)
    return out


def _optimizer_seconds(plan, preset, device: Device, bandwidth: float, latency: float) -> float:
    """The optimizer step of the fullest rank: Adam reads and writes every byte of its
    parameters' weights, gradients, main weights and moments once (memory bound), over its
    shard with the distributed optimizer, whose updated weights are then all-gathered over the
    replicas (Megatron's distributed optimizer)."""
    spec, layout = plan.spec, plan.layout
    infos = spec.layers()
    per_rank: dict[int, int] = {}
    for stage, layers in enumerate(plan.partition.stage_layers):
        rank = plan.schedule.stage_to_rank[stage]
        per_rank[rank] = per_rank.get(rank, 0) + sum(spec.param_count(infos[i]) for i in layers)
    params = max(per_rank.values(), default=0)
    recipe = spec.recipe
    shards = layout.data if layout.sharding >= 1 else 1
    step = device.memory_time(2 * params / shards * recipe.total)
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


def _tp_seconds(spec, rows: int, preset: HardwarePreset, layout) -> float:
    """One block's tensor-parallel collectives in one pass: two all-reduces of the ``s b h``
    activations (Megatron), or with sequence parallelism two all-gathers and two
    reduce-scatters, which a ring moves in the same bytes (Korthikanti et al. 2022, 4.2.2)."""
    t = layout.tensor
    if not spec.is_transformer or t <= 1:
        return 0.0
    bandwidth, latency = link_of(preset, t)
    message = rows * math.ceil(spec.config.seq / layout.context) * spec.config.hidden
    return 2 * ring_time(message * spec.itemsize, t, bandwidth, latency)
