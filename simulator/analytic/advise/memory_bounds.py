"""A closed-form lower bound on a configuration's peak memory, from its memory table alone: what
lets ``advise`` skip a configuration that cannot fit without simulating it.

The bound is *valid*: never above what the analytic executor then predicts (the tests compare
them on every family). So a configuration whose memory bound exceeds the limit cannot fit.

It counts a rank's parameters, gradients, optimizer state and receive buffers exactly, plus the
forwards every schedule family runs on it before its first backward (a closed form per family,
e.g. ``min(p - r, m)`` for 1F1B) times the smallest per-forward cache among its stages, or one
forward of each of its stages (microbatch 0's, all cached when the first backward starts), if
more; for ZB-H1 and ZB-H2, whose ranks defer their weight-gradient backwards, what a rank holds
just before its first W, if more (``deferred_weights``).

With activation offload the forwards' offloadable blocks may be on the host, so the activations
counted are what no policy sends (the embedding, the head, the loss block: ``offload_units``)
for those forwards, or one whole forward of a stage, whose bytes are all on the device when its
backward starts, if more.

The same static memory gives auto each rank's activation budget (``with_budget``).
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from simulator.analytic.advise.families import FamilyTraits
from simulator.analytic.advise.placement import stage_to_rank, stages_of_ranks
from simulator.analytic.advise.space import Candidate
from simulator.analytic.advise.stage_tables import MemoryTable, StageTable
from simulator.model.sharding import Sharding
from simulator.run.rank_memory import rank_static_memory


def warmup_forwards(family: str, p: int, m: int, v: int, rank: int) -> int:
    """Forwards ``rank`` runs before its first backward, at least (exact for every family but
    DualPipeV, whose last rank runs one more; ``tests/simulator/test_advise_bounds.py``)."""
    if family == "gpipe":
        return m
    if family in ("1f1b", "zb-h1"):
        return min(p - rank, m)
    if family == "zb-h2":
        return min(2 * (p - rank) - 1, m)
    if family == "interleaved-1f1b":
        return min(2 * (p - rank - 1) + (v - 1) * p + 1, m * v)
    if family == "zb-v":
        return min(2 * p, m + rank + 1, 2 * m)
    if family == "dualpipe-v":
        return min(2 * p, 2 * m)
    return 1  # naive, and any family without a closed form: one forward before any backward


def deferred_weights(family: str, p: int, m: int, rank: int) -> tuple[int, int]:
    """(forwards cached, input-gradient backwards whose W is pending) on ``rank`` just before
    its first weight-gradient backward, for the zero-bubble families that defer their Ws
    (one stage a rank): rank r of ZB-H1 has run all p forwards and r + 1 Is by then, rank r
    of ZB-H2 2p - 1 forwards and 2r + 1 Is (when m is at least that many; else (0, 0), no
    bound). Each I leaves what its W needs (``left``), which is more than its forward cached
    when the W reads the output gradients as well, so the last ranks, which defer the most Ws,
    hold the most (``tests/simulator/test_advise_bounds.py`` holds this below the executor's
    peak)."""
    if family == "zb-h1" and m >= p:
        return p - rank - 1, rank + 1
    if family == "zb-h2" and m >= 2 * p - 1:
        return 2 * p - 2 * rank - 2, 2 * rank + 1
    return 0, 0


def static_bytes(c: Candidate, traits: FamilyTraits, table: StageTable | MemoryTable) -> list[int]:
    """Per rank: parameters, gradients, optimizer state and receive buffers, as
    ``rank_memory.static_memory`` counts them (its sharding stage's rule)."""
    return list(
        _static_bytes(
            stage_to_rank(traits, c.pp, c.chunks),
            table.params,
            tuple(sent * c.microbatch_size for sent in table.sends),
            table.recipe,
            Sharding.of_layout(c.layout),
            table.experts,
            table.layer_params,
        )
    )


@lru_cache(maxsize=8192)
def _static_bytes(owner, params, sends, recipe, sharding, experts, layer_params) -> tuple[int, ...]:
    """``rank_static_memory``'s totals, once per split, batch and sharding (candidates that
    differ only in their schedule family or microbatch count share them)."""
    memory = rank_static_memory(
        owner, params, sends, recipe, sharding, expert_params=experts, layer_params=layer_params
    )
    return tuple(m.total for m in memory)


def memory_bound(c: Candidate, traits: FamilyTraits, table: StageTable | MemoryTable) -> int:
    """A lower bound on the fullest rank's whole-rank memory in bytes (with offload: see the
    module docstring)."""
    static = static_bytes(c, traits, table)
    best = 0
    for rank, mine in enumerate(stages_of_ranks(traits, c.pp, c.chunks)):
        kept = [kept_per_forward(table, s, c.recompute) for s in mine]
        warm = warmup_forwards(traits.name, c.pp, c.microbatches, c.chunks, rank)
        if c.offload == "none":
            # when the last stage's first backward starts, microbatch 0 went forward through
            # every stage and nothing was freed yet: each rank holds one forward of each of its
            # stages
            activations = max(warm * min(kept), sum(kept))
            if len(mine) == 1:
                forwards, lefts = deferred_weights(traits.name, c.pp, c.microbatches, rank)
                activations = max(activations, forwards * kept[0] + lefts * table.left[mine[0]])
        else:
            if not getattr(table, "offloadable", ()):
                raise ValueError("a memory bound with offload needs an offload_table")
            stays = [max(0, table.cached[s] - table.offloadable[s]) for s in mine]
            activations = max(warm * min(stays), max(kept))
        best = max(best, static[rank] + activations * c.microbatch_size)
    return best


def kept_per_forward(table: StageTable | MemoryTable, stage: int, policy: str) -> int:
    """Bytes one forward of ``stage`` (one sequence) leaves cached until its backward under the
    recompute ``policy``: the net of its forward's work items in the policy's plan (its
    checkpoints and the layers it does not drop; selective: attention without its scores)."""
    if policy != table.policy:
        raise ValueError(f"a stage table of recompute {table.policy!r} asked for {policy!r}")
    return table.cached[stage]


def with_budget(c: Candidate, traits: FamilyTraits, limit: int) -> Candidate:
    """``c``, for auto planned to ``limit`` on each rank's whole memory (``total:``): each rank's
    activations get what its own static memory leaves, so a rank without the embedding or the
    head holds more microbatches; other families unchanged."""
    if traits.layout != "chunks":
        return c
    return replace(c, auto_memory=limit)
