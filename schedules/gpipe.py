"""GPipe (Huang et al. 2019, "GPipe: Efficient Training of Giant Neural Networks using Pipeline
Parallelism"): every forward, then every backward.

Fill-drain: each rank runs all m forwards (warmup = the whole forward phase), then all m full
backwards in microbatch order, as PyTorch's ``ScheduleGPipe`` does. Bubble fraction with
F = B/2: (p-1)/(m+p-1); activation memory peaks at m microbatches on every rank.

Timeline (p=3, m=3; unit-time run with F one unit, B two)::

    r0: 0F0 0F1 0F2 .   .   .   .   .   .   0B0 --- 0B1 --- 0B2 ---
    r1: .   1F0 1F1 1F2 .   .   .   1B0 --- 1B1 --- 1B2 --- .   .
    r2: .   .   2F0 2F1 2F2 2B0 --- 2B1 --- 2B2 --- .   .   .   .
"""

from __future__ import annotations

from schedules.actions import Action, Schedule, loop_stage_to_rank
from schedules.dependencies import Kind
from schedules.sizes import one_chunk


def gpipe(num_ranks: int, num_microbatches: int, chunks: int | None = None) -> Schedule:
    """Stage r on rank r; all forwards, then all full backwards, both in microbatch order."""
    one_chunk("gpipe", num_ranks, num_microbatches, chunks)
    per_rank = []
    for rank in range(num_ranks):
        forwards = [Action(rank, Kind.F, mb) for mb in range(num_microbatches)]  # fill
        backwards = [Action(rank, Kind.B, mb) for mb in range(num_microbatches)]  # drain
        per_rank.append(forwards + backwards)
    return Schedule("gpipe", num_microbatches, loop_stage_to_rank(num_ranks, 1), per_rank)
