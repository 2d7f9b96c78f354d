"""``--schedule auto`` for a planned run: from the plan's model, costs and a memory limit to a
schedule.

Why here: ``schedules.auto`` knows nothing of models or cost models (``schedules`` imports
nothing of the project), so this glue turns a plan into an ``AutoProblem``: per-stage F, I, W
and B times and the transfer of each link from the plan's cost model (``CostModel.stage_costs``,
``transfer_time``), and per-stage memory deltas from the model's own footprints
(``memory_plans``: F's bytes, what I leaves for W and how far I rises on the way).

The chicken and egg (costs need a plan, a plan needs the number of stages, which is what auto
decides) is cut by the placement: ``loop`` has p stages, ``v`` 2p, so the plan is made on an
empty schedule of that placement first (``empty_schedule``), then given its schedule
(``plan_auto``). The memory limit is bytes (``80GiB``, ``2.5e9``) or ``Nx``: N microbatches'
worth of the largest activation footprint one microbatch leaves on a rank (one stage in the loop
placement, both of a rank's stages in a V), so at p ranks ``px`` is 1F1B's memory (the paper's
ZB-1p, and ZB-V's) and ``2px`` the paper's ZB-2p. Those limit each rank's activations alike;
``total:76GiB`` limits each rank's whole memory instead (what ``advise`` plans to): a rank gets
what its own weights, gradients, optimizer state and buffers leave, so the ranks without the
embedding or the head hold more microbatches.

Not modelled by the search: a measured profile's per-call and per-send overheads
(``CostModel.call_overhead``, ``send_overhead``; zero for unit and FLOP costs). With them the
schedule is still valid and within the limit, but timed by the search without them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from schedules.actions import Schedule, loop_stage_to_rank, v_stage_to_rank
from schedules.auto import AutoProblem, auto_schedule
from simulator.analytic.cost_source import cost_model
from simulator.analytic.costs import CostModel
from simulator.analytic.recompute_costs import apply_recompute
from simulator.errors import PebbleError
from simulator.model.memory_plan import memory_plans
from simulator.numbers import parse_float
from simulator.run.limits import check_schedule_size
from simulator.run.plan import RunPlan
from simulator.run.rank_memory import static_memory
from simulator.units import BYTE_SUFFIXES, human_bytes

MAX_AUTO_ACTIONS = 1_000_000  # auto plays about a dozen candidates: ~20 s at this size
TOTAL = "total:"  # a limit on each rank's whole memory, not its activations alone
_LIMIT = re.compile(r"^\s*([0-9.eE+-]+)\s*([a-zA-Z]*)\s*$")


def is_auto(name) -> bool:
    return isinstance(name, str) and name.strip().lower() == "auto"


def placement_of(placement: str | None, chunks: int | None) -> str:
    """The placement asked for (``--layout loop|v``), or the one ``chunks`` implies (1: loop,
    2: v)."""
    implied = {None: None, 1: "loop", 2: "v"}
    if chunks not in implied:
        raise PebbleError(f"auto places 1 stage per rank (loop) or 2 (v), not --chunks {chunks}.")
    if placement and implied[chunks] and placement != implied[chunks]:
        raise PebbleError(
            f"--layout {placement} holds {'1 stage' if placement == 'loop' else '2 stages'} per "
            f"rank, not --chunks {chunks}."
        )
    return placement or implied[chunks] or "loop"


def empty_schedule(
    ranks: int | None, microbatches: int, placement: str, steps: int = 1
) -> Schedule:
    """A schedule with auto's placement and no actions: what a plan is made on before auto
    runs."""
    if ranks is None:
        raise PebbleError("--ranks is required with --schedule.")
    mapping = loop_stage_to_rank(ranks, 1) if placement == "loop" else v_stage_to_rank(ranks, 2)
    actions = 3 * len(mapping) * microbatches
    if actions > MAX_AUTO_ACTIONS:
        raise PebbleError(
            f"auto searches schedules of at most {MAX_AUTO_ACTIONS:,} actions (3 per stage and "
            f"microbatch); {ranks} ranks x {microbatches} microbatches in a {placement} have "
            f"{actions:,}."
        )
    check_schedule_size(ranks, len(mapping) // ranks, microbatches, steps)
    return Schedule("auto", microbatches, mapping, tuple(() for _ in range(ranks)))


def plan_auto(
    plan: RunPlan, limit: str | None, placement: str, objective: str = "makespan"
) -> RunPlan:
    """``plan`` (made on ``empty_schedule``) with the auto schedule its own costs give."""
    return plan.with_schedule(schedule_for(plan, cost_model(plan), limit, placement, objective))


def schedule_for(
    plan: RunPlan,
    costs: CostModel,
    limit: str | None,
    placement: str,
    objective: str = "makespan",
) -> Schedule:
    """The auto schedule for ``plan`` (made on ``empty_schedule``) at ``costs``."""
    return auto_schedule(problem_for(plan, costs, limit, placement, objective))


def problem_for(
    plan: RunPlan,
    costs: CostModel,
    limit: str | None,
    placement: str,
    objective: str = "makespan",
) -> AutoProblem:
    """The ``AutoProblem`` of ``plan`` at ``costs``: times per stage and link, memory deltas
    per stage from the footprints (under ``plan.recompute``: what a forward keeps, and the
    backward longer by its recompute), each backward's rise as the executor counts it (its
    plan's peak, working bytes included, so a schedule within the limit is within it when
    run), and the limit read from ``limit``."""
    stages = plan.partition.num_stages
    recompute = plan.recompute.stages if plan.recompute is not None else None
    plans = memory_plans(plan.spec, plan.partition, plan.microbatch_rows, recompute=recompute)
    costs = apply_recompute(costs, plan.spec, plan.partition, plan.recompute)
    forward = [float(plans[(s, "F")].held) for s in range(stages)]
    weight = [float(-plans[(s, "W")].held) for s in range(stages)]
    rise = [float(plans[(s, "I")].peak) for s in range(stages)]  # with its working bytes
    backward_rise = [float(plans[(s, "B")].peak) for s in range(stages)]
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
        memory_backward_rise=tuple(backward_rise),
        memory_limit=parse_limit(limit, max(per_rank), lambda: _static_totals(plan)),
        layout=placement,
        objective=objective,
    )


def _static_totals(plan: RunPlan) -> list[int]:
    """Per rank, the bytes that do not depend on the schedule (as whole-rank memory counts
    them): where the placement puts the stages is all it reads of the plan's schedule."""
    return [
        m.total
        for m in static_memory(
            plan.spec, plan.schedule, plan.partition, plan.microbatch_rows, plan.layout
        )
    ]


def parse_limit(
    text: str | None,
    microbatch_bytes: float,
    static: Callable[[], Sequence[int]] | None = None,
) -> float | tuple[float, ...] | None:
    """A memory limit: bytes with an optional unit (B, kB, MB, GB, TB, KiB ... TiB), ``Nx``
    (N times ``microbatch_bytes``, one microbatch's activations on the fullest rank), or
    ``total:BYTES``, each rank's whole memory: its activations get what its own static memory
    (``static()``: per rank, weights, gradients, optimizer state and buffers) leaves of BYTES,
    so a rank that holds less (no embedding, no head) runs more microbatches at once."""
    if text is None:
        return None
    body = str(text).strip()
    if body.lower().startswith(TOTAL):
        whole = _bytes(body[len(TOTAL) :], text, microbatch_bytes, per_microbatch=False)
        if static is None:
            raise PebbleError(f"--memory-limit {body[:40]!r} needs a planned run to read from.")
        held = list(static())
        fullest = max(range(len(held)), key=held.__getitem__)
        if held[fullest] >= whole:
            raise PebbleError(
                f"--memory-limit {body[:40]}: rank {fullest}'s weights, gradients, optimizer "
                f"state and buffers alone take {human_bytes(held[fullest])}, which leaves no "
                "room for its activations."
            )
        return tuple(float(whole - bytes_) for bytes_ in held)
    return _bytes(body, text, microbatch_bytes)


def _bytes(body: str, text, microbatch_bytes: float, per_microbatch: bool = True) -> float:
    """Bytes with an optional unit, or (``per_microbatch``) ``Nx``."""
    match = _LIMIT.match(body)
    unit = match.group(2).lower() if match else ""
    if not match or (unit not in BYTE_SUFFIXES and not (per_microbatch and unit == "x")):
        raise PebbleError(
            f"cannot read --memory-limit {str(text)[:40]!r}; write bytes (80GiB, 2.5e9), Nx "
            "(N microbatches of one rank's activations, e.g. 8x) or total:BYTES (each rank's "
            "whole memory, e.g. total:76GiB)."
        )
    value = parse_float(
        match.group(1), minimum=0.0, maximum=1e30, allow_minimum=False, what="a memory limit"
    )
    return value * microbatch_bytes if unit == "x" else value * BYTE_SUFFIXES[unit]
