"""Context parallelism's K/V exchange: the bytes one rank sends per attention layer and pass, and
the K/V buffers it holds while it does, for the cost and memory models.

Why a module of its own: under context parallelism (``c`` in the layout) every layer but the
attention core works on its rank's ``s / c`` tokens alone (``Dims.local_seq``); the core's
queries need the keys and values of the whole sequence, which the ``c`` ranks of a context group
exchange. How they exchange them is the layout's ``cp_comm``:

* ``ring`` (Megatron Core's ``cp_comm_type="p2p"``, the default): ``c`` steps; at each step a
  rank computes against the K/V block it holds and passes it on to the next rank of the ring,
  so ``c - 1`` transfers each overlap with one step's compute (``exposed_seconds``);
* ``allgather`` (``cp_comm_type="all_gather"``, what Llama 3 used: Dubey et al. 2024, section
  3.3.2): the K/V of the whole sequence is gathered before the core runs, and Megatron's
  docstring says so: "The all-gather is not async, and cannot be overlapped".

With causal load balancing (rank i holds chunks i and 2c-1-i of 2c) every ring step is the same
work: two chunk-by-chunk blocks of the causal triangle, so each step carries 1/c of the rank's
attention FLOPs.

``block`` is one K/V block of the local size: ``2 * b * (s / c) * (kv_heads / t) * d`` elements
(K and V of this rank's tokens and tensor-parallel heads; grouped-query attention sends only its
kv heads). Bytes one rank sends for one attention layer and one microbatch:

===========  ==================  ==========================================================
scheme       forward             input backward
===========  ==================  ==========================================================
ring         (c - 1) block       2 (c - 1) block: K/V onward at steps 0..c-2, the dK/dV
                                 accumulated so far at steps 1..c-1 (sent together between)
allgather    (c - 1) block       2 (c - 1) block: K/V gathered again, dK/dV reduce-scattered
===========  ==================  ==========================================================

K/V in flight on one rank, beyond what the layer stores (its footprint keeps one block, the
local K/V; the ring's forward saves the last block it received instead, the same size):

===========  ==================  ==========================================================
ring         forward: c block    each received block, and its own K/V concatenated, stay
                                 referenced until the forward returns
             backward: 4 block   two double buffers of [K/V, dK/dV]
allgather    forward: c block    the gathered K/V of the whole sequence
             backward: 2c block  K/V gathered again and the full-length dK/dV it accumulates
===========  ==================  ==========================================================

The transient copies of a reorder (``index_select`` of the gathered chunks) are left out.

Sources: the split and the exchange, NVIDIA/Megatron-LM ``docs/user-guide/features/
context_parallel.md`` and ``megatron/core/utils.py`` (``get_batch_on_this_cp_rank``: 2c chunks,
rank i holds i and 2c-1-i), ``megatron/core/transformer/transformer_config.py``
(``cp_comm_type``), commit d98e8a64ddf34856e74b24714e3bedb2f5a39553; the volumes and buffers,
NVIDIA/TransformerEngine ``transformer_engine/pytorch/attention/dot_product_attention/
context_parallel.py`` (``AttnFuncWithCPAndKVP2P``: ``p2p_comm_buffers`` in the forward and the
backward, ``flash_attn_p2p_communicate``; ``AttnFuncWithCPAndKVAllGather``:
``gather_along_first_dim`` of k and v, full-length ``dk``, ``dv``), commit
d0067d0da6cb01811b8072a7d304f0e00344ce2b, the bf16 path (no FP8).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.errors import PebbleError
from simulator.model.layout import Layout
from simulator.model.transformer.config import TransformerConfig
from simulator.model.transformer.dims import Dims


@dataclass(frozen=True)
class KVExchange:
    """One rank's K/V exchange for one attention layer and one microbatch (module docstring).

    Why one value: the cost model prices the bytes (overlapped by the ring, exposed by the
    all-gather) and the memory model counts the buffers; both read the same numbers, derived
    once from the layer's shapes.
    """

    scheme: str  # "ring" or "allgather"
    ranks: int  # c, the context group
    block: int  # bytes of one K/V block of the local size
    forward: int  # bytes one rank sends in the forward
    backward: int  # bytes one rank sends in the input backward
    forward_buffers: int  # K/V bytes held in flight while the forward runs
    backward_buffers: int  # K/V and dK/dV bytes held in flight while the backward runs

    @property
    def overlapped(self) -> bool:
        """The ring's transfers overlap with the steps' compute; the all-gather's do not."""
        return self.scheme == "ring"

    def exposed_seconds(
        self,
        attention_seconds: float,
        bandwidth: float,
        latency: float = 0.0,
        *,
        backward: bool = False,
    ) -> float:
        """Seconds the exchange adds to a pass whose attention core computes for
        ``attention_seconds``, over a link of ``bandwidth`` bytes/s and ``latency`` s a message.

        Ring: ``c - 1`` transfers, each hidden behind one step's compute (1/c of the core's),
        exposed by what it takes longer (the backward's ``2 (c - 1)`` blocks spread evenly over
        its transfers). All-gather: every transfer exposed (``c - 1`` messages' latency and the
        bytes)."""
        if self.ranks == 1:
            return 0.0
        if bandwidth <= 0 or attention_seconds < 0 or latency < 0:
            raise PebbleError("a K/V exchange is timed on a positive bandwidth and times >= 0.")
        sent = self.backward if backward else self.forward
        transfers = self.ranks - 1
        if not self.overlapped:
            return transfers * latency + sent / bandwidth
        step = latency + sent / transfers / bandwidth
        return transfers * max(0.0, step - attention_seconds / self.ranks)


def kv_block_bytes(dims: Dims) -> int:
    """Bytes of one K/V block of the local size: K and V of this rank's ``s / c`` tokens of
    ``b`` sequences and its ``kv_heads / t`` heads."""
    return dims.activation_bytes(2 * dims.tokens * dims.local_kv_heads * dims.d)


def kv_exchange(dims: Dims) -> KVExchange:
    """The K/V exchange of one attention layer of ``dims`` (module docstring's tables)."""
    c, scheme = dims.c, dims.layout.cp_comm
    block = kv_block_bytes(dims)
    if c == 1:
        return KVExchange(scheme, 1, block, 0, 0, 0, 0)
    sent = (c - 1) * block
    backward_buffers = 4 * block if scheme == "ring" else 2 * c * block
    return KVExchange(scheme, c, block, sent, 2 * sent, c * block, backward_buffers)


def forward_buffer_bytes(kind: str, dims: Dims) -> int:
    """Bytes a layer of ``kind`` holds only while its forward runs: an attention core's K/V in
    flight under context parallelism (0 for every other layer, and without it)."""
    return kv_exchange(dims).forward_buffers if kind == "attention" else 0


def context_parallel_bytes(
    config: TransformerConfig, layout: Layout, microbatch_sequences: int, itemsize: int
) -> KVExchange:
    """``kv_exchange`` of one attention layer of ``config`` for one microbatch of
    ``microbatch_sequences`` sequences in ``itemsize``-byte activations, under ``layout``'s
    tensor and context degrees and its ``cp_comm``."""
    for name, value in (("microbatch_sequences", microbatch_sequences), ("itemsize", itemsize)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PebbleError(f"{name} must be a positive integer, got {value!r}.")
    return kv_exchange(Dims(config, microbatch_sequences, itemsize, layout.for_layers()))
