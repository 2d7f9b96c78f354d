"""Where every action of a schedule sits, per kind, in flat arrays: the validator's index.

Why flat arrays: at p=128, m=1024 a schedule has half a million actions; an array per kind
indexed by ``stage * m + microbatch`` holding the action's global position (its rank's offset
plus its position) answers "where is 3I5?" in O(1), and numpy builds it in one pass. When the
fast pass sees anything wrong, the plain loop runs instead to name the first offending action.
"""

from __future__ import annotations

from itertools import chain

import numpy as np

from schedules.actions import Action, Schedule
from schedules.dependencies import DependencyRule
from schedules.errors import ScheduleError
from schedules.grid import format_grid

NEVER = -1  # the position of an action that is not in the schedule


def fail(schedule: Schedule, sentence: str, mark: tuple[int, int] | None = None) -> ScheduleError:
    return ScheduleError(f"{sentence}\n{format_grid(schedule.actions, mark)}")


class ActionIndex:
    """Where each action sits: per kind, a flat array of global positions (-1 if absent); and
    per global position, the action's stage, kind code (``kinds`` order) and microbatch."""

    def __init__(self, schedule: Schedule, rule: DependencyRule) -> None:
        self.m = schedule.num_microbatches
        self.num_stages = schedule.num_stages
        self.kinds = list(rule.kinds)
        lengths = [len(row) for row in schedule.actions]
        self.total = sum(lengths)
        self.offsets: list[int] = np.r_[0, np.cumsum(lengths)[:-1]].astype(int).tolist()
        self.rank_array = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        self.rank_of: list[int] = self.rank_array.tolist()
        self.tables: dict[str, np.ndarray] = {}
        self.stage = self.kind = self.microbatch = np.zeros(0, dtype=np.int64)

    def locate(self, g: int) -> tuple[int, int]:
        rank = self.rank_of[g]
        return rank, g - self.offsets[rank]

    def producers(self, kinds: tuple[str, ...]) -> np.ndarray:
        """Per (stage, microbatch), the first of ``kinds`` present (-1 if none)."""
        merged = self.tables[kinds[0]]
        for kind in kinds[1:]:
            merged = np.where(merged != NEVER, merged, self.tables[kind])
        return merged


def index_actions(schedule: Schedule, rule: DependencyRule) -> ActionIndex:
    """The index of ``schedule``; raises ``ScheduleError`` naming the first action that is out
    of range, on the wrong rank, of an unknown kind, or repeated."""
    index = ActionIndex(schedule, rule)
    if not _index_fast(schedule, index):
        _index_slowly(schedule, rule, index)  # raises, naming the first offence
    return index


def _index_fast(schedule: Schedule, index: ActionIndex) -> bool:
    """Fill ``index`` with numpy; False if anything is wrong (nothing is reported here)."""
    # every action's three fields in one flat list (C speed), then one array per field
    flat = list(chain.from_iterable(chain.from_iterable(schedule.actions)))
    code = {kind: c for c, kind in enumerate(index.kinds)}
    try:
        kind = np.array(list(map(code.__getitem__, flat[1::3])), dtype=np.int64)
    except (KeyError, TypeError):
        return False
    try:
        stage = np.array(flat[0::3], dtype=np.int64)
        microbatch = np.array(flat[2::3], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        return False
    in_range = (stage >= 0) & (stage < index.num_stages) & (microbatch >= 0)
    in_range &= microbatch < index.m
    if not in_range.all():
        return False
    owner = np.asarray(schedule.stage_to_rank, dtype=np.int64)
    if not (owner[stage] == index.rank_array).all():
        return False
    key = stage * index.m + microbatch
    size = index.num_stages * index.m
    for c, name in enumerate(index.kinds):
        where = np.flatnonzero(kind == c)
        table = np.full(size, NEVER, dtype=np.int64)
        table[key[where]] = where
        if np.count_nonzero(table != NEVER) != len(where):  # a repeated action
            return False
        index.tables[name] = table
    index.stage, index.kind, index.microbatch = stage, kind, microbatch
    return True


def _index_slowly(schedule: Schedule, rule: DependencyRule, index: ActionIndex) -> None:
    """The plain loop: raises at the first offending action."""
    m, num_stages = index.m, index.num_stages
    owner = schedule.stage_to_rank
    tables = {kind: [NEVER] * (num_stages * m) for kind in rule.kinds}
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
    raise AssertionError("the fast index rejected a schedule the plain loop accepts")


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
