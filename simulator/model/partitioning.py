"""How the layer list is split into contiguous stages, balanced by FLOPs.

Why a module of its own: the partition is the one place where the model meets the schedule
(``p * v`` stages); both executors and the reference read it, and only this module decides it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from simulator.errors import PebbleError
from simulator.model.spec import LayerInfo, ModelSpec


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


def partition(spec: ModelSpec, num_stages: int) -> Partition:
    """Split the model into ``num_stages`` contiguous stages balanced by forward+backward FLOPs.

    Cuts fall between blocks (Linear + its norm and activation) when there are enough blocks,
    so a stage never separates a Linear from its activation; otherwise between single layers.
    """
    if num_stages < 1:
        raise PebbleError(f"a model needs at least one stage, got {num_stages}.")
    infos = spec.layers()
    blocks: list[list[LayerInfo]] = []
    for info in infos:
        if blocks and blocks[-1][0].block == info.block:
            blocks[-1].append(info)
        else:
            blocks.append([info])
    if len(blocks) < num_stages and not spec.is_transformer:  # a transformer block never splits
        blocks = [[info] for info in infos]
    if len(blocks) < num_stages:
        raise PebbleError(
            f"the model has {len(blocks)} {'blocks' if spec.is_transformer else 'layers'} but the "
            f"schedule needs {num_stages} stages; use a deeper model (--model) or fewer "
            "ranks/chunks."
        )

    def cost(block: list[LayerInfo]) -> float:
        total = 0.0
        for info in block:
            f = info.flops()
            total += f.F + f.I + f.W
        return total

    costs = [cost(b) for b in blocks]
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
