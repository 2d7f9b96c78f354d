"""The auto search's shortcuts change nothing: the shared size-only orders equal fresh ones, a
played candidate fits by construction, and giving up on candidates surely slower than the best
so far (and running a repeated generator once) picks what scoring every candidate would."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedules.auto import AutoProblem
from schedules.auto import skeletons as shapes
from schedules.auto.execute import Played, play
from schedules.auto.greedy import list_schedule
from schedules.auto.portfolio import GIVE_UP_SLACK, candidates, search
from schedules.auto.problem import B, F, I, W
from schedules.auto.timing import Tables, fits, retime, rows_of_schedule
from schedules.registry import build_schedule
from tests.schedules.helpers import TRANSFERS, auto_problem_axes

COSTS = st.floats(0.2, 3.0)


def _problem(layout, p, m, limit, weight, transfer, costs, objective="makespan") -> AutoProblem:
    f, i, w = costs
    return AutoProblem(
        p, m, forward=f, backward_input=i, backward_weight=w, transfer=transfer,
        memory_weight=weight, memory_limit=limit * (1 if layout == "loop" else 2),
        layout=layout, objective=objective,
    )  # fmt: skip


def _every_candidate(problem: AutoProblem):
    """(label, value) of the fastest candidate, scoring each one in full (no giving up)."""
    tables = Tables(problem)
    best = None
    for label, build in candidates(tables, problem):
        made = build(tables, math.inf)
        if made is None:
            continue
        rows = made.rows if isinstance(made, Played) else made
        if not fits(tables, rows):
            continue
        timing = retime(tables, rows)
        if timing is None:
            continue
        value = timing.value(problem.objective)
        if best is None or value < best[1]:
            best = (label, value, [list(row) for row in rows])
    return best


@pytest.mark.parametrize("layout", ["loop", "v"])
def test_shared_orders_equal_fresh_ones(layout):
    problem = AutoProblem(4, 9, layout=layout)
    tables = Tables(problem)
    for name in shapes.families(tables):
        fresh = rows_of_schedule(build_schedule(name, 4, 9))
        assert [list(row) for row in shapes.hand_written(tables, name)] == fresh
    rows = [list(row) for row in shapes.one_at_a_time(tables, split=False)]
    fresh = [[] for _ in range(4)]
    for j in range(9):
        for s in range(tables.S):
            fresh[tables.rank[s]].append((s, F, j))
        for s in reversed(range(tables.S)):
            fresh[tables.rank[s]].append((s, B, j))
    assert rows == fresh


@settings(max_examples=60, deadline=None)
@given(
    **auto_problem_axes(COSTS),
    transfer=TRANSFERS,
    objective=st.sampled_from(["makespan", "span"]),
)
def test_the_search_picks_what_scoring_every_candidate_picks(
    layout, p, m, limit, weight, transfer, costs, objective
):
    problem = _problem(layout, p, m, limit, weight, transfer, costs, objective)
    label, value, rows = _every_candidate(problem)
    found = search(problem)
    assert (found.label, found.timing.value(objective)) == (label, value)
    assert [list(row) for row in found.rows] == rows


@settings(max_examples=60, deadline=None)
@given(
    **auto_problem_axes(COSTS),
    rule=st.sampled_from(["fit", "worst", "always"]),
)
def test_played_candidates_fit_and_are_timed_as_retimed(layout, p, m, limit, weight, costs, rule):
    problem = _problem(layout, p, m, limit, weight, 0.3, costs)
    tables = Tables(problem)
    skeletons = [shapes.v_shape(tables, 0)] if layout == "v" else []
    if layout == "loop":
        skeletons.append(shapes.one_f_one_b_shape(tables, shapes.warmups(tables, 0)))
    played = [play(tables, rows, rule, True) for rows in skeletons]
    for first in (False, True):
        played.append(list_schedule(tables, shapes.warmups(tables, 0), rule, first, True))
    for made in played:
        if made is not None:
            assert fits(tables, made.rows)
            assert retime(tables, made.rows).last == made.timing.last


def test_giving_up_stops_only_candidates_that_end_later():
    """A give-up time below a candidate's makespan stops it; at it (plus the search's slack for
    rounding, ``GIVE_UP_SLACK``), it is played in full."""
    problem = AutoProblem(4, 8, forward=1.0, backward_input=1.2, backward_weight=0.7, transfer=0.1)
    tables = Tables(problem)
    warm = shapes.warmups(tables, 0)
    whole = list_schedule(tables, warm, "worst", False, True)
    makespan = whole.timing.makespan
    assert list_schedule(tables, warm, "worst", False, True, give_up=makespan * 0.99) is None
    at = makespan * (1 + GIVE_UP_SLACK)
    again = list_schedule(tables, warm, "worst", False, True, give_up=at)
    assert (again.rows, again.timing) == (whole.rows, whole.timing)
    rows = shapes.hand_written(tables, "1f1b")
    makespan = retime(tables, rows).makespan
    assert retime(tables, rows, makespan * 0.99) is None
    assert retime(tables, rows, makespan * (1 + GIVE_UP_SLACK)) == retime(tables, rows)
    assert all(k != W for row in shapes.one_at_a_time(tables, split=False) for _, k, _ in row)
    assert any(k == I for row in shapes.one_at_a_time(tables, split=True) for _, k, _ in row)
