"""``--schedule auto`` for a planned run: the glue from a model and a cost model to an
``AutoProblem`` is exact (memory and time equal the analytic executor's)."""

from __future__ import annotations

import pytest

from schedules.auto import schedule_peaks, schedule_timing
from schedules.validate import validate
from simulator.analytic.auto_plan import empty_schedule, parse_limit, problem_for, schedule_for
from simulator.analytic.cost_source import cost_model
from simulator.analytic.executor import simulate
from simulator.errors import PebbleError
from simulator.run import CostSource, plan_run
from simulator.run.rank_memory import static_memory

MODELS = [
    None,  # simulate's default: one 1024-wide Linear+ReLU block per stage
    "widths=2-16-16-16-16-16-16-16-16-3,activation=tanh,layernorm=1",
    "transformer:layers=8,hidden=32,heads=4,seq=16,vocab=64",
]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("layout", "limit"), [("loop", "3x"), ("loop", "6x"), ("v", "4x")])
def test_predicted_memory_and_time_are_the_analytic_executors(model, layout, limit):
    """The footprints' deltas (F's bytes, what I leaves and how far it rises, what W frees,
    how far a B rises) and the cost model's times and transfers make a problem whose peaks and
    makespan are the analytic executor's, to the byte and to the float. The peak is the true
    one (a backward's gradient tensors included), which whole-rank "fits" counts: a schedule
    auto keeps within its limit fits when it runs."""
    units = CostSource(units="F=1,I=1.2,W=0.7", comm_latency=0.1)
    plan = plan_run(empty_schedule(4, 8, layout), model, costs=units)
    costs = cost_model(plan)
    problem = problem_for(plan, costs, limit, layout)
    schedule = schedule_for(plan, costs, limit, layout)
    validate(schedule)
    timeline = simulate(schedule, costs, plan.spec, plan.partition, plan.microbatch_rows)
    summary = timeline.summary()
    assert schedule_timing(problem, schedule).makespan == pytest.approx(summary.makespan, rel=1e-12)
    measured = [r.true_peak_bytes for r in summary.per_rank]
    assert schedule_peaks(problem, schedule) == pytest.approx(measured, abs=0.5)
    assert max(measured) <= problem.memory_limit[0]


def test_limits_read_bytes_units_and_microbatches():
    assert parse_limit(None, 10) is None
    assert parse_limit("2.5e9", 10) == 2.5e9
    assert parse_limit("80GiB", 10) == 80 * 2**30
    assert parse_limit("3 kB", 10) == 3000
    assert parse_limit("8x", 10) == 80
    for bad in ("", "x", "-1x", "nanGB", "3 parsecs", "1e400"):
        with pytest.raises(PebbleError) as error:
            parse_limit(bad, 10)
        assert "\n" not in str(error.value)


def test_a_total_limit_keeps_every_ranks_whole_memory_within_it():
    """``total:BYTES``: each rank's activations get what its own static memory leaves, so every
    rank's whole memory (static plus the true activation peak) is within BYTES when it runs,
    and a rank with less static memory is given more room."""
    model = "transformer:layers=8,hidden=64,heads=4,seq=32,vocab=4096,dtype=bfloat16"
    plan = plan_run(empty_schedule(4, 8, "loop"), model, costs=CostSource(hardware="a100-40gb"))
    statics = [
        m.total
        for m in static_memory(
            plan.spec, plan.schedule, plan.partition, plan.microbatch_rows, plan.layout
        )
    ]
    costs = cost_model(plan)
    floors = problem_for(plan, costs, None, "loop").memory_floor()  # one microbatch's need
    whole = max(s + 3 * f for s, f in zip(statics, floors, strict=True))
    problem = problem_for(plan, costs, f"total:{whole}B", "loop")
    assert problem.memory_limit == tuple(float(whole - s) for s in statics)
    assert len(set(problem.memory_limit)) > 1, "the head's rank must hold more than the others"
    schedule = schedule_for(plan, costs, f"total:{whole}B", "loop")
    timeline = simulate(schedule, costs, plan.spec, plan.partition, plan.microbatch_rows)
    totals = [
        r.true_peak_bytes + s for r, s in zip(timeline.summary().per_rank, statics, strict=True)
    ]
    assert max(totals) <= whole


def test_a_total_limit_below_a_ranks_static_memory_names_that_rank():
    plan = plan_run(empty_schedule(4, 8, "loop"), MODELS[2], costs=CostSource(hardware="a100-40gb"))
    with pytest.raises(PebbleError) as error:
        problem_for(plan, cost_model(plan), "total:1kB", "loop")
    message = str(error.value)
    assert "\n" not in message and "rank 0's weights" in message and "no room" in message
    for bad in ("total:8x", "total:", "total:lots"):
        with pytest.raises(PebbleError, match="total:BYTES"):
            problem_for(plan, cost_model(plan), bad, "loop")
