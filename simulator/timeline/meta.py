"""The Timeline's ``meta`` block, typed: what run a Timeline describes.

Why a frozen dataclass rather than a dict: every figure, summary and profile reads these fields;
with a dict each reader guessed its own default for a missing key. Here each field has one
default, one type, and ``from_dict`` is the one place a JSON file's meta (schema version 1,
including files written before this type existed) is read and checked: counts within the
limits of ``simulator.timeline.schema``, stage_to_rank and layers consistent with them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from simulator.errors import PebbleError
from simulator.timeline.json_values import (
    boolean,
    count,
    fields_of,
    integer,
    json_type,
    plain_list,
    real,
    text,
    where,
)
from simulator.timeline.kinds import PIPELINE_RULE
from simulator.timeline.schema import (
    MAX_CHUNKS,
    MAX_DP,
    MAX_LAYERS,
    MAX_MICROBATCH_ROWS,
    MAX_MICROBATCHES,
    MAX_RANKS,
    MAX_STAGES,
    MAX_STEPS,
    TIME_UNITS,
)


@dataclass(frozen=True)
class LayerMeta:
    """One layer of the run's model: where it sits and whether it has weights."""

    index: int
    name: str
    kind: str
    stage: int
    rank: int
    has_params: bool
    block: int = -1  # the partition unit (a transformer block, an MLP Linear + activation)


@dataclass(frozen=True)
class ActionMemory:
    """What one action of ``kind`` on ``stage`` does to its rank's activation memory: its net
    change of stored activations (``held``, negative for a backward that frees) and the most
    it holds above the level it started from (``peak``: recomputed activations and the
    gradient tensors a backward holds while a layer runs). Why per (stage, kind) and not per
    action: every microbatch's action does the same, so the events and these few numbers give
    every rank's stored activations between passes and its true peak
    (``stats.activation_levels``), for a measured run as for a predicted one."""

    stage: int
    kind: str
    held: int
    peak: int


MEMORY_FIELDS = ("parameters", "gradients", "optimizer_state", "receive_buffers")
MAX_MEMORY = 2**60  # bytes: an exabyte per rank is beyond any device
MAX_FLOPS = 1e30  # per step
MAX_PEAK_FLOPS = 1e21  # per device
MAX_CORES = 10**7  # cores a run's ranks share
ALONE_KINDS = tuple(PIPELINE_RULE.kinds)  # calibration times each kind of the rule alone


@dataclass(frozen=True)
class RankMemory:
    """Bytes one rank holds for the whole step besides activations: its parameters, their
    gradients, the optimizer state and the buffers that receive from other ranks."""

    parameters: int = 0
    gradients: int = 0
    optimizer_state: int = 0
    receive_buffers: int = 0

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer_state + self.receive_buffers


@dataclass(frozen=True)
class TimelineMeta:
    """Which run a Timeline describes. ``ranks`` None means "as many as the events show"."""

    schedule: str = "?"
    ranks: int | None = None
    microbatches: int | None = None
    chunks: int = 1
    stages: int | None = None
    steps: int = 1
    dp: int = 1
    source: str = "?"
    model: str = ""
    microbatch_rows: int = 0
    time_unit: str = "s"
    stage_to_rank: tuple[int, ...] = ()
    layers: tuple[LayerMeta, ...] = ()
    # whole-rank memory and throughput (empty / 0 / None where the run does not know them)
    rank_memory: tuple[RankMemory, ...] = ()
    memory_capacity: int | None = None  # bytes per device
    flops_per_step: float = 0.0  # the model's FLOPs in one step, all replicas
    tokens_per_step: int = 0  # sequences x tokens (rows for an MLP), all replicas
    devices: int = 0  # ranks x tensor-parallel degree x replicas
    peak_flops: float | None = None  # per device
    # the machine: how many cores the ranks (x dp replicas) shared (None: each rank its own
    # device), and per stage each action kind's seconds measured alone before the run
    # (calibration; a kind the stage never ran is None). Both absent from older files.
    cores: int | None = None
    alone_costs: tuple[dict[str, float | None], ...] = ()
    # activation recomputation: the policy (``--recompute`` text; "" for none) and per rank the
    # FLOPs one step spends recomputing (per tensor-parallel rank and replica)
    recompute: str = ""
    recompute_flops: tuple[float, ...] = ()
    # the parallel layout's text form (``p8 v2 t8 sp c1 e1 d16 z1``; "" in older files)
    layout: str = ""
    # per stage and action kind, its net change of stored activations and the most it holds
    # above its start (gradient buffers and recomputation included): with the events, every
    # rank's stored activations and true peak (``stats.activation_levels``); () in older files
    action_memory: tuple[ActionMemory, ...] = ()
    # per stage, seconds of exposed tensor-parallel communication inside each F and each I
    # part of its actions (a kind has its work shares of them), for the step's breakdown;
    # () when the run has none or does not know
    tensor_comm: tuple[float, ...] = ()
    # activation offload: the policy (``--offload`` text; "" for none) and each device's share
    # of its node's host memory in bytes, which its host activations must fit (None: unknown)
    offload: str = ""
    host_memory_capacity: int | None = None

    def to_dict(self) -> dict:
        # ``asdict``'s result, without its deep copy (every run is checked through this dict):
        # the nested fields are rebuilt below, the others and the rows' fields are scalars
        out = _fields_of(self)
        out["stage_to_rank"] = list(self.stage_to_rank)
        out["layers"] = [_fields_of(layer) for layer in self.layers]
        out["rank_memory"] = [_fields_of(memory) for memory in self.rank_memory]
        out["alone_costs"] = [dict(costs) for costs in self.alone_costs]
        out["recompute_flops"] = list(self.recompute_flops)
        out["action_memory"] = [_fields_of(entry) for entry in self.action_memory]
        out["tensor_comm"] = list(self.tensor_comm)
        # written only when known: older files stay equal
        keys = (
            "cores",
            "alone_costs",
            "recompute",
            "recompute_flops",
            "layout",
            "action_memory",
            "tensor_comm",
            "offload",
            "host_memory_capacity",
        )
        for key in keys:
            if not out[key]:
                del out[key]
        return out

    @classmethod
    def from_dict(cls, data: dict, source=None) -> TimelineMeta:
        """Read a meta block; unknown keys are ignored, missing ones take their defaults.

        Every given value is checked first (``check_meta``): a bad one is one PebbleError that
        names ``source`` (the file), the field and the value."""
        values = check_meta(data, where(source))
        values["layers"] = tuple(LayerMeta(**layer) for layer in values["layers"])
        values["rank_memory"] = tuple(RankMemory(**m) for m in values.get("rank_memory", ()))
        values["alone_costs"] = tuple(values.get("alone_costs", ()))
        values["recompute_flops"] = tuple(values.get("recompute_flops", ()))
        values["tensor_comm"] = tuple(values.get("tensor_comm", ()))
        values["action_memory"] = tuple(
            ActionMemory(**entry) for entry in values.get("action_memory", ())
        )
        return cls(**values)


def _fields_of(item) -> dict:
    """A dataclass's fields by name, values as they are (``asdict`` without its deep copy)."""
    return {f.name: getattr(item, f.name) for f in fields(item)}


# ------------------------------------------------------------------ the check
_COUNTS = {  # field: (limit, its name, may be null)
    "ranks": (MAX_RANKS, "MAX_RANKS", True),
    "microbatches": (MAX_MICROBATCHES, "MAX_MICROBATCHES", True),
    "chunks": (MAX_CHUNKS, "MAX_CHUNKS", False),
    "stages": (MAX_STAGES, "MAX_STAGES", True),
    "steps": (MAX_STEPS, "MAX_STEPS", False),
    "dp": (MAX_DP, "MAX_DP", False),
}
_LAYER_FIELDS = tuple(f.name for f in fields(LayerMeta) if f.name != "block")


def check_meta(data, label: str) -> dict:
    """The known fields of a meta block, checked (see ``simulator.timeline.schema``): counts
    within their limits before anything is sized by them, then stage_to_rank and layers."""
    if not isinstance(data, dict):
        raise PebbleError(f"{label}: meta must be an object, got {json_type(data)}.")
    known = {f.name for f in fields(TimelineMeta)}
    values = {key: value for key, value in data.items() if key in known}
    for key, (limit, limit_name, optional) in _COUNTS.items():
        if key in values:
            values[key] = count(values[key], f"meta.{key}", label, limit, limit_name, optional)
    for key in ("schedule", "source", "model", "offload"):
        if key in values:
            text(values[key], f"meta.{key}", label)
    if "time_unit" in values:
        text(values["time_unit"], "meta.time_unit", label, TIME_UNITS)
    if "microbatch_rows" in values:
        values["microbatch_rows"] = integer(
            values["microbatch_rows"],
            "meta.microbatch_rows",
            label,
            0,
            MAX_MICROBATCH_ROWS,
            " (MAX_MICROBATCH_ROWS)",
        )
    _check_throughput(values, label)
    ranks = values.get("ranks") or MAX_RANKS
    stages = values.get("stages")
    values["stage_to_rank"] = _stage_to_rank(values.get("stage_to_rank"), ranks, stages, label)
    values["layers"] = _layers(values.get("layers"), ranks, stages, values["stage_to_rank"], label)
    return values


def _stage_to_rank(value, ranks: int, stages: int | None, label: str) -> tuple[int, ...]:
    mapping = plain_list(value, "meta.stage_to_rank", label, MAX_STAGES, "MAX_STAGES")
    if mapping and stages is not None and len(mapping) != stages:
        raise PebbleError(
            f"{label}: meta.stage_to_rank has {len(mapping)} entries, but meta.stages is {stages}."
        )
    return tuple(
        integer(rank, f"meta.stage_to_rank[{s}]", label, 0, ranks - 1)
        for s, rank in enumerate(mapping)
    )


def _layers(value, ranks: int, stages, stage_to_rank: tuple, label: str) -> list[dict]:
    """Each layer an object with exactly LayerMeta's fields, a unique index, a stage and rank
    in range (and the rank stage_to_rank gives its stage, when there is a mapping)."""
    layers = plain_list(value, "meta.layers", label, MAX_LAYERS, "MAX_LAYERS")
    last_stage = (stages or len(stage_to_rank) or MAX_STAGES) - 1
    seen: set[int] = set()
    for i, layer in enumerate(layers):
        name = f"meta.layers[{i}]"
        fields_of(layer, name, label, _LAYER_FIELDS, optional=("block",))
        if "block" in layer:
            integer(layer["block"], f"{name}.block", label, -1, MAX_LAYERS)
        index = integer(layer["index"], f"{name}.index", label, 0, MAX_LAYERS - 1)
        if index in seen:
            raise PebbleError(f"{label}: {name}.index is {index}, which an earlier layer has.")
        seen.add(index)
        text(layer["name"], f"{name}.name", label)
        text(layer["kind"], f"{name}.kind", label)
        stage = integer(layer["stage"], f"{name}.stage", label, 0, last_stage)
        rank = integer(layer["rank"], f"{name}.rank", label, 0, ranks - 1)
        boolean(layer["has_params"], f"{name}.has_params", label)
        if stage_to_rank and stage_to_rank[stage] != rank:
            raise PebbleError(
                f"{label}: {name}.rank is {rank}, but meta.stage_to_rank puts stage {stage} "
                f"on rank {stage_to_rank[stage]}."
            )
    return [
        {
            **layer,
            "index": int(layer["index"]),
            "stage": int(layer["stage"]),
            "rank": int(layer["rank"]),
            "block": int(layer.get("block", -1)),
        }
        for layer in layers
    ]


def _check_throughput(values: dict, label: str) -> None:
    """The whole-rank memory and throughput fields, where given."""
    if "rank_memory" in values:
        entries = plain_list(
            values["rank_memory"], "meta.rank_memory", label, MAX_RANKS, "MAX_RANKS"
        )
        checked = []
        for r, entry in enumerate(entries):
            name = f"meta.rank_memory[{r}]"
            row = fields_of(entry, name, label, MEMORY_FIELDS)
            checked.append(
                {k: integer(row[k], f"{name}.{k}", label, 0, MAX_MEMORY) for k in MEMORY_FIELDS}
            )
        values["rank_memory"] = checked
    if values.get("memory_capacity") is not None:
        values["memory_capacity"] = integer(
            values["memory_capacity"], "meta.memory_capacity", label, 1, MAX_MEMORY
        )
    if values.get("host_memory_capacity") is not None:
        values["host_memory_capacity"] = integer(
            values["host_memory_capacity"], "meta.host_memory_capacity", label, 1, MAX_MEMORY
        )
    if "flops_per_step" in values:
        values["flops_per_step"] = real(
            values["flops_per_step"], "meta.flops_per_step", label, 0.0, MAX_FLOPS
        )
    for key, high in (("tokens_per_step", 10**15), ("devices", 10**9)):
        if key in values:
            values[key] = integer(values[key], f"meta.{key}", label, 0, high)
    if values.get("peak_flops") is not None:
        values["peak_flops"] = real(
            values["peak_flops"], "meta.peak_flops", label, 1.0, MAX_PEAK_FLOPS
        )
    if values.get("cores") is not None:
        values["cores"] = integer(values["cores"], "meta.cores", label, 1, MAX_CORES)
    if "recompute" in values:
        values["recompute"] = text(values["recompute"], "meta.recompute", label)[:200]
    if "layout" in values:
        values["layout"] = text(values["layout"], "meta.layout", label)[:200]
    if "recompute_flops" in values:
        entries = plain_list(
            values["recompute_flops"], "meta.recompute_flops", label, MAX_RANKS, "MAX_RANKS"
        )
        values["recompute_flops"] = [
            real(v, f"meta.recompute_flops[{r}]", label, 0.0, MAX_FLOPS)
            for r, v in enumerate(entries)
        ]
    if "action_memory" in values:
        values["action_memory"] = _action_memory(values["action_memory"], label)
    if "tensor_comm" in values:
        entries = plain_list(
            values["tensor_comm"], "meta.tensor_comm", label, MAX_STAGES, "MAX_STAGES"
        )
        values["tensor_comm"] = [
            real(v, f"meta.tensor_comm[{s}]", label, 0.0, 1e12) for s, v in enumerate(entries)
        ]
    if "alone_costs" in values:
        entries = plain_list(
            values["alone_costs"], "meta.alone_costs", label, MAX_STAGES, "MAX_STAGES"
        )
        values["alone_costs"] = [_alone_costs(entry, r, label) for r, entry in enumerate(entries)]


def _action_memory(value, label: str) -> list[dict]:
    """Each entry a stage, a kind, a net change (signed) and a peak above the start."""
    entries = plain_list(value, "meta.action_memory", label, 64 * MAX_STAGES, "64 x MAX_STAGES")
    checked = []
    for i, entry in enumerate(entries):
        name = f"meta.action_memory[{i}]"
        row = fields_of(entry, name, label, ("stage", "kind", "held", "peak"))
        checked.append(
            {
                "stage": integer(row["stage"], f"{name}.stage", label, 0, MAX_STAGES - 1),
                "kind": text(row["kind"], f"{name}.kind", label),
                "held": integer(row["held"], f"{name}.held", label, -MAX_MEMORY, MAX_MEMORY),
                "peak": integer(row["peak"], f"{name}.peak", label, 0, MAX_MEMORY),
            }
        )
    return checked


def _alone_costs(entry, stage: int, label: str) -> dict[str, float | None]:
    """One stage's alone seconds per kind of the rule (F, B, I, W), each a time or null."""
    name = f"meta.alone_costs[{stage}]"
    row = fields_of(entry, name, label, (), ALONE_KINDS)
    return {
        kind: None if row.get(kind) is None else real(row[kind], f"{name}.{kind}", label)
        for kind in ALONE_KINDS
    }
