"""A split's stage tables as sums of per-block tables: what keeps ``advise`` fast at scale.

Every candidate split of a model cuts it between its blocks (embedding, transformer blocks,
head), so under a ``BLOCKWISE`` recompute policy a stage's cached bytes, and on the roofline its
seconds under any policy, are its blocks' sums. The tables of one block a stage are worked out
once per (spec, layer layout) and summed for every split, instead of planning and timing each
split from scratch (``tests/simulator/test_advise_speed.py`` holds the sums equal to the split's
own). A layer layout is one ``Layout`` value with only the degrees that shard a layer
(``Layout.for_layers``), so a new such degree reaches every table without a new parameter.
``stage_tables`` builds the per-stage tables the bounds read from these.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from simulator.analytic.advise.degrees import sharded
from simulator.analytic.roofline_costs import layer_recompute_seconds, stage_seconds
from simulator.model import partition
from simulator.model.layout import Layout
from simulator.model.memory_plan import stage_shapes
from simulator.model.recompute import RecomputePolicy, plan_stages
from simulator.model.transformer.spec import TransformerSpec
from simulator.run.rank_memory import stage_units


@lru_cache(maxsize=1024)
def local_split(spec: TransformerSpec, layer: Layout, stages: int):
    """The spec one rank holds under the layer layout ``layer`` (``Layout.for_layers``) and its
    balanced split into ``stages``, once (every policy, microbatch size and schedule family of
    the split shares them)."""
    local = sharded(spec, layer)
    return local, partition(local, stages)


# policies whose plan of a stage is the plans of its blocks, whatever the split: a stage's
# cached bytes are its blocks' sums (``every:K`` and ``sqrt`` place checkpoints by the split)
BLOCKWISE = ("none", "selective", "full")


@lru_cache(maxsize=256)
def _block_split(spec: TransformerSpec, layer: Layout):
    """``local_split`` into one block a stage (None when the partition does not give that)."""
    local = sharded(spec, layer)
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
def _block_memory(spec: TransformerSpec, layer: Layout, policy: str):
    """Per block (one a stage): (cached bytes of one forward, bytes left between its
    input-gradient and weight-gradient backwards, its units), or None."""
    blocks = _block_split(spec, layer)
    if blocks is None:
        return None
    local = sharded(spec, layer)
    return _stage_memory(local, blocks, policy)


def _stage_memory(local, split, policy: str):
    """Per stage of ``split``: the bytes one forward (one sequence) leaves cached under
    ``policy``, the bytes its input-gradient backward (I) then leaves for its weight-gradient
    one (W), and its units (``stage_units``)."""
    plan = plan_stages(RecomputePolicy.parse(policy), local, split)
    shapes = stage_shapes(local, split, 1, recompute=plan.stages)
    plans = [shapes.plans[shape] for shape in shapes.shape_of_stage]
    cached = tuple(kinds["F"].held for kinds in plans)
    left = tuple(kinds["F"].held + kinds["I"].held for kinds in plans)
    return cached, left, tuple(stage_units(local, split.stage_layers))


def split_memory(spec: TransformerSpec, layer: Layout, stages: int, policy: str):
    """Per stage of ``local_split``: the bytes one forward (one sequence) leaves cached under
    ``policy``, the bytes its I leaves for its W, and its units; under a blockwise policy the
    sums of its blocks' (worked out once for every split), else the split's own."""
    local, split = local_split(spec, layer, stages)
    per_block = _block_memory(spec, layer, policy) if policy in BLOCKWISE else None
    ranges = None
    if per_block is not None:
        ranges = _block_ranges(split, _block_split(spec, layer))
    if ranges is None:
        return _stage_memory(local, split, policy)
    blocks_cached, blocks_left, blocks_units = per_block
    cached = tuple(sum(blocks_cached[a : b + 1]) for a, b in ranges)
    left = tuple(sum(blocks_left[a : b + 1]) for a, b in ranges)
    layer_params = tuple(
        tuple(unit for block in blocks_units[a : b + 1] for unit in block) for a, b in ranges
    )
    return cached, left, layer_params


@lru_cache(maxsize=1024)
def _block_seconds(spec, layer: Layout, rows: int, preset):
    """Per block (one a stage): its roofline ``StageCost`` at ``rows`` sequences, or None."""
    blocks = _block_split(spec, layer)
    if blocks is None:
        return None
    local = sharded(spec, layer)
    timed, _ = stage_seconds(local, blocks, rows, preset, local.layout)
    return timed


@lru_cache(maxsize=1024)
def _per_row_seconds(spec, layer: Layout, stages: int, preset, rows: int):
    """The split's roofline stage costs per sequence at ``rows`` sequences a microbatch (every
    recompute policy shares them): its blocks' sums, timed once for every split."""
    local, split = local_split(spec, layer, stages)
    blocks = _block_seconds(spec, layer, rows, preset)
    ranges = None if blocks is None else _block_ranges(split, _block_split(spec, layer))
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


@lru_cache(maxsize=1024)
def layer_recompute(spec, layer: Layout, rows: int, preset):
    """``layer_recompute_seconds`` of the spec one rank holds under the layer layout ``layer``
    at ``rows`` sequences a microbatch: per layer, so every split and recompute policy shares
    it."""
    return layer_recompute_seconds(sharded(spec, layer), rows, preset)
