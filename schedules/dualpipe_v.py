"""DualPipeV (DeepSeek-AI 2024, "DeepSeek-V3 Technical Report", section 3.2.1, and the
``dualpipev.py`` of deepseek-ai/DualPipe; PyTorch ``ScheduleDualPipeV``).

DualPipe feeds microbatches from both ends of the pipeline; DualPipeV is its "cut in half"
variant on a V layout (rank r holds stage r and stage 2p-1-r, as in ZB-V), which needs only
one copy of the parameters. Its steady state pairs the forward of one chunk with the full
backward of the other, which DeepSeek overlaps on the GPU so that one microbatch's
communication hides behind the other's compute. This IR has no overlapped action, so each pair
is emitted as two consecutive actions, the forward first. The warmup uses split backward
(I, W) and the tail switches from full B to I + W halfway, so the deferred Ws fill the drain.

Phases on rank r (c0 = chunk 0, c1 = chunk 1)::

    1  2(p-r-1) x F c0
    2  (r+1) x (F c0, F c1)
    3  (p-r-1) x (I c1, oldest W, F c1)
    4  (m-2p+r+1) x (F c0 + B c1, F c1 + B c0)   the overlapped steady state
    5  (p-r-1) x (B c1, F c1 + B c0)
    6  (r+1) x (B or I c1, B or I c0)            switching to I halfway
    7  (p-r-1) x (oldest W, B or I c0)
    8  (r+1) x oldest W

It needs m >= 2p (as PyTorch requires): the steady phase must run at least once on rank 0.

Timeline (p=2, m=4; unit-time run, one cell per chunk F, I or W, B two; wrapped)::

    r0: 0F0 0F1 0F2 3F0 3I0 3W0 3F1 0F3 3B1 --- 3F2 0B0 ...
    r1: .   1F0 2F0 1F1 2F1 1F2 2B0 --- 2F2 1B0 --- 1F3 ...

    r0: ... --- 3B2 --- 3F3 .   0B1 --- 3B3 --- 0I2 0W2 0I3 0W3
    r1: ... 2B1 --- 2F3 1B1 --- 2B2 --- 1B2 --- 2I3 1I3 2W3 1W3
"""

from __future__ import annotations

from schedules.actions import Schedule, ScheduleError, v_stage_to_rank
from schedules.program import RankProgram
from schedules.sizes import two_chunks


def dualpipe_v(num_ranks: int, num_microbatches: int, chunks: int | None = 2) -> Schedule:
    """DualPipeV over a V layout of two chunks per rank; overlapped pairs emitted F first."""
    two_chunks("dualpipe-v", num_ranks, num_microbatches, chunks)
    p, m = num_ranks, num_microbatches
    if m < 2 * p:
        raise ScheduleError(
            f"dualpipe-v needs at least as many microbatches as stages (2 x {p} ranks = "
            f"{2 * p}), got {m}."
        )
    per_rank = [_rank_actions(rank, p, m) for rank in range(p)]
    return Schedule("dualpipe-v", m, v_stage_to_rank(p, 2), per_rank)


def _rank_actions(rank: int, p: int, m: int) -> list:
    down, up = rank, 2 * p - 1 - rank
    program = RankProgram()

    def overlapped(forward_stage: int, backward_stage: int) -> None:
        # DualPipe runs these two at once; as data they are two consecutive actions
        program.add(forward_stage, "F")
        program.add(backward_stage, "B")

    # warmup
    for _ in range(2 * (p - rank - 1)):  # 1
        program.add(down, "F")
    for _ in range(rank + 1):  # 2
        program.add(down, "F")
        program.add(up, "F")
    for _ in range(p - rank - 1):  # 3: split backward, W straight after its I
        program.add(up, "I")
        program.add_oldest_weight()
        program.add(up, "F")

    # steady
    for step in range(m - 2 * p + rank + 1):  # 4
        if step == 0 and rank == p - 1:
            # the bottom of the V: not overlapped, so the turn-around costs no extra bubble
            program.add(down, "F")
            program.add(up, "B")
        else:
            overlapped(down, up)
        overlapped(up, down)

    # cooldown
    for _ in range(p - rank - 1):  # 5
        program.add(up, "B")
        overlapped(up, down)
    split = False  # 6: the second half of these backwards defers its W
    for step in range(rank + 1):
        if step == (rank + 1) // 2 and rank % 2 == 1:
            split = True
        program.add(up, "I" if split else "B")
        if step == (rank + 1) // 2 and rank % 2 == 0:
            split = True
        program.add(down, "I" if split else "B")
    for _ in range(p - rank - 1):  # 7
        program.add_oldest_weight()
        program.add(down, "I" if split else "B")
    for _ in range(rank + 1):  # 8
        program.add_oldest_weight()
    return program.actions
