"""Measurements of a schedule read straight from its per-rank action order (no timing)."""

from __future__ import annotations

from hypothesis import strategies as st

from schedules.actions import Schedule

TRANSFERS = st.sampled_from([0.0, 0.3])  # between neighbouring stages on different ranks


def auto_problem_axes(cost) -> dict:
    """The hypothesis strategies of a small auto problem (placement, sizes, memory limit in
    microbatches, the bytes an I leaves for its W, and F, I, W costs drawn from ``cost``), which
    the auto property tests share."""
    return {
        "layout": st.sampled_from(["loop", "v"]),
        "p": st.integers(1, 4),
        "m": st.integers(1, 10),
        "limit": st.floats(1.0, 3.0),
        "weight": st.sampled_from([0.0, 0.4, 1.0]),
        "costs": st.one_of(st.just((1.0, 1.0, 1.0)), st.tuples(cost, cost, cost)),
    }


def peak_in_flight(schedule: Schedule, rank: int) -> int:
    """Most (stage, microbatch) pairs on ``rank`` whose F has run and whose last backward action
    there (B, or W for a split backward) has not. With one stage per rank, microbatches."""
    row = schedule.actions[rank]
    last_backward = {}
    for position, (stage_index, kind, microbatch_index) in enumerate(row):
        if kind in ("B", "W"):
            last_backward[(stage_index, microbatch_index)] = position
    current = peak = 0
    for position, (stage_index, kind, microbatch_index) in enumerate(row):
        if kind == "F":
            current += 1
            peak = max(peak, current)
        elif last_backward.get((stage_index, microbatch_index)) == position:
            current -= 1
    return peak


def dependencies(schedule: Schedule, action) -> list[tuple]:
    """What ``action`` needs, as (stage, kind-or-"G", microbatch); "G" is B or I."""
    stage_index, kind, microbatch_index = action
    if kind == "F":
        return [(stage_index - 1, "F", microbatch_index)] if stage_index > 0 else []
    if kind == "W":
        return [(stage_index, "G", microbatch_index)]
    needs = [(stage_index, "F", microbatch_index)]
    if stage_index < schedule.num_stages - 1:
        needs.append((stage_index + 1, "G", microbatch_index))
    return needs


def assert_topological(schedule: Schedule, order: list[tuple[int, int]]) -> None:
    """``order`` lists every action once, each after everything it depends on, and keeps each
    rank's own order."""
    assert len(order) == len(schedule)
    assert len(set(order)) == len(order)
    seen = set()
    next_position = [0] * schedule.num_ranks
    for rank, position in order:
        assert position == next_position[rank]
        next_position[rank] += 1
        action = schedule.actions[rank][position]
        for need in dependencies(schedule, action):
            assert need in seen, (action, need)
        stage_index, kind, microbatch_index = action
        seen.add((stage_index, "G" if kind in ("B", "I") else kind, microbatch_index))
