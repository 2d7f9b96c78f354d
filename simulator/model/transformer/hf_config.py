"""Hugging Face ``config.json`` files as models: ``--model hf:PATH/config.json[,key=value...]``.

Why: a user planning a run usually has a checkpoint's config.json, not pebblesim's spec text;
translating it by hand is where a kv-head count or a tied head gets lost. This reads the
architectures that matter (Llama, Mistral, Qwen2, Qwen3, GPT-2, and the mixtures of experts
Mixtral, Qwen2-MoE, Qwen3-MoE and DeepSeek-V2/V3 through ``hf_moe``) into a
``TransformerConfig``, with the sequence length from ``max_position_embeddings`` (GPT-2:
``n_positions``), and the overrides after the path work as they do for presets
(``hf:llama/config.json,seq=8192,tp=8``).

What a config says that pebblesim's layers cannot express is said, not hidden: ``HFModel``
keeps each difference as one sentence and the parameters the checkpoint has beyond pebblesim's
count (Qwen2's q/k/v biases, Qwen3's q/k norms, Qwen2-MoE's shared-expert gate), so checkpoint
= ``parameter_count`` + ``uncounted_parameters`` exactly. RoPE's base and scaling change no
parameter, FLOP or byte pebblesim counts, so they are read as "rope" and nothing more. A
``head_dim`` other than hidden / heads (Qwen3-0.6B, Qwen3-MoE) is refused in one sentence:
pebblesim's grouped-query attention is hidden wide (DeepSeek's latent attention has widths of its
own, read by ``hf_moe``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from simulator.errors import PebbleError
from simulator.model.transformer.config import TransformerConfig
from simulator.model.transformer.hf_fields import ConfigFields, read_config_file
from simulator.model.transformer.hf_moe import (
    DENSE_BASE,
    MOE_FAMILIES,
    expert_fields,
)
from simulator.model.transformer.spec import TransformerSpec

HF_PREFIX = "hf:"
_GATED = ("llama", "mistral", "qwen2", "qwen3")
FAMILIES = (*_GATED, "gpt2", *MOE_FAMILIES)
_ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "GPT2LMHeadModel": "gpt2",
    "MixtralForCausalLM": "mixtral",
    "Qwen2MoeForCausalLM": "qwen2_moe",
    "Qwen3MoeForCausalLM": "qwen3_moe",
    "DeepseekV2ForCausalLM": "deepseek_v2",
    "DeepseekV3ForCausalLM": "deepseek_v3",
}
_EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts")
_SWIGLU_ACTS = ("silu", "swish")
_GELU_ACTS = ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh")


@dataclass(frozen=True)
class HFModel:
    """A config.json read as pebblesim's architecture.

    Why the differences travel with the config: a count that silently leaves out Qwen2's qkv
    biases looks exact and is not; ``uncounted_parameters`` is what the checkpoint holds beyond
    ``parameter_count(config)``, and ``differences`` says why, one sentence each.
    """

    config: TransformerConfig
    family: str
    source: str
    uncounted_parameters: int = 0
    differences: tuple[str, ...] = ()


def hf_spec(text: str, dtype: str) -> TransformerSpec:
    """``hf:PATH[,key=value...]`` as a spec in ``dtype``, the overrides applied over the file's
    architecture as they are over a preset's. The path is everything up to the first comma."""
    path, _, overrides = text.strip()[len(HF_PREFIX) :].partition(",")
    base = TransformerSpec(read_hf_config(path.strip()).config, dtype=dtype)
    return TransformerSpec.parse(overrides, base) if overrides.strip() else base


def read_hf_config(path: str) -> HFModel:
    """The model a Hugging Face config.json (or a folder holding one) describes."""
    raw, source = read_config_file(path)
    family = _family(raw, source)
    fields = ConfigFields(raw, source, family)
    try:
        return _gpt2(fields) if family == "gpt2" else _gated(fields)
    except PebbleError as error:
        if source in str(error):
            raise
        raise PebbleError(f"Hugging Face config {source}: {error}") from None


def _family(raw: dict, source: str) -> str:
    """The architecture: ``model_type``, else the first of ``architectures``."""
    model_type = raw.get("model_type")
    named = raw.get("architectures")
    if not isinstance(model_type, str) and isinstance(named, list) and named:
        model_type = _ARCHITECTURES.get(str(named[0]), str(named[0]))
    if not isinstance(model_type, str):
        raise PebbleError(
            f"Hugging Face config {source} has no model_type (nor architectures), so its "
            "architecture is unknown."
        )
    experts = [k for k in _EXPERT_KEYS if isinstance(raw.get(k), int) and raw[k] > 0]
    if experts and model_type not in MOE_FAMILIES:
        raise PebbleError(
            f"Hugging Face config {source} gives {experts[0]}, but pebblesim reads experts "
            f"only from {', '.join(MOE_FAMILIES)} configs, not {model_type!r}."
        )
    if model_type not in FAMILIES:
        raise PebbleError(
            f"Hugging Face config {source} has model_type {model_type!r}, which pebblesim "
            f"cannot read; it reads {', '.join(FAMILIES)}."
        )
    return model_type


def _gated(f: ConfigFields) -> HFModel:
    """Llama, Mistral, Qwen2 and Qwen3 (and their MoE kin, Mixtral, Qwen2-MoE, Qwen3-MoE):
    RMSNorm, RoPE, a SwiGLU MLP or experts, grouped-query attention."""
    hidden, heads = f.whole("hidden_size"), f.whole("num_attention_heads")
    kv_heads = f.whole("num_key_value_heads", heads)
    act = f.text("hidden_act", "silu")
    if act not in _SWIGLU_ACTS:
        raise PebbleError(
            f"hidden_act {act!r} in Hugging Face config {f.source} is not SwiGLU's silu, the "
            "only gated MLP pebblesim has."
        )
    head_dim = f.whole("head_dim") if f.raw.get("head_dim") is not None else None
    if head_dim is not None and head_dim * heads != hidden:
        raise PebbleError(
            f"head_dim {head_dim} in Hugging Face config {f.source} times num_attention_heads "
            f"{heads} is not hidden_size {hidden}, and pebblesim's attention is hidden wide."
        )
    config = TransformerConfig(
        layers=f.whole("num_hidden_layers"),
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        ffn=f.whole("intermediate_size"),
        seq=f.whole("max_position_embeddings"),
        vocab=f.whole("vocab_size"),
        mlp="swiglu",
        norm="rmsnorm",
        position="rope",
        dropout=f.probability("attention_dropout", 0.0),
        tied_embeddings=f.flag("tie_word_embeddings", False),
        bias=_bias(f)[0],
    )
    extra, differences = _gated_extras(f, config)
    if f.family in MOE_FAMILIES:
        experts, per_layer, said = expert_fields(f, hidden)
        config = replace(config, **experts)
        extra, differences = extra + per_layer * config.layers, differences + said
    return HFModel(config, f.family, f.source, extra, differences)


def _bias(f: ConfigFields) -> tuple[bool, bool, bool]:
    """(pebblesim's all-or-nothing bias, q/k/v/o biases, MLP biases) of a gated config.
    Qwen2 has q/k/v biases whatever it says (and no field for them)."""
    attention = _base(f) != "qwen2" and f.flag("attention_bias", False)
    mlp = f.family == "llama" and f.flag("mlp_bias", False)
    return attention and mlp, attention, mlp


def _base(f: ConfigFields) -> str:
    """The dense family whose attention and norms the config's family has."""
    return DENSE_BASE.get(f.family, f.family)


def _gated_extras(f: ConfigFields, config: TransformerConfig) -> tuple[int, tuple[str, ...]]:
    """What the checkpoint holds beyond pebblesim's count, and each difference in a sentence."""
    h, kv, layers = config.hidden, config.num_kv_heads * config.head_dim, config.layers
    per_layer: list[tuple[int, str, str]] = []
    everything, attention, mlp = _bias(f)
    all_or_none = "its bias switch covers every linear layer or none"
    if _base(f) == "qwen2":
        per_layer.append((h + 2 * kv, "Qwen2's q, k and v projections carry biases", all_or_none))
    elif attention and not everything:
        per_layer.append((2 * h + 2 * kv, "attention_bias gives q, k, v and o biases", all_or_none))
    elif mlp and not everything:
        per_layer.append((2 * config.ffn_hidden + h, "mlp_bias gives the MLP biases", all_or_none))
    if _base(f) == "qwen3":
        per_layer.append(
            (
                2 * config.head_dim,
                "Qwen3 normalises q and k per head with RMSNorm gains",
                "its attention has no per-head norm",
            )
        )
    differences = [
        f"{why} ({n:,} parameters a layer, {n * layers:,} in all) that pebblesim does not "
        f"count: {reason}."
        for n, why, reason in per_layer
    ]
    window = f.raw.get("sliding_window")
    slides = _base(f) == "mistral" or f.raw.get("use_sliding_window") is True
    if slides and isinstance(window, int) and 0 < window < config.seq:
        differences.append(
            f"Attention over a sliding window of {window:,} tokens is counted as full causal "
            f"attention over the sequence ({config.seq:,} unless seq= says otherwise)."
        )
    return sum(n for n, _, _ in per_layer) * layers, tuple(differences)


def _gpt2(f: ConfigFields) -> HFModel:
    """GPT-2: LayerNorm, learned positions, a GELU MLP, biases everywhere, a tied LM head."""
    act = f.text("activation_function", "gelu_new")
    if act not in _GELU_ACTS:
        raise PebbleError(
            f"activation_function {act!r} in Hugging Face config {f.source} is not a GELU, "
            "the MLP a GPT-2 has."
        )
    hidden = f.whole("n_embd")
    config = TransformerConfig(
        layers=f.whole("n_layer"),
        hidden=hidden,
        heads=f.whole("n_head"),
        ffn=f.whole("n_inner", 4 * hidden),
        seq=f.whole("n_positions"),
        vocab=f.whole("vocab_size"),
        mlp="gelu",
        norm="layernorm",
        position="learned",
        dropout=f.probability("resid_pdrop", 0.1),
        tied_embeddings=f.flag("tie_word_embeddings", True),
        bias=True,
    )
    return HFModel(config, f.family, f.source)
