"""ZB-H1 and ZB-H2 (Qi et al. 2024, "Zero Bubble (Almost) Pipeline Parallelism", ICLR, section 3
"handcrafted schedules"): split each backward into I (gradient for the input, on the critical
path) and W (gradient for the weights, needed only by the optimizer) and move the Ws into the
bubbles.

Both share one shape per rank r::

    warmup    a forwards
    deferral  d (F, I) pairs: a W is owed for each
    steady    (F, I, W) triples while forwards remain (the W pays the oldest debt)
    cooldown  (I, W) pairs, then the owed Ws

* ZB-H1: a = p-1-r, d = r (the order of a DeepSpeed implementation of ZB-H1 with exact
  split-backward semantics). The same activation memory as 1F1B (at most p microbatches in
  flight on every rank) and, with F = I = W and free transfers, makespan
  m(F+I+W) + (p-1)(F+I-W) = 3m + p - 1: a third of 1F1B's bubble.
* ZB-H2: a = 2(p-r)-2, d = 2r. More warmup forwards (at most 2p-1 in flight) fill the wait for
  the first I, and the deferred Ws fill the tail: with F = I = W no rank idles between its first
  and last action, and the pipeline becomes a parallelogram.

Timeline ZB-H1 (p=3, m=6; unit-time run with F = I = W = 1): makespan 3m + p - 1 = 20::

    r0: 0F0 0F1 0F2 .   .   0I0 0W0 0F3 0I1 0W1 0F4 0I2 0W2 0F5 0I3 0W3 0I4 0W4 0I5 0W5
    r1: .   1F0 1F1 .   1I0 1F2 1I1 1W0 1F3 1I2 1W1 1F4 1I3 1W2 1F5 1I4 1W3 1I5 1W4 1W5
    r2: .   .   2F0 2I0 2F1 2I1 2F2 2I2 2W0 2F3 2I3 2W1 2F4 2I4 2W2 2F5 2I5 2W3 2W4 2W5

Timeline ZB-H2 (p=3, m=6; the same run): every rank busy from its first action to its last::

    r0: 0F0 0F1 0F2 0F3 0F4 0I0 0W0 0F5 0I1 0W1 0I2 0W2 0I3 0W3 0I4 0W4 0I5 0W5
    r1: .   1F0 1F1 1F2 1I0 1F3 1I1 1F4 1I2 1W0 1F5 1I3 1W1 1I4 1W2 1I5 1W3 1W4 1W5
    r2: .   .   2F0 2I0 2F1 2I1 2F2 2I2 2F3 2I3 2F4 2I4 2W0 2F5 2I5 2W1 2W2 2W3 2W4 2W5
"""

from __future__ import annotations

from schedules.actions import Action, Schedule, loop_stage_to_rank
from schedules.dependencies import Kind
from schedules.sizes import one_chunk


def zb_h1(num_ranks: int, num_microbatches: int, chunks: int | None = None) -> Schedule:
    """ZB-H1: 1F1B's memory, a third of its bubble (F = I = W)."""
    one_chunk("zb-h1", num_ranks, num_microbatches, chunks)
    p, m = num_ranks, num_microbatches
    per_rank = [_rank_actions(r, m, warmup=p - 1 - r, deferred=r) for r in range(p)]
    return Schedule("zb-h1", m, loop_stage_to_rank(p, 1), per_rank)


def zb_h2(num_ranks: int, num_microbatches: int, chunks: int | None = None) -> Schedule:
    """ZB-H2: up to 2p-1 microbatches in flight buy a pipeline without idle time (F = I = W)."""
    one_chunk("zb-h2", num_ranks, num_microbatches, chunks)
    p, m = num_ranks, num_microbatches
    per_rank = [_rank_actions(r, m, warmup=2 * (p - r) - 2, deferred=2 * r) for r in range(p)]
    return Schedule("zb-h2", m, loop_stage_to_rank(p, 1), per_rank)


def _rank_actions(rank: int, m: int, warmup: int, deferred: int) -> list[Action]:
    forwards = inputs = weights = 0
    actions: list[Action] = []

    def place(kind: str) -> None:
        nonlocal forwards, inputs, weights
        if kind == "F":
            actions.append(Action(rank, Kind.F, forwards))
            forwards += 1
        elif kind == "I":
            actions.append(Action(rank, Kind.I, inputs))
            inputs += 1
        else:
            actions.append(Action(rank, Kind.W, weights))
            weights += 1

    for _ in range(min(warmup, m)):  # warmup
        place("F")
    for _ in range(deferred):  # deferral: each pair leaves a W owed
        if forwards == m:
            break
        place("F")
        place("I")
    while forwards < m:  # steady
        place("F")
        place("I")
        place("W")
    while inputs < m:  # cooldown
        place("I")
        place("W")
    while weights < m:  # the owed weight backwards fill the tail
        place("W")
    return actions
