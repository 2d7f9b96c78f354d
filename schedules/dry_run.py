"""The dry run: each rank executes its list in order as soon as its head action's needs are done.

It proves the schedule free of deadlock and yields the global order both executors walk, with
each action's producers (the order index of the action that satisfies each of its needs). A
rank that is blocked waits on exactly one action; when that action runs, the rank is woken.
"""

from __future__ import annotations

from schedules.action_index import NEVER, ActionIndex, fail
from schedules.actions import Schedule
from schedules.dependencies import DependencyRule

_MAX_STUCK_LISTED = 3  # a deadlock message names at most this many other stuck ranks


def _need_tables(rule: DependencyRule, index: ActionIndex) -> dict[str, list]:
    """Per kind: (producer table, key offset, stage offset) for each of its needs."""
    merged: dict[tuple[str, ...], list[int]] = {}
    out = {}
    for kind, kind_rule in rule.kinds.items():
        specs = []
        for need in kind_rule.needs:
            if need.kinds not in merged:
                merged[need.kinds] = index.producers(need.kinds)
            specs.append((merged[need.kinds], need.stage_offset * index.m, need.stage_offset))
        out[kind] = specs
    return out


def dry_run(
    schedule: Schedule, rule: DependencyRule, index: ActionIndex
) -> tuple[list[tuple[int, int]], list[tuple[int, ...]]]:
    """(order, inputs): see ``schedules.validate.DryRun``."""
    m, num_stages = index.m, index.num_stages
    specs_of = _need_tables(rule, index)
    rank_of = index.rank_of
    done = bytearray(index.total)
    order_index = [NEVER] * index.total
    waiter = [NEVER] * index.total
    pointer = [0] * schedule.num_ranks
    order: list[tuple[int, int]] = []
    inputs: list[tuple[int, ...]] = []
    worklist = list(range(schedule.num_ranks - 1, -1, -1))
    while worklist:
        rank = worklist.pop()
        row = schedule.actions[rank]
        base = index.offsets[rank]
        position = pointer[rank]
        length = len(row)
        while position < length:
            stage_index, kind, microbatch_index = row[position]
            key = stage_index * m + microbatch_index
            producers = []
            blocked = NEVER
            for table, key_offset, stage_offset in specs_of[kind]:
                if not 0 <= stage_index + stage_offset < num_stages:
                    producers.append(NEVER)
                    continue
                need = table[key + key_offset]
                if need == NEVER:
                    _raise_unsatisfied(schedule, rule, index, rank, position)
                if not done[need]:
                    blocked = need
                    break
                producers.append(order_index[need])
            if blocked != NEVER:
                if rank_of[blocked] == rank:
                    _raise_same_rank_order(schedule, index, rank, position, blocked)
                waiter[blocked] = rank
                break
            g = base + position
            done[g] = 1
            order_index[g] = len(order)
            order.append((rank, position))
            inputs.append(tuple(producers))
            position += 1
            woken = waiter[g]
            if woken != NEVER:
                worklist.append(woken)
        pointer[rank] = position
    if len(order) != index.total:
        _raise_deadlock(schedule, rule, index, pointer, done)
    return order, inputs


def first_unfinished(rule, index: ActionIndex, action, done: bytearray) -> int:
    """The first unfinished action ``action`` waits for, or -1 if it can run."""
    stage_index, kind, microbatch_index = action
    for need in rule.needs(kind):
        stage = stage_index + need.stage_offset
        if not 0 <= stage < index.num_stages:
            continue
        producer = index.producers(need.kinds)[stage * index.m + microbatch_index]
        if producer != NEVER and not done[producer]:
            return producer
    return NEVER


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


def _raise_deadlock(
    schedule: Schedule, rule, index: ActionIndex, pointer: list[int], done: bytearray
) -> None:
    stuck = []
    for rank, row in enumerate(schedule.actions):
        position = pointer[rank]
        if position >= len(row):
            continue
        need = first_unfinished(rule, index, row[position], done)
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
