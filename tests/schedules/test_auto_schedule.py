"""``auto``: valid, within memory, timed like the analytic executor, never behind the registry."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedules.actions import v_stage_to_rank
from schedules.auto import AutoProblem, auto_schedule, bubble_rate, schedule_peaks, schedule_timing
from schedules.errors import ScheduleError
from schedules.registry import build_schedule
from schedules.validate import validate
from simulator.analytic.costs import CostModel, StageCost
from simulator.analytic.executor import simulate
from simulator.model import ModelSpec
from simulator.model.partitioning import partition
from tests.schedules.helpers import TRANSFERS, assert_topological, auto_problem_axes

LOOP_FAMILIES = ("naive", "gpipe", "1f1b", "zb-h1", "zb-h2")
V_FAMILIES = ("zb-v", "dualpipe-v")


def analytic_makespan(problem: AutoProblem, schedule) -> float:
    """The analytic executor's step time for ``schedule`` at the problem's costs."""
    stages = problem.num_stages
    spec = ModelSpec(widths=(4,) * (stages + 1), activation="tanh")
    costs = CostModel(
        stage_costs=tuple(
            StageCost(f, i, w, b)
            for f, i, w, b in zip(
                problem.forward,
                problem.backward_input,
                problem.backward_weight,
                problem.backward,
                strict=True,
            )
        ),
        comm_latency=problem.transfer[0] if problem.transfer else 0.0,
    )
    timeline = simulate(schedule, costs, spec, partition(spec, stages), microbatch_rows=2)
    return timeline.summary().makespan


@pytest.mark.parametrize(
    ("text", "kwargs"),
    [
        ("positive whole number of ranks", {"num_ranks": 0, "num_microbatches": 4}),
        ("positive whole number of microbatches", {"num_ranks": 2, "num_microbatches": 0}),
        ("layout must be loop or v", {"num_ranks": 2, "num_microbatches": 4, "layout": "x"}),
        ("objective must be", {"num_ranks": 2, "num_microbatches": 4, "objective": "fast"}),
        ("forward needs 2 values", {"num_ranks": 2, "num_microbatches": 4, "forward": (1, 2, 3)}),
        ("finite and not negative", {"num_ranks": 2, "num_microbatches": 4, "forward": -1}),
        ("must be a number", {"num_ranks": 2, "num_microbatches": 4, "transfer": "fast"}),
        (
            "below the 2 that rank 0 needs",
            {"num_ranks": 2, "num_microbatches": 4, "layout": "v", "memory_limit": 1.5},
        ),
        (
            "at least where I ends",
            {"num_ranks": 2, "num_microbatches": 4, "memory_weight": 2.0, "memory_input_rise": 0.5},
        ),
    ],
)
def test_bad_problems_are_one_sentence(text, kwargs):
    with pytest.raises(ScheduleError) as error:
        AutoProblem(**kwargs)
    assert text in str(error.value)
    assert "\n" not in str(error.value)


def test_numbers_broadcast_to_every_stage_and_rank():
    problem = AutoProblem(3, 6, forward=2, layout="v", memory_limit=9)
    assert problem.forward == (2.0,) * 6
    assert problem.backward == (2.0,) * 6  # I + W
    assert problem.transfer == (0.0,) * 5
    assert problem.memory_limit == (9.0,) * 3
    assert problem.stage_to_rank == v_stage_to_rank(3, 2)
    assert problem.memory_floor() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("layout", ["loop", "v"])
@pytest.mark.parametrize("p", [1, 2, 3, 4])
@pytest.mark.parametrize("m", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("limit", [1.0, 1.5, 2.0, 3.0])
def test_every_size_validates_and_stays_within_its_limit(layout, p, m, limit):
    floor = 1 if layout == "loop" else 2
    problem = AutoProblem(p, m, layout=layout, memory_weight=0.5, memory_limit=limit * p * floor)
    schedule = auto_schedule(problem)
    assert schedule.name == "auto"
    assert schedule.stage_to_rank == problem.stage_to_rank
    assert_topological(schedule, validate(schedule))
    assert max(schedule_peaks(problem, schedule)) <= limit * p * floor + 1e-9


def test_the_limit_at_the_floor_is_met_exactly():
    """One microbatch's forwards per rank is the least any schedule needs; auto finds one."""
    problem = AutoProblem(
        3, 5, layout="v", memory_weight=0.5, memory_input_rise=0.9, memory_limit=2
    )
    schedule = auto_schedule(problem)
    validate(schedule)
    assert max(schedule_peaks(problem, schedule)) <= 2
    assert any(a.kind == "B" for row in schedule.actions for a in row)  # I would rise over 2


@pytest.mark.parametrize("layout", ["loop", "v"])
@pytest.mark.parametrize("objective", ["makespan", "span"])
def test_its_own_timing_is_the_analytic_executors(layout, objective):
    problem = AutoProblem(
        4,
        8,
        forward=(1.0, 1.3, 0.9, 1.1) * (1 if layout == "loop" else 2),
        backward_input=1.2,
        backward_weight=(0.7, 0.5, 0.9, 0.6) * (1 if layout == "loop" else 2),
        transfer=0.25,
        memory_weight=0.4,
        memory_limit=6 if layout == "loop" else 10,
        layout=layout,
        objective=objective,
    )
    schedule = auto_schedule(problem)
    timing = schedule_timing(problem, schedule)
    assert timing.makespan == pytest.approx(analytic_makespan(problem, schedule), rel=1e-12)
    assert 0 <= bubble_rate(problem, schedule) < 1


def test_timing_refuses_a_schedule_of_other_sizes():
    problem = AutoProblem(2, 4)
    with pytest.raises(ScheduleError, match="layout and microbatches"):
        schedule_timing(problem, build_schedule("1f1b", 2, 5))


def test_more_memory_never_hurts_and_2p_removes_the_bubble():
    """F = I = W: ZB-H1's span at p microbatches of memory, ZB-H2's zero bubble at 2p."""
    spans = []
    for limit in (4, 5, 6, 8):
        problem = AutoProblem(4, 12, memory_weight=0.5, memory_limit=limit, objective="span")
        spans.append(schedule_timing(problem, auto_schedule(problem)).span)
    assert spans == sorted(spans, reverse=True)
    assert spans[0] == 3 * 12 + 4 - 1  # ZB-H1: 3m + p - 1
    assert spans[-1] == 3 * 12  # no bubble


COSTS = st.sampled_from([0.5, 1.0, 1.5, 2.0])


@settings(max_examples=60, deadline=None)
@given(
    **auto_problem_axes(COSTS),
    transfer=TRANSFERS,
)
def test_never_slower_than_a_hand_written_schedule_that_fits(
    layout, p, m, limit, weight, transfer, costs
):
    """Unit costs (F = I = W = 1 per stage) or other small ones, a random limit in
    microbatches of a rank's activations: auto's step (analytic executor) is no longer than any
    registry family's of the same layout whose peak fits the limit."""
    per_rank = 1 if layout == "loop" else 2
    f, i, w = costs
    problem = AutoProblem(
        p, m, forward=f, backward_input=i, backward_weight=w, transfer=transfer,
        memory_weight=weight, memory_limit=limit * per_rank, layout=layout,
    )  # fmt: skip
    ours = analytic_makespan(problem, auto_schedule(problem))
    families = LOOP_FAMILIES if layout == "loop" else V_FAMILIES
    for name in families:
        if name == "dualpipe-v" and m < 2 * p:
            continue
        theirs = build_schedule(name, p, m)
        if max(schedule_peaks(problem, theirs)) <= limit * per_rank:
            assert ours <= analytic_makespan(problem, theirs) * (1 + 1e-12), name
