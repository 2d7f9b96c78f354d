"""Naive pipeline: one microbatch at a time through the whole pipe, no overlap at all.

The baseline every pipeline schedule is measured against: it is model parallelism without
pipelining, so p-1 of p ranks are always idle. Each rank's list alternates F and B, and because
microbatch k+1's forward on rank r waits for rank r-1, which waits for microbatch k's backward
to come all the way back, only one microbatch is ever in the pipe.

Timeline (p=2, m=2; unit-time run with F one unit, B two, shown as ``---``)::

    r0: 0F0 .   .   .   0B0 --- 0F1 .   .   .   0B1 ---
    r1: .   1F0 1B0 --- .   .   .   1F1 1B1 --- .   .
"""

from __future__ import annotations

from schedules.actions import Action, Schedule, loop_stage_to_rank
from schedules.dependencies import Kind
from schedules.sizes import one_chunk


def naive(num_ranks: int, num_microbatches: int, chunks: int | None = None) -> Schedule:
    """Stage r on rank r; rank r runs F then B for microbatch 0, then 1, and so on."""
    one_chunk("naive", num_ranks, num_microbatches, chunks)
    per_rank = []
    for rank in range(num_ranks):
        actions = []
        for microbatch_index in range(num_microbatches):  # no warmup, no cooldown: one phase
            actions.append(Action(rank, Kind.F, microbatch_index))
            actions.append(Action(rank, Kind.B, microbatch_index))
        per_rank.append(actions)
    return Schedule("naive", num_microbatches, loop_stage_to_rank(num_ranks, 1), per_rank)
