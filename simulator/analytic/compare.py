"""Several schedules (and recompute policies) predicted on one model, sizes and layout.

Why its own module: ``compare``, the demo and the notebooks put schedules side by side, and the
comparison is only fair if every schedule gets the same model split into the same layers, the
same batch, the same layout and the same cost source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from schedules.registry import SCHEDULES, canonical_name
from simulator.analytic.auto_plan import empty_schedule, is_auto, placement_of, plan_auto
from simulator.analytic.run_plan import simulate_plan
from simulator.errors import PebbleError
from simulator.model import ModelSpec
from simulator.model.layout import Layout
from simulator.model.parse import parse_model
from simulator.run.limits import check_actions, estimated_actions
from simulator.run.plan import CostSource, plan_run
from simulator.run.schedule_source import make_schedule
from simulator.timeline import Timeline
from simulator.timeline.run_policy import policy_text


@dataclass(frozen=True)
class Comparison:
    """What to compare: the sizes every schedule shares, and the choices that vary.

    ``names`` None means every built-in family that suits the sizes (those that do not are
    skipped and named); ``recompute`` None means each schedule once, caching everything;
    ``offload`` (``--offload`` texts) runs each recompute policy once per offload policy.
    ``auto_limit`` and ``auto_placement`` say which automatic schedule ``auto`` is;
    ``precision`` and ``split`` are ``plan_run``'s (None: the model's recipe, the balanced
    split)."""

    ranks: int
    microbatches: int
    names: tuple[str, ...] | None = None
    chunks: int = 2
    model: str | ModelSpec | None = None
    costs: CostSource = CostSource()
    batch_size: int | None = None
    layout: Layout | None = None
    recompute: tuple[str, ...] | None = None
    offload: tuple[str, ...] | None = None
    auto_limit: str | None = None
    auto_placement: str | None = None
    precision: str | None = None
    split: str | None = None


def comparison_model(ranks: int, chunks: int, model):
    """One model for every schedule in a comparison: enough equal blocks that every stage
    layout (p, 2p, p*v stages) gets the same share of layers."""
    if isinstance(model, ModelSpec) or (model is not None and not isinstance(model, str)):
        return model
    return parse_model(model) if model else ModelSpec.uniform(ranks * math.lcm(2, chunks))


def compare_timelines(request: Comparison) -> tuple[dict[str, Timeline], list[str]]:
    """Simulate each named schedule on the same model (under each recompute and offload
    policy: one run per pair, named ``schedule [policy]`` with the policy as
    ``run_policy.policy_text`` words it); returns the timelines and the
    names skipped because the sizes do not suit them (only when no names were asked for)."""
    asked = request.names is not None
    names = list(request.names) if asked else list(SCHEDULES)
    if not names:
        raise PebbleError("--schedules names no schedule; give names like 1f1b,zb-h1.")
    _check_size(request, names)
    spec = comparison_model(request.ranks, request.chunks, request.model)
    timelines, skipped, reasons = {}, [], set()
    for name in names:
        try:
            plans = _plans(request, name, spec)
        except PebbleError as exc:
            if asked:
                raise
            skipped.append(name)
            reasons.add(str(exc))
            continue
        for (recompute, offload), plan in plans.items():
            named = recompute is not None or offload is not None
            policy = policy_text(recompute, offload)
            label = f"{plan.schedule.name} [{policy}]" if named else plan.schedule.name
            timelines[label] = simulate_plan(plan)
    if not timelines and len(reasons) == 1:  # not the schedules: the model or layout (--tp 3)
        raise PebbleError(reasons.pop())
    if not timelines:
        raise PebbleError(
            f"no built-in schedule suits {request.ranks} ranks and {request.microbatches} "
            f"microbatches (skipped: {', '.join(skipped)})."
        )
    return timelines, skipped


def _check_size(request: Comparison, names: list[str]) -> None:
    families = [SCHEDULES[canonical_name(name)] for name in names if not is_auto(name)]
    check_actions(
        sum(
            estimated_actions(
                request.ranks,
                f.default_chunks if f.fixed_chunks else request.chunks,
                request.microbatches,
            )
            for f in families
        ),
        "comparing these schedules",
    )


def _plans(request: Comparison, name: str, spec) -> dict:
    """One plan per (recompute, offload) pair of policies for the schedule ``name``."""
    options = dict(
        batch_size=request.batch_size,
        layout=request.layout,
        costs=request.costs,
        precision=request.precision,
        split=request.split,
    )
    if is_auto(name):  # the limit and the placement say which auto
        placement = placement_of(request.auto_placement, None)
        empty = empty_schedule(request.ranks, request.microbatches, placement)
        planned = plan_auto(plan_run(empty, spec, **options), request.auto_limit, placement)
        schedule = planned.schedule
    else:
        v = None if SCHEDULES[canonical_name(name)].fixed_chunks else request.chunks
        schedule = make_schedule(name, request.ranks, request.microbatches, v)
    return {
        (recompute, offload): plan_run(
            schedule, spec, recompute=recompute, offload=offload, **options
        )
        for recompute in request.recompute or [None]
        for offload in request.offload or [None]
    }
