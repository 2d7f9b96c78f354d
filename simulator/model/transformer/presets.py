"""Named transformer architectures from the papers people compare pipeline schedules on, and an
exact parameter count.

Why exact counts: the per-rank memory model charges parameters, gradients and optimizer state
per stage, so a preset's count must match what the framework allocates, not a rounded headline.
``tests/simulator/test_presets.py`` holds every preset within 0.5% of its published figure.

Where the parameters live along a pipeline (Megatron-LM's layout): the token (and position)
embedding on the first stage, ``layers`` identical blocks split among the stages, the final norm
and the LM head on the last stage. With tied embeddings and more than one stage the last stage
keeps its own copy of the word embedding as its LM head (Megatron-LM allocates it and all-reduces
its gradient with the first stage's); ``stage_parameters`` counts that copy, ``parameter_count``
counts the model's unique parameters once.
"""

from __future__ import annotations

from simulator.errors import PebbleError
from simulator.model.transformer.config import TransformerConfig

# GPT-3 (Brown et al. 2020, "Language Models are Few-Shot Learners", Table 2.1): GPT-2's
# architecture (pre-LayerNorm, GELU, biases, learned positions, tied LM head), BPE vocabulary of
# 50,257, n_ctx = 2048, d_ff = 4 d_model.
_GPT3 = dict(vocab=50257, seq=2048, mlp="gelu", norm="layernorm", position="learned")

# Llama 3 (Dubey et al. 2024, "The Llama 3 Herd of Models", Table 3): GQA with 8 key/value
# heads, SwiGLU, RMSNorm, RoPE, no biases, untied LM head, sequence 8192. The paper's table says
# "128,000" tokens; the released checkpoints (Hugging Face config.json, vocab_size) have 128,256.
_LLAMA3 = dict(
    vocab=128256,
    seq=8192,
    kv_heads=8,
    mlp="swiglu",
    norm="rmsnorm",
    position="rope",
    dropout=0.0,
    tied_embeddings=False,
    bias=False,
)

# Zero Bubble (Qi et al., ICLR 2024, "Zero Bubble Pipeline Parallelism", Table 3: layers,
# attention heads, hidden size, sequence length 1024): "models analogous to GPT-3" trained with
# Megatron-LM's GPT (learned positions, GELU, LayerNorm, biases, tied embeddings, dropout 0.1 by
# default). The paper does not state the vocabulary. 32,000 is inferred: the authors' scripts
# (sail-sg/zero-bubble-pipeline-parallelism, examples/pretrain_zero_bubble.sh, first version
# 2023-11) use GPTSentencePieceTokenizer with a SentencePiece tokenizer.model, and a 32,000-token
# vocabulary is the one that reproduces all four published sizes at their published precision
# (GPT-2's 50,257 would make the "14.6B" model 14.74B).
_ZB = dict(vocab=32000, seq=1024, mlp="gelu", norm="layernorm", position="learned")

# Mixtral 8x7B (Jiang et al. 2024, "Mixtral of Experts", arXiv 2401.04088, Table 1): Mistral
# 7B's architecture (32 layers, dim 4096, 32 heads, 8 kv heads, SwiGLU hidden 14336, RMSNorm,
# RoPE, no biases, untied head, vocabulary 32,000, context 32,768) with every MLP replaced by 8
# experts, top-2, gates a softmax over the two chosen (renormalised); router_aux_loss_coef 0.02
# in the released config.json (mistralai/Mixtral-8x7B-v0.1).
_MIXTRAL = dict(
    layers=32,
    hidden=4096,
    heads=32,
    kv_heads=8,
    ffn=14336,
    seq=32768,
    vocab=32000,
    mlp="swiglu",
    norm="rmsnorm",
    position="rope",
    dropout=0.0,
    tied_embeddings=False,
    bias=False,
    experts=8,
    top_k=2,
    moe_aux_coef=0.02,
)

# Qwen1.5-MoE-A2.7B (Qwen team 2024, model card and config.json of Qwen/Qwen1.5-MoE-A2.7B): 24
# layers, hidden 2048, 16 heads (no GQA), 60 routed experts of moe_intermediate_size 1408,
# top-4 without renormalising (norm_topk_prob false), a shared expert of 5632 = 4 x 1408,
# RMSNorm, RoPE, untied head, vocabulary 151,936, sequence 8192, router_aux_loss_coef 0.001.
# Two small parts pebblesim does not model are left out of the count: the biases of the q, k,
# v projections (3 x 2048 per layer, 147,456 in all) and the shared expert's sigmoid gate (a
# 2048 x 1 matrix per layer, 49,152): together 0.0014% of the model.
_QWEN_MOE = dict(
    layers=24,
    hidden=2048,
    heads=16,
    seq=8192,
    vocab=151936,
    mlp="swiglu",
    norm="rmsnorm",
    position="rope",
    dropout=0.0,
    tied_embeddings=False,
    bias=False,
    experts=60,
    top_k=4,
    expert_ffn=1408,
    shared_experts=4,
    norm_topk=False,
    moe_aux_coef=0.001,
)

# DeepSeek-V3 (DeepSeek-AI 2024, "DeepSeek-V3 Technical Report", arXiv 2412.19437, section
# 4.2 "Hyper-Parameters", and the released config.json of deepseek-ai/DeepSeek-V3): 61 layers,
# hidden 7168, 128 heads with multi-head latent attention (q_lora_rank 1536, kv_lora_rank 512,
# per-head 128 + 64 rotary query/key and 128 value widths), the first 3 layers a dense SwiGLU of
# 18432, the rest 1 shared + 256 routed experts of 2048, 8 routed a token, vocabulary 129,280,
# untied head, no biases, pre-training sequence 4096 (4K, then extended to 32K and 128K),
# sequence-wise balance loss alpha 0.0001 (section 4.2; the load is balanced mainly by the
# router's bias, which pebblesim counts as a softmax router without it). 671B total, 37B
# activated per token (section 1); the multi-token prediction module (section 2.2) is outside
# both and outside pebblesim.
_DEEPSEEK_V3 = dict(
    layers=61,
    hidden=7168,
    heads=128,
    ffn=18432,
    seq=4096,
    vocab=129280,
    mlp="swiglu",
    norm="rmsnorm",
    position="rope",
    dropout=0.0,
    tied_embeddings=False,
    bias=False,
    experts=256,
    top_k=8,
    expert_ffn=2048,
    shared_experts=1,
    dense_layers=3,
    norm_topk=True,
    moe_aux_coef=0.0001,
    q_lora_rank=1536,
    kv_lora_rank=512,
    qk_nope_head_dim=128,
    qk_rope_head_dim=64,
    v_head_dim=128,
)

MODEL_PRESETS: dict[str, TransformerConfig] = {
    # GPT-3 XL, Table 2.1: 24 layers, d_model 2048. The table's n_heads = 24 with d_head = 128
    # is inconsistent with d_model = 2048 (24 x 128 = 3072); we use 16 heads of 128 (as
    # Megatron-LM's GPT-3 1.3B configs do). Heads do not change the parameter count.
    "gpt3-1.3b": TransformerConfig(layers=24, hidden=2048, heads=16, **_GPT3),
    # GPT-3 175B, Table 2.1: 96 layers, d_model 12288, 96 heads of 128.
    "gpt3-175b": TransformerConfig(layers=96, hidden=12288, heads=96, **_GPT3),
    # Llama 3 8B, Table 3: 32 layers, model dim 4096, FFN 14336, 32 heads.
    "llama3-8b": TransformerConfig(layers=32, hidden=4096, heads=32, ffn=14336, **_LLAMA3),
    # Llama 3 70B, Table 3: 80 layers, model dim 8192, FFN 28672, 64 heads.
    "llama3-70b": TransformerConfig(layers=80, hidden=8192, heads=64, ffn=28672, **_LLAMA3),
    # Llama 3 405B, Table 3: 126 layers, model dim 16384, FFN 53248, 128 heads.
    "llama3-405b": TransformerConfig(layers=126, hidden=16384, heads=128, ffn=53248, **_LLAMA3),
    # Zero Bubble Table 3 "1.5B": 22 layers, 24 heads, hidden 2304.
    "zb-1.5b": TransformerConfig(layers=22, hidden=2304, heads=24, **_ZB),
    # Zero Bubble Table 3 "6.2B": 30 layers, 32 heads, hidden 4096.
    "zb-6.2b": TransformerConfig(layers=30, hidden=4096, heads=32, **_ZB),
    # Zero Bubble Table 3 "14.6B": 46 layers, 40 heads, hidden 5120.
    "zb-14.6b": TransformerConfig(layers=46, hidden=5120, heads=40, **_ZB),
    # Zero Bubble Table 3 "28.3B": 62 layers, 48 heads, hidden 6144.
    "zb-28.3b": TransformerConfig(layers=62, hidden=6144, heads=48, **_ZB),
    "mixtral-8x7b": TransformerConfig(**_MIXTRAL),
    "qwen1.5-moe-a2.7b": TransformerConfig(**_QWEN_MOE),
    "deepseek-v3": TransformerConfig(**_DEEPSEEK_V3),
}

MODEL_SOURCES: dict[str, str] = {
    "gpt3-1.3b": "Brown et al. 2020, GPT-3, Table 2.1 (GPT-3 XL)",
    "gpt3-175b": "Brown et al. 2020, GPT-3, Table 2.1",
    "llama3-8b": "Dubey et al. 2024, The Llama 3 Herd of Models, Table 3",
    "llama3-70b": "Dubey et al. 2024, The Llama 3 Herd of Models, Table 3",
    "llama3-405b": "Dubey et al. 2024, The Llama 3 Herd of Models, Table 3",
    "zb-1.5b": "Qi et al. 2024, Zero Bubble Pipeline Parallelism, Table 3 (vocab inferred)",
    "zb-6.2b": "Qi et al. 2024, Zero Bubble Pipeline Parallelism, Table 3 (vocab inferred)",
    "zb-14.6b": "Qi et al. 2024, Zero Bubble Pipeline Parallelism, Table 3 (vocab inferred)",
    "zb-28.3b": "Qi et al. 2024, Zero Bubble Pipeline Parallelism, Table 3 (vocab inferred)",
    "mixtral-8x7b": "Jiang et al. 2024, Mixtral of Experts, Table 1",
    "qwen1.5-moe-a2.7b": "Qwen/Qwen1.5-MoE-A2.7B model card and config.json",
    "deepseek-v3": "DeepSeek-AI 2024, DeepSeek-V3 Technical Report, section 4.2; config.json",
}


def model_preset(name: str) -> TransformerConfig:
    """The preset called ``name`` (case-insensitive)."""
    key = name.strip().lower()
    if key not in MODEL_PRESETS:
        raise PebbleError(
            f"unknown model preset {name!r}; choose one of {', '.join(MODEL_PRESETS)}."
        )
    return MODEL_PRESETS[key]


def _norm_parameters(config: TransformerConfig) -> int:
    """One norm: a gain, plus a shift for LayerNorm when the model has biases."""
    has_shift = config.norm == "layernorm" and config.bias
    return config.hidden * (2 if has_shift else 1)


def attention_parameters(config: TransformerConfig) -> int:
    """Q, K, V (K and V with ``kv_heads`` heads) and the output projection, with their biases;
    latent attention: its compressions, their norms and the output projection
    (``latent_attention_parameters``)."""
    if config.is_latent:
        return latent_attention_parameters(config)
    h = config.hidden
    kv = config.num_kv_heads * config.head_dim
    weights = h * h + 2 * h * kv + h * h
    biases = h + 2 * kv + h if config.bias else 0
    return weights + biases


def latent_attention_parameters(config: TransformerConfig) -> int:
    """Multi-head latent attention (DeepSeek-V2/V3), no biases: ``h x q_lora_rank``, its norm's
    gain and ``q_lora_rank x heads (nope + rope)`` (or ``h x heads (nope + rope)`` without a
    query rank); ``h x (kv_lora_rank + rope)``, its norm's gain and ``kv_lora_rank x heads
    (nope + v)``; the output ``heads v x h``."""
    h, a = config.hidden, config.heads
    q_rank, kv_rank = config.q_lora_rank or 0, config.kv_lora_rank or 0
    nope, rope = config.qk_nope_head_dim or 0, config.qk_rope_head_dim or 0
    v = config.v_head_dim or 0
    query = h * q_rank + q_rank + q_rank * a * (nope + rope) if q_rank else h * a * (nope + rope)
    key_value = h * (kv_rank + rope) + kv_rank + kv_rank * a * (nope + v)
    return query + key_value + a * v * h


def mlp_parameters(config: TransformerConfig) -> int:
    """GELU: up and down (2 matrices); SwiGLU: gate, up and down (3 matrices); with biases."""
    h, f = config.hidden, config.ffn_hidden
    if config.mlp == "swiglu":
        return 3 * h * f + (2 * f + h if config.bias else 0)
    return 2 * h * f + (f + h if config.bias else 0)


def expert_parameters(config: TransformerConfig) -> int:
    """One routed expert: an MLP of width ``expert_ffn`` (GELU: 2 matrices, SwiGLU: 3)."""
    h, f = config.hidden, config.expert_hidden
    matrices = 3 if config.mlp == "swiglu" else 2
    biases = ((2 if config.mlp == "swiglu" else 1) * f + h) if config.bias else 0
    return matrices * h * f + biases


def shared_expert_parameters(config: TransformerConfig) -> int:
    """The shared experts, one MLP of width ``shared_experts * expert_ffn`` (0: none)."""
    h, f = config.hidden, config.shared_hidden
    if not f:
        return 0
    matrices = 3 if config.mlp == "swiglu" else 2
    biases = ((2 if config.mlp == "swiglu" else 1) * f + h) if config.bias else 0
    return matrices * h * f + biases


def router_parameters(config: TransformerConfig) -> int:
    """The router's ``hidden x experts`` matrix (no bias)."""
    return config.hidden * config.experts if config.is_moe else 0


def moe_parameters(config: TransformerConfig, *, active: bool = False) -> int:
    """A mixture-of-experts MLP: router, routed experts (only the ``top_k`` a token uses when
    ``active``) and shared experts."""
    routed = config.num_top_k if active else config.experts
    return (
        router_parameters(config)
        + routed * expert_parameters(config)
        + shared_expert_parameters(config)
    )


def parameters_per_block(config: TransformerConfig, block: int = 1, *, active: bool = False) -> int:
    """Transformer block ``block`` (1..layers): two norms, attention and its MLP, a mixture of
    experts after the dense first layers of a MoE model (``active``: what one token uses)."""
    if config.is_moe_block(block):
        mlp = moe_parameters(config, active=active)
    else:
        mlp = mlp_parameters(config)
    return 2 * _norm_parameters(config) + attention_parameters(config) + mlp


def _blocks_parameters(config: TransformerConfig, blocks: range, *, active: bool = False) -> int:
    if not config.is_moe:  # every block alike
        return len(blocks) * parameters_per_block(config)
    return sum(parameters_per_block(config, b, active=active) for b in blocks)


def embedding_parameters(config: TransformerConfig) -> int:
    """The first stage's input layer: token embedding, plus the position table if learned."""
    positions = config.seq * config.hidden if config.position == "learned" else 0
    return config.vocab * config.hidden + positions


def final_norm_parameters(config: TransformerConfig) -> int:
    """The norm before the LM head, on the last stage."""
    return _norm_parameters(config)


def lm_head_parameters(config: TransformerConfig) -> int:
    """The LM head's own weights (no bias): zero when it is the tied token embedding."""
    return 0 if config.tied_embeddings else config.vocab * config.hidden


def parameter_count(config: TransformerConfig) -> int:
    """Every unique trainable parameter of the model, exactly."""
    return (
        embedding_parameters(config)
        + _blocks_parameters(config, range(1, config.layers + 1))
        + final_norm_parameters(config)
        + lm_head_parameters(config)
    )


def active_parameter_count(config: TransformerConfig) -> int:
    """Parameters one token uses: ``parameter_count`` with each mixture of experts counting
    its router, its ``top_k`` routed experts and its shared experts (the convention of
    Mixtral's 12.9B and DeepSeek-V3's 37B "activated" counts: embedding tables whole)."""
    return (
        embedding_parameters(config)
        + _blocks_parameters(config, range(1, config.layers + 1), active=True)
        + final_norm_parameters(config)
        + lm_head_parameters(config)
    )


def stage_parameters(
    config: TransformerConfig, blocks: int, *, first: bool, last: bool, start: int = 1
) -> int:
    """Parameters held by one pipeline stage of ``blocks`` blocks from block ``start`` (1-based;
    it matters only when blocks differ, as a MoE model's dense first layers do).

    The first stage adds the embedding; the last adds the final norm and the LM head. With tied
    embeddings, a last stage that is not also the first holds a copy of the word embedding as
    its head (Megatron-LM's layout), so stages then sum to ``vocab * hidden`` more than
    ``parameter_count``.
    """
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 0:
        raise PebbleError(f"a stage holds a non-negative whole number of blocks, not {blocks!r}.")
    total = _blocks_parameters(config, range(start, start + blocks))
    if first:
        total += embedding_parameters(config)
    if last:
        total += final_norm_parameters(config) + lm_head_parameters(config)
        if config.tied_embeddings and not first:
            total += config.vocab * config.hidden
    return total


def _summary(config: TransformerConfig) -> str:
    heads = f"{config.heads} heads"
    if config.num_kv_heads != config.heads:
        heads += f" ({config.num_kv_heads} kv)"
    head = "tied head" if config.tied_embeddings else "untied head"
    mlp = f"ffn {config.ffn_hidden} {config.mlp}"
    if config.is_moe:
        shared = f" + {config.num_shared_experts} shared" if config.num_shared_experts else ""
        mlp = (
            f"{config.experts} experts{shared} of {config.expert_hidden} {config.mlp}, "
            f"top-{config.num_top_k}"
        )
    if config.is_latent:
        heads += f" (latent: q {config.q_lora_rank}, kv {config.kv_lora_rank})"
    if config.moe_dense_layers:
        mlp = f"{config.moe_dense_layers} dense of {config.ffn_hidden}, then {mlp}"
    return (
        f"{config.layers} layers, hidden {config.hidden}, {heads}, {mlp}, {config.norm}, "
        f"{config.position} positions, vocab {config.vocab}, seq {config.seq}, {head}"
    )


def preset_rows() -> list[tuple[str, str, int, str]]:
    """(name, summary, exact parameter count, source) for every model preset, for listings."""
    return [
        (name, _summary(config), parameter_count(config), MODEL_SOURCES[name])
        for name, config in MODEL_PRESETS.items()
    ]
