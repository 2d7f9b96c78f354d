"""The attention output projection after a fused core: it reads the output the core keeps
instead of keeping a copy of its own.

Why: a fused attention (FlashAttention, cuDNN, PyTorch SDPA) keeps its output O for its
backward (``D = rowsum(dO * O)``), and O with its heads merged is exactly this projection's
input: one buffer, which a framework keeps once. PyTorch's saved tensors show it (SDPA's saved
output and the projection's saved input are one storage:
``tests/simulator/test_saved_tensors_oracle.py``), and so do Megatron's counts (Korthikanti et
al. 2022's "projection input", 2 sbh, and nothing more for the core's output). Keeping it in both
layers charged every flash block 2 sbh / t twice.

Who holds the buffer when (``out`` is the core's slot, ``input`` the projection's)::

    F   the core keeps out (with q, k, v and the log-sum-exp); the projection keeps nothing
    B   the projection reads out; the core's B, which runs after it, frees out
    I   the projection takes its own reference for W (+input) beside the output gradient;
        the core's I, after it, lets go of out (-out)
    W   the projection frees input and the output gradient

Each change is made by the layer whose slot it is, in its own phase, so the analytic executor
(which reads the footprints) and the Ray executor (which records the cache) put every byte on
the same layer at the same moment. The one approximation: inside an ``I`` action, from the
projection's I to the core's, the cache holds the buffer under both slots and counts it twice
(2 sbh / t for that moment); what is stored between actions is exact.
"""

from __future__ import annotations

from simulator.model.layers import Footprint
from simulator.model.transformer.base import on_stream
from simulator.model.transformer.dims import Dims
from simulator.model.transformer.linear import AttentionProjection

CORE_OUTPUT = "out"
"""The slot where the fused core (the layer just before the projection) keeps its output."""


@on_stream
class FlashOutputProjection(AttentionProjection):
    """``AttentionProjection`` whose input is the fused core's kept output (module docstring)."""

    input_key = None  # its forward keeps nothing: the core keeps the input

    def _core_output(self, mb: int):
        return self.cache.peek(self.layer_index - 1, mb, CORE_OUTPUT)

    def forward(self, mb, x):
        return self._forward(x)

    def backward_input(self, mb, grad_out):
        x = self._core_output(mb)
        self._put(mb, "input", x)  # W needs it after the core's I has let go of it
        self._put(mb, "grad_out", grad_out)
        return self._grad_input(x, grad_out)

    def backward(self, mb, grad_out):
        x = self._core_output(mb)  # the core's B, after this, frees it
        self._accumulate(x, grad_out)
        return self._grad_input(x, grad_out)

    @classmethod
    def footprint(cls, dims: Dims) -> Footprint:
        own = AttentionProjection.footprint(dims)  # the input it would keep, the gradient
        (x,), (g,) = own.F, own.I
        return Footprint(F=(), I=(x, g), W=(-x, -g), B=())
