"""The dependency rule lives in one place: a kind added to the rule alone is followed by the
validator, the analytic executor, the Ray wiring and the Ray worker, none of which knows it.

The made-up kind ``X`` ("inspect the stage's forward") needs the same stage's ``F`` of the same
microbatch, receives nothing, sends nothing, and must run once per (stage, microbatch).

The made-up kind ``H`` ("half a forward again") needs the same and also *computes*: its
``KindRule`` says it does half of its stage's forward work and how it is drawn, and nothing
else is told about it. The analytic executor prices it at half the stage's forward, a Ray rank
runs it through the stage handler its traits pick, a profile measures it, and the pipeline
chart draws it under its own legend label.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_hex

from schedules.actions import Action, Schedule
from schedules.dependencies import PIPELINE_RULE, Display, Kind, KindRule, Need, Work
from schedules.errors import ScheduleError
from schedules.registry import build_schedule
from schedules.validate import validate
from simulator.analytic.costs import Hardware, flop_costs, unit_costs
from simulator.analytic.executor import simulate
from simulator.analytic.profile import Profile, profile_costs
from simulator.analytic.profile_schema import check_profile
from simulator.errors import PebbleError
from simulator.model import ModelSpec, partition
from simulator.model.optim import OptimizerConfig
from simulator.model.partitioning import Partition
from simulator.ray_pipeline.wiring import segments, wire
from simulator.ray_pipeline.worker import RankWorker
from visualize.pipeline import pipeline_figure
from visualize.style import OKABE_ITO

matplotlib.use("Agg")

X_RULE = PIPELINE_RULE.with_kind(
    KindRule("X", needs=(Need((Kind.F.value,), 0),), output=None, description="inspect"),
    requirement=(("X",),),
)
X_COST = 0.5


def with_inspections(schedule: Schedule, kind: str = "X") -> Schedule:
    """``schedule`` with a ``kind`` action right after every F, on the same rank."""
    rows = []
    for row in schedule.actions:
        new_row = []
        for action in row:
            new_row.append(action)
            if action.kind == "F":
                new_row.append(Action(action.stage_index, kind, action.microbatch_index))
        rows.append(new_row)
    return Schedule(schedule.name, schedule.num_microbatches, schedule.stage_to_rank, rows)


SCHEDULE = with_inspections(build_schedule("1f1b", 2, 4))

# the one place the computing kind H is added: its needs, its work, its look
H_SHARE = 0.5
H_LABEL = "H half a forward again"
H_RULE = PIPELINE_RULE.with_kind(
    KindRule(
        "H",
        needs=(Need((Kind.F.value,), 0),),
        output=None,
        description="half a forward again",
        work=Work(F=H_SHARE),
        display=Display(H_LABEL, "purple"),
    ),
    requirement=(("H",),),
)
H_SCHEDULE = with_inspections(build_schedule("zb-h1", 2, 4), "H")
H_SPEC = ModelSpec(widths=(8, 64, 64, 64, 4))
H_ROWS = 16


def test_the_default_rule_rejects_the_unknown_kind():
    with pytest.raises(ScheduleError, match="has kind 'X'; kinds are F, B, I and W"):
        validate(SCHEDULE)


def test_the_validator_follows_the_new_rule():
    run = validate(SCHEDULE, X_RULE)
    for i in range(len(run)):
        action = run.action(i)
        if action.kind == "X":
            producer, *padding = run.inputs[i]
            assert padding == [-1] * (len(padding))
            assert run.action(producer) == (action.stage_index, "F", action.microbatch_index)


def test_the_validator_names_a_misplaced_and_a_missing_new_action():
    rows = [list(row) for row in SCHEDULE.actions]
    rows[0][0], rows[0][1] = rows[0][1], rows[0][0]  # 0X0 before 0F0
    early = Schedule("x", 4, SCHEDULE.stage_to_rank, rows)
    with pytest.raises(ScheduleError, match="action 0X0 at position 0 needs 0F0, which comes"):
        validate(early, X_RULE)
    rows = [[a for a in row if a != (1, "X", 3)] for row in SCHEDULE.actions]
    missing = Schedule("x", 4, SCHEDULE.stage_to_rank, rows)
    with pytest.raises(ScheduleError, match="1X3 never runs"):
        validate(missing, X_RULE)


def test_the_analytic_executor_follows_the_new_rule():
    spec = ModelSpec.uniform(2, width=16)
    parts = partition(spec, 2)
    costs = unit_costs(SCHEDULE, parts)
    costs = replace(
        costs, stage_costs=tuple(replace(c, extra=(("X", X_COST),)) for c in costs.stage_costs)
    )
    timeline = simulate(SCHEDULE, costs, spec, parts, 4, run=validate(SCHEDULE, X_RULE))
    events = {(e.stage, e.kind, e.microbatch): e for e in timeline.events}
    inspections = [e for e in timeline.events if e.kind == "X"]
    assert len(inspections) == 2 * 4
    for e in inspections:
        assert e.end - e.start == pytest.approx(X_COST)
        assert e.start >= events[(e.stage, "F", e.microbatch)].end
    busy = {r.rank: r.busy for r in timeline.summary().per_rank}
    assert busy == {0: pytest.approx(4 * (1 + 2 + X_COST)), 1: pytest.approx(4 * (1 + 2 + X_COST))}


def test_the_ray_wiring_and_worker_follow_the_new_rule():
    run = validate(SCHEDULE, X_RULE)
    wired = wire(run, param_stages={0, 1}, dp=1)
    for w in wired:
        if w.kind == "X":
            assert (w.producer, w.receiver, w.send, w.keep_local) == (None, None, False, False)
    for segment in segments(wired):
        assert all(not w.remote_input for w in segment[1:])  # payloads arrive only at the head
    spec = ModelSpec(widths=(2, 8, 3))
    worker = RankWorker(0, 0, spec, {0: (0, 3)}, 1, 1, OptimizerConfig(), 4, 0.0, rule=X_RULE)
    seen = []
    worker.stages[0].handlers["X"] = lambda mb, payload, targets: seen.append((mb, payload))
    rng = np.random.default_rng(0)
    worker.set_data(rng.standard_normal((4, 2)), rng.integers(0, 3, 4))
    for spec_tuple in [(0, "F", 0, False, False, False), (0, "X", 0, False, False, False)]:
        assert worker.act(*spec_tuple) is None
    worker.act(0, "B", 0, False, False, False)
    assert seen == [(0, None)]
    assert worker.cache.total_bytes == 0
    assert [e.kind for e in worker.recorder.drain()["events"]] == ["F", "X", "B"]


# ------------------------------------------------------------------ a kind that computes
def h_timeline(parts=None, steps: int = 1, **costs):
    """H_SCHEDULE simulated with FLOP costs in seconds (F differs per stage)."""
    parts = parts or partition(H_SPEC, 2)
    model = flop_costs(H_SPEC, parts, H_ROWS, Hardware(flops_per_second=1e9), comm=False, **costs)
    run = validate(H_SCHEDULE, H_RULE)
    return model, simulate(H_SCHEDULE, model, H_SPEC, parts, H_ROWS, steps=steps, run=run)


def test_the_analytic_executor_prices_a_computing_kind_by_its_work_share():
    costs, timeline = h_timeline(rule=H_RULE)
    forward = {s: c.F for s, c in enumerate(costs.stage_costs)}
    assert len(set(forward.values())) == 2  # the two stages' forwards differ
    halves = [e for e in timeline.events if e.kind == "H"]
    assert len(halves) == 2 * 4
    for e in halves:
        assert e.end - e.start == pytest.approx(H_SHARE * forward[e.stage], rel=1e-12)
    busy = {r.rank: r.busy for r in timeline.summary().per_rank}
    for stage, c in enumerate(costs.stage_costs):
        assert busy[stage] == pytest.approx(4 * ((1 + H_SHARE) * c.F + c.I + c.W), rel=1e-12)
    _, unpriced = h_timeline()  # costs that do not know the rule's H: it takes no time
    assert all(e.end == e.start for e in unpriced.events if e.kind == "H")


def test_a_ray_rank_runs_the_computing_kind_through_the_handler_its_traits_pick():
    spec = ModelSpec(widths=(2, 8, 8, 3))
    worker = RankWorker(0, 0, spec, {0: (0, 5)}, 1, 1, OptimizerConfig(), 4, 0.0, rule=H_RULE)
    stage = worker.stages[0]
    calls = []
    for layer in stage.layers[:-1]:
        layer.forward = _spy(layer, calls)
    rng = np.random.default_rng(0)
    worker.set_data(rng.standard_normal((4, 2)), rng.integers(0, 3, 4))
    worker.act(0, "F", 0, False, False, False)
    after_forward, held = list(calls), worker.cache.total_bytes
    calls.clear()
    assert worker.act(0, "H", 0, False, False, False) is None
    share = math.ceil(H_SHARE * (len(stage.layers) - 1))
    assert 0 < share < len(stage.layers) - 1
    assert calls == after_forward[:share]  # the first half of the forward, again
    assert worker.cache.total_bytes == held  # on a throwaway cache
    worker.act(0, "B", 0, False, False, False)
    assert worker.cache.total_bytes == 0
    events = worker.recorder.drain()["events"]
    assert [e.kind for e in events] == ["F", "H", "B"]


def _spy(layer, calls):
    forward = layer.forward

    def spied(mb, x):
        out = forward(mb, x)
        calls.append((layer.layer_index, mb, float(np.abs(out).sum())))
        return out

    return spied


def test_a_profile_measures_the_computing_kind_and_predicts_with_it():
    costs, timeline = h_timeline(steps=2, rule=H_RULE)
    profile = Profile.from_timeline(timeline, H_RULE)
    for measured, stage_cost in zip(profile.costs, costs.stage_costs, strict=True):
        assert measured["H"] == pytest.approx(H_SHARE * stage_cost.F, rel=1e-12)
    assert "H" not in Profile.from_timeline(timeline).costs[0]  # the default rule's kinds only
    with pytest.raises(PebbleError, match=r'costs\[0\] has an unknown field "H"'):
        check_profile(asdict(profile), "p")
    parts = partition(H_SPEC, 2)
    same = profile_costs(profile, H_SPEC, parts, H_ROWS, H_RULE)
    for measured, stage_cost in zip(profile.costs, same.stage_costs, strict=True):
        assert stage_cost.of("H") == measured["H"]  # measured whole on its own split
    other = Partition((range(0, 2), range(2, 8)))
    assert other.stage_layers != parts.stage_layers
    moved = profile_costs(profile, H_SPEC, other, H_ROWS, H_RULE)
    for stage_cost in moved.stage_costs:  # elsewhere, its share of the forward
        assert stage_cost.of("H") == pytest.approx(H_SHARE * stage_cost.F, rel=1e-12)
    again = simulate(
        H_SCHEDULE, same, H_SPEC, parts, H_ROWS, steps=2, run=validate(H_SCHEDULE, H_RULE)
    )
    assert again.summary().makespan == pytest.approx(timeline.summary().makespan, rel=1e-9)


def test_the_pipeline_chart_draws_the_computing_kind_with_its_label():
    _, timeline = h_timeline(rule=H_RULE)
    fig = pipeline_figure(timeline, rule=H_RULE)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert H_LABEL in labels
    patches = {p.get_gid(): p for p in fig.axes[0].patches if p.get_gid()}
    halves = [e for e in timeline.events if e.kind == "H"]
    assert halves
    for e in halves:
        box = patches[f"box:{e.rank}:{e.stage}H{e.microbatch}:{e.step}"]
        assert box.get_width() == pytest.approx(e.end - e.start)
        assert to_hex(box.get_facecolor()) == OKABE_ITO["purple"].lower()
    plain = pipeline_figure(timeline)  # without its rule the chart cannot name it
    assert H_LABEL not in [t.get_text() for t in plain.legends[0].get_texts()]
