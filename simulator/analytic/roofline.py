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
  and ``(s, d, s)``, so its small head dimension costs what it costs;
* everything else (norms, dropout, activations, residual adds, the loss) moves its tensors
  through HBM at ``memory_bandwidth x MEMORY_EFFICIENCY``;
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
    out = {}
    for part in ("F", "I", "W"):
        total = getattr(flops, part) * dims.b
        out[part] = device.gemm_time(queries, keys, d, total / one) if total > 0 else 0.0
    if info.config.attention_kind == "math":  # the s x s scores go through HBM
        scores = dims.b * dims.local_heads * queries * keys
        for part, passes in MATH_SCORE_PASSES.items():
            out[part] += device.memory_time(scores * passes * dims.itemsize)
    return out


MATH_SCORE_PASSES = {"F": 5, "I": 5}
"""Times a math (unfused) attention core moves its ``b a/t s s`` scores through HBM, in the
element-wise kernels between its two GEMMs: the forward writes the scores, reads them and
writes the softmax, reads it and writes the dropped copy (mask at 1 byte, counted as one more
pass over 16-bit data); the backward reads the dropped copy's gradient, the mask, the softmax
and writes the scores' gradient. A fused (flash) core keeps them on chip."""


def _flop_time(flops: float, tokens: int, width: int, device: Device) -> float:
    if flops <= 0:
        return 0.0
    per_gemm = 2.0 * tokens * width * width
    return device.gemm_time(tokens, width, width, flops / per_gemm)


def _elementwise(info, dims: Dims, device: Device) -> dict[str, float]:
    """Reads and writes of a kernel without FLOPs worth counting: the forward reads its input
    and writes its output; the input-backward reads the output's gradient and the input and
    writes the input's gradient; the weight-backward of a norm reads both again."""
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
