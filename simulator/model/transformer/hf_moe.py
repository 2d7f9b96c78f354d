"""Mixture-of-experts Hugging Face configs (Mixtral, Qwen2-MoE, Qwen3-MoE) onto
``TransformerConfig``'s expert fields.

Why apart from the dense families (``hf_config``): each MoE family names its experts
differently (``num_local_experts`` / ``num_experts``, ``moe_intermediate_size``,
``shared_expert_intermediate_size``) and has its own defaults (Mixtral always renormalises its
top-k gates; Qwen's ``norm_topk_prob`` defaults to false), and this is the one place that knows.
The attention, norms and embeddings are read as the dense family they extend (Mixtral as
Mistral, Qwen2-MoE as Qwen2, Qwen3-MoE as Qwen3).

DeepSeek-V2/V3 are refused: their multi-head latent attention (``q_lora_rank``,
``kv_lora_rank``) is not a layer pebblesim has, and counting it as grouped-query attention would
misstate its parameters, FLOPs and cache.
"""

from __future__ import annotations

from simulator.errors import PebbleError
from simulator.model.transformer.hf_fields import ConfigFields

MOE_FAMILIES = ("mixtral", "qwen2_moe", "qwen3_moe")
MLA_FAMILIES = ("deepseek_v2", "deepseek_v3")
DENSE_BASE = {"mixtral": "mistral", "qwen2_moe": "qwen2", "qwen3_moe": "qwen3"}
"""The dense family whose attention, norms and biases each MoE family has."""
_MIXTRAL_AUX = 0.001
"""transformers' MixtralConfig default ``router_aux_loss_coef`` (Qwen's MoE configs: same)."""


def refuse_latent_attention(f: ConfigFields) -> None:
    raise PebbleError(
        f"Hugging Face config {f.source} is a {f.family} model, whose multi-head latent "
        "attention (q_lora_rank, kv_lora_rank) is not a layer pebblesim has."
    )


def expert_fields(f: ConfigFields, hidden: int) -> tuple[dict, int, tuple[str, ...]]:
    """(TransformerConfig's expert fields, parameters a layer the checkpoint has beyond them,
    the differences in one sentence each) of a MoE config."""
    if f.family == "mixtral":
        fields = {
            "experts": f.whole("num_local_experts"),
            "top_k": f.whole("num_experts_per_tok", 2),
            "norm_topk": True,  # Mixtral's block renormalises whatever the config says
            "moe_aux_coef": f.number("router_aux_loss_coef", _MIXTRAL_AUX),
        }
        return fields, 0, ()
    _every_layer_sparse(f)
    expert_ffn = f.whole("moe_intermediate_size")
    fields = {
        "experts": f.whole("num_experts"),
        "top_k": f.whole("num_experts_per_tok"),
        "expert_ffn": expert_ffn,
        "norm_topk": f.flag("norm_topk_prob", False),
        "moe_aux_coef": f.number("router_aux_loss_coef", _MIXTRAL_AUX),
    }
    if f.family == "qwen3_moe":
        return fields, 0, ()
    shared_width = f.whole("shared_expert_intermediate_size")
    if shared_width % expert_ffn:
        raise PebbleError(
            f"shared_expert_intermediate_size {shared_width} in Hugging Face config {f.source} "
            f"is not a whole number of experts of moe_intermediate_size {expert_ffn}."
        )
    fields["shared_experts"] = shared_width // expert_ffn
    layers = f.whole("num_hidden_layers")
    gate = (
        f"Qwen2-MoE scales its shared experts by a sigmoid gate ({hidden:,} parameters a layer, "
        f"{hidden * layers:,} in all) that pebblesim does not count: its shared experts are "
        "always fully on."
    )
    return fields, hidden, (gate,)


def _every_layer_sparse(f: ConfigFields) -> None:
    """Qwen's MoE configs can keep some layers dense anywhere (``decoder_sparse_step``,
    ``mlp_only_layers``); pebblesim's dense layers are the first ones only."""
    step = f.whole("decoder_sparse_step", 1)
    dense = f.raw.get("mlp_only_layers") or []
    if step != 1 or dense:
        name = "decoder_sparse_step" if step != 1 else "mlp_only_layers"
        raise PebbleError(
            f"{name} in Hugging Face config {f.source} keeps dense layers between the experts' "
            "layers; pebblesim's dense layers are the first ones only."
        )
