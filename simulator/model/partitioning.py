"""How the layer list is split into contiguous stages: balanced by FLOPs (the default), or by
a number of blocks per stage (``even``, Megatron-LM's rule, or given; ``split.Split``).

Why a module of its own: the partition is the one place where the model meets the schedule
(``p * v`` stages); both executors and the reference read it, and only this module decides it.

Where the embedding and the head go: under ``even`` and an explicit ``N,N,...`` the embedding
(and its dropout) joins the first stage and the final norm, LM head and loss join the last, as
in Megatron-LM; under ``balanced`` they sit wherever their FLOPs put the cuts (the embedding is
always on the first stage and the head on the last, being the model's ends).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from simulator.errors import PebbleError
from simulator.model.layer_shapes import per_layer_shape
from simulator.model.spec import LayerInfo, ModelSpec
from simulator.model.split import Split


@dataclass(frozen=True)
class Partition:
    """Contiguous layer ranges, one per stage, in model order."""

    stage_layers: tuple[range, ...] = field(default_factory=tuple)

    @property
    def num_stages(self) -> int:
        return len(self.stage_layers)

    def layer_stages(self) -> list[int]:
        """Stage of every layer, indexed by layer (one pass; stages are contiguous ranges)."""
        return [s for s, layers in enumerate(self.stage_layers) for _ in layers]

    def stage_of_layer(self, layer_index: int) -> int:
        """The stage holding ``layer_index``: a binary search over the stages' first layers."""
        starts = [layers[0] for layers in self.stage_layers]
        stage_index = bisect.bisect_right(starts, layer_index) - 1
        if stage_index < 0 or layer_index not in self.stage_layers[stage_index]:
            raise IndexError(layer_index)
        return stage_index


def partition(spec: ModelSpec, num_stages: int, split: Split | str | None = None) -> Partition:
    """Split the model into ``num_stages`` contiguous stages by ``split`` (``balanced``, the
    default; ``even``; or blocks per stage, ``6,6,5,5``: see ``split.Split``)."""
    if num_stages < 1:
        raise PebbleError(f"a model needs at least one stage, got {num_stages}.")
    rule = Split.parse(split)
    if rule.rule == "balanced":
        return balanced_partition(spec, num_stages)
    return _by_block_counts(spec, num_stages, rule)


def _blocks(infos) -> list[list[LayerInfo]]:
    """The layers grouped by partition unit (``block``), in model order."""
    blocks: list[list[LayerInfo]] = []
    for info in infos:
        if blocks and blocks[-1][0].block == info.block:
            blocks[-1].append(info)
        else:
            blocks.append([info])
    return blocks


def _by_block_counts(spec, num_stages: int, rule: Split) -> Partition:
    """Stages of a given number of transformer blocks (an MLP's Linear blocks) each; a
    transformer's embedding joins the first stage and its head the last."""
    blocks = _blocks(spec.layers())
    first, core, last = (
        ([blocks[0]], blocks[1:-1], [blocks[-1]]) if spec.is_transformer else ([], blocks, [])
    )
    what = "transformer blocks" if spec.is_transformer else "Linear blocks"
    counts = rule.block_counts(len(core), num_stages, what)
    ranges, taken = [], 0
    for stage, count in enumerate(counts):
        ends = (stage == 0 and first) or (stage == num_stages - 1 and last)
        if count == 0 and not ends:
            raise PebbleError(
                f"--split {rule.to_text()} leaves stage {stage} without a block; only a "
                "transformer's first and last stages may hold none (they hold the embedding "
                "and the head)."
            )
        units = (first if stage == 0 else []) + core[taken : taken + count]
        units += last if stage == num_stages - 1 else []
        taken += count
        ranges.append(range(units[0][0].index, units[-1][-1].index + 1))
    return Partition(tuple(ranges))


def balanced_partition(spec: ModelSpec, num_stages: int) -> Partition:
    """Split the model into ``num_stages`` contiguous stages balanced by forward+backward FLOPs.

    Cuts fall between blocks (Linear + its norm and activation) when there are enough blocks,
    so a stage never separates a Linear from its activation; otherwise between single layers.
    """
    infos = spec.layers()
    blocks = _blocks(infos)
    if len(blocks) < num_stages and not spec.is_transformer:  # a transformer block never splits
        blocks = [[info] for info in infos]
    if len(blocks) < num_stages:
        raise PebbleError(
            f"the model has {len(blocks)} {'blocks' if spec.is_transformer else 'layers'} but the "
            f"schedule needs {num_stages} stages; use a deeper model (--model) or fewer "
            "ranks/chunks."
        )

    def layer_flops(info: LayerInfo) -> float:
        f = info.flops()
        return f.F + f.I + f.W

    flops = per_layer_shape(spec, layer_flops)
    costs = [sum(flops[info.index] for info in b) for b in blocks]
    total = sum(costs)
    # Cut after block k when that boundary is the one nearest the stage's cumulative share
    # (taking block k+1 too would overshoot the share by more than stopping here falls short),
    # keeping every stage non-empty and leaving at least one block for each remaining stage.
    cuts: list[int] = []
    running = 0.0
    for k, c in enumerate(costs[:-1]):
        running += c
        stage = len(cuts) + 1
        if stage >= num_stages:
            break
        remaining_blocks = len(costs) - (k + 1)
        must_cut = remaining_blocks == num_stages - stage
        share = total * stage / num_stages
        if must_cut or running + costs[k + 1] / 2 >= share - 1e-9 * total:
            cuts.append(k + 1)
    bounds = [0, *cuts, len(blocks)]
    ranges = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        first = blocks[lo][0].index
        last = blocks[hi - 1][-1].index
        ranges.append(range(first, last + 1))
    return Partition(tuple(ranges))


def boundary_bytes(spec, partition: Partition, rows: int) -> tuple[int, ...]:
    """Bytes each stage sends to the next per microbatch (its last layer's output)."""
    layers = spec.layers()
    return tuple(spec.output_bytes(layers[r[-1]], rows) for r in partition.stage_layers)


def param_bytes(spec) -> tuple[int, ...]:
    """Parameter bytes per layer (on one tensor-parallel rank), for the gradient all-reduce."""
    return tuple(spec.param_count(info) * spec.itemsize for info in spec.layers())
