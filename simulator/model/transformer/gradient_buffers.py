"""The gradient tensors a transformer layer's backward holds while it runs.

Why: stored activations are what published formulas count, but a device also holds the
backward's own working tensors: the gradient arriving at a layer (``dY``) and the one it
produces (``dX``) are both alive while the layer runs, and inside a residual branch the
residual's gradient waits at the fork (``simulator.model.transformer.base``) until the branch
is done. ``gradient_bytes`` gives the first two per layer; ``action_work`` adds the held
residual. Each tensor is counted on one tensor-parallel rank, full sequence inside the
tensor-parallel region and sequence-sharded outside it with sequence parallelism, as the
footprints count activations (``Dims``).

Per layer kind, (elements of dY, elements of dX) for one microbatch:

* ``qkv``, ``mlp_up``, ``lm_head`` (column parallel): dY is the local output width over the
  full sequence; dX is ``h`` wide over the full sequence (before its reduce-scatter).
* ``attn_out``, ``mlp_down`` (row parallel): dY is ``h`` wide over the full sequence (after its
  all-gather); dX is the local input width.
* ``attention``: dY is the local ``h / t`` over the full sequence; dX is dq, dk and dv.
* ``mlp_gelu`` and ``swiglu``: the local widths over the full sequence.
* ``token_ce``: dX is the local logits; the loss gradient arriving is a scalar.
* ``embedding``: dY only (token ids take no gradient).
* everything else (norms, dropout, fork, add, and kinds this table does not know): ``h`` wide
  over the local sequence, both ways.

Under context parallelism every row count is the rank's ``s / c`` tokens (``Dims.tokens``), and
an attention core's backward also holds the K/V and dK/dV blocks of its exchange
(``context_parallel.KVExchange.backward_buffers``: the ring's double buffers, or the
all-gather's full-length K/V and dK/dV).
"""

from __future__ import annotations

from simulator.model.transformer.context_parallel import kv_exchange
from simulator.model.transformer.dims import Dims


def gradient_elements(kind: str, dims: Dims) -> tuple[int, int]:
    """(dY elements, dX elements) of one microbatch's backward through a layer of ``kind``."""
    h, t = dims.h, dims.t
    full, local = dims.tokens, dims.seq_tokens
    kv = 2 * dims.local_kv_heads * dims.d
    if kind == "qkv":
        return full * (dims.local_heads * dims.d + kv), full * h
    if kind == "mlp_up":
        width = dims.local_ffn * (2 if dims.config.mlp == "swiglu" else 1)
        return full * width, full * h
    if kind == "lm_head":
        return full * dims.local_vocab, full * h
    if kind == "attn_out":
        return full * h, full * h // t
    if kind == "mlp_down":
        return full * h, full * dims.local_ffn
    if kind == "attention":
        return full * h // t, full * (dims.local_heads * dims.d + kv)
    if kind == "mlp_gelu":
        return full * dims.local_ffn, full * dims.local_ffn
    if kind == "swiglu":
        return full * dims.local_ffn, full * 2 * dims.local_ffn
    if kind == "token_ce":
        return 0, full * dims.local_vocab
    if kind == "embedding":
        return local * h, 0
    return local * h, local * h


def gradient_bytes(kind: str, dims: Dims) -> int:
    """Bytes of the gradients a layer's backward holds at once (dY and dX; an attention core's
    K/V exchange buffers under context parallelism)."""
    grad_out, grad_in = gradient_elements(kind, dims)
    exchange = kv_exchange(dims).backward_buffers if kind == "attention" else 0
    return dims.activation_bytes(grad_out + grad_in) + exchange


def residual_gradient_bytes(dims: Dims) -> int:
    """Bytes of the residual stream's gradient waiting at a fork during its branch's backward."""
    return dims.activation_bytes(dims.seq_tokens * dims.h)
