"""The dependency rule lives in one place: a kind added to the rule alone is followed by the
validator, the analytic executor, the Ray wiring and the Ray worker, none of which knows it.

The made-up kind ``X`` ("inspect the stage's forward") needs the same stage's ``F`` of the same
microbatch, receives nothing, sends nothing, and must run once per (stage, microbatch).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from schedules.actions import Action, Schedule
from schedules.dependencies import PIPELINE_RULE, Kind, KindRule, Need
from schedules.errors import ScheduleError
from schedules.registry import build_schedule
from schedules.validate import validate
from simulator.analytic.costs import unit_costs
from simulator.analytic.executor import simulate
from simulator.model import ModelSpec, partition
from simulator.model.optim import OptimizerConfig
from simulator.ray_pipeline.wiring import segments, wire
from simulator.ray_pipeline.worker import RankWorker

X_RULE = PIPELINE_RULE.with_kind(
    KindRule("X", needs=(Need((Kind.F.value,), 0),), output=None, description="inspect"),
    requirement=(("X",),),
)
X_COST = 0.5


def with_inspections(schedule: Schedule) -> Schedule:
    """``schedule`` with an X right after every F, on the same rank."""
    rows = []
    for row in schedule.actions:
        new_row = []
        for action in row:
            new_row.append(action)
            if action.kind == "F":
                new_row.append(Action(action.stage_index, "X", action.microbatch_index))
        rows.append(new_row)
    return Schedule(schedule.name, schedule.num_microbatches, schedule.stage_to_rank, rows)


SCHEDULE = with_inspections(build_schedule("1f1b", 2, 4))


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
