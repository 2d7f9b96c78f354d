"""Does every (stage, microbatch) run each requirement of the dependency rule exactly once?

A requirement is a tuple of alternatives (by default ``F``; and ``B`` or ``I`` + ``W``). For
each requirement and each (stage, microbatch), exactly one alternative must be present, whole.
When something is missing, the error names it through an action that needs it (the action a
user wrote), so "rank 0 action 0B0 needs 1B0 (or 1I0), which never runs" points at the gap.
"""

from __future__ import annotations

import numpy as np

from schedules.action_index import NEVER, ActionIndex, fail
from schedules.actions import Action, Schedule
from schedules.dependencies import DependencyRule, Need


def _named(stage_index: int, kinds: tuple[str, ...], microbatch_index: int) -> str:
    """``1B0 (or 1I0)``: the first kind, with the others as alternatives."""
    first, *others = (str(Action(stage_index, k, microbatch_index)) for k in kinds)
    return first + "".join(f" (or {o})" for o in others)


def _either(alternatives: tuple[tuple[str, ...], ...]) -> str:
    """``either B, or I and W``."""
    parts = [" and ".join(alternative) for alternative in alternatives]
    return parts[0] if len(parts) == 1 else "either " + ", or ".join(parts)


def _whole(index: ActionIndex, requirement) -> np.ndarray:
    """Per key: exactly one alternative is present, wholly, and nothing of the others."""
    present = np.zeros(index.num_stages * index.m, dtype=np.int64)
    partial = np.zeros(len(present), dtype=bool)
    for alternative in requirement:
        head = index.tables[alternative[0]] != NEVER
        for kind in alternative[1:]:
            partial |= (index.tables[kind] != NEVER) != head
        present += head
    return (present == 1) & ~partial


def check_complete(schedule: Schedule, rule: DependencyRule, index: ActionIndex) -> None:
    """Raise ``ScheduleError`` for the first (stage, microbatch) that misses or mixes a
    requirement, in stage-major order; return quietly when all is whole."""
    bad = np.zeros(index.num_stages * index.m, dtype=bool)
    for requirement in rule.requirements:
        bad |= ~_whole(index, requirement)
    for key in np.flatnonzero(bad).tolist():
        for requirement in rule.requirements:
            _check_key(schedule, rule, index, requirement, key)


def _check_key(schedule, rule, index: ActionIndex, requirement, key: int) -> None:
    stage_index, microbatch_index = divmod(key, index.m)
    tables = index.tables
    present = [
        [tables[kind][key] for kind in alternative if tables[kind][key] != NEVER]
        for alternative in requirement
    ]
    chosen = [i for i, found in enumerate(present) if found]
    if len(chosen) > 1:
        first = present[chosen[0]][0]
        other = present[chosen[1]][0]
        rank, position = index.locate(other)
        _, first_position = index.locate(first)
        first_action = schedule.actions[index.rank_of[first]][first_position]
        raise fail(
            schedule,
            f"rank {rank} action {schedule.actions[rank][position]} at position {position} "
            f"mixes with {first_action} at position {first_position}; a stage and microbatch "
            f"runs {_either(requirement)}.",
            (rank, position),
        )
    heads = tuple(alternative[0] for alternative in requirement)
    if not any(tables[head][key] != NEVER for head in heads):
        _raise_missing(schedule, rule, index, stage_index, microbatch_index, heads)
    for alternative in requirement:
        if tables[alternative[0]][key] == NEVER:
            continue
        for kind in alternative[1:]:
            if tables[kind][key] == NEVER:
                rank, position = index.locate(tables[alternative[0]][key])
                raise fail(
                    schedule,
                    f"rank {rank} action {schedule.actions[rank][position]} at position "
                    f"{position} is never followed by {Action(stage_index, kind, microbatch_index)}"
                    f"; every {alternative[0]} needs its {kind} on the same rank.",
                    (rank, position),
                )


def _dependants(rule: DependencyRule, heads: tuple[str, ...]) -> list[tuple[str, Need]]:
    """(kind, need) pairs whose need one of ``heads`` satisfies: same stage first, then the
    neighbours, so the message points at the closest action that waits."""
    found = [
        (kind, need)
        for kind, kind_rule in rule.kinds.items()
        for need in kind_rule.needs
        if set(need.kinds) & set(heads)
    ]
    return sorted(found, key=lambda pair: pair[1].stage_offset != 0)


def _raise_missing(schedule, rule, index: ActionIndex, stage_index, microbatch_index, heads):
    owner = schedule.stage_to_rank[stage_index]
    for kind, need in _dependants(rule, heads):
        waiting_stage = stage_index - need.stage_offset
        if not 0 <= waiting_stage < index.num_stages:
            continue
        g = index.tables[kind][waiting_stage * index.m + microbatch_index]
        if g == NEVER:
            continue
        rank, position = index.locate(g)
        raise fail(
            schedule,
            f"rank {rank} action {schedule.actions[rank][position]} at position {position} "
            f"needs {_named(stage_index, need.kinds, microbatch_index)}, which never runs "
            f"(it belongs on rank {owner}).",
            (rank, position),
        )
    raise fail(
        schedule,
        f"{_named(stage_index, heads, microbatch_index)} never runs: every stage needs a "
        f"forward and a backward of every microbatch (it belongs on rank {owner}).",
    )
