"""The architecture of a decoder-only transformer, as data.

Why one frozen dataclass: the numpy layers (which run at toy size), the footprint and FLOP rules
(which the analytic executor evaluates at GPT-3 scale), the presets and the parameter count all
read the same fields, so a preset that fits in a test is the same object a 175B prediction uses.

Vocabulary follows Korthikanti et al. 2022: ``s`` sequence length, ``b`` microbatch size in
sequences, ``h`` hidden size, ``a`` attention heads, ``t`` tensor-parallel degree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.errors import PebbleError
from simulator.model.transformer.latent_config import check_latent

MLP_KINDS = ("gelu", "swiglu")
# Far beyond any published model (Llama 3 405B: 126 layers, hidden 16384, vocabulary 128256),
# low enough that a typo cannot make pebblesim build millions of layer descriptors.
LIMITS = {
    "layers": 10_000,
    "hidden": 1_000_000,
    "heads": 100_000,
    "seq": 10_000_000,
    "vocab": 10_000_000,
    "kv_heads": 100_000,
    "ffn": 10_000_000,
}
NORM_KINDS = ("layernorm", "rmsnorm")
ATTENTION_KINDS = ("math", "flash")
DEFAULT_ATTENTION = "flash"
"""What every current training stack runs (FlashAttention, cuDNN, PyTorch SDPA)."""
LEGACY_ATTENTION = "math"
"""The core a model text without ``attention=`` counted when pebblesim wrote it into a file
before flash became the default (``simulator.model.parse.recorded_model`` reads files so)."""
POSITION_KINDS = ("learned", "rope")
MOE_LIMITS = {"experts": 100_000, "top_k": 100_000, "shared_experts": 100_000}
DEFAULT_TOP_K = 2
"""Mixtral's and GShard's top-2 routing, when a mixture-of-experts config does not say."""
DEFAULT_MOE_AUX_COEF = 0.01
"""Switch Transformer's load-balancing coefficient alpha = 1e-2 (Fedus et al. 2021, 2.2)."""


@dataclass(frozen=True)
class TransformerConfig:
    """A GPT- or Llama-style decoder: ``layers`` blocks of attention + MLP between an embedding
    and an LM head.

    * ``kv_heads`` < ``heads`` is grouped-query attention (None: as many as ``heads``).
    * ``ffn`` is the MLP's inner width (None: 4 h for GELU; Llama presets give theirs).
    * ``position`` "learned" adds a position table (GPT); "rope" has no parameters (Llama).
    * ``dropout`` is the probability of the attention and residual dropouts; Korthikanti's
      activation counts assume dropout is on, masks kept at 1 byte per element.
    * ``tied_embeddings``: the LM head reuses the token embedding (GPT-3) or has its own (Llama).
    * ``bias``: linear layers and norms carry biases (GPT) or not (Llama).
    * ``attention``: the attention core. "flash" (the default) is a fused kernel
      (FlashAttention, cuDNN, PyTorch SDPA) that keeps q, k, v, the output and a per-row
      log-sum-exp, and with dropout the RNG state; "math" keeps the s x s softmax output (and
      with dropout its mask and dropped copy), what Korthikanti et al. count: name it to
      reproduce their numbers. A spec's text always names it (``attention=flash``), so a file
      says which core it counted; None reads as the default.

    Mixture-of-experts (``simulator.model.transformer.moe``; every field None is a dense model,
    and a spec's text leaves None fields out). The Hugging Face names each field reads from
    are in brackets:

    * ``experts``: routed experts per MoE block (``num_local_experts``, ``num_experts``,
      ``n_routed_experts``). Setting it makes the MLP of every block after ``dense_layers`` a
      mixture of experts.
    * ``top_k``: experts each token is routed to (``num_experts_per_tok``); None: 2.
    * ``expert_ffn``: one expert's inner width (``moe_intermediate_size``; Mixtral's experts
      have ``intermediate_size``); None: ``ffn``. Experts use the model's ``mlp`` (SwiGLU or
      GELU).
    * ``shared_experts``: always-active experts of width ``expert_ffn`` each, run as one MLP of
      ``shared_experts * expert_ffn`` (``n_shared_experts``; Qwen's
      ``shared_expert_intermediate_size`` is ``shared_experts * expert_ffn``); None: 0.
    * ``capacity_factor``: each expert takes at most ``ceil(capacity_factor * tokens * top_k
      / experts)`` tokens of a microbatch, the rest are dropped (Switch, GShard; Megatron's
      ``moe_expert_capacity_factor``); None: dropless (every routed token is computed).
    * ``moe_aux_coef``: the load-balancing loss coefficient (``router_aux_loss_coef``); None:
      0.01 (Switch).
    * ``norm_topk``: renormalise the top-k gate weights to sum to 1 (``norm_topk_prob``;
      Mixtral and Qwen3 do, Switch and Qwen1.5-MoE do not); None: true.
    * ``dense_layers``: the first blocks keep a dense MLP of width ``ffn``
      (``first_k_dense_replace``, DeepSeek-V3: 3); None: 0.
    * ``router_imbalance``: tokens of the busiest expert-parallel rank over the mean (>= 1):
      what an expert-parallel step waits for; None: 1.0, a perfectly balanced router (state
      your measured factor to override it). With one expert rank all experts sit on the same
      device and it changes nothing; with a capacity factor the busiest expert is capped at its
      capacity.

    Multi-head latent attention (DeepSeek-V2/V3, ``simulator.model.transformer.mla``; every
    field None is the usual attention; the Hugging Face names are the same):

    * ``kv_lora_rank``: the width keys and values are compressed to (setting it makes every
      block's attention latent); ``q_lora_rank``: the queries' (None: queries are projected
      from the hidden state directly, as DeepSeek-V2-Lite does).
    * ``qk_nope_head_dim`` and ``qk_rope_head_dim``: each head's query/key width without and
      with rotary positions (the rotary key is one, shared by every head);
      ``v_head_dim``: each head's value width.
    """

    layers: int
    hidden: int
    heads: int
    seq: int
    vocab: int
    kv_heads: int | None = None
    ffn: int | None = None
    mlp: str = "gelu"
    norm: str = "layernorm"
    position: str = "learned"
    dropout: float = 0.1
    tied_embeddings: bool = True
    bias: bool = True
    attention: str = DEFAULT_ATTENTION
    experts: int | None = None
    top_k: int | None = None
    expert_ffn: int | None = None
    shared_experts: int | None = None
    capacity_factor: float | None = None
    moe_aux_coef: float | None = None
    norm_topk: bool | None = None
    dense_layers: int | None = None
    router_imbalance: float | None = None
    q_lora_rank: int | None = None
    kv_lora_rank: int | None = None
    qk_nope_head_dim: int | None = None
    qk_rope_head_dim: int | None = None
    v_head_dim: int | None = None

    def __post_init__(self) -> None:
        for name in ("layers", "hidden", "heads", "seq", "vocab", "kv_heads", "ffn"):
            value = getattr(self, name)
            if value is None and name in ("kv_heads", "ffn"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PebbleError(f"transformer {name} must be a positive integer, got {value!r}.")
            if value > LIMITS[name]:
                raise PebbleError(
                    f"transformer {name} {value:,} is over pebblesim's limit of {LIMITS[name]:,}."
                )
        if self.hidden % self.heads:
            raise PebbleError(
                f"transformer hidden {self.hidden} is not a multiple of heads {self.heads}."
            )
        if self.heads % self.num_kv_heads:
            raise PebbleError(
                f"transformer heads {self.heads} is not a multiple of kv_heads {self.num_kv_heads}."
            )
        if self.mlp not in MLP_KINDS:
            raise PebbleError(f"unknown mlp {self.mlp!r}; choose {' or '.join(MLP_KINDS)}.")
        if self.norm not in NORM_KINDS:
            raise PebbleError(f"unknown norm {self.norm!r}; choose {' or '.join(NORM_KINDS)}.")
        if self.position not in POSITION_KINDS:
            raise PebbleError(
                f"unknown position {self.position!r}; choose {' or '.join(POSITION_KINDS)}."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise PebbleError(f"dropout must be in [0, 1), got {self.dropout!r}.")
        if self.attention is None:  # one spelling per model: the default by its name
            object.__setattr__(self, "attention", DEFAULT_ATTENTION)
        if self.attention not in ATTENTION_KINDS:
            raise PebbleError(
                f"unknown attention {self.attention!r}; choose {' or '.join(ATTENTION_KINDS)}."
            )
        self._check_moe()
        check_latent(self)

    def _check_moe(self) -> None:
        """One sentence for a mixture-of-experts field out of range or without ``experts``."""
        moe_fields = (
            "top_k",
            "expert_ffn",
            "shared_experts",
            "capacity_factor",
            "moe_aux_coef",
            "norm_topk",
            "dense_layers",
            "router_imbalance",
        )
        if self.experts is None:
            given = [name for name in moe_fields if getattr(self, name) is not None]
            if given:
                raise PebbleError(f"transformer {given[0]} needs experts (a mixture of experts).")
            return
        limits = {**MOE_LIMITS, "expert_ffn": LIMITS["ffn"], "dense_layers": LIMITS["layers"]}
        for name, low in (
            ("experts", 2),
            ("top_k", 1),
            ("expert_ffn", 1),
            ("shared_experts", 0),
            ("dense_layers", 0),
        ):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                what = "a positive integer" if low == 1 else f"an integer of at least {low}"
                raise PebbleError(f"transformer {name} must be {what}, got {value!r}.")
            if value > limits[name]:
                raise PebbleError(
                    f"transformer {name} {value:,} is over pebblesim's limit of {limits[name]:,}."
                )
        if self.num_top_k > self.experts:
            raise PebbleError(
                f"transformer top_k {self.num_top_k} is more than its {self.experts} experts."
            )
        if self.moe_dense_layers > self.layers:
            raise PebbleError(
                f"transformer dense_layers {self.moe_dense_layers} is more than its "
                f"{self.layers} layers."
            )
        for name, low, closed in (
            ("capacity_factor", 0.0, False),
            ("moe_aux_coef", 0.0, True),
            ("router_imbalance", 1.0, True),
        ):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PebbleError(f"transformer {name} must be a number, got {value!r}.")
            value = float(value)
            ok = math.isfinite(value) and (value >= low if closed else value > low)
            if not ok or value > 1e6:
                bound = f"at least {low:g}" if closed else f"above {low:g}"
                raise PebbleError(f"transformer {name} must be {bound} and finite, got {value!r}.")
            object.__setattr__(self, name, value)
        if self.norm_topk is not None and not isinstance(self.norm_topk, bool):
            raise PebbleError(
                f"transformer norm_topk must be true or false, got {self.norm_topk!r}."
            )

    @property
    def attention_kind(self) -> str:
        """The attention core: "flash" or "math" (the same as ``attention``)."""
        return self.attention

    @property
    def num_kv_heads(self) -> int:
        return self.heads if self.kv_heads is None else self.kv_heads

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def ffn_hidden(self) -> int:
        return 4 * self.hidden if self.ffn is None else self.ffn

    # ---------------------------------------------------------------- mixture of experts
    @property
    def is_moe(self) -> bool:
        """Some blocks route their MLP through experts."""
        return self.experts is not None

    @property
    def num_top_k(self) -> int:
        return DEFAULT_TOP_K if self.top_k is None else self.top_k

    @property
    def expert_hidden(self) -> int:
        """One routed expert's inner width."""
        return self.ffn_hidden if self.expert_ffn is None else self.expert_ffn

    @property
    def num_shared_experts(self) -> int:
        return self.shared_experts or 0

    @property
    def shared_hidden(self) -> int:
        """The inner width of the shared experts run as one MLP (0: none)."""
        return self.num_shared_experts * self.expert_hidden

    @property
    def aux_coef(self) -> float:
        return DEFAULT_MOE_AUX_COEF if self.moe_aux_coef is None else self.moe_aux_coef

    @property
    def renormalise_top_k(self) -> bool:
        return True if self.norm_topk is None else self.norm_topk

    @property
    def moe_dense_layers(self) -> int:
        return self.dense_layers or 0

    @property
    def imbalance(self) -> float:
        return 1.0 if self.router_imbalance is None else self.router_imbalance

    @property
    def is_latent(self) -> bool:
        """Every block's attention is multi-head latent attention (``mla``)."""
        return self.kv_lora_rank is not None

    def is_moe_block(self, block: int) -> bool:
        """Block ``block`` (1..layers) has a mixture of experts in place of its MLP."""
        return self.is_moe and block > self.moe_dense_layers
