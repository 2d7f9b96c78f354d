"""Hugging Face config.json files as models: published parameter counts, overrides, refusals.

The files in ``hf_configs/`` are the models' real config.json values, copied from the Hugging
Face repositories named in ``PUBLISHED`` (and checked against the copies public code quotes:
volcengine/verl ``tests/utils/test_flops_counter.py`` for Qwen2.5-7B and Qwen3-8B,
NVIDIA/TensorRT-LLM's model tests and pytorch-labs/gpt-fast for Mistral and Mixtral).

The published counts are exact: the repository's ``model.safetensors.index.json`` gives
``metadata.total_size`` in bytes of the bfloat16 checkpoint, two bytes a parameter. GPT-2's
checkpoint is float32 and also stores each layer's causal-mask buffer, so its published count is
the model card's "124M" and the exact figure is derived tensor by tensor below.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from simulator.errors import PebbleError
from simulator.model.parse import parse_model
from simulator.model.transformer.hf_config import read_hf_config
from simulator.model.transformer.hf_fields import MAX_CONFIG_BYTES
from simulator.model.transformer.presets import MODEL_PRESETS, parameter_count

CONFIGS = Path(__file__).parent / "hf_configs"

# file: (published parameters, where published)
PUBLISHED = {
    # meta-llama/Meta-Llama-3-8B, model.safetensors.index.json: total_size 16,060,522,496 B.
    "llama3-8b.json": (16_060_522_496 // 2, "meta-llama/Meta-Llama-3-8B"),
    # meta-llama/Meta-Llama-3-70B, model.safetensors.index.json: total_size 141,107,412,992 B.
    "llama3-70b.json": (141_107_412_992 // 2, "meta-llama/Meta-Llama-3-70B"),
    # mistralai/Mistral-7B-v0.1, model.safetensors.index.json: total_size 14,483,464,192 B.
    "mistral-7b.json": (14_483_464_192 // 2, "mistralai/Mistral-7B-v0.1"),
    # Qwen/Qwen2.5-7B, model.safetensors.index.json: total_size 15,231,233,024 B (model card:
    # "Number of Parameters: 7.61B").
    "qwen2.5-7b.json": (15_231_233_024 // 2, "Qwen/Qwen2.5-7B"),
    # Qwen/Qwen3-8B, model.safetensors.index.json: total_size 16,381,470,720 B (model card:
    # "Number of Parameters: 8.2B").
    "qwen3-8b.json": (16_381_470_720 // 2, "Qwen/Qwen3-8B"),
    # openai-community/gpt2, model card: "the smallest version of GPT-2, with 124M parameters".
    "gpt2.json": (124_439_808, "openai-community/gpt2"),
}

# What each checkpoint holds that pebblesim's layers do not count, per layer x layers.
UNCOUNTED = {
    # Qwen2: q (3584), k and v (4 kv heads x 128 = 512 each) biases; o and the MLP have none.
    "qwen2.5-7b.json": (3584 + 2 * 512) * 28,
    # Qwen3: q_norm and k_norm, one RMSNorm gain of head_dim = 128 each.
    "qwen3-8b.json": 2 * 128 * 36,
}


def read(name: str):
    return read_hf_config(str(CONFIGS / name))


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_count_plus_the_stated_difference_is_the_published_count(name):
    model = read(name)
    published, _ = PUBLISHED[name]
    assert model.uncounted_parameters == UNCOUNTED.get(name, 0)
    assert parameter_count(model.config) + model.uncounted_parameters == published
    assert len(model.differences) == (1 if name in UNCOUNTED or name == "mistral-7b.json" else 0)


def test_gpt2_small_tensor_by_tensor():
    # wte 50257 x 768, wpe 1024 x 768; a block: ln_1, c_attn 768 x 2304 (+ bias), c_proj,
    # ln_2, c_fc 768 x 3072 (+ bias), c_proj 3072 x 768 (+ bias); ln_f. 124M as published.
    h, v, s = 768, 50257, 1024
    block = 2 * 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + (h * 4 * h + 4 * h) + (4 * h * h + h)
    assert v * h + s * h + 12 * block + 2 * h == PUBLISHED["gpt2.json"][0]
    assert round(PUBLISHED["gpt2.json"][0] / 1e6) == 124
    config = read("gpt2.json").config
    assert (config.mlp, config.norm, config.position, config.bias) == (
        "gelu",
        "layernorm",
        "learned",
        True,
    )
    assert (config.tied_embeddings, config.dropout, config.seq, config.ffn_hidden) == (
        True,
        0.1,
        1024,
        3072,
    )


@pytest.mark.parametrize("name", ["llama3-8b", "llama3-70b"])
def test_llama3_configs_are_the_presets(name):
    assert read(f"{name}.json").config == MODEL_PRESETS[name]


def test_qwen_differences_are_one_sentence_each_naming_the_parameters():
    (qwen2,) = read("qwen2.5-7b.json").differences
    assert qwen2.startswith("Qwen2's q, k and v projections carry biases (4,608 parameters")
    assert "129,024 in all" in qwen2 and qwen2.count(". ") == 0 and qwen2.endswith(".")
    (qwen3,) = read("qwen3-8b.json").differences
    assert "(256 parameters a layer, 9,216 in all)" in qwen3
    config = read("qwen3-8b.json").config
    assert (config.head_dim, config.num_kv_heads, config.bias) == (128, 8, False)


def test_mistral_sliding_window_is_said():
    (window,) = read("mistral-7b.json").differences
    assert "sliding window of 4,096 tokens" in window


def test_overrides_apply_as_they_do_for_presets():
    path = CONFIGS / "llama3-8b.json"
    spec = parse_model(f"hf:{path},seq=2048,tp=8")
    preset = parse_model("llama3-8b,seq=2048,tp=8")
    assert spec == preset
    assert spec.config.seq == 2048 and spec.layout.tensor == 8 and spec.dtype == "bfloat16"
    assert parse_model(spec.to_text()) == spec  # what a Timeline records reads back the same


def test_a_folder_holding_config_json_reads_it(tmp_path):
    (tmp_path / "config.json").write_text((CONFIGS / "gpt2.json").read_text())
    assert parse_model(f"hf:{tmp_path}").config == read("gpt2.json").config


def edited(tmp_path, name: str, **changes) -> str:
    raw = json.loads((CONFIGS / name).read_text())
    for key, value in changes.items():
        if value is _DROP:
            raw.pop(key)
        else:
            raw[key] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    return str(path)


_DROP = object()


@pytest.mark.parametrize(
    ("name", "changes", "said"),
    [
        ("llama3-8b.json", {"num_hidden_layers": _DROP}, "has no num_hidden_layers, which a llama"),
        ("gpt2.json", {"n_embd": None}, "has no n_embd, which a gpt2"),
        ("llama3-8b.json", {"model_type": "gemma"}, "model_type 'gemma', which pebblesim cannot"),
        ("llama3-8b.json", {"hidden_size": "4096"}, "hidden_size in Hugging Face config"),
        ("llama3-8b.json", {"hidden_size": 0}, "must be a positive whole number, got 0"),
        ("llama3-8b.json", {"tie_word_embeddings": 1}, "must be true or false"),
        ("llama3-8b.json", {"attention_dropout": 1.5}, "must be a probability in [0, 1)"),
        ("llama3-8b.json", {"hidden_act": "gelu"}, "hidden_act 'gelu'"),
        ("gpt2.json", {"activation_function": "relu"}, "activation_function 'relu'"),
        # Qwen3-0.6B: 16 heads of 128 in a 1024-wide model.
        ("qwen3-8b.json", {"hidden_size": 1024, "num_attention_heads": 16}, "head_dim 128"),
        ("llama3-8b.json", {"num_attention_heads": 33}, "not a multiple of heads 33"),
        ("llama3-8b.json", {"model_type": _DROP, "architectures": _DROP}, "has no model_type"),
    ],
)
def test_a_bad_config_is_one_sentence_naming_the_field_and_the_file(tmp_path, name, changes, said):
    path = edited(tmp_path, name, **changes)
    with pytest.raises(PebbleError) as caught:
        parse_model(f"hf:{path}")
    message = str(caught.value)
    assert said in message and path in message, message
    assert "\n" not in message and message.endswith(".")


def test_architectures_alone_name_the_family(tmp_path):
    path = edited(tmp_path, "qwen2.5-7b.json", model_type=_DROP)
    assert read_hf_config(path).family == "qwen2"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("{", "is not JSON"),
        ('{"hidden_size": NaN}', "holds NaN or Infinity"),
        ("[1, 2]", "is not a JSON object"),
        (" " * (MAX_CONFIG_BYTES + 1), "a config.json is a few kilobytes"),
    ],
)
def test_a_file_that_is_no_config_is_one_sentence(tmp_path, text, said):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(PebbleError, match=said):
        parse_model(f"hf:{path}")


def test_a_missing_file_and_an_empty_path_are_one_sentence(tmp_path):
    with pytest.raises(PebbleError, match="no such file"):
        parse_model(f"hf:{tmp_path / 'absent.json'}")
    with pytest.raises(PebbleError, match="needs the path of a config.json"):
        parse_model("hf:")


def test_a_bad_override_is_the_preset_sentence():
    with pytest.raises(PebbleError, match="cannot read 'layerz=2'"):
        parse_model(f"hf:{CONFIGS / 'gpt2.json'},layerz=2")


def test_each_mapped_field_changes_the_config(tmp_path):
    base = read("llama3-8b.json").config
    cases = {
        "num_key_value_heads": ("kv_heads", 32),
        "intermediate_size": ("ffn", 1024),
        "vocab_size": ("vocab", 1000),
        "max_position_embeddings": ("seq", 4096),
        "tie_word_embeddings": ("tied_embeddings", True),
    }
    for field, (ours, value) in cases.items():
        config = read_hf_config(edited(tmp_path, "llama3-8b.json", **{field: value})).config
        assert config == replace(base, **{ours: value}), field
    both = edited(tmp_path, "llama3-8b.json", attention_bias=True, mlp_bias=True)
    assert read_hf_config(both).config == replace(base, bias=True)
    only_attention = read_hf_config(edited(tmp_path, "llama3-8b.json", attention_bias=True))
    assert only_attention.config == base
    assert only_attention.uncounted_parameters == 32 * (2 * 4096 + 2 * 1024)
