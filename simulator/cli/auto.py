"""``--schedule auto``: from a command's model, costs and ``--memory-limit`` to a schedule.

Why here: ``schedules.auto`` knows nothing of models or cost models (``schedules`` imports
nothing of the project), so this glue turns the command's choices into an ``AutoProblem``:
per-stage F, I, W and B times and the transfer of each link from the command's cost model
(``CostModel.stage_costs``, ``transfer_time``), and per-stage memory deltas from the model's own
footprints (``memory_plans``: F's bytes, what I leaves for W and how far I rises on the way).

The chicken and egg (costs need a plan, a plan needs the number of stages, which is what auto
decides) is cut by the layout: ``loop`` has p stages, ``v`` 2p, so the plan is made on an empty
schedule of that layout first. ``--memory-limit`` is bytes (``80GiB``, ``2.5e9``) or ``Nx``: N
microbatches' worth of the largest activation footprint one microbatch leaves on a rank (one
stage in the loop layout, both of a rank's stages in a V), so at p ranks ``px`` is 1F1B's memory
(the paper's ZB-1p, and ZB-V's) and ``2px`` the paper's ZB-2p.

Not modelled by the search: a measured profile's per-call and per-send overheads
(``CostModel.call_overhead``, ``send_overhead``; zero for unit and FLOP costs). With them the
schedule is still valid and within the limit, but timed by the search without them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from schedules.actions import Schedule, loop_stage_to_rank, v_stage_to_rank
from simulator.cli.numbers import parse_float
from simulator.errors import PebbleError
from simulator.units import BYTE_SUFFIXES

if TYPE_CHECKING:  # the search and the cost model load only when auto is asked for
    from schedules.auto import AutoProblem
    from simulator.analytic.costs import CostModel

MAX_AUTO_ACTIONS = 1_000_000  # auto plays about a dozen candidates: ~20 s at this size
_LIMIT = re.compile(r"^\s*([0-9.eE+-]+)\s*([a-zA-Z]*)\s*$")


def add_auto_args(parser) -> None:
    """``--memory-limit`` and ``--layout``, for the commands that take ``--schedule auto``."""
    parser.add_argument(
        "--memory-limit",
        help="with --schedule auto: activation bytes per rank (80GiB, 2.5e9) or Nx, N "
        "microbatches of one rank's activations (px: 1F1B's memory, 2px: the paper's ZB-2p)",
    )
    parser.add_argument(
        "--layout", choices=["loop", "v"], help="with --schedule auto: one stage per rank, or a V"
    )


def is_auto(name) -> bool:
    return isinstance(name, str) and name.strip().lower() == "auto"


def resolve(args, train: bool = False) -> None:
    """Build the auto schedule ``args`` asks for and put it in ``args.schedule`` (which
    ``make_schedule`` passes through), on the model and costs the command itself will use
    (``train``: its default MLP and unit costs); refuse the auto-only flags without auto."""
    if not is_auto(getattr(args, "schedule", None)):
        if getattr(args, "memory_limit", None) or getattr(args, "layout", None):
            raise PebbleError("--memory-limit and --layout apply to --schedule auto.")
        return
    if getattr(args, "schedule_file", None):
        raise PebbleError("give either --schedule or --schedule-file, not both.")
    from simulator.cli.workflows import make_costs, make_plan

    layout = layout_of(args.layout, args.chunks)
    empty = empty_schedule(args.ranks, args.microbatches, layout, getattr(args, "steps", 1))
    model = getattr(args, "model", None)
    if model is None and train:
        from simulator.cli.training import default_train_model

        model = default_train_model(empty.num_stages)
    model, batch_size = _model_and_batch(args, model, empty)
    dp = getattr(args, "dp", 1)
    recompute = getattr(args, "recompute", None)
    if recompute and recompute.strip().lower().startswith("budget"):
        raise PebbleError(
            "--recompute budget: is solved for a given schedule; with --schedule auto choose a "
            "named policy (full, selective, every:K, sqrt) and let --memory-limit bind."
        )
    tp_sp = (getattr(args, "tp", None), getattr(args, "sp", None) or None)
    plan = make_plan(empty, model, batch_size, dp, *tp_sp, recompute=recompute)
    costs = make_costs(
        plan,
        getattr(args, "costs", None),
        getattr(args, "comm_latency", 0.0),
        getattr(args, "hardware", None),
        getattr(args, "profile", None),
    )
    objective = "span" if getattr(args, "no_sync", False) else "makespan"
    args.schedule = schedule_for(plan, costs, args.memory_limit, layout, objective)


def _model_and_batch(args, model, empty: Schedule):
    """The model and batch size the command itself will use (``simulate`` predicts a
    ``--profile``'s model at its microbatch size unless told otherwise)."""
    batch_size = getattr(args, "batch_size", None)
    if getattr(args, "profile", None) and not model:
        from simulator.analytic.profile import Profile

        profile = Profile.load(args.profile)
        model = profile.model
        if batch_size is None:
            batch_size = profile.microbatch_rows * empty.num_microbatches * getattr(args, "dp", 1)
    return model, batch_size


def compare_options(args) -> tuple[str | None, str | None]:
    """``compare``'s (``--memory-limit``, ``--layout``), refused unless ``auto`` is compared."""
    names = [n for n in (args.schedules or "").split(",") if is_auto(n)]
    if (args.memory_limit or args.layout) and not names:
        raise PebbleError("--memory-limit and --layout apply to auto; add it to --schedules.")
    return args.memory_limit, args.layout


def compare_schedule(spec, ranks, microbatches, batch_size, tp_sp, costs, hardware, options):
    """The auto schedule ``compare`` puts next to the others: on their shared model, at their
    costs, under ``options`` (``compare_options``)."""
    from simulator.cli.workflows import make_costs, make_plan

    limit, layout = options
    layout = layout_of(layout, None)
    plan = make_plan(empty_schedule(ranks, microbatches, layout), spec, batch_size, 1, *tp_sp)
    return schedule_for(plan, make_costs(plan, costs, hardware=hardware), limit, layout)


def layout_of(layout: str | None, chunks: int | None) -> str:
    """``--layout``, or the layout ``--chunks`` implies (1: loop, 2: v)."""
    implied = {None: None, 1: "loop", 2: "v"}
    if chunks not in implied:
        raise PebbleError(f"auto places 1 stage per rank (loop) or 2 (v), not --chunks {chunks}.")
    if layout and implied[chunks] and layout != implied[chunks]:
        raise PebbleError(
            f"--layout {layout} holds {'1 stage' if layout == 'loop' else '2 stages'} per rank, "
            f"not --chunks {chunks}."
        )
    return layout or implied[chunks] or "loop"


def empty_schedule(ranks: int | None, microbatches: int, layout: str, steps: int = 1) -> Schedule:
    """A schedule with auto's layout and no actions: what a plan is made on before auto runs."""
    if ranks is None:
        raise PebbleError("--ranks is required with --schedule.")
    mapping = loop_stage_to_rank(ranks, 1) if layout == "loop" else v_stage_to_rank(ranks, 2)
    actions = 3 * len(mapping) * microbatches
    if actions > MAX_AUTO_ACTIONS:
        raise PebbleError(
            f"auto searches schedules of at most {MAX_AUTO_ACTIONS:,} actions (3 per stage and "
            f"microbatch); {ranks} ranks x {microbatches} microbatches in a {layout} have "
            f"{actions:,}."
        )
    from simulator.run.limits import check_schedule_size

    check_schedule_size(ranks, len(mapping) // ranks, microbatches, steps)
    return Schedule("auto", microbatches, mapping, tuple(() for _ in range(ranks)))


def schedule_for(
    plan, costs: CostModel, limit: str | None, layout: str, objective: str = "makespan"
) -> Schedule:
    """The auto schedule for ``plan`` (made on ``empty_schedule``) at ``costs``."""
    from schedules.auto import auto_schedule

    return auto_schedule(problem_for(plan, costs, limit, layout, objective))


def problem_for(
    plan, costs: CostModel, limit: str | None, layout: str, objective: str = "makespan"
) -> AutoProblem:
    """The ``AutoProblem`` of ``plan`` at ``costs``: times per stage and link, memory deltas
    per stage from the footprints (under ``plan.recompute``: what a forward keeps, and the
    backward longer by its recompute), and the limit read from ``--memory-limit``."""
    from schedules.auto import AutoProblem
    from simulator.analytic.recompute_costs import apply_recompute
    from simulator.model.memory_plan import memory_plans

    stages = plan.partition.num_stages
    recompute = plan.recompute.stages if plan.recompute is not None else None
    plans = memory_plans(plan.spec, plan.partition, plan.microbatch_rows, recompute=recompute)
    costs = apply_recompute(costs, plan.spec, plan.partition, plan.recompute)
    forward, weight, rise = [], [], []
    for s in range(stages):
        forward.append(float(sum(d for _, d, _ in plans[(s, "F")].changes)))
        weight.append(float(-sum(d for _, d, _ in plans[(s, "W")].changes)))
        held, top = 0.0, 0.0
        for _, delta, _ in plans[(s, "I")].changes:
            held += delta
            top = max(top, held)
        rise.append(top)
    stage_costs = costs.stage_costs
    ranks = plan.schedule.num_ranks
    per_rank = [0.0] * ranks
    for s, rank in enumerate(plan.schedule.stage_to_rank):
        per_rank[rank] += forward[s]
    return AutoProblem(
        ranks,
        plan.schedule.num_microbatches,
        forward=tuple(c.F for c in stage_costs),
        backward_input=tuple(c.I for c in stage_costs),
        backward_weight=tuple(c.W for c in stage_costs),
        backward=tuple(c.of("B") for c in stage_costs),
        transfer=tuple(costs.transfer_time(s) for s in range(stages - 1)),
        memory_forward=tuple(forward),
        memory_weight=tuple(weight),
        memory_input_rise=tuple(
            max(r, w - f, 0.0) for r, w, f in zip(rise, weight, forward, strict=True)
        ),
        memory_limit=parse_limit(limit, max(per_rank)),
        layout=layout,
        objective=objective,
    )


def parse_limit(text: str | None, microbatch_bytes: float) -> float | None:
    """``--memory-limit``: bytes with an optional unit (B, kB, MB, GB, TB, KiB ... TiB), or
    ``Nx`` (N times ``microbatch_bytes``, one microbatch's activations on the fullest rank)."""
    if text is None:
        return None
    match = _LIMIT.match(str(text))
    unit = match.group(2).lower() if match else ""
    if not match or (unit not in BYTE_SUFFIXES and unit != "x"):
        raise PebbleError(
            f"cannot read --memory-limit {str(text)[:40]!r}; write bytes (80GiB, 2.5e9) or Nx "
            "(N microbatches of one rank's activations, e.g. 8x)."
        )
    value = parse_float(
        match.group(1), minimum=0.0, maximum=1e30, allow_minimum=False, what="a memory limit"
    )
    return value * microbatch_bytes if unit == "x" else value * BYTE_SUFFIXES[unit]
