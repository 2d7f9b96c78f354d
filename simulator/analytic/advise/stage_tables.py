"""The per-stage figures both bounds read, for one split of the model under one recompute policy.

Per stage ``s`` at one sequence per microbatch (everything scales linearly with the microbatch
size), under the configuration's recompute policy: F, I, W seconds (``B = I + W``; I includes
the recompute its backward re-runs, as the executor's costs do), the bytes a forward leaves
cached until its backward (with recompute: its checkpoints and what it does not drop), the
parameters and the bytes sent to the next stage (a transfer costs latency + bytes / bandwidth
when the next stage lives on another rank).

The bytes (``MemoryTable``) do not depend on the microbatch size or the hardware, so one serves
every candidate of a split and policy; the costlier seconds (``StageTable``) are worked out only
for candidates that may fit. Both come from the per-block sums of ``block_tables``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from schedules.dependencies import PIPELINE_RULE
from simulator.analytic.advise.block_tables import (
    _per_row_seconds,
    layer_recompute,
    local_split,
    split_memory,
)
from simulator.analytic.advise.space import Candidate
from simulator.analytic.costs import Hardware, flop_costs
from simulator.analytic.recompute_costs import apply_recompute
from simulator.model.layout import Layout
from simulator.model.offload import OffloadPolicy, stage_offload_bytes
from simulator.model.offload import plan_stages as offload_stages
from simulator.model.partitioning import boundary_bytes
from simulator.model.precision import Precision
from simulator.model.recompute import RecomputePolicy, plan_stages
from simulator.model.transformer.spec import TransformerSpec


@dataclass(frozen=True)
class StageTable:
    """Per stage, at one sequence per microbatch, under one recompute policy: seconds (I with
    the recompute it re-runs), cached bytes, parameters, sends."""

    F: tuple[float, ...]
    I: tuple[float, ...]
    W: tuple[float, ...]
    cached: tuple[int, ...]  # bytes a forward leaves cached until its backward
    left: tuple[int, ...]  # bytes its input-gradient backward leaves until its weight-gradient
    params: tuple[int, ...]  # on one tensor-parallel rank
    layer_params: tuple[tuple[tuple[int, int], ...], ...]  # per stage, its blocks (stage_units)
    experts: tuple[int, ...]  # per stage, its routed-expert parameters (of ``params``)
    sends: tuple[int, ...]  # bytes to the next stage
    itemsize: int
    recipe: Precision  # bytes per parameter of weights, gradients and optimizer state
    latency: float
    bandwidth: float
    policy: str = "none"


@dataclass(frozen=True)
class MemoryTable:
    """Per stage, what the memory bound needs, at one sequence per microbatch: cached bytes,
    parameters (and routed-expert ones), sends. It does not depend on the microbatch size or
    the hardware, so one serves every candidate of a split and policy, and the costlier times
    are worked out only for candidates that may fit (``stage_table``)."""

    cached: tuple[int, ...]
    left: tuple[int, ...]  # bytes an input-gradient backward leaves until its weight-gradient one
    params: tuple[int, ...]
    layer_params: tuple[tuple[tuple[int, int], ...], ...]
    experts: tuple[int, ...]
    sends: tuple[int, ...]
    recipe: Precision
    policy: str
    offloadable: tuple[int, ...] = ()  # of ``cached``: what a full offload sends, per stage
    # (``offload_table``; empty in a table made without offload)


@lru_cache(maxsize=1024)
def _flop_costs(spec, layer: Layout, stages: int, hardware: Hardware):
    """``flop_costs`` at one sequence per microbatch, once per split (it does not depend on the
    microbatch size; on the roofline only its transfers and latency are read)."""
    local, split = local_split(spec, layer, stages)
    return flop_costs(local, split, 1, hardware)


@lru_cache(maxsize=4096)
def memory_table(
    spec: TransformerSpec, layer: Layout, stages: int, policy: str = "none"
) -> MemoryTable:
    """``stage_table``'s bytes alone (see ``MemoryTable``): under a blockwise policy, the sums
    of its blocks' (worked out once for every split), else the split's own."""
    local, split = local_split(spec, layer, stages)
    cached, left, layer_params = split_memory(spec, layer, stages, policy)
    return MemoryTable(
        cached=cached,
        left=left,
        params=tuple(sum(p for p, _ in units) for units in layer_params),
        layer_params=layer_params,
        experts=tuple(sum(x for _, x in units) for units in layer_params),
        sends=tuple(boundary_bytes(local, split, 1)),
        recipe=local.recipe,
        policy=policy,
    )


@lru_cache(maxsize=4096)
def offload_table(
    spec: TransformerSpec, layer: Layout, stages: int, policy: str = "none"
) -> MemoryTable:
    """``memory_table`` with ``offloadable``: per stage, the bytes of one forward (one
    sequence) that a full offload sends to the host (``stage_offload_bytes``); worked out only
    for configurations with offload."""
    local, split = local_split(spec, layer, stages)
    plan = plan_stages(RecomputePolicy.parse(policy), local, split)
    full = offload_stages(OffloadPolicy.parse("full"), local, split)
    sent = stage_offload_bytes(local, split, 1, PIPELINE_RULE, full, plan.stages)
    return replace(
        memory_table(spec, layer, stages, policy),
        offloadable=tuple(sum(size for _, size in layers) for layers in sent),
    )


@lru_cache(maxsize=1024)
def stage_table(
    spec: TransformerSpec,
    layer: Layout,
    stages: int,
    hardware: Hardware,
    policy: str = "none",
    rows: int = 1,
) -> StageTable:
    """The per-stage figures of ``spec`` under the layer layout ``layer`` (``Layout.for_layers``:
    the tensor, sequence, context and expert degrees, one value so that a new degree needs no
    new parameter) split into ``stages``, under the recompute ``policy`` resolved as ``simulate
    --recompute`` resolves it: each stage's forward keeps what its plan keeps (``memory_plan``'s
    forward items), its backward is longer by the recompute (``apply_recompute``, exactly the
    executor's costs). Times are per sequence: on the roofline (``hardware.preset``) the stage
    times of a microbatch of ``rows`` sequences, which do not scale with ``rows``, divided by
    ``rows``."""
    local, split = local_split(spec, layer, stages)
    plan = plan_stages(RecomputePolicy.parse(policy), local, split)
    base = _flop_costs(spec, layer, stages, hardware)
    if hardware.preset is not None:
        per_row = _per_row_seconds(spec, layer, stages, hardware.preset, rows)
        recompute = layer_recompute(spec, layer, rows, hardware.preset)
        base = replace(base, stage_costs=per_row, recompute_seconds=recompute)
    costs = apply_recompute(base, local, split, plan)
    memory = memory_table(spec, layer, stages, policy)
    return StageTable(
        F=tuple(c.F for c in costs.stage_costs),
        I=tuple(c.I for c in costs.stage_costs),
        W=tuple(c.W for c in costs.stage_costs),
        cached=memory.cached,
        left=memory.left,
        params=memory.params,
        layer_params=memory.layer_params,
        experts=memory.experts,
        sends=costs.boundary_bytes,
        itemsize=local.itemsize,
        recipe=local.recipe,
        latency=costs.comm_latency,
        bandwidth=costs.comm_bandwidth,
        policy=policy,
    )


def memory_of(spec: TransformerSpec, c: Candidate) -> MemoryTable:
    """``memory_table`` of configuration ``c`` (``offload_table`` with offload)."""
    make = memory_table if c.offload == "none" else offload_table
    return make(spec, c.layer, c.stages, c.recompute)


def table_of(
    spec: TransformerSpec, c: Candidate, hardware: Hardware, policy: str | None = None
) -> StageTable:
    """``stage_table`` of configuration ``c`` (its recompute policy unless ``policy``)."""
    policy = c.recompute if policy is None else policy
    return stage_table(spec, c.layer, c.stages, hardware, policy, c.microbatch_size)
