"""The dry run: each rank executes its list in order as soon as its head action's needs are done.

It proves the schedule free of deadlock and yields the global order both executors walk, with
each action's producers (the order index of the action that satisfies each of its needs). A
rank that is blocked waits on exactly one action; when that action runs, the rank is woken.

Why numpy around a plain loop: which action satisfies each need is a gather over the index
(numpy, once); the loop itself only tests "done" flags, so it costs a few hundred nanoseconds
per action at half a million actions.
"""

from __future__ import annotations

import numpy as np

from schedules.action_index import NEVER, ActionIndex, fail
from schedules.actions import Schedule
from schedules.dependencies import DependencyRule

_MAX_STUCK_LISTED = 3  # a deadlock message names at most this many other stuck ranks
OFF_END = -1  # a need that falls off the pipeline's end: nothing to wait for


def need_positions(rule: DependencyRule, index: ActionIndex) -> np.ndarray:
    """(actions x need slots): the global position of the action satisfying each need,
    ``OFF_END`` where the need falls off the pipeline, -2 where nothing satisfies it."""
    slots = max((len(r.needs) for r in rule.kinds.values()), default=0)
    out = np.full((index.total, slots), OFF_END, dtype=np.int64)
    merged: dict[tuple[str, ...], np.ndarray] = {}
    for code, kind in enumerate(index.kinds):
        mine = np.flatnonzero(index.kind == code)
        for slot, need in enumerate(rule.needs(kind)):
            if need.kinds not in merged:
                merged[need.kinds] = index.producers(need.kinds)
            stage = index.stage[mine] + need.stage_offset
            inside = (stage >= 0) & (stage < index.num_stages)
            key = stage[inside] * index.m + index.microbatch[mine][inside]
            found = merged[need.kinds][key]
            out[mine[inside], slot] = np.where(found == NEVER, -2, found)
    return out


def dry_run(
    schedule: Schedule, rule: DependencyRule, index: ActionIndex
) -> tuple[np.ndarray, np.ndarray]:
    """(global positions in run order, producers as order indices per need slot)."""
    needs = need_positions(rule, index)
    unsatisfied = np.flatnonzero((needs == -2).any(axis=1))
    if len(unsatisfied):
        rank, position = index.locate(int(unsatisfied[0]))
        _raise_unsatisfied(schedule, rule, index, rank, position)
    walked = _walk(schedule, index, [needs[:, s].tolist() for s in range(needs.shape[1])])
    order = np.array(walked, dtype=np.int64)
    order_index = np.empty(index.total, dtype=np.int64)
    order_index[order] = np.arange(len(order))
    in_order = needs[order]
    producers = np.where(in_order >= 0, order_index[np.maximum(in_order, 0)], OFF_END)
    return order, producers


def _walk(schedule: Schedule, index: ActionIndex, needs: list[list[int]]) -> list[int]:
    """The worklist of ranks; returns global positions in the order they ran."""
    rank_of = index.rank_of
    done = bytearray(index.total)
    waiter = [NEVER] * index.total
    pointer = [0] * schedule.num_ranks
    lengths = [len(row) for row in schedule.actions]
    order: list[int] = []
    append = order.append
    first, second = (needs + [[NEVER] * index.total] * 2)[:2]
    extra = needs[2:]
    worklist = list(range(schedule.num_ranks - 1, -1, -1))
    while worklist:
        rank = worklist.pop()
        base = index.offsets[rank]
        g, stop = base + pointer[rank], base + lengths[rank]
        while g < stop:
            blocked = first[g]
            if blocked < 0 or done[blocked]:
                blocked = second[g]
                if blocked < 0 or done[blocked]:
                    blocked = _first_unfinished(extra, g, done) if extra else NEVER
            if blocked >= 0:
                if rank_of[blocked] == rank:
                    _raise_same_rank_order(schedule, index, rank, g - base, blocked)
                waiter[blocked] = rank
                break
            done[g] = 1
            append(g)
            woken = waiter[g]
            if woken != NEVER:
                worklist.append(woken)
            g += 1
        pointer[rank] = g - base
    if len(order) != index.total:
        _raise_deadlock(schedule, index, needs, pointer, done)
    return order


def _first_unfinished(needs: list[list[int]], g: int, done: bytearray) -> int:
    """The first unfinished action global position ``g`` waits for, or -1 if it can run."""
    return next((s[g] for s in needs if s[g] >= 0 and not done[s[g]]), NEVER)


def _raise_unsatisfied(schedule, rule, index, rank: int, position: int) -> None:
    """A need no action of the schedule satisfies (only possible for kinds outside the
    rule's requirements, such as a kind added for an experiment)."""
    stage_index, kind, microbatch_index = schedule.actions[rank][position]
    for need in rule.needs(kind):
        stage = stage_index + need.stage_offset
        if 0 <= stage < index.num_stages:
            key = stage * index.m + microbatch_index
            if index.producers(need.kinds)[key] == NEVER:
                wanted = " or ".join(f"{stage}{k}{microbatch_index}" for k in need.kinds)
                raise fail(
                    schedule,
                    f"rank {rank} action {schedule.actions[rank][position]} at position "
                    f"{position} needs {wanted}, which never runs.",
                    (rank, position),
                )


def _raise_same_rank_order(
    schedule: Schedule, index: ActionIndex, rank: int, position: int, need: int
) -> None:
    _, later = index.locate(need)
    action = schedule.actions[rank][position]
    raise fail(
        schedule,
        f"rank {rank} action {action} at position {position} needs "
        f"{schedule.actions[rank][later]}, which comes later on the same rank "
        f"(position {later}).",
        (rank, position),
    )


def _raise_deadlock(schedule, index: ActionIndex, needs, pointer: list[int], done) -> None:
    stuck = []
    for rank, row in enumerate(schedule.actions):
        position = pointer[rank]
        if position >= len(row):
            continue
        need = _first_unfinished(needs, index.offsets[rank] + position, done)
        need_rank, need_position = index.locate(need)
        stuck.append(
            (
                rank,
                position,
                f"rank {rank} action {row[position]} at position {position} waits for "
                f"{schedule.actions[need_rank][need_position]} (rank {need_rank}, position "
                f"{need_position})",
            )
        )
    rank, position, first = stuck[0]
    sentence = f"deadlock: {first}, and no rank can make progress."
    others = [text for _, _, text in stuck[1 : 1 + _MAX_STUCK_LISTED]]
    if others:
        sentence += f" Also stuck: {'; '.join(others)}"
        unlisted = len(stuck) - 1 - len(others)
        sentence += f"; and {unlisted} more ranks." if unlisted else "."
    raise fail(schedule, sentence, (rank, position))
