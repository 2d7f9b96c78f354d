"""Where every action of a schedule sits, per kind, in flat lists: the validator's index.

Why flat lists: at p=128, m=1024 a schedule has half a million actions; a list per kind indexed
by ``stage * m + microbatch`` holding the action's global position (its rank's offset plus its
position) is the cheapest structure that answers "where is 3I5?" in O(1).
"""

from __future__ import annotations

from schedules.actions import Action, Schedule
from schedules.dependencies import DependencyRule
from schedules.errors import ScheduleError
from schedules.grid import format_grid

NEVER = -1  # the position of an action that is not in the schedule


def fail(schedule: Schedule, sentence: str, mark: tuple[int, int] | None = None) -> ScheduleError:
    return ScheduleError(f"{sentence}\n{format_grid(schedule.actions, mark)}")


class ActionIndex:
    """Where each action sits: per kind, a flat list of global positions (-1 if absent)."""

    def __init__(self, schedule: Schedule, rule: DependencyRule) -> None:
        self.m = schedule.num_microbatches
        self.num_stages = schedule.num_stages
        size = self.num_stages * self.m
        self.tables = {kind: [NEVER] * size for kind in rule.kinds}
        self.offsets: list[int] = []
        self.rank_of: list[int] = []
        total = 0
        for rank, row in enumerate(schedule.actions):
            self.offsets.append(total)
            self.rank_of.extend([rank] * len(row))
            total += len(row)
        self.total = total

    def locate(self, g: int) -> tuple[int, int]:
        rank = self.rank_of[g]
        return rank, g - self.offsets[rank]

    def producers(self, kinds: tuple[str, ...]) -> list[int]:
        """Per (stage, microbatch), the first of ``kinds`` present (-1 if none)."""
        first = self.tables[kinds[0]]
        if len(kinds) == 1:
            return first
        merged = list(first)
        for kind in kinds[1:]:
            table = self.tables[kind]
            merged = [a if a != NEVER else b for a, b in zip(merged, table, strict=True)]
        return merged


def index_actions(schedule: Schedule, rule: DependencyRule) -> ActionIndex:
    index = ActionIndex(schedule, rule)
    m, num_stages = index.m, index.num_stages
    owner = schedule.stage_to_rank
    tables = index.tables
    g = 0
    for rank, row in enumerate(schedule.actions):
        for position, action in enumerate(row):
            stage_index, kind, microbatch_index = action
            if not (
                0 <= stage_index < num_stages
                and 0 <= microbatch_index < m
                and owner[stage_index] == rank
            ):
                raise_misplaced(schedule, rank, position, action)
            table = tables.get(kind)
            if table is None:
                raise fail(
                    schedule,
                    f"rank {rank} action {action} at position {position} has kind {kind!r}; "
                    f"kinds are {rule.kind_names}.",
                    (rank, position),
                )
            key = stage_index * m + microbatch_index
            if table[key] != NEVER:
                _, first = index.locate(table[key])
                raise fail(
                    schedule,
                    f"rank {rank} action {action} at position {position} repeats the one at "
                    f"position {first}; every action runs exactly once.",
                    (rank, position),
                )
            table[key] = g
            g += 1
    return index


def raise_misplaced(schedule: Schedule, rank: int, position: int, action: Action) -> None:
    stage_index, _, microbatch_index = action
    where = f"rank {rank} action {action} at position {position}"
    num_stages, m = schedule.num_stages, schedule.num_microbatches
    if not 0 <= stage_index < num_stages:
        sentence = (
            f"{where} names stage {stage_index}, but the schedule has {num_stages} stages "
            f"(0..{num_stages - 1})."
        )
    elif not 0 <= microbatch_index < m:
        sentence = (
            f"{where} names microbatch {microbatch_index}, but the schedule has {m} "
            f"microbatches (0..{m - 1})."
        )
    else:
        owner = schedule.stage_to_rank[stage_index]
        sentence = f"{where} belongs on rank {owner}, which owns stage {stage_index}."
    raise fail(schedule, sentence, (rank, position))
