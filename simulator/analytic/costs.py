"""The cost and memory model the analytic executor runs on.

Why three sources: unit costs reproduce the papers' formulas exactly (F = I = W = 1); FLOP costs
answer "what would this model do on that hardware" before anything runs; a measured profile
(written by the Ray executor) lets a small real run predict a bigger one.

Every time is per stage and per microbatch. ``B`` costs ``I + W`` unless a profile measured it.
A point-to-point transfer between ranks costs ``latency + bytes / bandwidth``; between two stages
on the same rank (the turn of a V schedule) it is free.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from schedules.actions import Schedule
from simulator.errors import PebbleError
from simulator.model import ModelSpec, Partition

PROFILE_VERSION = 1


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
    """A device and its link: sustained FLOP/s, bandwidth in bytes/s, latency in seconds."""

    flops_per_second: float = 1e12
    link_bandwidth: float = 25e9
    link_latency: float = 5e-6


@dataclass(frozen=True)
class CostModel:
    """Per-stage action costs plus what a transfer between ranks costs."""

    stage_costs: tuple[StageCost, ...]
    boundary_bytes: tuple[int, ...] = ()  # bytes sent from stage s to s+1 (and back), per mb
    comm_latency: float = 0.0
    comm_bandwidth: float = math.inf
    optimizer_time: float = 0.0
    allreduce_latency: float = 0.0
    allreduce_bandwidth: float = math.inf
    param_bytes: tuple[int, ...] = ()  # per layer, for the data-parallel all-reduce
    time_unit: str = "unit"

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


@dataclass
class Profile:
    """Measured mean seconds per stage and action kind, as the Ray executor writes it.

    File format (JSON): ``{"version": 1, "model": ModelSpec text, "microbatch_rows": int,
    "stages": [[first_layer, last_layer], ...], "costs": [{"F": s, "I": s, "W": s, "B": s}, ...],
    "transfer": {"latency": s, "bandwidth": bytes/s}, "step_overhead": s}``; a kind never
    measured is ``null``; ``step_overhead`` is the commit, reduction and optimizer time between
    steps, which a multi-step prediction adds after every step.
    """

    model: str
    microbatch_rows: int
    stages: list[list[int]]
    costs: list[dict[str, float | None]]
    transfer: dict[str, float] = field(default_factory=dict)
    version: int = PROFILE_VERSION
    step_overhead: float = 0.0  # seconds between one step's last action and the next's first

    def save(self, path) -> None:
        with open(path, "w") as handle:
            json.dump(asdict(self), handle, indent=1)

    @classmethod
    def load(cls, path) -> Profile:
        try:
            with open(path) as handle:
                data = json.load(handle)
            if data.get("version") != PROFILE_VERSION:
                raise PebbleError(f"{path} is not a version {PROFILE_VERSION} cost profile.")
            return cls(**data)
        except FileNotFoundError:
            raise PebbleError(f"no cost profile at {path}.") from None
        except (json.JSONDecodeError, TypeError, AttributeError) as exc:
            raise PebbleError(f"{path} is not a pebblesim cost profile ({exc}).") from None


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


def _boundary_bytes(spec: ModelSpec, partition: Partition, rows: int) -> tuple[int, ...]:
    layers = spec.layers()
    return tuple(rows * layers[r[-1]].out_features * spec.itemsize for r in partition.stage_layers)


def _param_bytes(spec: ModelSpec) -> tuple[int, ...]:
    out = []
    for info in spec.layers():
        if info.kind == "linear":
            out.append((info.in_features + 1) * info.out_features * spec.itemsize)
        elif info.kind == "layernorm":
            out.append(2 * info.in_features * spec.itemsize)
        else:
            out.append(0)
    return tuple(out)


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
    """Seconds from the model's FLOPs per phase and the hardware's sustained FLOP/s."""
    infos = spec.layers()
    stage_costs = []
    for layers in partition.stage_layers:
        totals = {"F": 0.0, "I": 0.0, "W": 0.0}
        for index in layers:
            flops = infos[index].flops()
            for kind in totals:
                totals[kind] += getattr(flops, kind) * rows / hardware.flops_per_second
        stage_costs.append(StageCost(**totals))
    return CostModel(
        stage_costs=tuple(stage_costs),
        boundary_bytes=_boundary_bytes(spec, partition, rows),
        comm_latency=hardware.link_latency if comm else 0.0,
        comm_bandwidth=hardware.link_bandwidth if comm else math.inf,
        allreduce_latency=hardware.link_latency,
        allreduce_bandwidth=hardware.link_bandwidth,
        param_bytes=_param_bytes(spec),
        time_unit="s",
    )


def _stage_flops(spec: ModelSpec, layers: range) -> dict[str, float]:
    """FLOPs per microbatch row of one stage, per phase."""
    infos = spec.layers()
    totals = {"F": 0.0, "I": 0.0, "W": 0.0}
    for index in layers:
        flops = infos[index].flops()
        for kind in totals:
            totals[kind] += getattr(flops, kind)
    return totals


def _measured(costs: dict, flops: dict[str, float]) -> tuple[float, float, float, float | None]:
    """F, I, W (and B if measured) seconds of one profiled stage. A schedule without a split
    backward measured only B: it is divided between I and W by their FLOPs."""
    f, i, w, b = (costs.get(k) for k in ("F", "I", "W", "B"))
    if b is not None and (i is None or w is None):
        backward = flops["I"] + flops["W"]
        share = flops["I"] / backward if backward else 0.5
        i, w = b * share, b * (1 - share)
    if f is None or i is None or w is None:
        raise PebbleError("the profile lacks F, I or W times for a stage.")
    return f, i, w, b


def profile_costs(profile: Profile, spec: ModelSpec, partition: Partition, rows: int) -> CostModel:
    """Seconds from a measured profile, for this model, split and microbatch size.

    On the profiled split the measured stage times are used directly (scaled linearly with
    rows). On any other split, or another model, the profile is a calibration: it gives the
    FLOP/s this machine sustained in forwards and in backwards, and each new stage costs its
    FLOPs at those rates. That is how a small measured run predicts a bigger one.
    """
    profiled = ModelSpec.parse(profile.model)
    profiled_stages = [range(a, b + 1) for a, b in profile.stages]
    measured = [
        _measured(c, _stage_flops(profiled, r))
        for c, r in zip(profile.costs, profiled_stages, strict=True)
    ]
    same_split = profiled == spec and [[r[0], r[-1]] for r in partition.stage_layers] == [
        list(s) for s in profile.stages
    ]
    stage_costs = []
    if same_split:
        factor = rows / profile.microbatch_rows
        for f, i, w, b in measured:
            stage_costs.append(
                StageCost(f * factor, i * factor, w * factor, None if b is None else b * factor)
            )
    else:
        work = {"F": 0.0, "I": 0.0, "W": 0.0}
        seconds = {"F": 0.0, "I": 0.0, "W": 0.0}
        for (f, i, w, _b), layers in zip(measured, profiled_stages, strict=True):
            flops = _stage_flops(profiled, layers)
            for kind, t in (("F", f), ("I", i), ("W", w)):
                work[kind] += flops[kind] * profile.microbatch_rows
                seconds[kind] += t
        rate = {k: work[k] / seconds[k] if seconds[k] > 0 else math.inf for k in work}
        for layers in partition.stage_layers:
            flops = _stage_flops(spec, layers)
            stage_costs.append(StageCost(**{k: flops[k] * rows / rate[k] for k in flops}))
    transfer = profile.transfer or {}
    return CostModel(
        optimizer_time=profile.step_overhead,
        stage_costs=tuple(stage_costs),
        boundary_bytes=_boundary_bytes(spec, partition, rows),
        comm_latency=float(transfer.get("latency", 0.0)),
        comm_bandwidth=float(transfer.get("bandwidth", math.inf)) or math.inf,
        allreduce_latency=float(transfer.get("latency", 0.0)),
        allreduce_bandwidth=float(transfer.get("bandwidth", math.inf)) or math.inf,
        param_bytes=_param_bytes(spec),
        time_unit="s",
    )
