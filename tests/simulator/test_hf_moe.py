"""Mixture-of-experts Hugging Face configs: total and active parameter counts against the
published ones, the expert fields each family maps, and the refusals.

Config values are the models' config.json, copied from the Hugging Face repositories below
(checked against the copies quoted by pytorch-labs/gpt-fast ``mixtral-moe/model.py`` for
Mixtral and volcengine/verl ``tests/utils/test_flops_counter.py`` for DeepSeek-V3). Exact totals
are each repository's ``model.safetensors.index.json`` ``metadata.total_size`` over two bytes a
bfloat16 parameter.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from simulator.errors import PebbleError
from simulator.model.parse import parse_model
from simulator.model.transformer.hf_config import read_hf_config
from simulator.model.transformer.presets import active_parameter_count, parameter_count

CONFIGS = Path(__file__).parent / "hf_configs"


def read(name: str):
    return read_hf_config(str(CONFIGS / name))


def test_mixtral_8x7b_is_46_7b_total_and_12_9b_active():
    # mistralai/Mixtral-8x7B-v0.1: total_size 93,405,585,408 B. Mistral AI, "Mixtral of
    # experts" (2023-12-11): "46.7B total parameters but only uses 12.9B parameters per token".
    model = read("mixtral-8x7b.json")
    total, active = parameter_count(model.config), active_parameter_count(model.config)
    assert model.uncounted_parameters == 0 and model.differences == ()
    assert total == 93_405_585_408 // 2
    assert (round(total / 1e8) / 10, round(active / 1e8) / 10) == (46.7, 12.9)
    # by hand: 8 SwiGLU experts of 3 x 4096 x 14336 and a 4096 x 8 router a layer; 2 active
    h, f, layers = 4096, 14336, 32
    attention = 2 * h * h + 2 * h * 1024
    dense = 2 * 32000 * h + h + layers * (attention + 2 * h + h * 8)
    assert (total, active) == (dense + layers * 8 * 3 * h * f, dense + layers * 2 * 3 * h * f)


def test_mixtral_maps_its_expert_fields():
    config = read("mixtral-8x7b.json").config
    assert (config.experts, config.top_k, config.expert_hidden) == (8, 2, 14336)
    assert (config.renormalise_top_k, config.aux_coef, config.num_shared_experts) == (
        True,
        0.02,
        0,
    )
    assert (config.moe_dense_layers, config.capacity_factor, config.imbalance) == (0, None, 1.0)


def test_qwen1_5_moe_count_plus_its_stated_differences_is_published():
    # Qwen/Qwen1.5-MoE-A2.7B: total_size 28,631,568,384 B; model card: "14.3B parameters in
    # total and 2.7B activated parameters during runtime".
    model = read("qwen1.5-moe-a2.7b.json")
    config = model.config
    assert (config.experts, config.top_k, config.expert_hidden) == (60, 4, 1408)
    assert (config.num_shared_experts, config.renormalise_top_k) == (4, False)
    qkv_biases, shared_gate = 24 * (3 * 2048), 24 * 2048
    assert model.uncounted_parameters == qkv_biases + shared_gate
    assert parameter_count(config) + model.uncounted_parameters == 28_631_568_384 // 2
    active = active_parameter_count(config) + model.uncounted_parameters  # every token's
    assert round(active / 1e8) / 10 == 2.7
    assert len(model.differences) == 2 and "sigmoid gate (2,048 parameters" in model.differences[1]


def test_a_moe_config_takes_the_spec_overrides():
    spec = parse_model(f"hf:{CONFIGS / 'mixtral-8x7b.json'},seq=4096,capacity_factor=1.25")
    config = read("mixtral-8x7b.json").config
    assert spec.config == replace(config, seq=4096, capacity_factor=1.25)
    assert parse_model(spec.to_text()) == spec


def test_deepseek_v3_is_read_with_its_latent_attention():
    # its counts against the report's 671B / 37B are in tests/simulator/test_mla.py
    config = read("deepseek-v3.json").config
    assert (config.kv_lora_rank, config.q_lora_rank, config.dense_layers) == (512, 1536, 3)
    assert (config.experts, config.shared_experts, config.top_k) == (256, 1, 8)


def test_qwen3_30b_a3b_is_refused_for_its_head_width(tmp_path):
    # Qwen/Qwen3-30B-A3B: 32 heads of 128 (4096 wide) in a 2048-wide model; pebblesim's
    # attention is hidden wide, so the config is refused in one sentence.
    with pytest.raises(PebbleError, match="head_dim 128 .* is not hidden_size 2048"):
        read("qwen3-30b-a3b.json")
    # the same experts under hidden-wide attention (16 heads of 128) are read
    model = read_hf_config(edited(tmp_path, "qwen3-30b-a3b.json", num_attention_heads=16))
    assert (model.config.experts, model.config.top_k, model.config.expert_hidden) == (128, 8, 768)
    assert model.config.renormalise_top_k and model.config.num_shared_experts == 0
    assert model.uncounted_parameters == 48 * 2 * 128  # q_norm and k_norm


def edited(tmp_path, name: str, **changes) -> str:
    raw = {**json.loads((CONFIGS / name).read_text()), **changes}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    return str(path)


@pytest.mark.parametrize(
    ("name", "changes", "said"),
    [
        ("mixtral-8x7b.json", {"num_local_experts": None}, "has no num_local_experts"),
        ("qwen1.5-moe-a2.7b.json", {"moe_intermediate_size": None}, "has no moe_intermediate"),
        ("qwen1.5-moe-a2.7b.json", {"decoder_sparse_step": 2}, "decoder_sparse_step in"),
        ("qwen1.5-moe-a2.7b.json", {"mlp_only_layers": [0]}, "mlp_only_layers in"),
        ("qwen1.5-moe-a2.7b.json", {"shared_expert_intermediate_size": 5000}, "not a whole"),
        ("mixtral-8x7b.json", {"num_experts_per_tok": 9}, "top_k 9 is more than its 8 experts"),
        ("mixtral-8x7b.json", {"router_aux_loss_coef": -1}, "a finite number of at least 0"),
        ("llama3-8b.json", {"num_local_experts": 8}, "reads experts only from mixtral"),
    ],
)
def test_a_bad_moe_config_is_one_sentence_naming_the_file(tmp_path, name, changes, said):
    path = edited(tmp_path, name, **changes)
    with pytest.raises(PebbleError) as caught:
        read_hf_config(path)
    message = str(caught.value)
    assert said in message and path in message, message
    assert "\n" not in message and message.endswith(".")
