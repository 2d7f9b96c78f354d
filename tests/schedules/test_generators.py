"""Every generator gives a valid schedule over a grid of sizes, with its family's structure."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedules.actions import Action, ScheduleError, loop_stage_to_rank, v_stage_to_rank
from schedules.registry import SCHEDULES, build_schedule, list_schedules
from schedules.validate import validate
from tests.schedules.helpers import assert_topological, peak_in_flight

NAMES = [name for name, _ in list_schedules()]


def sizes_for(name: str):
    for p in (1, 2, 3, 4, 5):
        for m in (1, 2, 3, 4, 5, 8, 12):
            for v in (2, 3, 4) if name == "interleaved-1f1b" else (None,):
                yield p, m, v


GRID = [(name, p, m, v) for name in NAMES for p, m, v in sizes_for(name)]


def supported(name: str, p: int, m: int) -> bool:
    if name == "interleaved-1f1b":
        return m % p == 0
    if name == "dualpipe-v":
        return m >= 2 * p
    return True


@pytest.mark.parametrize(("name", "p", "m", "v"), GRID)
def test_every_generator_validates_or_refuses_in_one_sentence(name, p, m, v):
    if not supported(name, p, m):
        with pytest.raises(ScheduleError) as error:
            build_schedule(name, p, m, v)
        assert "\n" not in str(error.value)
        return
    schedule = build_schedule(name, p, m, v)
    assert schedule.name == name
    assert schedule.num_microbatches == m
    assert schedule.num_ranks == p
    assert schedule.chunks == (v or SCHEDULES[name].default_chunks)
    assert_topological(schedule, validate(schedule))


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    p=st.integers(1, 8),
    m=st.integers(1, 20),
    v=st.integers(2, 4),
)
def test_random_sizes_validate(name, p, m, v):
    chunks = v if name == "interleaved-1f1b" else None
    if name == "interleaved-1f1b":
        m = m * p
    if not supported(name, p, m):
        return
    schedule = build_schedule(name, p, m, chunks)
    assert_topological(schedule, validate(schedule))


def kinds(schedule, rank):
    return "".join(action.kind for action in schedule.actions[rank])


@pytest.mark.parametrize(("p", "m"), [(1, 3), (2, 2), (3, 4)])
def test_naive_keeps_one_microbatch_in_the_pipe(p, m):
    schedule = build_schedule("naive", p, m)
    for rank in range(p):
        assert schedule.actions[rank] == tuple(
            Action(rank, kind, mb) for mb in range(m) for kind in "FB"
        )
        assert peak_in_flight(schedule, rank) == 1


@pytest.mark.parametrize(("p", "m"), [(1, 1), (2, 4), (4, 8), (3, 7)])
def test_gpipe_runs_every_forward_before_any_backward(p, m):
    schedule = build_schedule("gpipe", p, m)
    assert schedule.stage_to_rank == loop_stage_to_rank(p, 1)
    for rank in range(p):
        assert kinds(schedule, rank) == "F" * m + "B" * m
        assert peak_in_flight(schedule, rank) == m


@pytest.mark.parametrize(("p", "m"), [(1, 3), (2, 1), (2, 4), (4, 3), (4, 8), (8, 16)])
def test_1f1b_holds_min_p_minus_r_m_microbatches(p, m):
    schedule = build_schedule("1f1b", p, m)
    for rank in range(p):
        warmup = min(p - rank, m)
        assert peak_in_flight(schedule, rank) == warmup
        assert kinds(schedule, rank) == "F" * warmup + "BF" * (m - warmup) + "B" * warmup


@pytest.mark.parametrize(("p", "m", "v"), [(2, 4, 2), (4, 8, 2), (4, 8, 4), (3, 9, 3)])
def test_interleaved_walks_chunks_in_groups_of_p(p, m, v):
    schedule = build_schedule("interleaved-1f1b", p, m, v)
    assert schedule.stage_to_rank == loop_stage_to_rank(p, v)
    for rank in range(p):
        forwards = [a for a in schedule.actions[rank] if a.kind == "F"]
        # the k-th forward: chunk (k // p) % v, microbatch (k // (p*v)) * p + k % p
        assert forwards == [
            Action(((k // p) % v) * p + rank, "F", (k // (p * v)) * p + k % p) for k in range(m * v)
        ]
        warmup = min((v - 1) * p + 2 * (p - 1 - rank), m * v)
        assert kinds(schedule, rank).index("B") == warmup + (warmup < m * v)


@pytest.mark.parametrize(("p", "m", "v"), [(2, 3, 2), (4, 6, 2), (3, 4, 3)])
def test_interleaved_needs_m_a_multiple_of_p(p, m, v):
    with pytest.raises(ScheduleError, match="multiple of"):
        build_schedule("interleaved-1f1b", p, m, v)


def test_interleaved_needs_two_chunks_or_more():
    with pytest.raises(ScheduleError, match="at least 2 chunks"):
        build_schedule("interleaved-1f1b", 2, 4, 1)


@pytest.mark.parametrize(("p", "m"), [(1, 2), (2, 4), (4, 8), (4, 12), (8, 16), (4, 3)])
def test_zb_h1_keeps_1f1b_memory(p, m):
    schedule = build_schedule("zb-h1", p, m)
    for rank in range(p):
        assert set(kinds(schedule, rank)) == {"F", "I", "W"}
        assert peak_in_flight(schedule, rank) <= p
        assert peak_in_flight(schedule, rank) == min(p, m)


@pytest.mark.parametrize(("p", "m"), [(2, 4), (4, 8), (4, 12), (8, 16), (3, 2)])
def test_zb_h2_holds_at_most_2p_minus_1(p, m):
    schedule = build_schedule("zb-h2", p, m)
    for rank in range(p):
        assert peak_in_flight(schedule, rank) <= 2 * p - 1
    if m >= 2 * p - 1:
        # the first rank fills the wait for its first I with 2p-1 forwards
        assert kinds(schedule, 0).index("I") == 2 * p - 1
        assert peak_in_flight(schedule, 0) == 2 * p - 1


@pytest.mark.parametrize(("p", "m"), [(1, 1), (2, 4), (4, 8), (4, 3), (8, 16)])
def test_zb_v_is_a_v_with_no_more_activation_than_1f1b(p, m):
    schedule = build_schedule("zb-v", p, m)
    assert schedule.stage_to_rank == v_stage_to_rank(p, 2)
    for rank in range(p):
        assert set(kinds(schedule, rank)) <= {"F", "I", "W"}
        # each chunk holds half a 1F1B stage: 2p chunk-activations = p whole microbatches
        assert peak_in_flight(schedule, rank) <= 2 * p


@pytest.mark.parametrize(("p", "m"), [(1, 2), (2, 4), (4, 8), (3, 9)])
def test_dualpipe_v_mixes_full_and_split_backward_with_bounded_memory(p, m):
    schedule = build_schedule("dualpipe-v", p, m)
    assert schedule.stage_to_rank == v_stage_to_rank(p, 2)
    used = {a.kind for row in schedule.actions for a in row}
    assert used == {"F", "B", "I", "W"}
    for rank in range(p):
        assert peak_in_flight(schedule, rank) <= 2 * p + 1


def test_dualpipe_v_needs_two_microbatches_per_rank():
    with pytest.raises(ScheduleError, match="at least as many microbatches as stages"):
        build_schedule("dualpipe-v", 4, 7)


@pytest.mark.parametrize("name", NAMES)
def test_generators_are_pure(name):
    p, m = 2, 4
    assert build_schedule(name, p, m) == build_schedule(name, p, m)
