"""One transformer block's tensor-parallel collectives, exposed and hidden, as Megatron-LM runs
them.

Why not "two all-reduces a pass, all exposed": Megatron-LM issues the backward's collectives
asynchronously and runs a GEMM under each (``ColumnParallelLinearWithAsyncAllreduce`` and
``ColumnParallelLinearWithSequenceParallelism``, ``megatron/mpu/layers.py`` at 02bb1f5c, 2022;
today ``LinearWithGradAccumulationAndAsyncCommunication`` in ``megatron/core/tensor_parallel/
layers.py``). Per block, with ``AR`` a ring all-reduce of the ``s b h`` activations over the
``t`` ranks and ``AG``, ``RS`` half of one (an all-gather, a reduce-scatter)::

    forward              no SP: AR after attn_out, AR after mlp_down            exposed
                         SP:    AG before qkv and mlp_up, RS after attn_out
                                and mlp_down                                    exposed
    backward, per column-parallel linear (qkv, mlp_up):
                         no SP: dX = dY W^T; AR(dX) | dW = X^T dY               AR under dW
                         SP:    AG(X) | dX = dY W^T; RS(dX) | dW = X^T dY       AG under dX,
                                                                                RS under dW
                         SP, per row-parallel linear: AG(dY)                    exposed

A collective under a GEMM is exposed only by what outlasts it, and slows the GEMM by the
preset's ``comm_contention`` while they share the GPU. ``tp_overlap`` (0 by default) hides a
further share of what is still exposed, for runs that overlap the forward too (Transformer
Engine's user-buffer overlap, ``--tp-comm-overlap``). A zero-bubble schedule that defers the
weight-gradient GEMM loses the overlap under ``dW``; we do not model that (the split is timed as
if ``dW`` ran right after ``dX``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from simulator.analytic.sharded_comm import ring_seconds

COLUMN_PARALLEL_KINDS = ("qkv", "mlp_up")
"""Layer kinds whose backward runs a collective under its GEMMs (the two column-parallel linears
of a block; a MoE block's experts and a latent attention's projections have none here)."""

COLLECTIVES_PER_PASS = 2
"""Column-parallel linears (and row-parallel ones) in a dense block: attention and MLP."""


@dataclass(frozen=True)
class BlockCollectives:
    """Seconds of one block's tensor-parallel collectives in its forward (``F``) and its
    input-backward (``I``): exposed (on the critical path) and hidden (under a GEMM)."""

    F: float = 0.0
    I: float = 0.0  # noqa: E741 - the pass's name, as in StageCost
    hidden_F: float = 0.0
    hidden_I: float = 0.0

    def charged(self, part: str, contention: float) -> float:
        """What the pass's time grows by: the exposed seconds plus the contention the hidden
        ones cost the GEMMs they run under."""
        return getattr(self, part) + contention * getattr(self, "hidden_" + part)


def block_collectives(
    message_bytes: float,
    ranks: int,
    sequence_parallel: bool,
    column_linears: Sequence[tuple[float, float]],
    link: tuple[float, float],
    tp_overlap: float = 0.0,
) -> BlockCollectives:
    """One block's collectives over ``ranks`` tensor-parallel ranks of ``message_bytes`` (the
    block's ``s b h`` activations on a rank, before sharding), given the ``(dX, dW)`` GEMM
    seconds of its column-parallel linears (at most ``COLLECTIVES_PER_PASS``; a missing one
    hides nothing) and the group's ``link`` (bus bandwidth, latency per step)."""
    if ranks <= 1 or message_bytes <= 0:
        return BlockCollectives()
    half = ring_seconds(message_bytes, ranks, *link)  # an all-gather or a reduce-scatter
    pairs = list(column_linears[:COLLECTIVES_PER_PASS])
    pairs += [(0.0, 0.0)] * (COLLECTIVES_PER_PASS - len(pairs))
    forward = COLLECTIVES_PER_PASS * 2 * half
    exposed = hidden = 0.0
    if sequence_parallel:
        exposed += COLLECTIVES_PER_PASS * half  # the row-parallel linears' gathers of dY
        under = [gemm for dx, dw in pairs for gemm in (dx, dw)]  # AG under dX, RS under dW
        for gemm in under:
            exposed += max(0.0, half - gemm)
            hidden += min(half, gemm)
    else:
        for _, dw in pairs:
            exposed += max(0.0, 2 * half - dw)
            hidden += min(2 * half, dw)
    keep = 1.0 - tp_overlap
    return BlockCollectives(
        F=forward * keep,
        I=exposed * keep,
        hidden_F=forward * tp_overlap,
        hidden_I=hidden + exposed * tp_overlap,
    )


@dataclass(frozen=True)
class TensorGroup:
    """A run's tensor-parallel group: the bytes of one block's collectives on a rank, its
    ranks, whether sequence parallelism is on, its link (bus bandwidth, latency per step) and
    the extra hidden share; ``of_block`` prices one block's collectives."""

    message: float
    ranks: int
    sequence_parallel: bool
    link: tuple[float, float]
    tp_overlap: float = 0.0

    def of_block(self, column_linears: tuple[tuple[float, float], ...]) -> BlockCollectives:
        return _priced(
            self.message,
            self.ranks,
            self.sequence_parallel,
            column_linears,
            self.link,
            self.tp_overlap,
        )


_priced = lru_cache(maxsize=4096)(block_collectives)
"""``advise`` prices the same few block shapes many times over."""
