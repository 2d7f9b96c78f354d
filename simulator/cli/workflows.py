"""From command-line choices to the objects a run needs: schedule, model, partition, costs.

Why separate from the CLI: the demo, the benchmarks and the tests build runs the same way the
CLI does, without going through argparse.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from schedules.actions import Schedule
from simulator.analytic.costs import (
    CostModel,
    Hardware,
    flop_costs,
    parse_unit_costs,
    unit_costs,
)
from simulator.analytic.hardware import parse_hardware_preset, sustained_flops
from simulator.analytic.profile import Profile, profile_costs
from simulator.cli.numbers import MAX_RATE, MAX_TIME, parse_float
from simulator.errors import PebbleError
from simulator.model import ModelSpec, Partition, partition
from simulator.model.batch import microbatch_rows
from simulator.model.parse import parse_model
from simulator.model.recompute import RecomputePlan
from simulator.model.transformer.spec import TransformerSpec
from simulator.run.limits import (
    check_actions,
    check_schedule_size,
    check_table_size,
    estimated_actions,
)
from simulator.run.rank_memory import static_memory
from simulator.run.recompute import resolve_recompute
from simulator.timeline import Timeline, save_chrome_trace

DEFAULT_MICROBATCH_ROWS = 32


def make_schedule(
    name: str | None,
    ranks: int | None,
    microbatches: int,
    chunks: int | None = None,
    schedule_file: str | None = None,
    steps: int = 1,
) -> Schedule:
    """A built-in schedule by name, or one read from a PyTorch-style CSV file; refused up
    front when ``steps`` of it would not fit in memory (``limits``)."""
    if isinstance(name, Schedule):  # --schedule auto, built by simulator.cli.auto.resolve
        return name
    if schedule_file:
        if name:
            raise PebbleError("give either --schedule or --schedule-file, not both.")
        if chunks is not None:
            raise PebbleError(
                "--chunks does not apply to --schedule-file: the CSV's rows say which stages "
                "each rank holds."
            )
        from schedules.csv_io import read_csv

        schedule = read_csv(Path(schedule_file), microbatches, name=schedule_file)
        if ranks is not None and ranks != schedule.num_ranks:
            raise PebbleError(
                f"{schedule_file} has {schedule.num_ranks} ranks, but --ranks says {ranks}."
            )
        check_table_size(schedule.num_stages, microbatches)
        check_actions(len(schedule) * steps)
        return schedule
    if not name:
        raise PebbleError("name a schedule with --schedule or give --schedule-file.")
    if ranks is None:
        raise PebbleError("--ranks is required with --schedule.")
    from schedules.registry import SCHEDULES, build_schedule, canonical_name

    family = SCHEDULES[canonical_name(name)]
    check_schedule_size(ranks, chunks or family.default_chunks, microbatches, steps)
    return build_schedule(name, ranks, microbatches, chunks)


@dataclass(frozen=True)
class RunPlan:
    """A schedule placed on a model: what every executor and report needs to agree on."""

    schedule: Schedule
    spec: ModelSpec
    partition: Partition
    microbatch_rows: int
    recompute: RecomputePlan | None = None  # None: cache everything

    @property
    def batch_size(self) -> int:
        return self.microbatch_rows * self.schedule.num_microbatches


def make_plan(
    schedule: Schedule,
    model: str | ModelSpec | None = None,
    batch_size: int | None = None,
    dp: int = 1,
    tp: int | None = None,
    sp: bool | None = None,
    recompute: str | None = None,
) -> RunPlan:
    """Place ``schedule`` on ``model`` (default: one 1024-wide Linear+ReLU block per stage);
    ``tp`` and ``sp`` (``--tp``, ``--sp``) override the transformer spec's own; ``recompute``
    (``--recompute``) is resolved for this partition (a budget solved for this schedule)."""
    if isinstance(model, (ModelSpec, TransformerSpec)):
        spec = model
    elif model:
        spec = parse_model(model)
    else:
        spec = ModelSpec.uniform(schedule.num_stages)
    if ((tp is not None and tp > 1) or sp) and not spec.is_transformer:
        raise PebbleError(
            "--tp and --sp apply to transformer models (--model PRESET or transformer:...)."
        )
    if spec.is_transformer and (tp is not None or sp is not None):
        layout = {"tp": spec.tp if tp is None else tp, "sp": spec.sp if sp is None else sp}
        spec = TransformerSpec(spec.config, spec.dtype, spec.seed, **layout)
    m = schedule.num_microbatches
    if batch_size is None:  # 32 rows of an MLP, one sequence of a transformer, per microbatch
        batch_size = (1 if spec.is_transformer else DEFAULT_MICROBATCH_ROWS) * m * dp
    rows = microbatch_rows(batch_size, m, dp)
    parts = partition(spec, schedule.num_stages)
    return RunPlan(
        schedule, spec, parts, rows, resolve_recompute(recompute, schedule, spec, parts, rows)
    )


def hardware_preset(text: str | None):
    """The preset ``--hardware`` names (with its overrides), or None for key=value specs."""
    first = (text or "").split(",", 1)[0].strip()
    return parse_hardware_preset(text) if first and "=" not in first else None


def with_sharded_optimizer(timeline: Timeline, plan: RunPlan, dp: int) -> Timeline:
    """The Timeline with the optimizer state sharded over ``dp`` replicas (ZeRO-1,
    ``--distributed-optimizer``)."""
    memory = static_memory(plan.spec, plan.schedule, plan.partition, plan.microbatch_rows, dp, True)
    timeline.meta = replace(timeline.meta, rank_memory=tuple(memory))
    return timeline


def with_device(timeline: Timeline, hardware: str | None) -> Timeline:
    """The Timeline with the device's capacity and peak FLOP/s, when ``--hardware`` names a
    preset: whole-rank memory then says fits or over, and the summary gives MFU."""
    preset = hardware_preset(hardware)
    if preset is not None:
        timeline.meta = replace(
            timeline.meta, memory_capacity=preset.memory_bytes, peak_flops=preset.peak_flops
        )
    return timeline


def parse_hardware(text: str) -> Hardware:
    """A preset (``h100``, ``a100-80gb,efficiency=0.45``: sustained FLOP/s = peak x efficiency,
    links at the inter-node bandwidth) or ``flops=1e12,bandwidth=25e9,latency=5e-6``."""
    preset = hardware_preset(text)
    if preset is not None:
        return Hardware(
            flops_per_second=sustained_flops(preset),
            link_bandwidth=preset.internode_bandwidth,
            link_latency=Hardware().link_latency,
            tp_bandwidth=preset.nvlink_bandwidth,
        )
    values = {}
    names = {"flops": "flops_per_second", "bandwidth": "link_bandwidth", "latency": "link_latency"}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = (s.strip() for s in part.partition("="))
        if key not in names:
            raise PebbleError(f"unknown hardware key {key!r}; use flops, bandwidth, latency.")
        latency = key == "latency"
        values[names[key]] = parse_float(
            value,
            minimum=0.0,
            maximum=MAX_TIME if latency else MAX_RATE,
            allow_minimum=latency,
            what=f"hardware {key}",
        )
    return Hardware(**values)


def make_costs(
    plan: RunPlan,
    costs: str | None = None,
    comm_latency: float = 0.0,
    hardware: str | None = None,
    profile: str | None = None,
) -> CostModel:
    """Unit costs (default), FLOP costs on ``hardware``, or a measured ``profile`` file."""
    if comm_latency < 0:
        raise PebbleError(f"--comm-latency must not be negative, got {comm_latency}.")
    if sum(x is not None for x in (costs, hardware, profile)) > 1:
        raise PebbleError("choose one cost source: --costs, --hardware or --profile.")
    if profile:
        return profile_costs(Profile.load(profile), plan.spec, plan.partition, plan.microbatch_rows)
    if hardware:
        return flop_costs(plan.spec, plan.partition, plan.microbatch_rows, parse_hardware(hardware))
    unit = parse_unit_costs(costs or "")
    return unit_costs(
        plan.schedule, plan.partition, unit["F"], unit["I"], unit["W"], comm_latency=comm_latency
    )


def simulated_cores(cores: int | None, profile: str | None) -> int | None:
    """The cores the ranks share in a prediction: ``--cores`` (0: every rank owns a device),
    else the cores the ``--profile`` was measured on (a calibrated run records them), else
    none shared."""
    if cores is None and profile:
        cores = Profile.load(profile).cores
    return cores or None


def summary_dict(timeline: Timeline) -> dict:
    """The keys ``simulate --json`` and ``train --json`` share."""
    meta = timeline.meta
    summary = timeline.summary()
    out = {
        "schedule": meta.schedule,
        "ranks": meta.ranks,
        "microbatches": meta.microbatches,
        "chunks": meta.chunks,
        "dp": meta.dp,
        "steps": meta.steps,
        "time_unit": meta.time_unit,
        "makespan": summary.makespan,
        "bubble_fraction": summary.bubble_fraction,
        "step_times": summary.step_times,
        "per_rank": [vars(r) for r in summary.per_rank],
        **timeline.throughput(),
        "memory_capacity": meta.memory_capacity,
        "gradient_ready": [
            {"layer": g["layer"], "time": g["time"]}
            for g in summary.gradient_ready
            if g["step"] == 0
        ],
    }
    if meta.recompute:  # per rank: FLOPs one step recomputes, and the time it took (all steps)
        out["recompute"] = meta.recompute
        times = timeline.recompute_time()
        for rank in out["per_rank"]:
            r = rank["rank"]
            rank["recompute_time"] = times.get(r, 0.0)
            flops = meta.recompute_flops
            rank["recompute_flops"] = flops[r] if r < len(flops) else None
    return out


def write_timeline(out, timeline: Timeline, prefix: str = "") -> None:
    timeline.save(out.path(f"{prefix}timeline.json"))
    save_chrome_trace(timeline, out.path(f"{prefix}trace.json"))


def write_measured_run(out, result, predicted: Timeline, prefix: str = "") -> None:
    """A Ray run's files: measured Timeline and trace, cost profile, and the prediction."""
    write_timeline(out, result.timeline, prefix)
    result.profile.save(out.path(f"{prefix}profile.json"))
    predicted.save(out.path(f"{prefix}predicted_timeline.json"))


def comparison_model(ranks: int, chunks: int, model: str | None):
    """One model for every schedule in a comparison: enough equal blocks that every stage
    layout (p, 2p, p*v stages) gets the same share of layers."""
    import math

    from simulator.model import ModelSpec

    return parse_model(model) if model else ModelSpec.uniform(ranks * math.lcm(2, chunks))


def compare_timelines(
    ranks: int,
    microbatches: int,
    names,
    chunks: int = 2,
    model=None,
    costs=None,
    hardware: str | None = None,
    batch_size: int | None = None,
    layout: tuple[int | None, bool | None] = (None, None),
    auto: tuple[str | None, str | None] = (None, None),
    recompute: list[str] | None = None,
) -> tuple[dict, list[str]]:
    """Simulate each named schedule on the same model (under each ``recompute`` policy: a
    ``(schedule, policy)`` pair each, named ``schedule [policy]``); returns the timelines and the
    names skipped because the sizes do not suit them (only when no names were asked for)."""
    from schedules.registry import SCHEDULES, canonical_name
    from simulator.analytic.executor import simulate

    asked = names is not None
    names = names if asked else list(SCHEDULES)
    if not names:
        raise PebbleError("--schedules names no schedule; give names like 1f1b,zb-h1.")
    from simulator.cli.auto import compare_schedule, is_auto

    families = [SCHEDULES[canonical_name(name)] for name in names if not is_auto(name)]
    check_actions(
        sum(
            estimated_actions(ranks, f.default_chunks if f.fixed_chunks else chunks, microbatches)
            for f in families
        ),
        "comparing these schedules",
    )
    spec = comparison_model(ranks, chunks, model)
    timelines, skipped = {}, []
    for name in names:
        try:
            if is_auto(name):  # --memory-limit and --layout (auto=...) say which auto
                schedule = compare_schedule(
                    spec, ranks, microbatches, batch_size, layout, costs, hardware, auto
                )
            else:
                v = None if SCHEDULES[canonical_name(name)].fixed_chunks else chunks
                schedule = make_schedule(name, ranks, microbatches, v)
            plans = {
                policy: make_plan(schedule, spec, batch_size, 1, *layout, recompute=policy)
                for policy in recompute or [None]
            }
        except PebbleError:
            if asked:
                raise
            skipped.append(name)
            continue
        for policy, plan in plans.items():
            cost_model = make_costs(plan, costs, hardware=hardware)
            timeline = simulate(
                schedule,
                cost_model,
                plan.spec,
                plan.partition,
                plan.microbatch_rows,
                recompute=plan.recompute,
            )
            label = schedule.name if policy is None else f"{schedule.name} [{policy}]"
            timelines[label] = with_device(timeline, hardware)
    if not timelines:
        raise PebbleError(
            f"no built-in schedule suits {ranks} ranks and {microbatches} microbatches "
            f"(skipped: {', '.join(skipped)})."
        )
    return timelines, skipped


def simulate_args(args, schedule: Schedule, model, batch_size, cores) -> tuple[RunPlan, Timeline]:
    """``simulate``'s run from its parsed arguments (``model`` and ``batch_size`` as resolved
    from a profile): the plan, and its Timeline with the device and the sharded optimizer."""
    from simulator.analytic.executor import simulate

    plan = make_plan(schedule, model, batch_size, args.dp, args.tp, args.sp or None, args.recompute)
    costs = make_costs(plan, args.costs, args.comm_latency, args.hardware, args.profile)
    timeline = simulate(
        schedule,
        costs,
        plan.spec,
        plan.partition,
        plan.microbatch_rows,
        steps=args.steps,
        sync=not args.no_sync,
        dp=args.dp,
        cores=cores,
        recompute=plan.recompute,
    )
    with_device(timeline, args.hardware)
    if args.distributed_optimizer:
        with_sharded_optimizer(timeline, plan, args.dp)
    return plan, timeline
