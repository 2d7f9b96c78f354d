"""Mixture-of-experts Hugging Face configs (Mixtral, Qwen2-MoE, Qwen3-MoE, DeepSeek-V2/V3)
onto ``TransformerConfig``'s expert fields (and DeepSeek's latent attention fields).

Why apart from the dense families (``hf_config``): each MoE family names its experts
differently (``num_local_experts`` / ``num_experts``, ``moe_intermediate_size``,
``shared_expert_intermediate_size``) and has its own defaults (Mixtral always renormalises its
top-k gates; Qwen's ``norm_topk_prob`` defaults to false), and this is the one place that knows.
The attention, norms and embeddings are read as the dense family they extend (Mixtral as
Mistral, Qwen2-MoE as Qwen2, Qwen3-MoE as Qwen3).

DeepSeek-V2/V3 (``deepseek_moe``) carry their multi-head latent attention's widths
(``q_lora_rank``, ``kv_lora_rank``, ``qk_nope_head_dim``, ``qk_rope_head_dim``,
``v_head_dim``: ``simulator.model.transformer.mla``) beside the experts
(``n_routed_experts``, ``n_shared_experts``, ``first_k_dense_replace``).
"""

from __future__ import annotations

from simulator.errors import PebbleError
from simulator.model.transformer.hf_fields import ConfigFields

MOE_FAMILIES = ("mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3")
MLA_FAMILIES = ("deepseek_v2", "deepseek_v3")
DENSE_BASE = {"mixtral": "mistral", "qwen2_moe": "qwen2", "qwen3_moe": "qwen3"}
"""The dense family whose attention, norms and biases each MoE family has."""
_MIXTRAL_AUX = 0.001
"""transformers' MixtralConfig default ``router_aux_loss_coef`` (Qwen's MoE configs: same)."""


def expert_fields(f: ConfigFields, hidden: int) -> tuple[dict, int, tuple[str, ...]]:
    """(TransformerConfig's expert fields, parameters a layer the checkpoint has beyond them,
    the differences in one sentence each) of a MoE config."""
    if f.family in MLA_FAMILIES:
        return deepseek_fields(f)
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


def deepseek_fields(f: ConfigFields) -> tuple[dict, int, tuple[str, ...]]:
    """DeepSeek-V2/V3: the experts after ``first_k_dense_replace`` dense layers, and the latent
    attention's widths (``q_lora_rank`` null: queries projected directly, V2-Lite)."""
    if f.whole("moe_layer_freq", 1) != 1:
        raise PebbleError(
            f"moe_layer_freq in Hugging Face config {f.source} keeps dense layers between the "
            "experts' layers; pebblesim's dense layers are the first ones only."
        )
    if f.flag("attention_bias", False):
        raise PebbleError(
            f"attention_bias in Hugging Face config {f.source} gives latent attention biases, "
            "which pebblesim's latent attention does not have."
        )
    q_rank = f.whole("q_lora_rank") if f.raw.get("q_lora_rank") is not None else None
    fields = {
        "experts": f.whole("n_routed_experts"),
        "top_k": f.whole("num_experts_per_tok"),
        "expert_ffn": f.whole("moe_intermediate_size"),
        "shared_experts": f.raw.get("n_shared_experts") and f.whole("n_shared_experts"),
        "dense_layers": f.raw.get("first_k_dense_replace") and f.whole("first_k_dense_replace"),
        "norm_topk": f.flag("norm_topk_prob", False),
        "moe_aux_coef": f.number("aux_loss_alpha", _MIXTRAL_AUX),
        "q_lora_rank": q_rank,
        "kv_lora_rank": f.whole("kv_lora_rank"),
        "qk_nope_head_dim": f.whole("qk_nope_head_dim"),
        "qk_rope_head_dim": f.whole("qk_rope_head_dim"),
        "v_head_dim": f.whole("v_head_dim"),
    }
    said = []
    scoring = f.text("scoring_func", "softmax")
    if scoring != "softmax" or f.raw.get("topk_method") not in (None, "greedy"):
        said.append(
            f"Its router ({scoring} scores, {f.text('topk_method', 'greedy')} top-k over "
            "groups of experts, a bias that balances the load) is counted as a softmax "
            "router: the same parameters, FLOPs and cached bytes but the bias vector."
        )
    mtp = f.raw.get("num_nextn_predict_layers")
    if isinstance(mtp, int) and mtp > 0:
        said.append(
            f"Its multi-token prediction module ({mtp} layer{'s' if mtp > 1 else ''} after the "
            "model) is not counted, as the published total (DeepSeek-V3: 671B) does not count "
            "it."
        )
    return fields, 0, tuple(said)
