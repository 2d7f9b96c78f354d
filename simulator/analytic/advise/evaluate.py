"""One ``advise`` configuration, planned and predicted as ``pebblesim simulate`` would run it.

Why here: the search hands every configuration that survives its bounds to ``evaluate``; the
run is built from the configuration's ``Layout`` through the same library calls (``plan_run``,
``plan_auto``'s ``schedule_for``, ``simulate_plan``) that ``simulate`` makes from its flags, so
every printed command gives the printed numbers (``tests/cli/test_advise.py`` runs one).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

from schedules.actions import Schedule
from schedules.registry import SCHEDULES
from schedules.validate import DryRun, validate
from simulator.analytic.advise.search import Outcome
from simulator.analytic.advise.space import AUTO, Candidate
from simulator.analytic.auto_plan import TOTAL, empty_schedule, schedule_for
from simulator.analytic.cost_source import cost_model
from simulator.analytic.costs import CostModel
from simulator.analytic.run_plan import simulate_plan
from simulator.run.plan import CostSource, RunPlan, plan_run
from simulator.run.schedule_source import make_schedule
from simulator.timeline import Timeline
from simulator.timeline.breakdown import step_breakdown
from simulator.timeline.report import offload_waits
from simulator.units import byte_unit

WALKS_KEPT = 64  # schedules whose dry run and digest an evaluator keeps


@dataclass(frozen=True)
class RunText:
    """The text a run is given: the model (with ``seq``) and the hardware (with the memory limit
    as its capacity)."""

    model: str
    hardware: str


def chunks_flag(c: Candidate) -> int | None:
    """``--chunks`` for families whose chunks vary (interleaved); None where the family (or
    auto's placement) fixes them."""
    if c.schedule == AUTO or SCHEDULES[c.schedule].fixed_chunks:
        return None
    return c.chunks


def placement(c: Candidate) -> str:
    """Auto's placement: a V with two chunks per rank, else a loop."""
    return "v" if c.chunks == 2 else "loop"


def limit_text(limit: int) -> str:
    """Auto's limit on each rank's memory as ``simulate --memory-limit total:`` reads it, in
    human units and rounded *down* to two decimals of its unit (``75.99GiB``, not
    ``81599004672``): the run advise simulates is the one the printed line gives, and it stays
    within the limit."""
    factor, unit = byte_unit(limit)
    if unit == "B":
        return f"{int(limit)}B"
    hundredths = math.floor(limit * 100 / factor)
    return f"{hundredths / 100:.2f}{unit}"


def candidate_plan(c: Candidate, text: RunText) -> RunPlan:
    """The run of ``c``: its schedule on the model under its layout, at its hardware's costs."""
    return _planned(c, text)[0]


def _planned(c: Candidate, text: RunText, price=None) -> tuple[RunPlan, CostModel | None]:
    """``candidate_plan`` and its cost model: ``price(plan)`` (default ``cost_model``), for
    auto the one its schedule was searched at (as ``plan_auto`` works it out), so the run is not
    priced twice; None for a named family without ``price`` (``simulate_plan`` prices it)."""
    options = dict(
        batch_size=c.global_batch,
        layout=c.layout,
        recompute=None if c.recompute == "none" else c.recompute,
        offload=None if c.offload == "none" else c.offload,
        costs=CostSource(hardware=text.hardware),
    )
    if c.schedule == AUTO:
        empty = empty_schedule(c.pp, c.microbatches, placement(c))
        plan = plan_run(empty, text.model, **options)
        costs = (price or cost_model)(plan)
        limit = TOTAL + limit_text(c.auto_memory)
        return plan.with_schedule(schedule_for(plan, costs, limit, placement(c))), costs
    schedule = _family_schedule(c.schedule, c.pp, c.microbatches, chunks_flag(c))
    plan = plan_run(schedule, text.model, **options)
    return plan, price(plan) if price is not None else None


@lru_cache(maxsize=16)
def _family_schedule(name: str, ranks: int, microbatches: int, chunks: int | None) -> Schedule:
    """``make_schedule``, once per size: configurations that differ only in their tensor,
    context or data degrees run the same (immutable) schedule."""
    return make_schedule(name, ranks, microbatches, chunks)


def run_candidate(c: Candidate, text: RunText) -> Timeline:
    """The Timeline ``pebblesim simulate`` gives for ``c``."""
    return simulate_plan(candidate_plan(c, text))


def schedule_key(schedule: Schedule) -> str:
    """A digest of a schedule (every rank's actions and the stage placement): two
    configurations with the same layout and the same key run the same thing (auto that resolves
    to ZB-V, and ZB-V), and ``advise`` shows them as one row."""
    actions = [[f"{s}{kind.value}{j}" for s, kind, j in acts] for acts in schedule.actions]
    text = repr((schedule.stage_to_rank, actions))  # each action as ``str`` gives it: ``2F0``
    return hashlib.sha1(text.encode()).hexdigest()


def offload_key(timeline: Timeline) -> str:
    """A digest of what a run sent to the host (each stage's microbatches that went out, first
    step and replica): ``selective`` that sends what ``full`` sends is the same run ("" when
    nothing went out, as without offload)."""
    spans = timeline.offload.columns()
    if not len(spans["rank"]):
        return ""
    sent = sorted(
        {
            (int(stage), int(mb))
            for kind, stage, mb, step, replica in zip(
                spans["kind"],
                spans["stage"],
                spans["microbatch"],
                spans["step"],
                spans["replica"],
                strict=True,
            )
            if str(kind) == "offload" and step == 0 and replica == 0
        }
    )
    return hashlib.sha1(repr(sent).encode()).hexdigest() if sent else ""


def outcome_of(
    c: Candidate, timeline: Timeline, limit: int | None = None, key: str = ""
) -> Outcome:
    """The figures ``advise`` ranks by, read from the Timeline as ``simulate`` reports them;
    with ``limit`` (the device less advise's headroom) "fits" means the fullest rank is within
    it, else the Timeline's own capacity check. With offload every GPU's offloaded bytes must
    also fit its share of the node's host memory (``memory.host_fits``: a node holds
    ``gpus_per_node`` GPUs, each with at most its share, so the node's host memory holds them)."""
    summary = timeline.summary()
    throughput = timeline.throughput()
    totals = [r.memory["total"] for r in summary.per_rank]
    peak_rank = max(range(len(totals)), key=totals.__getitem__)
    host_fits = all(r.memory.get("host_fits") is not False for r in summary.per_rank)
    device_fits = (
        totals[peak_rank] <= limit
        if limit is not None
        else all(r.memory["fits"] for r in summary.per_rank)
    )
    offloads = len(timeline.offload) > 0
    return Outcome(
        candidate=c,
        step_time=throughput["step_time"],
        tokens_per_second=throughput["tokens_per_second"] or 0.0,
        mfu=throughput["mfu"] or 0.0,
        bubble=summary.bubble_fraction,
        busy=max(r.busy for r in summary.per_rank),
        peak_memory=totals[peak_rank],
        peak_rank=peak_rank,
        fits=device_fits and host_fits,
        schedule_key=key,
        step_shares=tuple(step_breakdown(timeline).shares().values()),
        host_peak=max(timeline.host_peak_bytes().values(), default=0) if offloads else 0,
        offload_wait=max(offload_waits(timeline).values(), default=0.0) if offloads else 0.0,
        host_fits=host_fits,
    )


def evaluator(text: RunText, limit: int | None = None):
    """``evaluate(candidate) -> Outcome`` for the search; ``limit``: see ``outcome_of``."""

    priced: dict[tuple, CostModel] = {}

    def price(plan: RunPlan) -> CostModel:
        """``cost_model(plan)``, once per layout: it reads the model, its split, the microbatch,
        the layout, the stages' placement and the cost source, not the schedule's actions, so
        configurations that differ only in their schedule (zb-h1, zb-h2 and auto on one
        layout) share it."""
        key = (
            plan.spec,
            plan.partition,
            plan.microbatch_rows,
            plan.layout,
            tuple(plan.schedule.stage_to_rank),
            plan.costs,
        )
        if key not in priced:
            priced[key] = cost_model(plan)
        return priced[key]

    walked: dict[int, tuple[Schedule, DryRun, str]] = {}

    def walk(schedule: Schedule) -> tuple[Schedule, DryRun, str]:
        """(schedule, its dry run, its digest), once per schedule: a family's schedule of one
        size is one object (``_family_schedule``), run on many layouts."""
        entry = walked.get(id(schedule))
        if entry is None or entry[0] is not schedule:
            if len(walked) >= WALKS_KEPT:
                walked.clear()
            entry = walked[id(schedule)] = (schedule, validate(schedule), schedule_key(schedule))
        return entry

    def evaluate(c: Candidate) -> Outcome:
        plan, costs = _planned(c, text, price)
        _, run, key = walk(plan.schedule)
        timeline = simulate_plan(plan, costs, run)
        if plan.offload is not None:
            key += f" offload {offload_key(timeline)}"
        return outcome_of(c, timeline, limit, key)

    return evaluate
