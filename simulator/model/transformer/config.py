"""The architecture of a decoder-only transformer, as data.

Why one frozen dataclass: the numpy layers (which run at toy size), the footprint and FLOP rules
(which the analytic executor evaluates at GPT-3 scale), the presets and the parameter count all
read the same fields, so a preset that fits in a test is the same object a 175B prediction uses.

Vocabulary follows Korthikanti et al. 2022: ``s`` sequence length, ``b`` microbatch size in
sequences, ``h`` hidden size, ``a`` attention heads, ``t`` tensor-parallel degree.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.errors import PebbleError

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
