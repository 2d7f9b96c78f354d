"""The MLP's non-linearities: GELU (GPT) and SwiGLU (Llama), each caching its input.

Both sit between the MLP's two linears, so their input lives at the MLP's inner width, sharded
over the tensor-parallel group: Korthikanti's "GeLU input", 8sbh for ffn = 4h.
"""

from __future__ import annotations

import numpy as np

from simulator.model.layers import Layer
from simulator.model.mlp_layers import GELU
from simulator.model.transformer.base import Rules, on_stream, stateless_footprint
from simulator.model.transformer.dims import Dims


@on_stream
class MLPGELU(Rules, GELU):
    """The existing tanh-approximation GELU, applied per element of (b, s, ffn) and taught the
    transformer rules. Caches its input; the derivative is recomputed from it."""

    kind = "mlp_gelu"

    @classmethod
    def widths(cls, config):
        return config.ffn_hidden, config.ffn_hidden

    @classmethod
    def footprint(cls, dims: Dims):
        return stateless_footprint(dims.activation_bytes(dims.tokens * dims.local_ffn))


@on_stream
class SwiGLU(Rules, Layer):
    """``[gate | up] -> silu(gate) * up`` with ``silu(z) = z * sigmoid(z)`` (Shazeer 2020).

    Caches its input (gate and up, 2 x ffn per token). Backward, with ``sig = sigmoid(gate)``:
    ``d up = dy * silu(gate)`` and ``d gate = dy * up * sig * (1 + gate * (1 - sig))``.
    """

    kind = "swiglu"

    @staticmethod
    def _halves(x):
        half = x.shape[-1] // 2
        return x[..., :half], x[..., half:]

    def forward(self, mb, x):
        self._put(mb, "input", x)
        gate, up = self._halves(x)
        return gate / (1.0 + np.exp(-gate)) * up

    def backward_input(self, mb, grad_out):
        gate, up = self._halves(self._pop(mb, "input"))
        sig = 1.0 / (1.0 + np.exp(-gate))
        d_up = grad_out * gate * sig
        d_gate = grad_out * up * sig * (1.0 + gate * (1.0 - sig))
        return np.concatenate([d_gate, d_up], axis=-1)

    @classmethod
    def widths(cls, config):
        return 2 * config.ffn_hidden, config.ffn_hidden

    @classmethod
    def footprint(cls, dims: Dims):
        return stateless_footprint(dims.activation_bytes(dims.tokens * 2 * dims.local_ffn))
