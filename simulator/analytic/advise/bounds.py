"""Closed-form lower bounds on a configuration's step time and peak memory, from the model split
alone: what lets ``advise`` skip most configurations without simulating them.

Both bounds are *valid*: never above what the analytic executor then predicts (the tests compare
them on every family). So a configuration whose memory bound exceeds the limit cannot fit, and
one whose time bound exceeds the k-th best time found so far cannot enter the top k.

Per stage ``s`` at one sequence per microbatch (everything scales linearly with the microbatch
size), under the configuration's recompute policy: F, I, W seconds (``B = I + W``; I includes
the recompute its backward re-runs, as the executor's costs do), the bytes a forward leaves
cached until its backward (with recompute: its checkpoints and what it does not drop), the
parameters and the bytes sent to the next stage (a transfer costs latency + bytes / bandwidth
when the next stage lives on another rank).

Time, for every rank r with lowest stage ``lo`` and highest ``hi`` (each a lower bound, the
largest wins):

* ``head + busy + tail``: nothing runs on r before the first microbatch's forward reaches
  ``lo`` (head = the F's and transfers of the stages before it); then r works ``m`` times the
  F + I + W of its stages, one action at a time; with an unsplit backward its last action is a B
  whose gradient still has to travel down to stage 0 (tail = the B's below ``lo``). For 1F1B on
  equal stages this is ``(m + p - 1)(F + B)``, the textbook bubble.
* ``round trip + backward work``: no backward runs on r before a microbatch went all the way
  forward and back down to ``hi``; then r does all its I + W.
* ``... + all-reduce``: with ``dp > 1`` a layer's gradient is summed over the replicas only once
  complete, at the earliest inside the m-th backward of its stage (after the round trip and
  m - 1 whole backwards); r's all-reduces then run one at a time.
* naive runs one microbatch at a time: ``m`` round trips.
* on the roofline (a preset) the links are the ones its costs use (the neighbour stage and the
  data group inside a node or over the network); with the reduction after the backward
  (Megatron's default) a rank's all-reduces start when its last action ends; and every step
  ends with the optimizer step of the fullest rank, added to the largest of the above.

The stage tables (bytes and roofline seconds) of a split are sums of per-block tables worked
out once for every split (``BLOCKWISE`` policies; ``tests/simulator/test_advise_speed.py``
holds them equal to the split's own).

Memory: a rank's parameters, gradients, optimizer state and receive buffers exactly, plus the
forwards every schedule family runs on it before its first backward (a closed form per family,
e.g. ``min(p - r, m)`` for 1F1B) times the smallest per-forward cache among its stages, or one
forward of each of its stages (microbatch 0's, all cached when the first backward starts), if
more.

With activation offload the forwards' offloadable blocks may be on the host, so the activations
counted are what no policy sends (the embedding, the head, the loss block: ``offload_units``)
for those forwards, or one whole forward of a stage, whose bytes are all on the device when its
backward starts, if more. Offload only delays a backward (its prefetch), so the time bound is
the same configuration's without offload.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from schedules.actions import loop_stage_to_rank, v_stage_to_rank
from schedules.dependencies import PIPELINE_RULE
from simulator.analytic.advise.space import Candidate, FamilyTraits, sharded
from simulator.analytic.costs import Hardware, flop_costs
from simulator.analytic.recompute_costs import apply_recompute
from simulator.analytic.roofline_costs import device_of, link_of, ring_time, stage_seconds
from simulator.model import partition
from simulator.model.memory_plan import stage_shapes
from simulator.model.offload import OffloadPolicy, stage_offload_bytes
from simulator.model.offload import plan_stages as offload_stages
from simulator.model.partitioning import boundary_bytes
from simulator.model.precision import Precision
from simulator.model.recompute import RecomputePolicy, plan_stages
from simulator.model.sharding import Sharding
from simulator.model.transformer.spec import TransformerSpec
from simulator.run.rank_memory import rank_static_memory, stage_units


def warmup_forwards(family: str, p: int, m: int, v: int, rank: int) -> int:
    """Forwards ``rank`` runs before its first backward, at least (exact for every family but
    DualPipeV, whose last rank runs one more; ``tests/simulator/test_advise_bounds.py``)."""
    if family == "gpipe":
        return m
    if family in ("1f1b", "zb-h1"):
        return min(p - rank, m)
    if family == "zb-h2":
        return min(2 * (p - rank) - 1, m)
    if family == "interleaved-1f1b":
        return min(2 * (p - rank - 1) + (v - 1) * p + 1, m * v)
    if family == "zb-v":
        return min(2 * p, m + rank + 1, 2 * m)
    if family == "dualpipe-v":
        return min(2 * p, 2 * m)
    return 1  # naive, and any family without a closed form: one forward before any backward


@dataclass(frozen=True)
class StageTable:
    """Per stage, at one sequence per microbatch, under one recompute policy: seconds (I with
    the recompute it re-runs), cached bytes, parameters, sends."""

    F: tuple[float, ...]
    I: tuple[float, ...]
    W: tuple[float, ...]
    cached: tuple[int, ...]  # bytes a forward leaves cached until its backward
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
    params: tuple[int, ...]
    layer_params: tuple[tuple[tuple[int, int], ...], ...]
    experts: tuple[int, ...]
    sends: tuple[int, ...]
    recipe: Precision
    policy: str
    offloadable: tuple[int, ...] = ()  # of ``cached``: what a full offload sends, per stage
    # (``offload_table``; empty in a table made without offload)


@lru_cache(maxsize=1024)
def local_split(spec: TransformerSpec, tp: int, stages: int, cp: int, ep: int, cp_comm: str):
    """The spec one rank holds under (tp, cp, ep) and its balanced split into ``stages``, once
    (every policy, microbatch size and schedule family of the split shares them)."""
    local = sharded(spec, tp, cp, ep, cp_comm)
    return local, partition(local, stages)


# policies whose plan of a stage is the plans of its blocks, whatever the split: a stage's
# cached bytes are its blocks' sums (``every:K`` and ``sqrt`` place checkpoints by the split)
BLOCKWISE = ("none", "selective", "full")


@lru_cache(maxsize=256)
def _block_split(spec: TransformerSpec, tp: int, cp: int, ep: int, cp_comm: str):
    """``local_split`` into one block a stage (None when the partition does not give that)."""
    local = sharded(spec, tp, cp, ep, cp_comm)
    blocks = len({info.block for info in local.layers()})
    split = partition(local, blocks)
    infos = local.layers()
    if any(len({infos[i].block for i in layers}) != 1 for layers in split.stage_layers):
        return None
    return split


def _block_ranges(split, blocks) -> tuple[tuple[int, int], ...] | None:
    """Per stage of ``split``, its first and last block (as stages of ``blocks``, the split into
    one block a stage); None when a stage does not start and end on a block's edge."""
    first = {layers[0]: b for b, layers in enumerate(blocks.stage_layers)}
    last = {layers[-1]: b for b, layers in enumerate(blocks.stage_layers)}
    out = []
    for layers in split.stage_layers:
        if layers[0] not in first or layers[-1] not in last:
            return None
        out.append((first[layers[0]], last[layers[-1]]))
    return tuple(out)


@lru_cache(maxsize=1024)
def _block_memory(spec: TransformerSpec, tp: int, policy: str, cp: int, ep: int, cp_comm: str):
    """Per block (one a stage): (cached bytes of one forward, its units), or None."""
    blocks = _block_split(spec, tp, cp, ep, cp_comm)
    if blocks is None:
        return None
    local = sharded(spec, tp, cp, ep, cp_comm)
    return _stage_memory(local, blocks, policy)


def _stage_memory(local, split, policy: str):
    """Per stage of ``split``: the bytes one forward (one sequence) leaves cached under
    ``policy``, and its units (``stage_units``)."""
    plan = plan_stages(RecomputePolicy.parse(policy), local, split)
    shapes = stage_shapes(local, split, 1, recompute=plan.stages)
    cached = tuple(
        sum(delta for _, delta, _ in shapes.plans[shape]["F"].changes)
        for shape in shapes.shape_of_stage
    )
    return cached, tuple(stage_units(local, split.stage_layers))


@lru_cache(maxsize=1024)
def _block_seconds(spec, tp: int, rows: int, preset, cp: int, ep: int, cp_comm: str):
    """Per block (one a stage): its roofline ``StageCost`` at ``rows`` sequences, or None."""
    blocks = _block_split(spec, tp, cp, ep, cp_comm)
    if blocks is None:
        return None
    local = sharded(spec, tp, cp, ep, cp_comm)
    timed, _ = stage_seconds(local, blocks, rows, preset, local.layout)
    return timed


@lru_cache(maxsize=1024)
def _flop_costs(spec, tp: int, stages: int, hardware: Hardware, cp: int, ep: int, cp_comm: str):
    """``flop_costs`` at one sequence per microbatch, once per split (it does not depend on the
    microbatch size; on the roofline only its transfers and latency are read)."""
    local, split = local_split(spec, tp, stages, cp, ep, cp_comm)
    return flop_costs(local, split, 1, hardware)


@lru_cache(maxsize=4096)
def memory_table(
    spec: TransformerSpec,
    tp: int,
    stages: int,
    policy: str = "none",
    cp: int = 1,
    ep: int = 1,
    cp_comm: str = "ring",
) -> MemoryTable:
    """``stage_table``'s bytes alone (see ``MemoryTable``): under a blockwise policy, the sums
    of its blocks' (worked out once for every split), else the split's own."""
    local, split = local_split(spec, tp, stages, cp, ep, cp_comm)
    per_block = _block_memory(spec, tp, policy, cp, ep, cp_comm) if policy in BLOCKWISE else None
    ranges = None
    if per_block is not None:
        ranges = _block_ranges(split, _block_split(spec, tp, cp, ep, cp_comm))
    if ranges is None:
        cached, layer_params = _stage_memory(local, split, policy)
    else:
        blocks_cached, blocks_units = per_block
        cached = tuple(sum(blocks_cached[a : b + 1]) for a, b in ranges)
        layer_params = tuple(
            tuple(unit for block in blocks_units[a : b + 1] for unit in block) for a, b in ranges
        )
    return MemoryTable(
        cached=cached,
        params=tuple(sum(p for p, _ in units) for units in layer_params),
        layer_params=layer_params,
        experts=tuple(sum(x for _, x in units) for units in layer_params),
        sends=tuple(boundary_bytes(local, split, 1)),
        recipe=local.recipe,
        policy=policy,
    )


@lru_cache(maxsize=4096)
def offload_table(
    spec: TransformerSpec,
    tp: int,
    stages: int,
    policy: str = "none",
    cp: int = 1,
    ep: int = 1,
    cp_comm: str = "ring",
) -> MemoryTable:
    """``memory_table`` with ``offloadable``: per stage, the bytes of one forward (one
    sequence) that a full offload sends to the host (``stage_offload_bytes``); worked out only
    for configurations with offload."""
    local, split = local_split(spec, tp, stages, cp, ep, cp_comm)
    plan = plan_stages(RecomputePolicy.parse(policy), local, split)
    full = offload_stages(OffloadPolicy.parse("full"), local, split)
    sent = stage_offload_bytes(local, split, 1, PIPELINE_RULE, full, plan.stages)
    return replace(
        memory_table(spec, tp, stages, policy, cp, ep, cp_comm),
        offloadable=tuple(sum(size for _, size in layers) for layers in sent),
    )


@lru_cache(maxsize=1024)
def stage_table(
    spec: TransformerSpec,
    tp: int,
    stages: int,
    hardware: Hardware,
    policy: str = "none",
    rows: int = 1,
    cp: int = 1,
    ep: int = 1,
    cp_comm: str = "ring",
) -> StageTable:
    """The per-stage figures of ``spec`` at tensor degree ``tp`` split into ``stages``, under the
    recompute ``policy`` resolved as ``simulate --recompute`` resolves it: each stage's forward
    keeps what its plan keeps (``memory_plan``'s forward items), its backward is longer by the
    recompute (``apply_recompute``, exactly the executor's costs). Times are per sequence: on
    the roofline (``hardware.preset``) the stage times of a microbatch of ``rows`` sequences,
    which do not scale with ``rows``, divided by ``rows``."""
    local, split = local_split(spec, tp, stages, cp, ep, cp_comm)
    plan = plan_stages(RecomputePolicy.parse(policy), local, split)
    base = _flop_costs(spec, tp, stages, hardware, cp, ep, cp_comm)
    if hardware.preset is not None:
        per_row = _per_row_seconds(spec, tp, stages, hardware.preset, rows, cp, ep, cp_comm)
        base = replace(base, stage_costs=per_row)
    costs = apply_recompute(base, local, split, plan)
    memory = memory_table(spec, tp, stages, policy, cp, ep, cp_comm)
    return StageTable(
        F=tuple(c.F for c in costs.stage_costs),
        I=tuple(c.I for c in costs.stage_costs),
        W=tuple(c.W for c in costs.stage_costs),
        cached=memory.cached,
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


@lru_cache(maxsize=1024)
def _per_row_seconds(spec, tp: int, stages: int, preset, rows: int, cp: int, ep: int, cp_comm):
    """The split's roofline stage costs per sequence at ``rows`` sequences a microbatch (every
    recompute policy shares them): its blocks' sums, timed once for every split."""
    local, split = local_split(spec, tp, stages, cp, ep, cp_comm)
    blocks = _block_seconds(spec, tp, rows, preset, cp, ep, cp_comm)
    ranges = (
        None if blocks is None else _block_ranges(split, _block_split(spec, tp, cp, ep, cp_comm))
    )
    if ranges is None:
        timed, _ = stage_seconds(local, split, rows, preset, local.layout)
    else:
        timed = tuple(
            replace(
                blocks[a],
                F=sum(c.F for c in blocks[a : b + 1]),
                I=sum(c.I for c in blocks[a : b + 1]),
                W=sum(c.W for c in blocks[a : b + 1]),
            )
            for a, b in ranges
        )
    return tuple(replace(c, F=c.F / rows, I=c.I / rows, W=c.W / rows) for c in timed)


def memory_of(spec: TransformerSpec, c: Candidate) -> MemoryTable:
    """``memory_table`` of configuration ``c`` (``offload_table`` with offload)."""
    make = memory_table if c.offload == "none" else offload_table
    return make(spec, c.tp, c.stages, c.recompute, c.cp, c.ep, c.cp_comm if c.cp > 1 else "ring")


def table_of(
    spec: TransformerSpec, c: Candidate, hardware: Hardware, policy: str | None = None
) -> StageTable:
    """``stage_table`` of configuration ``c`` (its recompute policy unless ``policy``)."""
    return stage_table(
        spec,
        c.tp,
        c.stages,
        hardware,
        c.recompute if policy is None else policy,
        c.microbatch_size,
        c.cp,
        c.ep,
        c.cp_comm if c.cp > 1 else "ring",
    )


def stage_to_rank(traits: FamilyTraits, p: int, v: int) -> tuple[int, ...]:
    v_layout = traits.layout == "v" or (traits.layout == "chunks" and v == 2)
    return _placement(v_layout, p, v)[0]


def stages_of_ranks(traits: FamilyTraits, p: int, v: int) -> tuple[tuple[int, ...], ...]:
    """Per rank, its stages in order (``stage_to_rank`` turned around)."""
    v_layout = traits.layout == "v" or (traits.layout == "chunks" and v == 2)
    return _placement(v_layout, p, v)[1]


@lru_cache(maxsize=1024)
def _placement(v_layout: bool, p: int, v: int):
    owner = tuple(v_stage_to_rank(p, v) if v_layout else loop_stage_to_rank(p, v))
    ranks: list[list[int]] = [[] for _ in range(p)]
    for s, r in enumerate(owner):
        ranks[r].append(s)
    return owner, tuple(tuple(mine) for mine in ranks)


def with_budget(
    c: Candidate, traits: FamilyTraits, table: StageTable | MemoryTable, limit: int
) -> Candidate:
    """``c``, for auto with the activation budget that keeps its fullest rank within ``limit``
    (the limit less the largest static memory of a rank); other families unchanged."""
    if traits.layout != "chunks":
        return c
    return replace(c, activation_limit=max(0, limit - max(static_bytes(c, traits, table))))


@dataclass(frozen=True)
class Links:
    """The links a configuration's step uses, as the executor's costs price them: stage to
    stage (latency, bandwidth), the data-parallel reduction's bandwidth, whether it overlaps
    the backward, and the optimizer step's seconds (0 when not known)."""

    latency: float
    bandwidth: float
    reduce_bandwidth: float
    overlap: bool = True
    optimizer: float = 0.0


def links_of(c: Candidate, table: StageTable, hardware: Hardware, owner) -> Links:
    """On the roofline (a preset), the links ``roofline_costs`` gives this layout: the
    neighbour stage ``t * c * d + 1`` ranks away, the data group spanning ``t * c * d``, inside
    a node or over the network, and the optimizer step of the fullest rank (Adam over its
    shard, then the all-gather of the updated weights). Otherwise the fastest link, with the
    reduction overlapped and no optimizer time: lower bounds on any."""
    preset = hardware.preset
    if preset is None:
        return Links(table.latency, table.bandwidth, hardware.link_bandwidth)
    inner = c.tp * c.cp
    bandwidth, latency = link_of(preset, inner * c.dp + 1)
    reduce_bandwidth, reduce_latency = link_of(preset, inner * c.dp)
    per_rank = [0] * c.pp
    for s, r in enumerate(owner):
        per_rank[r] += table.params[s]
    params = max(per_rank)
    shards = c.layout.gradient_replicas if c.layout.sharding >= 1 else 1
    recipe = table.recipe
    optimizer = device_of(preset).memory_time(2 * params / shards * recipe.total)
    if c.layout.sharding <= 2:  # z3 keeps the weights sharded (``roofline_costs``)
        optimizer += ring_time(
            params * recipe.weights, shards, reduce_bandwidth, reduce_latency, 1.0
        )
    if any(table.experts):  # routed experts' state is sharded its own way: not counted
        optimizer = 0.0
    return Links(latency, bandwidth, reduce_bandwidth, bool(preset.dp_overlap), optimizer)


def _transfers(links: Links, table, owner: tuple[int, ...], rows: int) -> list[float]:
    """Seconds to move stage s's output to stage s + 1 (0 on the same rank, and after the last)."""
    out = []
    for s in range(len(owner)):
        crosses = s + 1 < len(owner) and owner[s] != owner[s + 1]
        size = table.sends[s] * rows
        out.append(links.latency + (size / links.bandwidth if size else 0.0) if crosses else 0.0)
    return out


def time_bound(c: Candidate, traits: FamilyTraits, table: StageTable, hardware: Hardware) -> float:
    """A lower bound on ``c``'s step time in seconds (see the module docstring)."""
    owner = stage_to_rank(traits, c.pp, c.chunks)
    rows, m, n = c.microbatch_size, c.microbatches, len(owner)
    F = [f * rows for f in table.F]
    I = [i * rows for i in table.I]
    W = [w * rows for w in table.W]
    links = links_of(c, table, hardware, owner)
    x = _transfers(links, table, owner, rows)
    reach = [0.0] * (n + 1)  # reach[s]: F's and transfers of the stages before s
    below = [0.0] * (n + 1)  # below[s]: B's and transfers of the stages before s
    for s in range(n):
        reach[s + 1] = reach[s] + F[s] + x[s]
        below[s + 1] = below[s] + I[s] + W[s] + x[s]
    back = [0.0] * (n + 1)  # back[s]: gradient from the last stage down to stage s's input
    for s in range(n - 1, 0, -1):
        back[s - 1] = back[s] + I[s] + x[s - 1]
    replicas = c.layout.gradient_replicas
    gradient = table.recipe.gradients if hardware.preset is not None else table.itemsize
    factor = 2.0 if c.layout.sharding == 0 else 1.0  # z1 reduce-scatters (STEP_REDUCE_FACTOR)
    ring = factor * (replicas - 1) / replicas * gradient / links.reduce_bandwidth
    # the all-reduce term only where the executor's reduction is the plain ring over every
    # parameter: no routed experts (reduced over fewer ranks) and no z2/z3 (reduce-scatters)
    reduces = replicas > 1 and c.layout.sharding <= 1 and not any(x for x in table.experts)
    best = m * (reach[n] + below[n]) if traits.name == "naive" else 0.0
    for mine in stages_of_ranks(traits, c.pp, c.chunks):
        lo, hi = mine[0], mine[-1]
        backward = m * sum(I[s] + W[s] for s in mine)
        busy = m * sum(F[s] for s in mine) + backward
        tail = 0.0 if traits.split else below[lo]
        trip = reach[n] + back[hi]
        best = max(best, reach[lo] + busy + tail, trip + backward)
        if reduces:
            reduce = ring * sum(table.params[s] for s in mine)
            if links.overlap:
                # a gradient can be complete inside the m-th backward, after m - 1 whole ones
                first = trip + (m - 1) * min(I[s] + W[s] for s in mine)
            else:  # the rank's reductions start when its last action ends
                first = max(reach[lo] + busy, trip + backward)
            best = max(best, first + reduce)
    return best + links.optimizer


def static_bytes(c: Candidate, traits: FamilyTraits, table: StageTable | MemoryTable) -> list[int]:
    """Per rank: parameters, gradients, optimizer state and receive buffers, as
    ``rank_memory.static_memory`` counts them (its sharding stage's rule)."""
    return list(
        _static_bytes(
            stage_to_rank(traits, c.pp, c.chunks),
            table.params,
            tuple(sent * c.microbatch_size for sent in table.sends),
            table.recipe,
            Sharding.of_layout(c.layout),
            table.experts,
            table.layer_params,
        )
    )


@lru_cache(maxsize=8192)
def _static_bytes(owner, params, sends, recipe, sharding, experts, layer_params) -> tuple[int, ...]:
    """``rank_static_memory``'s totals, once per split, batch and sharding (candidates that
    differ only in their schedule family or microbatch count share them)."""
    memory = rank_static_memory(
        owner, params, sends, recipe, sharding, expert_params=experts, layer_params=layer_params
    )
    return tuple(m.total for m in memory)


def memory_bound(c: Candidate, traits: FamilyTraits, table: StageTable | MemoryTable) -> int:
    """A lower bound on the fullest rank's whole-rank memory in bytes (with offload: see the
    module docstring)."""
    static = static_bytes(c, traits, table)
    best = 0
    for rank, mine in enumerate(stages_of_ranks(traits, c.pp, c.chunks)):
        kept = [kept_per_forward(table, s, c.recompute) for s in mine]
        warm = warmup_forwards(traits.name, c.pp, c.microbatches, c.chunks, rank)
        if c.offload == "none":
            # when the last stage's first backward starts, microbatch 0 went forward through
            # every stage and nothing was freed yet: each rank holds one forward of each of its
            # stages
            activations = max(warm * min(kept), sum(kept))
        else:
            if not getattr(table, "offloadable", ()):
                raise ValueError("a memory bound with offload needs an offload_table")
            stays = [max(0, table.cached[s] - table.offloadable[s]) for s in mine]
            activations = max(warm * min(stays), max(kept))
        best = max(best, static[rank] + activations * c.microbatch_size)
    return best


def kept_per_forward(table: StageTable | MemoryTable, stage: int, policy: str) -> int:
    """Bytes one forward of ``stage`` (one sequence) leaves cached until its backward under the
    recompute ``policy``: the net of its forward's work items in the policy's plan (its
    checkpoints and the layers it does not drop; selective: attention without its scores)."""
    if policy != table.policy:
        raise ValueError(f"a stage table of recompute {table.policy!r} asked for {policy!r}")
    return table.cached[stage]
