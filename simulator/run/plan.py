"""A run, planned: the schedule placed on a model under a layout, with everything an executor
needs decided once.

Why a layer of its own: the command line, the demo, the benchmarks, the tests and the notebooks
all build runs, and both executors must agree on the run they are given. ``plan_run`` builds a
complete, validated ``RunPlan`` from plain values (no argparse objects), and the executors read
the partition, the microbatch split, the layout and the recompute plan from it; nothing
downstream works them out again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from schedules.actions import Schedule
from simulator.errors import PebbleError
from simulator.model import ModelSpec, Partition, partition
from simulator.model.batch import microbatch_rows
from simulator.model.layout import UNSHARDED, Layout
from simulator.model.offload import OffloadPlan, OffloadPolicy
from simulator.model.offload import plan_stages as offload_stages
from simulator.model.parse import parse_model
from simulator.model.precision import precision_named
from simulator.model.recompute import RecomputePlan, RecomputePolicy
from simulator.model.reference import TrainConfig
from simulator.model.split import BALANCED, Split
from simulator.model.transformer.spec import TransformerSpec
from simulator.run.recompute import resolve_recompute

DEFAULT_MICROBATCH_ROWS = 32  # rows of an MLP per microbatch when no batch size is given


@dataclass(frozen=True)
class CostSource:
    """Which cost model times the run: unit costs (``units`` like ``F=1,I=1,W=1``, and a latency
    per transfer), FLOP costs on ``hardware`` (a preset or ``flops=...``), or a measured
    ``profile`` file. A value, so a plan says how it will be timed without building the model."""

    units: str | None = None
    comm_latency: float = 0.0
    hardware: str | None = None
    profile: str | None = None

    def __post_init__(self) -> None:
        if not self.comm_latency >= 0:
            raise PebbleError(f"--comm-latency must not be negative, got {self.comm_latency}.")
        if sum(x is not None for x in (self.units, self.hardware, self.profile)) > 1:
            raise PebbleError("choose one cost source: --costs, --hardware or --profile.")


@dataclass(frozen=True)
class RunPlan:
    """A schedule placed on a model under a layout: what every executor and report agrees on.

    ``spec`` is the model as this layout counts it (a transformer's tensor and sequence
    parallelism come from ``layout``, its precision recipe from ``spec.recipe``); ``partition``
    is cut by ``split``; ``microbatch_rows`` are the rows of one microbatch on one
    data-parallel replica; ``recompute`` is None when every activation is cached.
    """

    schedule: Schedule
    spec: ModelSpec | TransformerSpec
    partition: Partition
    layout: Layout
    microbatch_rows: int
    recompute: RecomputePlan | None = None
    costs: CostSource = field(default_factory=CostSource)
    steps: int = 1
    sync: bool = True  # every step waits for the previous optimizer step
    cores: int | None = None  # the ranks share this many cores (None: a device each)
    split: Split = BALANCED  # the rule ``partition`` was cut by
    offload: OffloadPlan | None = None  # activation offload (None: every activation stays)

    @property
    def batch_size(self) -> int:
        """Rows of one step on one data-parallel replica."""
        return self.microbatch_rows * self.schedule.num_microbatches

    @property
    def global_batch(self) -> int:
        """Rows of one step over every data-parallel replica."""
        return self.batch_size * self.layout.data

    @property
    def dp(self) -> int:
        return self.layout.data

    def with_schedule(self, schedule: Schedule) -> RunPlan:
        """The same run with another schedule of the same stages (``--schedule auto`` plans on
        an empty schedule of its layout first)."""
        if schedule.stage_to_rank != self.schedule.stage_to_rank:
            raise PebbleError("a plan's schedule can only be swapped for one of the same stages.")
        return replace(self, schedule=schedule)


def resolve_model(model: str | ModelSpec | TransformerSpec | None, num_stages: int):
    """``model`` as a spec: a spec as it is, text parsed (``--model``), or by default one
    1024-wide Linear+ReLU block per stage."""
    if isinstance(model, (ModelSpec, TransformerSpec)):
        return model
    if model:
        return parse_model(model)
    return ModelSpec.uniform(num_stages)


def plan_training(
    schedule: Schedule,
    config: TrainConfig,
    *,
    layout: Layout | None = None,
    recompute: str | None = None,
    offload: str | None = None,
) -> RunPlan:
    """The plan of training ``config`` (its model, and its batch over every replica) with
    ``schedule``: what ``RayPipeline`` takes beside the config."""
    return plan_run(
        schedule,
        config.model,
        batch_size=config.batch_size,
        layout=layout,
        recompute=recompute,
        offload=offload,
    )


def default_train_model(num_stages: int) -> str:
    """An MLP for the spiral deep enough that every stage gets at least one Linear: what
    ``train`` and ``--schedule auto`` under ``train`` run when no model is given."""
    hidden = "-".join(["64"] * max(2, num_stages - 1))
    return f"widths=2-{hidden}-3,activation=relu,loss=cross_entropy,dtype=float64"


def with_precision(spec, precision: str | None):
    """``spec`` counted by the precision recipe named ``precision`` (None: as it is). An MLP
    keeps its own dtype's recipe; naming another is one sentence."""
    if precision is None:
        return spec
    recipe = precision_named(precision)
    if spec.is_transformer:
        if spec.precision is not None and spec.precision != recipe.name:
            raise PebbleError(
                f"the model names precision={spec.precision} and --precision names "
                f"{recipe.name}; give one."
            )
        return replace(spec, precision=recipe.name)
    if recipe != spec.recipe:
        raise PebbleError(
            f"an MLP keeps its weights, gradients and Adam's moments in its own dtype "
            f"({spec.recipe}); --precision {recipe} applies to transformer models."
        )
    return spec


def counted_under(spec, layout: Layout):
    """``spec`` as ``layout`` counts it: a transformer's layer-sharding degrees (tensor,
    sequence, ...) set from the layout (one sentence if the model cannot be split so)."""
    layout.check_model(spec)
    if not spec.is_transformer or spec.layout == layout.for_layers():
        return spec
    return replace(spec, layout=layout.for_layers())


UNSHARDED_DEGREES = UNSHARDED.layer_degrees()


def layout_of_model(spec, **degrees) -> Layout:
    """The layout a model text implies (``transformer:...,tp=8,sp=1`` or a preset's overrides),
    with ``degrees`` (field name to value; None: as the model says) on top. A degree the model
    text sets to other than its default and a flag sets otherwise is one sentence, not a silent
    choice."""
    base = spec.layout.layer_degrees() if spec.is_transformer else {}
    given = {name: value for name, value in degrees.items() if value is not None}
    for name, value in given.items():
        if name in base and base[name] != value and base[name] != UNSHARDED_DEGREES.get(name):
            raise PebbleError(
                f"the model text sets {name} {base[name]} and the flags set {value}; give one."
            )
    return Layout(**{**base, **given})


def check_sequence_parallel(tensor: int, sequence_parallel: bool) -> None:
    """One sentence for sequence parallelism without a tensor-parallel group to split over."""
    if sequence_parallel and tensor == 1:
        raise PebbleError(
            "sequence parallelism (--sp, sp=1) splits a block's activations across the "
            "tensor-parallel group; give it with --tp 2 or more (tp=N in the model text)."
        )


def check_layout(layout: Layout, schedule: Schedule, spec) -> Layout:
    """``layout`` on ``schedule``'s pipeline, refused in one sentence when ``spec`` is counted
    under other tensor or sequence parallelism than the layout says."""
    layout.check_model(spec)
    check_sequence_parallel(layout.tensor, layout.sequence_parallel)
    if spec.is_transformer and spec.layout != layout.for_layers():
        raise PebbleError(
            f"the model is counted under {spec.layout.for_layers()} but the run's layout is "
            f"{layout}; plan the run with plan_run so both agree."
        )
    return layout.with_pipeline(schedule.num_ranks, schedule.chunks)


def plan_run(
    schedule: Schedule,
    model: str | ModelSpec | TransformerSpec | None = None,
    *,
    batch_size: int | None = None,
    layout: Layout | None = None,
    recompute: str | None = None,
    costs: CostSource | None = None,
    steps: int = 1,
    sync: bool = True,
    cores: int | None = None,
    precision: str | None = None,
    split: Split | str | None = None,
    offload: str | None = None,
) -> RunPlan:
    """Place ``schedule`` on ``model`` under ``layout`` (default: as the model text says, one
    replica). ``batch_size`` is rows per step over every replica (default: 32 rows of an MLP, or
    one sequence of a transformer, per microbatch and replica). ``recompute`` (``--recompute``)
    is resolved for this partition: a budget is solved for this schedule. ``precision`` names
    the recipe whole-rank memory counts (``bf16``, ``bf16-grads``, ``fp8``, ``fp32``, ``fp64``;
    None: as the model says). ``split`` cuts the stages (``balanced``, the default: by FLOPs;
    ``even``: Megatron's equal blocks, the embedding on the first stage and the head on the
    last; ``6,6,5,5``: blocks per stage). ``offload`` (``--offload``) is resolved per stage;
    ``selective`` and ``budget:`` stay pending until the run's costs time them."""
    spec = with_precision(resolve_model(model, schedule.num_stages), precision)
    split = Split.parse(split)
    layout = (layout or layout_of_model(spec)).with_pipeline(schedule.num_ranks, schedule.chunks)
    spec = counted_under(spec, layout)
    m = schedule.num_microbatches
    if batch_size is None:
        batch_size = (1 if spec.is_transformer else DEFAULT_MICROBATCH_ROWS) * m * layout.data
    rows = microbatch_rows(batch_size, m, layout.data)
    parts = partition(spec, schedule.num_stages, split)
    return RunPlan(
        schedule=schedule,
        spec=spec,
        partition=parts,
        layout=layout,
        microbatch_rows=rows,
        recompute=_recompute_beside(recompute, offload, schedule, spec, parts, rows),
        costs=costs or CostSource(),
        steps=steps,
        sync=sync,
        cores=cores,
        split=split,
        offload=resolve_offload(offload, spec, parts),
    )


def _recompute_beside(recompute, offload, schedule, spec, parts, rows):
    """``--recompute`` resolved; beside an ``--offload budget:`` a recompute budget alone need
    not be met (offload may close the gap, and ``offload_joint`` chooses both when the run's
    costs are known), so where it cannot be, full recomputation stands in until then."""
    try:
        return resolve_recompute(recompute, schedule, spec, parts, rows)
    except PebbleError:
        if not (_is_budget(recompute, RecomputePolicy) and _is_budget(offload, OffloadPolicy)):
            raise
        full = resolve_recompute("full", schedule, spec, parts, rows)
        return RecomputePlan(RecomputePolicy.parse(recompute).to_text(), full.stages)


def _is_budget(text: str | None, policy) -> bool:
    return text is not None and policy.parse(text).budget is not None


def resolve_offload(text: str | None, spec, parts) -> OffloadPlan | None:
    """``--offload`` for this partition (None: nothing goes to the host)."""
    if text is None:
        return None
    policy = OffloadPolicy.parse(text)
    return None if policy.is_none else offload_stages(policy, spec, parts)
