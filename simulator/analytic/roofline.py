"""A per-operation roofline: each layer's forward and backward parts as a list of kernels, each
timed on a device by what bounds it.

Why not one efficiency: a published end-to-end MFU already has the bubble and the
communication in it, so charging every FLOP at it and then adding the bubble and the
collectives counts them twice; and one number cannot make a 1.7B model's skinny GEMMs and a
1T model's large ones both right. Here:

* a GEMM (``m x k`` by ``k x n``, 2mnk FLOPs) runs at ``peak x gemm_efficiency x
  d / (d + gemm_dimension)``, where ``d = min(m, n, k)``: large GEMMs approach the best a
  device sustains, small or skinny ones fall far below it (tiles that do not fill the SMs);
* an attention core runs as the GEMMs of its scores and weighted sum, per head ``(s, s, d)``
  and ``(s, d, s)``, so its small head dimension costs what it costs; a fused (flash) core
  computes only its causal tiles and runs its backward at ``FUSED_BACKWARD_RATE`` of its
  forward's rate;
* everything else (norms, dropout, activations, residual adds, the loss) moves its tensors
  through HBM at ``memory_bandwidth x MEMORY_EFFICIENCY``, in the kernels Megatron-LM runs
  (``_elementwise``: no forward kernel for a residual fork, dropout, bias and residual add
  fused into one, a norm one kernel each way);
* each kernel is the larger of its FLOP time and its byte time (the roofline), plus
  ``kernel_floor`` (launch and tail).

``gemm_efficiency``, ``gemm_dimension`` and ``kernel_floor`` are the device's three fitted
numbers (``simulator.analytic.hardware``); ``MEMORY_EFFICIENCY`` is stated, not fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.model.transformer.dims import Dims
from simulator.model.transformer.gradient_buffers import gradient_elements

MEMORY_EFFICIENCY = 0.80
"""Share of the HBM datasheet bandwidth a streaming kernel reaches: NVIDIA's STREAM-like
device-to-device copy figures reach ~80-90% on A100 and H100 (e.g. 1.6-1.7 of 2.0 TB/s on A100
80GB); we take the low end, as training kernels read and write several tensors."""

LINEAR_KINDS = ("qkv", "attn_out", "mlp_up", "mlp_down", "lm_head")


@dataclass(frozen=True)
class Device:
    """What the roofline reads of a GPU: peak dense FLOP/s, HBM bytes/s and its three fitted
    numbers (see the module docstring)."""

    peak_flops: float
    memory_bandwidth: float
    gemm_efficiency: float
    gemm_dimension: float
    kernel_floor: float

    def gemm_time(self, m: float, n: float, k: float, count: float = 1.0) -> float:
        """Seconds of ``count`` GEMMs of ``(m x k) @ (k x n)``."""
        if min(m, n, k) <= 0 or count <= 0:
            return 0.0
        smallest = min(m, n, k)
        rate = self.peak_flops * self.gemm_efficiency * smallest / (smallest + self.gemm_dimension)
        flops = 2.0 * m * n * k * count
        moved = (m * k + k * n + m * n) * count * 2  # 16-bit operands: the byte roof
        return max(flops / rate, moved / self.bytes_per_second) + self.kernel_floor

    def memory_time(self, nbytes: float) -> float:
        """Seconds of an element-wise kernel moving ``nbytes`` through HBM."""
        if nbytes <= 0:
            return 0.0
        return nbytes / self.bytes_per_second + self.kernel_floor

    @property
    def bytes_per_second(self) -> float:
        return self.memory_bandwidth * MEMORY_EFFICIENCY


def layer_seconds(info, rows: int, itemsize: int, device: Device) -> dict[str, float]:
    """Seconds of one transformer layer's F, I and W parts for a microbatch of ``rows``
    sequences on one tensor-parallel rank (``info`` a ``TransformerLayerInfo``)."""
    dims = info.dims(rows, itemsize)
    if info.kind in LINEAR_KINDS:
        return _linear(info, dims, device)
    if info.kind == "attention":
        return _attention(info, dims, device)
    flops = info.flops()
    if flops.F + flops.I + flops.W > 0:  # another GEMM-bound kind (experts): shape (T, h, h)
        tokens = dims.tokens
        return {
            part: _flop_time(getattr(flops, part) * rows, tokens, dims.h, device)
            for part in ("F", "I", "W")
        }
    return _elementwise(info, dims, device)


def _linear(info, dims: Dims, device: Device) -> dict[str, float]:
    n_in, n_out = info.cls.local_widths(dims)
    m = dims.tokens
    return {
        "F": device.gemm_time(m, n_out, n_in),
        "I": device.gemm_time(m, n_in, n_out),
        "W": device.gemm_time(n_in, n_out, m),
    }


def _attention(info, dims: Dims, device: Device) -> dict[str, float]:
    """The scores and the weighted sum, as single-head GEMMs of a rank's ``s / c`` queries
    against the ``s`` keys, ``(s/c x d) @ (d x s)``, as many as the core's own FLOP count
    needs (causal masking, flash's rebuilt scores in the backward included)."""
    flops = info.flops()
    queries = getattr(dims, "local_seq", dims.s)
    keys, d = dims.s, dims.d
    one = 2.0 * queries * keys * d
    fused = info.config.attention_kind != "math"
    out = {}
    for part in ("F", "I", "W"):
        total = getattr(flops, part) * dims.b
        if fused and part == "I":
            total /= FUSED_BACKWARD_RATE
        out[part] = device.gemm_time(queries, keys, d, total / one) if total > 0 else 0.0
    if info.config.attention_kind == "math":  # the s x s scores go through HBM
        scores = dims.b * dims.local_heads * queries * keys
        per_score = math_score_bytes(info.config.dropout > 0.0, dims.itemsize)
        for part, nbytes in per_score.items():
            out[part] += device.memory_time(scores * nbytes)
    return out


FUSED_BACKWARD_RATE = 63 / 73
"""A fused attention core's backward runs its FLOPs at this share of its forward's rate: its
five products per tile (the rebuilt scores, dV, dP, dQ, dK) share on-chip memory and write dQ
with atomic adds. Dao 2023 (FlashAttention-2, arXiv 2307.08691), section 4.1: up to 73% of
the A100's peak in the forward and 63% in the backward; we take the ratio on every GPU."""


def selective_seconds(info, rows: int, itemsize: int, device: Device) -> float:
    """Seconds a selective recompute of this layer re-runs before its backward: for a math
    attention core, its share of the core's GEMM FLOPs (``RECOMPUTED_FLOPS_SHARE``, the scores)
    plus the forward's element-wise kernels over the ``s x s`` scores (scale-mask-softmax and
    dropout, ``math_score_bytes``), which are most of it; 0 for a layer selective
    recomputation keeps whole."""
    if getattr(info.cls, "RECOMPUTED_SLOTS", None) is None or info.kind != "attention":
        return 0.0
    dims = info.dims(rows, itemsize)
    queries = getattr(dims, "local_seq", dims.s)
    flops = info.flops().F * dims.b * info.cls.RECOMPUTED_FLOPS_SHARE
    gemms = device.gemm_time(queries, dims.s, dims.d, flops / (2.0 * queries * dims.s * dims.d))
    scores = dims.b * dims.local_heads * queries * dims.s
    per_score = math_score_bytes(info.config.dropout > 0.0, dims.itemsize)["F"]
    return gemms + device.memory_time(scores * per_score)


MASK_BYTES = 1
"""Bytes per element of a dropout mask: PyTorch keeps it as ``bool`` (``native_dropout``; the
TorchScript and ``torch.compile`` lowerings of ``dropout`` compare ``rand_like(x) < 1 - p``)."""


def math_score_bytes(dropout: bool, itemsize: int) -> dict[str, float]:
    """Bytes per ``s x s`` score element a math (unfused) attention core moves through HBM in
    the element-wise kernels between its two GEMMs, as Megatron-LM runs them (the GEMMs' own
    reads and writes of the scores are their operands, on the GEMM's roofline):

    * forward: the fused scale-mask-softmax (``FusedScaleMaskSoftmax``, causal kernel
      ``scaled_upper_triang_masked_softmax``) reads the scores and writes the probabilities;
      with dropout, ``attention_dropout`` reads them and writes the dropped copy and its
      1-byte mask;
    * backward: the dropout's backward reads the dropped copy's gradient and the mask and writes
      the probabilities' gradient; the softmax's backward reads that gradient and the
      probabilities and writes the scores' gradient.

    Source: NVIDIA/Megatron-LM ``megatron/model/transformer.py`` (``ParallelAttention``) and
    ``megatron/model/fused_softmax.py`` at 841f789f (May 2022, the code of Korthikanti et al.
    2022). A fused (flash) core keeps the scores on chip."""
    e = itemsize
    if dropout:
        return {"F": 2 * e + (2 * e + MASK_BYTES), "I": (2 * e + MASK_BYTES) + 3 * e}
    return {"F": 2 * e, "I": 3 * e}


def _flop_time(flops: float, tokens: int, width: int, device: Device) -> float:
    if flops <= 0:
        return 0.0
    per_gemm = 2.0 * tokens * width * width
    return device.gemm_time(tokens, width, width, flops / per_gemm)


def _elementwise(info, dims: Dims, device: Device) -> dict[str, float]:
    """The kernels of a layer without FLOPs worth counting, as Megatron-LM runs them, each one
    kernel (its bytes through HBM plus ``kernel_floor``) or none. ``T`` is the rank's tokens
    outside the tensor-parallel region (``Dims.seq_tokens``: all of them, or ``s b / t`` with
    sequence parallelism), ``e`` the item size, ``m`` = 1 byte a dropout mask element:

    * ``fork``: forward none (the residual is only referenced twice); backward one add of the
      two gradients (autograd's accumulation): reads 2 ``T h e``, writes ``T h e``.
    * ``ln``, ``rmsnorm``: forward reads ``x``, writes ``y`` (``2 T h e``); backward one kernel
      reads ``dy`` and ``x``, writes ``dx`` and per-CTA partial weight gradients (``3 T h e``),
      then a finalize kernel sums the partials (the weight-backward: its floor and the
      ``h``-wide fp32 gradients). Megatron-LM 2022 runs apex's persistent
      ``FastLayerNormFN`` (``apex/contrib/csrc/layer_norm``: ``ln_fwd_kernel``,
      ``ln_bwd_kernel``, ``ln_bwd_finalize_kernel``) for every hidden size of the published
      runs (``persist_ln_hidden_sizes``, ``megatron/model/fused_layer_norm.py`` at 841f789f);
      today Transformer Engine's norms, the same kernels.
    * ``dropout`` inside a block, fused with the ``add`` after it and the row-parallel
      linear's bias (``bias_dropout_add_fused_train``, TorchScript; NVIDIA/Megatron-LM
      ``megatron/model/transformer.py`` at 841f789f, May 2022, and today
      ``megatron/core/fusions/fused_bias_dropout.py`` at d98e8a64, ``jit_fuser``:
      ``torch.jit.script`` or ``torch.compile``): forward one kernel reads the branch and the
      residual, writes the sum and the mask (``T h (3 e + m)``); backward one kernel reads the
      gradient and the mask, writes the branch's gradient (``T h (2 e + m)``); the residual's
      gradient is the incoming one, unchanged.
    * ``add`` after such a dropout: nothing, forward or backward (inside the kernel above).
      Without dropout (``config.dropout`` 0) the add is that kernel: forward reads two, writes
      one (``3 T h e``); backward none.
    * ``dropout`` alone (after the embedding): forward reads ``x``, writes ``y`` and the mask;
      backward reads ``dy`` and the mask, writes ``dx`` (``T h (2 e + m)`` each way).
    * ``mlp_gelu`` (Megatron's ``bias_gelu_impl``), ``swiglu``: inside the tensor-parallel
      region, over all the rank's tokens at the local width: forward reads the input, writes
      the output; backward reads ``dy`` and the input, writes ``dx``.
    * ``embedding``: forward a gather writes ``T h e``; ``token_ce`` reads the logits forward
      and reads and writes them backward.

    Not charged: a bias gradient (a sum over tokens of a gradient already written) and a
    norm's per-token statistics (``4`` or ``8`` bytes a token). Times only: what is stored is
    ``simulator.model.transformer``'s business."""
    kind, e = info.kind, dims.itemsize
    config = dims.config
    in_block = bool(getattr(info, "is_transformer_block", False))
    rows = dims.seq_tokens * dims.h  # one h-wide tensor outside the tensor-parallel region
    forward = backward = weight = 0.0
    if kind == "fork":
        backward = 3 * rows * e
    elif kind in ("ln", "rmsnorm"):
        forward, backward = 2 * rows * e, 3 * rows * e
        weight = dims.h * 4 * (2 if kind == "ln" and config.bias else 1)
    elif kind == "dropout" and in_block:
        forward, backward = rows * (3 * e + MASK_BYTES), rows * (2 * e + MASK_BYTES)
    elif kind == "dropout":
        forward = backward = rows * (2 * e + MASK_BYTES)
    elif kind == "add":
        forward = 0.0 if config.dropout > 0.0 else 3 * rows * e
    elif kind in ("mlp_gelu", "swiglu"):
        grad_out, grad_in = gradient_elements(kind, dims)  # full tokens, local widths
        forward = (grad_in + grad_out) * e
        backward = (grad_out + 2 * grad_in) * e
    else:
        return _generic(info, dims, device)
    return {
        "F": device.memory_time(forward),
        "I": device.memory_time(backward),
        "W": device.memory_time(weight),
    }


def _generic(info, dims: Dims, device: Device) -> dict[str, float]:
    """Reads and writes of another kernel without FLOPs worth counting: the forward reads its
    input and writes its output; the input-backward reads the output's gradient and the input
    and writes the input's gradient; the weight-backward of a layer with weights reads both
    again."""
    grad_out, grad_in = gradient_elements(info.kind, dims)
    n_in, n_out = info.cls.widths(dims.config)
    tokens = dims.seq_tokens
    forward = tokens * (n_in + n_out) if info.kind not in ("embedding", "token_ce") else 0
    if info.kind == "embedding":
        forward = tokens * dims.h  # a gather writes the rows
    if info.kind == "token_ce":
        forward = grad_in  # reads the logits
    backward = grad_out + grad_in + (tokens * n_in if info.kind != "embedding" else 0)
    weight = (grad_out + tokens * n_in) if info.has_params else 0
    size = dims.itemsize
    return {
        "F": device.memory_time(forward * size),
        "I": device.memory_time(backward * size),
        "W": device.memory_time(weight * size),
    }
