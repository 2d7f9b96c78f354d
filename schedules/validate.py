"""The validator every executor calls first: is this schedule runnable, in what order, and what
does each action consume?

A schedule is runnable when

* every action names a stage and microbatch in range, on the rank that owns the stage, and a
  kind the dependency rule knows;
* every (stage, microbatch) runs each requirement of the rule exactly once (by default ``F``,
  and either ``B`` or ``I`` then ``W``; a schedule may mix the two per microbatch);
* the per-rank orders respect every action's needs without a deadlock.

The last point is checked by a dry run: each rank executes its list in order as soon as the
head action's inputs are done. The dry run's global order, together with each action's
producers, is what ``validate`` returns (a ``DryRun``) and what both executors walk: they ask
this result, and ``schedules.dependencies``, and never re-derive a dependency.

Errors are ``ScheduleError``: one sentence naming the first offending action, then the per-rank
grid around it.

Why so terse inside: at p=128, m=1024 this runs over half a million actions, so the work is a
few linear passes over flat lists indexed by ``stage * m + microbatch``, and a worklist of ranks
for the dry run, where each blocked rank is woken by the one action it waits for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from schedules.action_index import NEVER, index_actions
from schedules.actions import Action, Schedule
from schedules.completeness import check_complete
from schedules.dependencies import PIPELINE_RULE, DependencyRule, Flow
from schedules.dry_run import dry_run
from schedules.sizes import check_layout


@dataclass(frozen=True, eq=False)
class DryRun(Sequence):
    """A validated schedule's execution order, with what each action consumes.

    It is a sequence of ``(rank, position)`` pairs: every action once, each after all the
    actions it depends on, each rank's own order kept. ``producers[i, j]`` is the order index of
    the action that satisfies the ``j``-th need of the ``i``-th action (``rule.needs(kind)``),
    or -1 where the need falls off the pipeline's end or the kind has fewer needs; ``inputs[i]``
    is that row as a tuple. ``ranks``, ``stages``, ``kinds`` and ``microbatches`` are the
    actions' fields in order, as arrays, for executors that work on whole columns.
    """

    schedule: Schedule
    rule: DependencyRule
    producers: np.ndarray
    ranks: np.ndarray
    positions: np.ndarray
    stages: np.ndarray
    kinds: np.ndarray
    microbatches: np.ndarray

    @cached_property
    def order(self) -> list[tuple[int, int]]:
        """The run order as (rank, position) pairs (built on first use)."""
        return list(zip(self.ranks.tolist(), self.positions.tolist(), strict=True))

    def __len__(self) -> int:
        return len(self.ranks)

    def __getitem__(self, index):
        return self.order[index]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.order)

    @property
    def inputs(self) -> _Rows:
        return _Rows(self.producers)

    def action(self, index: int) -> Action:
        rank, position = self.order[index]
        return self.schedule.actions[rank][position]

    def received(self, index: int) -> tuple[int, Flow] | None:
        """(producer order index, flow) of the payload action ``index`` takes from another
        stage, or None (stage 0's forward, the last stage's backward, a same-stage need)."""
        kind = self.action(index).kind
        for need, producer in zip(self.rule.needs(kind), self.inputs[index], strict=False):
            if need.flow is not None and producer != NEVER:
                return producer, need.flow
        return None


class _Rows(Sequence):
    """Rows of an integer array as tuples of ints."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, index):
        return tuple(self.array[index].tolist())


def validate(schedule: Schedule, rule: DependencyRule = PIPELINE_RULE) -> DryRun:
    """Check that ``schedule`` can run under ``rule``; return its dry run.

    The dry run lists every action once, each after all the actions it depends on, so an
    executor that walks it never meets an input that is not ready; with each action come its
    producers. Raises ``ScheduleError`` naming the first offending action (missing, repeated,
    misplaced, mixed alternatives, out of order, or deadlocked) followed by the per-rank grid.
    """
    check_layout(schedule)
    index = index_actions(schedule, rule)
    check_complete(schedule, rule, index)
    globals_in_order, producers = dry_run(schedule, rule, index)
    ranks = index.rank_array[globals_in_order]
    positions = globals_in_order - np.asarray(index.offsets, dtype=np.int64)[ranks]
    return DryRun(
        schedule,
        rule,
        producers,
        ranks,
        positions,
        index.stage[globals_in_order],
        np.array(index.kinds)[index.kind[globals_in_order]],
        index.microbatch[globals_in_order],
    )
