"""The shapes a transformer layer's footprint, FLOP and parameter rules read.

Why one object: every rule is a function of the same handful of numbers (Korthikanti's ``b``,
``s``, ``h``, ``a``, plus ``kv_heads``, ``ffn``, the vocabulary, the activation itemsize, the
tensor-parallel degree ``t`` and whether sequence parallelism is on). Passing them as one frozen
value keeps every rule's signature the same and puts the divisibility checks in one place.

Tensor, sequence and context parallelism only change the rules: the numpy layers always run
with t = c = 1, where every "local" size below equals the full size.

Context parallelism (``c``) splits each sequence into 2c chunks and gives rank i chunks i and
2c-1-i (Megatron Core's causal load balancing, ``get_batch_on_this_cp_rank``), so a rank holds
``s / c`` tokens of every sequence (``local_seq``): every per-token tensor, FLOP count and
gradient buffer counts those. Only the attention core reaches across the split: its queries
are the local ones, its keys every one of the sequence
(``simulator.model.transformer.context_parallel`` has the K/V exchange).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.errors import PebbleError
from simulator.model.layout import UNSHARDED, Layout
from simulator.model.transformer.config import TransformerConfig

MASK_BYTES = 1
"""A dropout mask element is one byte (numpy bool), whatever the activation dtype."""

ID_BYTES = 8
"""A token id or target is an int64."""


@dataclass(frozen=True)
class Dims:
    """One microbatch of ``b`` sequences of a ``config`` model on one tensor-parallel rank.

    ``itemsize`` is the activation dtype's bytes per element (2 for bf16, 8 for numpy float64).
    ``layout`` holds the degrees that shard a layer: ``t``, the tensor-parallel degree, and
    ``sp``, sequence parallelism, which shards the tensors of the norm/dropout regions along the
    sequence (Korthikanti et al. 2022, 4.2.2).
    """

    config: TransformerConfig
    b: int = 1
    itemsize: int = 2
    layout: Layout = UNSHARDED

    @property
    def t(self) -> int:
        return self.layout.tensor

    @property
    def sp(self) -> bool:
        return self.layout.sequence_parallel

    @property
    def c(self) -> int:
        """The context-parallel degree: each sequence is split ``c`` ways."""
        return self.layout.context

    @property
    def e(self) -> int:
        """The expert-parallel degree: routed experts are split ``e`` ways."""
        return self.layout.expert

    def __post_init__(self) -> None:
        if not isinstance(self.layout, Layout):
            raise PebbleError(f"a layer is counted under a Layout, got {self.layout!r}.")
        for name in ("b", "itemsize", "t"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PebbleError(f"{name} must be a positive integer, got {value!r}.")
        cfg = self.config
        for what, size in (
            ("heads", cfg.heads),
            ("kv_heads", cfg.num_kv_heads),
            ("ffn", cfg.ffn_hidden),
        ):
            if size % self.t:
                raise PebbleError(
                    f"tensor-parallel degree {self.t} does not divide the model's {what} {size}."
                )
        if cfg.is_moe:
            self._check_experts()
        if self.c > 1 and cfg.seq % (2 * self.c):
            raise PebbleError(
                f"context parallelism c{self.c} splits each sequence into {2 * self.c} chunks "
                f"(two per rank, for causal balance); seq {cfg.seq} is not a multiple of "
                f"{2 * self.c}."
            )
        if self.sp and self.local_seq % self.t:
            raise PebbleError(
                f"sequence parallelism needs seq {cfg.seq} to be a multiple of t = {self.t}"
                + (f" x c = {self.c}." if self.c > 1 else ".")
            )

    def _check_experts(self) -> None:
        cfg = self.config
        if cfg.experts % self.e:
            raise PebbleError(
                f"expert-parallel degree {self.e} does not divide the model's {cfg.experts} "
                "experts."
            )
        for what, size in (("expert_ffn", cfg.expert_hidden), ("shared", cfg.shared_hidden)):
            if size % self.t:
                raise PebbleError(
                    f"tensor-parallel degree {self.t} does not divide the model's {what} width "
                    f"{size}."
                )

    # ---------------------------------------------------------------- the paper's letters
    @property
    def s(self) -> int:
        return self.config.seq

    @property
    def h(self) -> int:
        return self.config.hidden

    @property
    def a(self) -> int:
        return self.config.heads

    @property
    def d(self) -> int:
        """Width of one attention head."""
        return self.config.head_dim

    @property
    def dropout(self) -> bool:
        """Dropout layers exist (and cache masks) only when the probability is positive."""
        return self.config.dropout > 0.0

    # ---------------------------------------------------------------- sizes on one rank
    @property
    def local_seq(self) -> int:
        """Tokens of one sequence on one context-parallel rank: ``s / c`` (its two chunks)."""
        return self.s // self.c

    @property
    def tokens(self) -> int:
        """Tokens of the microbatch on one context-parallel rank: rows of a tensor replicated
        over the tensor-parallel group (``b s / c``)."""
        return self.b * self.local_seq

    @property
    def seq_tokens(self) -> int:
        """Rows a rank holds in the norm/dropout regions: all tokens, or 1/t of them with SP."""
        return self.tokens // self.t if self.sp else self.tokens

    @property
    def local_heads(self) -> int:
        return self.a // self.t

    @property
    def local_kv_heads(self) -> int:
        return self.config.num_kv_heads // self.t

    @property
    def local_ffn(self) -> int:
        return self.config.ffn_hidden // self.t

    @property
    def local_vocab(self) -> int:
        """Vocabulary-parallel share, rounded up (Megatron pads the table to a multiple of t)."""
        return math.ceil(self.config.vocab / self.t)

    # ---------------------------------------------------------------- mixture of experts
    @property
    def moe_tokens(self) -> int:
        """Tokens a rank routes: the microbatch's, replicated over the tensor group (with SP
        they are gathered before dispatch, as Megatron Core's token dispatchers do)."""
        return self.tokens

    @property
    def local_experts(self) -> int:
        """Routed experts on one expert-parallel rank."""
        return self.config.experts // self.e if self.config.is_moe else 0

    @property
    def local_expert_ffn(self) -> int:
        """One expert's inner width on one tensor-parallel rank (expert tensor parallelism
        equal to ``t``, Megatron Core's default)."""
        return self.config.expert_hidden // self.t

    @property
    def local_shared_ffn(self) -> int:
        return self.config.shared_hidden // self.t

    def activation_bytes(self, elements: int) -> int:
        return elements * self.itemsize
