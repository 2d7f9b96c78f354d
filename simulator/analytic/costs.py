"""The cost and memory model the analytic executor runs on.

Why three sources: unit costs reproduce the papers' formulas exactly (F = I = W = 1); FLOP costs
answer "what would this model do on that hardware" before anything runs; a measured profile
(written by the Ray executor) lets a small real run predict a bigger one.

Every time is per stage and per microbatch. ``B`` costs ``I + W`` unless a profile measured it.
A point-to-point transfer between ranks costs ``latency + bytes / bandwidth``; between two stages
on the same rank (the turn of a V schedule) it is free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from schedules.actions import Schedule
from simulator.errors import PebbleError
from simulator.model import ModelSpec, Partition
from simulator.model.partitioning import boundary_bytes, param_bytes


@dataclass(frozen=True)
class StageCost:
    """Time of one action of each kind for one microbatch on one stage."""

    F: float
    I: float
    W: float
    B: float | None = None
    extra: tuple[tuple[str, float], ...] = ()  # kinds beyond F, I, W, B: (kind, time)

    def of(self, kind: str) -> float:
        """Time of one action of ``kind``: ``B`` is ``I + W`` unless measured; a kind the
        model has no time for costs nothing."""
        if kind == "B":
            return self.I + self.W if self.B is None else self.B
        if kind in ("F", "I", "W"):
            return getattr(self, kind)
        return dict(self.extra).get(kind, 0.0)


@dataclass(frozen=True)
class Hardware:
    """A device and its links: sustained FLOP/s; the pipeline/data-parallel link's bandwidth
    (bytes/s) and latency (s); and the tensor-parallel link's bandwidth (inside a node)."""

    flops_per_second: float = 1e12
    link_bandwidth: float = 25e9
    link_latency: float = 5e-6
    tp_bandwidth: float = math.inf


@dataclass(frozen=True)
class CostModel:
    """Per-stage action costs plus what a transfer between ranks costs.

    With a measured profile it also carries the runtime's costs around each action: an action
    that starts a call (its input comes from another rank, or its rank's previous action sent
    its output away, or it is the rank's first) waits ``call_overhead`` on its rank first, and
    the call costs ``call_cpu`` of CPU elsewhere; an action whose output goes to another rank
    holds its rank ``send_overhead`` longer (handing the output to the object store; the
    transfer time counts from the action's end and includes it); ``background_load`` cores are
    busy all along. ``call_cpu`` and ``background_load`` matter only when the ranks share cores
    (``sharing``).
    """

    stage_costs: tuple[StageCost, ...]
    boundary_bytes: tuple[int, ...] = ()  # bytes sent from stage s to s+1 (and back), per mb
    comm_latency: float = 0.0
    comm_bandwidth: float = math.inf
    optimizer_time: float = 0.0
    allreduce_latency: float = 0.0
    allreduce_bandwidth: float = math.inf
    param_bytes: tuple[int, ...] = ()  # per layer, for the data-parallel all-reduce
    time_unit: str = "unit"
    # the runtime around each action (``sharing.Runtime``; all 0 on a bare device): the rank's
    # CPU time to take a call and to hand an output to another rank, the CPU a call costs off
    # the rank, and cores busy with other work
    call_overhead: float = 0.0
    send_overhead: float = 0.0
    call_cpu: float = 0.0
    background_load: float = 0.0

    def transfer_time(self, stage_index: int) -> float:
        """Time to move stage ``stage_index``'s output (or its gradient) to the neighbour."""
        size = self.boundary_bytes[stage_index] if self.boundary_bytes else 0
        return self.comm_latency + (size / self.comm_bandwidth if size else 0.0)

    def allreduce_time(self, layer_index: int, replicas: int) -> float:
        """Ring all-reduce: 2 (D-1)/D of the layer's parameter bytes over the link."""
        if replicas <= 1:
            return 0.0
        size = self.param_bytes[layer_index] if self.param_bytes else 0
        return self.allreduce_latency + 2 * (replicas - 1) / replicas * size / (
            self.allreduce_bandwidth
        )


def with_recompute(costs: CostModel, ratios: tuple[float, ...]) -> CostModel:
    """``costs`` with each stage's backward (``I``, and ``B`` when measured) longer by its
    recompute: ``ratio`` times the stage's forward (recompute FLOPs over forward FLOPs, from
    ``recompute_costs.stage_recompute_flops``). From a profile the forward is measured, so the
    recompute costs what that share of the measured forward took; from FLOPs it is those
    FLOPs' time, tensor-parallel collectives included in proportion (a recomputed block re-runs
    its all-reduces)."""
    if not any(ratios):
        return costs
    stage_costs = tuple(
        replace(c, I=c.I + r * c.F, B=None if c.B is None else c.B + r * c.F)
        for c, r in zip(costs.stage_costs, ratios, strict=True)
    )
    return replace(costs, stage_costs=stage_costs)


def parse_unit_costs(text: str) -> dict[str, float]:
    """``F=1,I=1,W=1`` (any subset) -> {"F": 1.0, ...}; ``B=2`` sets I = W = 1."""
    costs = {"F": 1.0, "I": 1.0, "W": 1.0}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip().upper()
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not sep or key not in ("F", "I", "W", "B") or number < 0 or not math.isfinite(number):
            raise PebbleError(
                f"cannot read cost {part!r}; write e.g. --costs F=1,I=1,W=1 "
                "with non-negative numbers."
            )
        if key == "B":
            costs["I"] = costs["W"] = number / 2
        else:
            costs[key] = number
    return costs


def unit_costs(
    schedule: Schedule,
    partition: Partition,
    f: float = 1.0,
    i: float = 1.0,
    w: float = 1.0,
    comm_latency: float = 0.0,
) -> CostModel:
    """F, I, W each cost ``f``, ``i``, ``w`` for a rank's whole slice of the model, divided among
    its chunks by their share of the rank's layers (so v equal chunks each cost 1/v)."""
    shares = []
    for stage_index, layers in enumerate(partition.stage_layers):
        rank = schedule.stage_to_rank[stage_index]
        rank_layers = sum(len(partition.stage_layers[s]) for s in schedule.stages_of_rank(rank))
        shares.append(len(layers) / rank_layers)
    return CostModel(
        stage_costs=tuple(StageCost(f * s, i * s, w * s) for s in shares),
        comm_latency=comm_latency,
        time_unit="unit",
    )


def flop_costs(
    spec: ModelSpec, partition: Partition, rows: int, hardware: Hardware, comm: bool = True
) -> CostModel:
    """Seconds from the model's FLOPs per phase and the hardware's sustained FLOP/s, plus the
    tensor-parallel collectives of each transformer block (``tp_collective_time``)."""
    infos = spec.layers()
    collective = tp_collective_time(spec, rows, hardware)
    stage_costs = []
    for layers in partition.stage_layers:
        totals = {"F": 0.0, "I": 0.0, "W": 0.0}
        for index in layers:
            flops = infos[index].flops()
            for kind in totals:
                totals[kind] += getattr(flops, kind) * rows / hardware.flops_per_second
        blocks = {infos[i].block for i in layers if getattr(infos[i], "is_transformer_block", 0)}
        totals["F"] += len(blocks) * collective
        totals["I"] += len(blocks) * collective
        stage_costs.append(StageCost(**totals))
    return CostModel(
        stage_costs=tuple(stage_costs),
        boundary_bytes=boundary_bytes(spec, partition, rows),
        comm_latency=hardware.link_latency if comm else 0.0,
        comm_bandwidth=hardware.link_bandwidth if comm else math.inf,
        allreduce_latency=hardware.link_latency,
        allreduce_bandwidth=hardware.link_bandwidth,
        param_bytes=param_bytes(spec),
        time_unit="s",
    )


def tp_collective_time(spec, rows: int, hardware: Hardware) -> float:
    """Seconds of one transformer block's tensor-parallel communication in one pass (forward,
    or the input-gradient backward) of a microbatch of ``rows`` sequences.

    Megatron's tensor parallelism ends the attention and the MLP each with an all-reduce of the
    ``s b h`` activations (Shoeybi et al. 2019, Fig. 3): two per pass. With sequence
    parallelism each becomes a reduce-scatter and an all-gather, which a ring moves in the same
    time. A ring all-reduce of M bytes over t ranks sends 2 (t-1)/t M bytes per rank.
    """
    tp = getattr(spec, "tp", 1)
    if tp <= 1:
        return 0.0
    message = rows * spec.config.seq * spec.config.hidden * spec.itemsize
    return 2 * (2 * (tp - 1) / tp * message / hardware.tp_bandwidth)
