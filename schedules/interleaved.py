"""Interleaved 1F1B with virtual stages (Narayanan et al. 2021, "Efficient Large-Scale Language
Model Training on GPU Clusters Using Megatron-LM", section 2.2).

Each rank holds v = chunks stages in a loop layout (stage s on rank s mod p), so a microbatch
crosses every rank v times. A rank's forward (backward) pass over one chunk costs 1/v of its
whole slice, and the bubble shrinks v-fold: (p-1)/v * (F+B) instead of (p-1) * (F+B), at the
price of v times more point-to-point messages.

Ordering (Megatron-LM / PyTorch ``ScheduleInterleaved1F1B``): microbatches go through a chunk
in groups of p before the rank moves to its next chunk, forwards chunk 0 -> v-1 and backwards
chunk v-1 -> 0. Megatron requires m to be a multiple of p so the groups are whole. On rank r::

    warmup   w = min((v-1)*p + 2*(p-1-r), m*v) forwards
    steady   (F, B) pairs until every forward is placed
    cooldown the remaining w backwards

Timeline (p=2, m=2, v=2; unit-time run, one cell is one chunk's F = 1/v of a rank's, B two)::

    r0: 0F0 0F1 2F0 2F1 .   .   2B0 --- .   2B1 --- 0B0 --- 0B1 ---
    r1: .   1F0 1F1 3F0 3B0 --- 3F1 3B1 --- 1B0 --- 1B1 --- .   .
"""

from __future__ import annotations

from schedules.actions import Action, Schedule, ScheduleError, loop_stage_to_rank
from schedules.dependencies import Kind
from schedules.sizes import check_counts


def interleaved_1f1b(num_ranks: int, num_microbatches: int, chunks: int | None = 2) -> Schedule:
    """Megatron's interleaved 1F1B over ``chunks`` >= 2 loop-mapped stages per rank."""
    check_counts("interleaved-1f1b", num_ranks, num_microbatches, chunks)
    v = 2 if chunks is None else chunks
    p, m = num_ranks, num_microbatches
    if v < 2:
        raise ScheduleError(
            f"interleaved-1f1b needs at least 2 chunks (stages) per rank, got {v}; "
            "use 1f1b for one."
        )
    if m % p:
        raise ScheduleError(
            f"interleaved-1f1b needs the microbatches to be a multiple of the ranks "
            f"(Megatron's groups of p), but {m} is not a multiple of {p}."
        )
    per_rank = [_rank_actions(rank, p, m, v) for rank in range(p)]
    return Schedule("interleaved-1f1b", m, loop_stage_to_rank(p, v), per_rank)


def _rank_actions(rank: int, p: int, m: int, v: int) -> list[Action]:
    total = m * v  # forwards (and backwards) this rank runs, over all its chunks
    warmup = min((v - 1) * p + 2 * (p - 1 - rank), total)
    # The step-th forward: groups of p microbatches, chunk 0, 1, ... v-1, repeat; the step-th
    # backward: the same groups, chunks in reverse. (m is a multiple of p: groups are whole.)
    groups = [(group % v, (group // v) * p) for group in range(total // p)]
    forwards = [
        Action(chunk * p + rank, Kind.F, first + within)
        for chunk, first in groups
        for within in range(p)
    ]
    backwards = [
        Action((v - 1 - chunk) * p + rank, Kind.B, first + within)
        for chunk, first in groups
        for within in range(p)
    ]
    steady = total - warmup
    pairs: list[Action] = [None] * (2 * steady)  # type: ignore[list-item]
    pairs[0::2] = forwards[warmup:]  # steady: one forward, then one backward
    pairs[1::2] = backwards[:steady]
    return forwards[:warmup] + pairs + backwards[steady:]  # warmup, steady, cooldown
