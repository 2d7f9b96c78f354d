"""1F1B, a.k.a. PipeDream-Flush (Narayanan et al. 2021, "Memory-Efficient Pipeline-Parallel DNN
Training"; also Megatron-LM's non-interleaved schedule).

Same bubble as GPipe, (p-1)/(m+p-1), but rank r holds at most min(p-r, m) microbatches'
activations instead of m: after a short warmup of forwards, each rank alternates one backward
and one forward, so a microbatch's activations are freed as soon as possible.

Phases on rank r (warmup counts the first steady forward, as PyTorch's ``Schedule1F1B`` does)::

    warmup   w = min(p - r, m) forwards
    steady   (B, F) pairs until every forward is placed
    cooldown the remaining w backwards

Timeline (p=3, m=4; unit-time run with F one unit, B two)::

    r0: 0F0 0F1 0F2 .   .   .   .   0B0 --- 0F3 0B1 --- .   0B2 --- .   0B3 ---
    r1: .   1F0 1F1 .   .   1B0 --- 1F2 1B1 --- 1F3 1B2 --- .   1B3 --- .   .
    r2: .   .   2F0 2B0 --- 2F1 2B1 --- 2F2 2B2 --- 2F3 2B3 --- .   .   .   .
"""

from __future__ import annotations

from schedules.actions import Action, Schedule, loop_stage_to_rank
from schedules.dependencies import Kind
from schedules.sizes import one_chunk


def one_f_one_b(num_ranks: int, num_microbatches: int, chunks: int | None = None) -> Schedule:
    """Stage r on rank r; warmup min(p-r, m) forwards, then B/F pairs, then the last Bs."""
    one_chunk("1f1b", num_ranks, num_microbatches, chunks)
    m = num_microbatches
    per_rank = []
    for rank in range(num_ranks):
        warmup = min(num_ranks - rank, m)
        actions = [Action(rank, Kind.F, mb) for mb in range(warmup)]
        for step in range(m - warmup):  # steady: the oldest backward, then the next forward
            actions.append(Action(rank, Kind.B, step))
            actions.append(Action(rank, Kind.F, warmup + step))
        actions.extend(Action(rank, Kind.B, mb) for mb in range(m - warmup, m))  # cooldown
        per_rank.append(actions)
    return Schedule("1f1b", m, loop_stage_to_rank(num_ranks, 1), per_rank)
