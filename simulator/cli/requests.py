"""From parsed arguments to a ``RunPlan``: the only place a command's flags become a run.

Why here: the library builds runs from plain values (``simulator.run.plan_run``); what is left
for the command line is to read its flags, choose the defaults a command has (``train``'s MLP, a
``--profile``'s model and microbatch size) and call it.
"""

from __future__ import annotations

from simulator.analytic.auto_plan import empty_schedule, is_auto, placement_of, plan_auto
from simulator.analytic.profile import Profile
from simulator.cli.layout_flags import layout_degrees
from simulator.errors import PebbleError
from simulator.model.layout import Layout
from simulator.model.precision import precision_named
from simulator.run.plan import (
    CostSource,
    RunPlan,
    default_train_model,
    layout_of_model,
    plan_run,
    resolve_model,
)
from simulator.run.schedule_source import make_schedule


def layout_from_args(args, spec) -> Layout:
    """The layout of a run: what the model text says (``tp=8,sp=1``), with the flags on top."""
    return layout_of_model(spec, **layout_degrees(args))


def compare_options(args) -> tuple[str | None, str | None]:
    """``compare``'s (``--memory-limit``, ``--layout``), refused unless ``auto`` is compared."""
    names = [n for n in (args.schedules or "").split(",") if is_auto(n)]
    if (args.memory_limit or args.layout) and not names:
        raise PebbleError("--memory-limit and --layout apply to auto; add it to --schedules.")
    return args.memory_limit, args.layout


def check_auto_flags(args) -> None:
    """``--memory-limit`` and ``--layout`` only with ``--schedule auto``, and auto alone."""
    if not is_auto(getattr(args, "schedule", None)):
        if getattr(args, "memory_limit", None) or getattr(args, "layout", None):
            raise PebbleError("--memory-limit and --layout apply to --schedule auto.")
        return
    if getattr(args, "schedule_file", None):
        raise PebbleError("give either --schedule or --schedule-file, not both.")
    recompute = getattr(args, "recompute", None)
    if recompute and recompute.strip().lower().startswith("budget"):
        raise PebbleError(
            "--recompute budget: is solved for a given schedule; with --schedule auto choose a "
            "named policy (full, selective, every:K, sqrt) and let --memory-limit bind."
        )


def cost_source(args) -> CostSource:
    """``--costs``, ``--comm-latency``, ``--hardware`` and ``--profile``, as given."""
    return CostSource(
        units=getattr(args, "costs", None),
        comm_latency=getattr(args, "comm_latency", 0.0),
        hardware=getattr(args, "hardware", None),
        profile=getattr(args, "profile", None),
    )


def plan_from_args(args, train: bool = False) -> RunPlan:
    """The run ``args`` asks for (``simulate``, ``train`` or ``export``): its schedule (``auto``
    searched on the command's own model and costs), model and its precision recipe, layout,
    split, batch and recompute."""
    check_auto_flags(args)
    steps = getattr(args, "steps", 1)
    auto = is_auto(args.schedule)
    if auto:
        placement = placement_of(args.layout, args.chunks)
        schedule = empty_schedule(args.ranks, args.microbatches, placement, steps)
    else:
        schedule = make_schedule(
            args.schedule,
            args.ranks,
            args.microbatches,
            args.chunks,
            getattr(args, "schedule_file", None),
            steps,
        )
    profile = Profile.load(args.profile) if getattr(args, "profile", None) else None
    model, batch_size = _model_and_batch(args, schedule, train, profile)
    spec = resolve_model(model, schedule.num_stages)
    precision = getattr(args, "precision", None)
    if train and spec.is_transformer and spec.computable() != spec:
        asked, spec = spec, spec.computable()  # numpy has no bfloat16: train says so
        if precision is not None and precision_named(precision) != spec.recipe:
            raise PebbleError(
                f"train computes this {asked.dtype} model in {spec.dtype}, so "
                f"it counts {spec.dtype}'s recipe ({spec.recipe}); --precision {precision} "
                "applies to simulate, compare and advise."
            )
    cores = getattr(args, "cores", None)
    if cores is None and profile is not None:
        cores = profile.cores  # a calibrated run records its cores
    plan = plan_run(
        schedule,
        spec,
        batch_size=batch_size,
        layout=layout_from_args(args, spec),
        recompute=getattr(args, "recompute", None),
        costs=cost_source(args),
        steps=steps,
        sync=not getattr(args, "no_sync", False),
        cores=cores or None,
        precision=precision,
        split=getattr(args, "split", None),
        offload=getattr(args, "offload", None),
    )
    if auto:
        objective = "span" if getattr(args, "no_sync", False) else "makespan"
        plan = plan_auto(plan, args.memory_limit, placement, objective)
    return plan


def schedule_from_args(args):
    """The schedule alone (``export``): a built-in family as named, or ``auto`` planned on the
    default model at unit costs."""
    if is_auto(args.schedule):
        return plan_from_args(args).schedule
    check_auto_flags(args)
    return make_schedule(args.schedule, args.ranks, args.microbatches, args.chunks)


def _model_and_batch(args, schedule, train: bool, profile: Profile | None):
    """The model and batch size the command uses: ``--model``, else ``train``'s MLP, else a
    ``--profile``'s model at its microbatch size (unless told otherwise)."""
    model, batch_size = getattr(args, "model", None), getattr(args, "batch_size", None)
    if model is None and train:
        model = default_train_model(schedule.num_stages)
    if profile is not None and not model:
        model = profile.model
        if batch_size is None:
            replicas = getattr(args, "data", None) or 1
            batch_size = profile.microbatch_rows * schedule.num_microbatches * replicas
    return model, batch_size
