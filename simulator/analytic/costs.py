"""The cost and memory model the analytic executor runs on.

Why three sources: unit costs reproduce the papers' formulas exactly (F = I = W = 1); FLOP costs
answer "what would this model do on that hardware" before anything runs; a measured profile
(written by the Ray executor) lets a small real run predict a bigger one.

Every time is per stage and per microbatch. A stage's work has three parts, its forward ``F``,
input-backward ``I`` and weight-backward ``W`` (``schedules.kind_traits``); each cost model prices
the parts, and an action kind costs its shares of them as its ``KindRule`` says (``B`` is
``I + W``), unless a profile measured the kind itself. A point-to-point transfer between ranks
costs ``latency + bytes / bandwidth``; between two stages on the same rank (the turn of a V
schedule) it is free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from schedules.actions import Schedule
from schedules.dependencies import PIPELINE_RULE, WORK_PARTS, DependencyRule, Kind
from simulator.errors import PebbleError
from simulator.model import ModelSpec, Partition
from simulator.model.partitioning import boundary_bytes, param_bytes


@dataclass(frozen=True)
class StageCost:
    """Time of one action of each kind for one microbatch on one stage.

    ``F``, ``I`` and ``W`` price the stage's three work parts; a kind costs its ``rule``'s
    shares of them (``KindRule.work``). ``B`` is the full backward's time when a profile
    measured it, and ``extra`` any other kind's measured time: a measured kind costs what was
    measured. Why the rule rides along: the executor asks ``of(kind)`` for each kind its dry
    run's rule has, so a kind added to the rule is priced without anything else knowing it."""

    F: float
    I: float
    W: float
    B: float | None = None
    extra: tuple[tuple[str, float], ...] = ()  # other measured kinds: (kind, time)
    rule: DependencyRule = field(default=PIPELINE_RULE, repr=False, hash=False)

    @property
    def parts(self) -> dict[str, float]:
        """The work parts' times: ``{"F": ..., "I": ..., "W": ...}``."""
        return {part: getattr(self, part) for part in WORK_PARTS}

    @property
    def measured(self) -> dict[str, float]:
        """The kinds measured as a whole (``B`` and ``extra``), with their times."""
        full = {} if self.B is None else {Kind.B.value: self.B}
        return {**full, **dict(self.extra)}

    def of(self, kind: str) -> float:
        """Time of one action of ``kind``: what was measured, else its shares of the parts
        (``B`` is ``I + W``); a kind the rule does not know costs nothing."""
        if self.B is not None and kind == Kind.B.value:
            return self.B
        for measured_kind, seconds in self.extra:
            if measured_kind == kind:
                return seconds
        rule = self.rule.kinds.get(kind)
        return 0.0 if rule is None else rule.work.price(self.F, self.I, self.W)


@dataclass(frozen=True)
class Hardware:
    """A device and its links: sustained FLOP/s; the pipeline/data-parallel link's bandwidth
    (bytes/s) and latency (s); and the tensor-parallel link's bandwidth (inside a node)."""

    flops_per_second: float = 1e12
    link_bandwidth: float = 25e9
    link_latency: float = 5e-6
    tp_bandwidth: float = math.inf
    # the preset timed on the roofline (None: FLOPs at ``flops_per_second``), for the bounds
    # that must read the roofline's own stage times
    preset: object = None


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
    # per stage, the seconds of exposed tensor-parallel communication in each pass that
    # carries activations (F, I): inside the action times, named for the step's breakdown
    tensor_comm: tuple[float, ...] = ()
    # a gradient's data-parallel reduction starts when it is complete (True), or not before its
    # rank has finished the step's backward (False: Megatron-LM's default)
    overlap_grad_reduce: bool = True
    # the once-a-step reduction's ring factor on (D-1)/D of the gradient bytes: 2 an
    # all-reduce, 1 a reduce-scatter (a distributed optimizer), 0 none (sharded gradients are
    # reduce-scattered inside the backward passes instead; ``roofline_costs``)
    grad_reduce_factor: float = 2.0
    # per layer of the model, the seconds its forward takes and the seconds its selective
    # recompute re-runs (the roofline's kernels): a recompute is priced by them when given,
    # else by its FLOPs' share of the stage's forward (``recompute_costs``)
    recompute_seconds: tuple[tuple[float, float], ...] = ()

    def with_rule(self, rule: DependencyRule) -> CostModel:
        """The same costs, each kind priced by ``rule``'s traits (a rule with more kinds)."""
        return replace(self, stage_costs=tuple(replace(c, rule=rule) for c in self.stage_costs))

    def transfer_time(self, stage_index: int) -> float:
        """Time to move stage ``stage_index``'s output (or its gradient) to the neighbour."""
        size = self.boundary_bytes[stage_index] if self.boundary_bytes else 0
        return self.comm_latency + (size / self.comm_bandwidth if size else 0.0)

    def allreduce_time(self, layer_index: int, replicas: int) -> float:
        """The layer's once-a-step gradient reduction: a ring all-reduce moves 2 (D-1)/D of its
        parameter bytes over the link (``grad_reduce_factor`` 2), a reduce-scatter (D-1)/D
        (1); none when the passes reduced them (0)."""
        if replicas <= 1 or self.grad_reduce_factor <= 0:
            return 0.0
        size = self.param_bytes[layer_index] if self.param_bytes else 0
        factor = self.grad_reduce_factor
        return self.allreduce_latency + factor * (replicas - 1) / replicas * size / (
            self.allreduce_bandwidth
        )


def with_recompute(costs: CostModel, ratios: tuple[float, ...]) -> CostModel:
    """``costs`` with each stage's backward that sends the gradient (``I``, and ``B``: the kinds
    whose ``KindRule.sends_gradient``) longer by its recompute: ``ratio`` times the stage's
    forward (the recompute's seconds over the forward's where the cost model times layers,
    ``recompute_costs.stage_recompute_shares``, else recompute FLOPs over forward FLOPs,
    ``recompute_costs.stage_recompute_flops``).
    The input-backward part grows, so every kind with a share of it does; a kind measured whole
    grows by the recompute if it sends the gradient. From a profile the forward is measured, so
    the recompute costs what that share of the measured forward took; from FLOPs it is those
    FLOPs' time, tensor-parallel collectives included in proportion (a recomputed block re-runs
    its all-reduces)."""
    if not any(ratios):
        return costs
    stage_costs = tuple(_recomputed(c, r) for c, r in zip(costs.stage_costs, ratios, strict=True))
    return replace(costs, stage_costs=stage_costs)


def _recomputed(c: StageCost, ratio: float) -> StageCost:
    def longer(kind: str, time: float) -> float:
        rule = c.rule.kinds.get(kind)
        return time + ratio * c.F if rule is not None and rule.sends_gradient else time

    full = None if c.B is None else longer(Kind.B.value, c.B)
    extra = tuple((kind, longer(kind, time)) for kind, time in c.extra)
    return replace(c, I=c.I + ratio * c.F, B=full, extra=extra)


def parse_unit_costs(text: str, rule: DependencyRule = PIPELINE_RULE) -> dict[str, float]:
    """``F=1,I=1,W=1`` (any subset of the rule's kinds) -> the work parts' costs
    {"F": 1.0, "I": 1.0, "W": 1.0}: a kind's number is spread over the parts it does, which
    cost alike (``B=2`` sets I = W = 1; ``KindRule.work``)."""
    costs = dict.fromkeys(WORK_PARTS, 1.0)
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip().upper()
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        known = key in rule.kinds and len(rule.kinds[key].work) > 0
        if not sep or not known or number < 0 or not math.isfinite(number):
            raise PebbleError(
                f"cannot read cost {part!r}; write e.g. --costs F=1,I=1,W=1 "
                "with non-negative numbers."
            )
        costs.update(rule.kinds[key].work.spread(number))
    return costs


def unit_costs(
    schedule: Schedule,
    partition: Partition,
    f: float = 1.0,
    i: float = 1.0,
    w: float = 1.0,
    comm_latency: float = 0.0,
    rule: DependencyRule = PIPELINE_RULE,
) -> CostModel:
    """The work parts F, I, W each cost ``f``, ``i``, ``w`` for a rank's whole slice of the
    model, divided among its chunks by their share of the rank's layers (so v equal chunks each
    cost 1/v); each of ``rule``'s kinds costs its shares of them."""
    shares = []
    for stage_index, layers in enumerate(partition.stage_layers):
        rank = schedule.stage_to_rank[stage_index]
        rank_layers = sum(len(partition.stage_layers[s]) for s in schedule.stages_of_rank(rank))
        shares.append(len(layers) / rank_layers)
    return CostModel(
        stage_costs=tuple(StageCost(f * s, i * s, w * s, rule=rule) for s in shares),
        comm_latency=comm_latency,
        time_unit="unit",
    )


def flop_costs(
    spec: ModelSpec,
    partition: Partition,
    rows: int,
    hardware: Hardware,
    comm: bool = True,
    rule: DependencyRule = PIPELINE_RULE,
) -> CostModel:
    """Seconds from the model's FLOPs per work part and the hardware's sustained FLOP/s, plus
    the tensor-parallel collectives of each transformer block (``tp_collective_time``) in the
    forward and the input-backward (the passes that carry activations); each of ``rule``'s
    kinds costs its shares of the parts."""
    infos = spec.layers()
    collective = tp_collective_time(spec, rows, hardware)
    stage_costs = []
    for layers in partition.stage_layers:
        totals = dict.fromkeys(WORK_PARTS, 0.0)
        for index in layers:
            flops = infos[index].flops()
            for part in totals:
                totals[part] += getattr(flops, part) * rows / hardware.flops_per_second
        blocks = {infos[i].block for i in layers if getattr(infos[i], "is_transformer_block", 0)}
        for part in _COLLECTIVE_PARTS:
            totals[part] += len(blocks) * collective
        stage_costs.append(StageCost(**totals, rule=rule))
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


_COLLECTIVE_PARTS = ("F", "I")  # the work parts whose pass all-reduces the activations (Megatron)


def tp_collective_time(spec, rows: int, hardware: Hardware) -> float:
    """Seconds of one transformer block's tensor-parallel communication in one pass (forward,
    or the input-gradient backward) of a microbatch of ``rows`` sequences.

    Megatron's tensor parallelism ends the attention and the MLP each with an all-reduce of the
    ``s b h`` activations (Shoeybi et al. 2019, Fig. 3): two per pass. With sequence
    parallelism each becomes a reduce-scatter and an all-gather, which a ring moves in the same
    time. A ring all-reduce of M bytes over t ranks sends 2 (t-1)/t M bytes per rank.
    """
    tp = spec.layout.tensor if spec.is_transformer else 1
    if tp <= 1:
        return 0.0
    message = rows * spec.config.seq * spec.config.hidden * spec.itemsize
    return 2 * (2 * (tp - 1) / tp * message / hardware.tp_bandwidth)
