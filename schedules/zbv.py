"""ZB-V (Qi et al. 2024, "Pipeline Parallelism with Controllable Memory", and section 6 of
"Zero Bubble (Almost) Pipeline Parallelism"; PyTorch ``ScheduleZBVZeroBubble``).

Two chunks per rank in a V: rank r holds stage r (chunk 0, on the way down) and stage 2p-1-r
(chunk 1, on the way back up), so rank 0 holds both the first and the last stage and the loss
is computed next to the input. Backward is split into I and W. With F = I = W per chunk and
m >= 2p the steady state has no bubble, and a rank never holds more than 2p chunk-activations,
i.e. p microbatches of a whole rank's layers: no more activation memory than 1F1B's first rank.
(Counted per chunk. Rank 0 also holds the last stage, so whatever the loss layer caches comes on
top; 1F1B keeps that on its last, least loaded rank.)

Phases on rank r (c0 = chunk 0, c1 = chunk 1; each chunk runs its microbatches in order)::

    warmup   2(p-r)-1 F c0; then r pairs (F c1, F c0); then p-r triples (F c1, I c1, W c1)
    steady   (F c0, I c0, W c0, F c1, I c1, W c1) until both chunks' forwards are placed
    cooldown r pairs (I c0, I c1); p-r pairs (I c0, W c0); then the owed Ws, c1 then c0

It is written for max(m, 2p-1) microbatches and the actions of microbatches >= m are dropped,
as PyTorch does, so small m still gives a valid (if bubbly) schedule.

Timeline (p=2, m=4; unit-time run, one cell is one chunk action = half a rank's; wrapped)::

    r0: 0F0 0F1 0F2 3F0 3I0 3W0 3F1 3I1 3W1 0F3 0I0 0W0 3F2 ...
    r1: .   1F0 2F0 1F1 2F1 2I0 2W0 1F2 1I0 1W0 2F2 2I1 2W1 ...

    r0: ... 3I2 3W2 0I1 0W1 3F3 3I3 3W3 0I2 0W2 0I3 0W3 .
    r1: ... 1F3 1I1 1W1 2F3 2I2 2W2 1I2 2I3 1I3 1W2 2W3 1W3
"""

from __future__ import annotations

from schedules.actions import Schedule, v_stage_to_rank
from schedules.program import RankProgram
from schedules.sizes import two_chunks


def zb_v(num_ranks: int, num_microbatches: int, chunks: int | None = 2) -> Schedule:
    """ZB-V over a V layout of two chunks per rank, split backward."""
    two_chunks("zb-v", num_ranks, num_microbatches, chunks)
    p, m = num_ranks, num_microbatches
    per_rank = [_rank_actions(rank, p, m) for rank in range(p)]
    return Schedule("zb-v", m, v_stage_to_rank(p, 2), per_rank)


def _rank_actions(rank: int, p: int, m: int) -> list:
    planned = max(m, 2 * p - 1)  # enough microbatches to fill the V; extras are dropped
    down, up = rank, 2 * p - 1 - rank
    program = RankProgram(limit=m)

    for _ in range(2 * (p - rank) - 1):  # warmup: chunk 0 forwards reach the bottom of the V
        program.add(down, "F")
    for _ in range(rank):
        program.add(up, "F")
        program.add(down, "F")
    for _ in range(p - rank):
        program.add(up, "F")
        program.add(up, "I")
        program.add(up, "W")

    while program.count(up, "F") < program.count(down, "F") or program.count(down, "F") < planned:
        if program.count(down, "F") < planned:  # steady: one of everything, per chunk
            program.add(down, "F")
        program.add(down, "I")
        program.add(down, "W")
        program.add(up, "F")
        program.add(up, "I")
        program.add(up, "W")

    for _ in range(rank):  # cooldown: input gradients first, weights owed
        program.add(down, "I")
        program.add(up, "I")
    for _ in range(p - rank):
        program.add(down, "I")
        program.add(down, "W")
    while program.count(up, "W") < program.count(up, "I"):
        program.add(up, "W")
    while program.count(down, "W") < program.count(down, "I"):
        program.add(down, "W")
    return program.actions
