"""The validator rejects each kind of broken schedule with a sentence naming the action."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedules.actions import Action, Schedule, ScheduleError, loop_stage_to_rank
from schedules.registry import build_schedule, list_schedules
from schedules.validate import validate
from tests.schedules.helpers import assert_topological

A = Action.parse


def make(rows: list[str], m: int, stage_to_rank=None) -> Schedule:
    """A schedule from one string per rank, e.g. "0F0 0B0"."""
    actions = [[A(cell) for cell in row.split()] for row in rows]
    return Schedule("hand", m, stage_to_rank or loop_stage_to_rank(len(rows), 1), actions)


def error_of(schedule: Schedule) -> str:
    with pytest.raises(ScheduleError) as error:
        validate(schedule)
    return str(error.value)


def first_line(message: str) -> str:
    return message.splitlines()[0]


def test_a_valid_schedule_returns_a_topological_order():
    schedule = make(["0F0 0F1 0B0 0B1", "1F0 1B0 1F1 1B1"], 2)
    order = validate(schedule)
    assert_topological(schedule, order)
    assert order[:3] == [(0, 0), (0, 1), (1, 0)]


def test_missing_action_is_named_through_the_action_that_needs_it():
    message = error_of(make(["0F0 0F1 0B0 0B1", "1F0 1F1 1B1"], 2))
    assert first_line(message) == (
        "rank 0 action 0B0 at position 2 needs 1B0 (or 1I0), which never runs "
        "(it belongs on rank 1)."
    )
    assert "[0B0]" in message  # the grid marks the spot


def test_missing_action_nobody_needs_is_named_on_its_own():
    message = error_of(make(["0F0 0F1 0B0", "1F0 1F1 1B0 1B1"], 2))
    assert first_line(message).startswith("0B1 (or 0I1) never runs")


def test_missing_forward_is_named_through_its_backward():
    message = error_of(make(["0F0 0B0", "1F0 1F1 1B0 1B1"], 2))
    assert first_line(message).startswith("rank 1 action 1F1 at position 1 needs 0F1")


def test_duplicate_action():
    message = error_of(make(["0F0 0F1 0F0 0B0 0B1"], 2))
    assert first_line(message) == (
        "rank 0 action 0F0 at position 2 repeats the one at position 0; "
        "every action runs exactly once."
    )


def test_w_before_i_on_the_same_rank():
    message = error_of(make(["0F0 0W0 0I0"], 1))
    assert first_line(message) == (
        "rank 0 action 0W0 at position 1 needs 0I0, which comes later on the same rank "
        "(position 2)."
    )


def test_i_without_w():
    message = error_of(make(["0F0 0I0 0F1 0B1"], 2))
    assert first_line(message).startswith(
        "rank 0 action 0I0 at position 1 is never followed by 0W0"
    )


def test_w_without_i():
    message = error_of(make(["0F0 0W0"], 1))
    assert first_line(message).startswith("rank 0 action 0W0 at position 1 needs 0I0")


def test_b_mixed_with_i_and_w_for_the_same_pair():
    message = error_of(make(["0F0 0I0 0B0 0W0"], 1))
    assert first_line(message).startswith("rank 0 action 0I0 at position 1 mixes with 0B0")


def test_b_for_some_pairs_and_i_w_for_others_is_fine():
    schedule = make(["0F0 0F1 0B0 0I1 0W1"], 2)
    assert_topological(schedule, validate(schedule))


def test_action_on_the_wrong_rank():
    message = error_of(make(["0F0 0B0 1F0", "1B0"], 1))
    assert first_line(message) == (
        "rank 0 action 1F0 at position 2 belongs on rank 1, which owns stage 1."
    )


def test_indices_out_of_range():
    assert "names stage 5" in error_of(make(["0F0 5F0 0B0"], 1))
    assert "names microbatch 3, but the schedule has 2 microbatches" in error_of(
        make(["0F0 0F1 0F3 0B0 0B1"], 2)
    )


def test_unknown_kind():
    schedule = Schedule("hand", 1, (0,), [[Action(0, "F", 0), Action(0, "X", 0)]])
    assert "has kind 'X'" in error_of(schedule)


def test_backward_before_its_forward_on_the_same_rank():
    message = error_of(make(["0B0 0F0"], 1))
    assert first_line(message).startswith(
        "rank 0 action 0B0 at position 0 needs 0F0, which comes later on the same rank"
    )


def test_cross_rank_deadlock_names_a_stuck_action_per_rank():
    # rank 0 waits for 1B0 before sending 0F1; rank 1 insists on 1F1 before 1F0
    message = error_of(make(["0F0 0B0 0F1 0B1", "1F1 1F0 1B0 1B1"], 2))
    assert first_line(message) == (
        "deadlock: rank 0 action 0B0 at position 1 waits for 1B0 (rank 1, position 2), and no "
        "rank can make progress. Also stuck: rank 1 action 1F1 at position 0 waits for 0F1 "
        "(rank 0, position 2)."
    )
    assert "[0B0]" in message


def test_layout_errors():
    with pytest.raises(ScheduleError, match="rank 1 owns no stage"):
        validate(Schedule("hand", 1, (0,), [[A("0F0"), A("0B0")], []]))
    with pytest.raises(ScheduleError, match="stage 1 is mapped to rank 3"):
        validate(Schedule("hand", 1, (0, 3), [[A("0F0"), A("0B0")]]))


def test_big_schedule_errors_show_a_window_not_the_whole_grid():
    schedule = build_schedule("1f1b", 32, 256)
    rows = [list(row) for row in schedule.actions]
    rows[5].pop(300)
    message = error_of(Schedule("broken", 256, schedule.stage_to_rank, rows))
    assert len(message) < 4000
    assert "..." in message and "ranks below not shown" in message


@pytest.mark.parametrize("name", [name for name, _ in list_schedules()])
def test_dropping_any_one_action_is_caught(name):
    schedule = build_schedule(name, 2, 4)
    rng = random.Random(name)
    for _ in range(10):
        rows = [list(row) for row in schedule.actions]
        rank = rng.randrange(len(rows))
        dropped = rows[rank].pop(rng.randrange(len(rows[rank])))
        message = error_of(Schedule(name, 4, schedule.stage_to_rank, rows))
        assert str(dropped) in first_line(message) or "I" in first_line(message)


@settings(max_examples=80, deadline=None)
@given(
    name=st.sampled_from(["gpipe", "1f1b", "zb-h1", "zb-v", "interleaved-1f1b"]),
    seed=st.integers(0, 10**6),
)
def test_shuffled_schedules_either_validate_in_order_or_raise_schedule_error(name, seed):
    schedule = build_schedule(name, 3, 6 if name == "interleaved-1f1b" else 5)
    rng = random.Random(seed)
    rows = [list(row) for row in schedule.actions]
    for row in rows:
        for _ in range(2):  # a couple of swaps keeps many shuffles runnable
            i, j = rng.randrange(len(row)), rng.randrange(len(row))
            row[i], row[j] = row[j], row[i]
    shuffled = Schedule(name, schedule.num_microbatches, schedule.stage_to_rank, rows)
    try:
        order = validate(shuffled)
    except ScheduleError as error:
        assert error.args[0].splitlines()[0].endswith((".", ").")), error
    else:
        assert_topological(shuffled, order)
