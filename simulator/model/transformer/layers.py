"""A decoder-only transformer as one flat list of layers, and what is known about each layer
without building it.

The list for ``config`` (``L = config.layers``), with the partition unit ``block`` of each run::

    block 0        embedding, dropout
    block 1..L     fork, norm, qkv, attention, attn_out, dropout, add,
                   fork, norm, mlp_up, mlp_gelu | swiglu, mlp_down, dropout, add
                   (a mixture-of-experts block: fork, norm, moe, dropout, add; ``moe.py``)
                   (latent attention: mla_qkv, mla_attention in place of qkv, attention;
                   ``mla.py``)
    block L + 1    norm (final), lm_head, token_ce

Dropout layers are left out when ``config.dropout`` is 0 (the attention core then keeps no
mask either). Every block begins with a fork and ends with an add, so cutting a pipeline stage
between two ``block`` numbers only ever sends plain arrays (see ``base.py``).

Why descriptors (``TransformerLayerInfo``) next to the layers: the analytic executor needs the
footprint, FLOPs and parameter count of every layer of a 126-block model without allocating a
weight, and a Ray actor builds only its own stage's layers. Both read the same list, so they
agree on indices. Weights are drawn from ``default_rng([seed, index])`` (as ``spec.LayerInfo``
does), and dropout masks from ``(seed, index, step, microbatch)``: never from the partition.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np

from simulator.model.layers import Flops, Footprint, Layer, LayerDescription
from simulator.model.layout import UNSHARDED, Layout
from simulator.model.transformer.activations import MLPGELU, SwiGLU
from simulator.model.transformer.attention import CausalSelfAttention
from simulator.model.transformer.base import Rules
from simulator.model.transformer.config import TransformerConfig
from simulator.model.transformer.context_parallel import forward_buffer_bytes
from simulator.model.transformer.dims import Dims
from simulator.model.transformer.dropout import Dropout, set_dropout_step
from simulator.model.transformer.embedding import Embedding, TokenCrossEntropy
from simulator.model.transformer.flash_attention import FlashAttention
from simulator.model.transformer.flash_projection import FlashOutputProjection
from simulator.model.transformer.gradient_buffers import gradient_bytes, residual_gradient_bytes
from simulator.model.transformer.linear import (
    AttentionProjection,
    LMHead,
    MLPDown,
    MLPUp,
    QKVProjection,
    TokenLinear,
)
from simulator.model.transformer.mla import (
    LatentAttention,
    LatentOutputProjection,
    LatentQKVProjection,
)
from simulator.model.transformer.moe import MixtureOfExperts
from simulator.model.transformer.norms import RMSNorm, TokenLayerNorm
from simulator.model.transformer.stream import ResidualAdd, ResidualFork

TRANSFORMER_LAYER_CLASSES: dict[str, type[Layer]] = {
    cls.kind: cls
    for cls in (
        Embedding,
        Dropout,
        ResidualFork,
        TokenLayerNorm,
        RMSNorm,
        QKVProjection,
        CausalSelfAttention,
        AttentionProjection,
        ResidualAdd,
        MLPUp,
        MLPGELU,
        SwiGLU,
        MLPDown,
        LMHead,
        TokenCrossEntropy,
        MixtureOfExperts,
        LatentQKVProjection,
        LatentAttention,
    )
}
"""Layer kind -> class. The kinds differ from the MLP layers' kinds in ``layers.LAYER_CLASSES``,
so the two tables can be merged."""

ATTENTION_CLASSES: dict[str, type[Layer]] = {"math": CausalSelfAttention, "flash": FlashAttention}
"""``config.attention_kind`` -> the class of the ``attention`` kind: the same place in a block
(the same kind, widths and neighbours), a different core (what it caches, its backward FLOPs)."""

PROJECTION_CLASSES: dict[str, type[Layer]] = {
    "math": AttentionProjection,
    "flash": FlashOutputProjection,
}
"""``config.attention_kind`` -> the class of the ``attn_out`` kind: after a fused core the
projection reads the output the core keeps (one buffer, counted once) instead of keeping a copy."""


def _block_kinds(config: TransformerConfig, block: int) -> list[str]:
    """The layer kinds of transformer block ``block`` (1..L), in chain order."""
    dropout = ["dropout"] if config.dropout > 0.0 else []
    norm = "ln" if config.norm == "layernorm" else "rmsnorm"
    activation = "mlp_gelu" if config.mlp == "gelu" else "swiglu"
    core = ["mla_qkv", "mla_attention"] if config.is_latent else ["qkv", "attention"]
    attention = ["fork", norm, *core, "attn_out", *dropout, "add"]
    if config.is_moe_block(block):
        return attention + ["fork", norm, "moe", *dropout, "add"]
    mlp = ["fork", norm, "mlp_up", activation, "mlp_down", *dropout, "add"]
    return attention + mlp


@functools.lru_cache(maxsize=1 << 16)
def _dims(config: TransformerConfig, rows: int, itemsize: int, layout: Layout) -> Dims:
    """One ``Dims`` per shape: ``advise`` asks for the same few shapes about two million times
    a search, and building one runs its divisibility checks (8 of 15 s before this cache)."""
    return Dims(config, rows, itemsize, layout)


@functools.lru_cache(maxsize=1 << 16)
def _rule(rules: type[Rules], name: str, dims: Dims):
    """A rule's answer (``footprint`` or ``flops``: frozen values) for one layer class and shape."""
    return getattr(rules, name)(dims)


@dataclass(frozen=True)
class TransformerLayerInfo(LayerDescription):
    """One layer of the list, unbuilt: global index, kind, partition unit and the config.

    ``footprint`` and ``flops`` follow ``spec.LayerInfo``'s calling convention (``rows`` is the
    microbatch size in sequences; FLOPs are per sequence), counted under ``layout`` (the degrees
    that shard a layer), with the tensor-parallel degree and sequence parallelism as keywords
    that override it.
    """

    index: int
    kind: str
    block: int
    config: TransformerConfig
    layout: Layout = UNSHARDED  # the degrees the rules assume unless told otherwise

    @property
    def cls(self) -> type[Layer]:
        if self.kind == "attention":
            return ATTENTION_CLASSES[self.config.attention_kind]
        if self.kind == "attn_out" and self.config.is_latent:
            return LatentOutputProjection
        if self.kind == "attn_out":
            return PROJECTION_CLASSES[self.config.attention_kind]
        return TRANSFORMER_LAYER_CLASSES[self.kind]

    @property
    def in_features(self) -> int:
        return self._rules.widths(self.config)[0]

    @property
    def out_features(self) -> int:
        return self._rules.widths(self.config)[1]

    @property
    def is_transformer_block(self) -> bool:
        """False for the embedding (block 0) and the head (block L + 1)."""
        return 1 <= self.block <= self.config.layers

    @property
    def _rules(self) -> type[Rules]:
        return self.cls  # type: ignore[return-value]

    def dims(
        self, rows: int = 1, itemsize: int = 2, tp: int | None = None, sp: bool | None = None
    ) -> Dims:
        """The shapes the rules read, under this layer's layout (``tp``, ``sp``: overridden)."""
        layout = self.layout
        if tp is not None or sp is not None:
            layout = replace(
                layout,
                tensor=layout.tensor if tp is None else tp,
                sequence_parallel=layout.sequence_parallel if sp is None else sp,
            )
        return _dims(self.config, rows, itemsize, layout)

    def footprint(
        self, rows: int, itemsize: int, tp: int | None = None, sp: bool | None = None
    ) -> Footprint:
        return _rule(self._rules, "footprint", self.dims(rows, itemsize, tp, sp))

    def flops(self, tp: int | None = None, sp: bool | None = None) -> Flops:
        return _rule(self._rules, "flops", self.dims(1, 2, tp, sp))

    def gradient_bytes(self, rows: int, itemsize: int) -> int:
        """Bytes of the gradients this layer's backward holds at once (``gradient_buffers``; a
        class with its own ``gradient_elements``, the latent attention's, says them itself)."""
        dims = self.dims(rows, itemsize)
        own = getattr(self._rules, "gradient_elements", None)
        if own is not None:
            return dims.activation_bytes(sum(own(dims)))
        return gradient_bytes(self.kind, dims)

    def forward_buffer_bytes(self, rows: int, itemsize: int) -> int:
        """Bytes this layer's forward holds only while it runs (``context_parallel``)."""
        return forward_buffer_bytes(self.kind, self.dims(rows, itemsize))

    def residual_gradient_bytes(self, rows: int, itemsize: int) -> int:
        """Bytes of the residual's gradient held at a fork while a branch runs backward."""
        return residual_gradient_bytes(self.dims(rows, itemsize))

    def param_count(self, tp: int | None = None) -> int:
        """Parameters one tensor-parallel rank holds for this layer (a tied LM head counts its
        copy: the last pipeline stage holds one)."""
        return self._rules.param_count(self.dims(1, 2, tp))

    def expert_param_count(self, tp: int | None = None) -> int:
        """The part of ``param_count`` that is routed experts (sharded over the expert-parallel
        ranks, with its optimizer state over the expert data-parallel group); 0 elsewhere."""
        rules = self._rules
        if not hasattr(rules, "expert_param_count"):
            return 0
        return rules.expert_param_count(self.dims(1, 2, tp))  # type: ignore[attr-defined]

    def build(self, dtype="float64", seed: int = 0) -> Layer:
        rng = np.random.default_rng([seed, self.index])
        return self._rules.from_config(self.index, self.config, dtype, rng, seed)


@functools.lru_cache(maxsize=16)
def transformer_layer_infos(
    config: TransformerConfig, layout: Layout = UNSHARDED
) -> tuple[TransformerLayerInfo, ...]:
    """The model's flat layer list (loss included), unbuilt, counted under ``layout`` (built once
    per configuration: a 126-block model has some 1,500 layers)."""
    norm = "ln" if config.norm == "layernorm" else "rmsnorm"
    runs = [["embedding", *(["dropout"] if config.dropout > 0.0 else [])]]
    runs += [_block_kinds(config, block) for block in range(1, config.layers + 1)]
    runs.append([norm, "lm_head", "token_ce"])
    infos: list[TransformerLayerInfo] = []
    for block, kinds in enumerate(runs):
        for kind in kinds:
            infos.append(TransformerLayerInfo(len(infos), kind, block, config, layout))
    return tuple(infos)


def transformer_layers(
    config: TransformerConfig,
    dtype="float64",
    seed: int = 0,
    layer_indices: range | None = None,
) -> list[Layer]:
    """Build the layers (all, or the given global indices) with seeded weights."""
    infos = transformer_layer_infos(config)
    chosen = infos if layer_indices is None else [infos[i] for i in layer_indices]
    return [info.build(dtype, seed) for info in chosen]


__all__ = [
    "ATTENTION_CLASSES",
    "PROJECTION_CLASSES",
    "TRANSFORMER_LAYER_CLASSES",
    "AttentionProjection",
    "CausalSelfAttention",
    "Dims",
    "Dropout",
    "Embedding",
    "FlashAttention",
    "FlashOutputProjection",
    "LatentAttention",
    "LatentOutputProjection",
    "LatentQKVProjection",
    "LMHead",
    "MLPDown",
    "MLPGELU",
    "MLPUp",
    "MixtureOfExperts",
    "QKVProjection",
    "RMSNorm",
    "ResidualAdd",
    "ResidualFork",
    "SwiGLU",
    "TokenCrossEntropy",
    "TokenLayerNorm",
    "TokenLinear",
    "TransformerLayerInfo",
    "set_dropout_step",
    "transformer_layer_infos",
    "transformer_layers",
]
