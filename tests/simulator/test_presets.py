"""Model presets against their published parameter counts; hardware presets and their parser."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest

from simulator.analytic.hardware import (
    HARDWARE_PRESETS,
    HardwarePreset,
    hardware_rows,
    parse_hardware_preset,
    sustained_flops,
)
from simulator.errors import PebbleError
from simulator.model.transformer.config import TransformerConfig
from simulator.model.transformer.presets import (
    MODEL_PRESETS,
    embedding_parameters,
    model_preset,
    parameter_count,
    parameters_per_block,
    preset_rows,
    stage_parameters,
)

# Published parameter counts, with where they are published. Where the paper's headline rounds
# too coarsely for 0.5% we cite the more precise published figure and say so.
PUBLISHED = {
    # Brown et al. 2020, Table D.1 ("Params (M)": 1,320). Table 2.1 says "1.3B", which the
    # exact 1,315,723,264 misses by 1.2% only because of that rounding.
    "gpt3-1.3b": 1.320e9,
    # Brown et al. 2020, Table 2.1: "175.0B". (Table D.1 gives 174,600M: checked below.)
    "gpt3-175b": 175.0e9,
    # Hugging Face Hub, meta-llama/Meta-Llama-3-8B, safetensors size "8.03B params". The paper's
    # "8B" is within 0.5% too, but only by 0.38%.
    "llama3-8b": 8.03e9,
    # Hugging Face Hub, meta-llama/Meta-Llama-3-70B, "70.6B params" (the paper's "70B" is 0.8%
    # off because it rounds).
    "llama3-70b": 70.6e9,
    # Dubey et al. 2024, Table 3 and text: "405B".
    "llama3-405b": 405e9,
    # Qi et al. 2024, Table 3 "Model" column; no more precise figure is published.
    "zb-1.5b": 1.5e9,
    "zb-6.2b": 6.2e9,
    "zb-14.6b": 14.6e9,
    "zb-28.3b": 28.3e9,
    # Jiang et al. 2024, Mixtral of Experts, section 2: "47B total parameters" and "13B active
    # parameters"; Mistral AI's announcement (mistral.ai/news/mixtral-of-experts, 2023-12-11)
    # gives them to the tenth: "46.7B total parameters but only uses 12.9B parameters per
    # token" (active: tests/simulator/test_moe_model.py).
    "mixtral-8x7b": 46.7e9,
    # Qwen/Qwen1.5-MoE-A2.7B model card: "14.3B parameters in total and 2.7B activated
    # parameters during runtime".
    "qwen1.5-moe-a2.7b": 14.3e9,
    # DeepSeek-V3 Technical Report (arXiv 2412.19437), section 1: "671B total parameters with
    # 37B activated for each token" (both, exactly and by hand: tests/simulator/test_mla.py).
    "deepseek-v3": 671e9,
}

# zb-1.5b is 1,478,172,672 (-1.5% from "1.5B"). The paper publishes only "1.5B" and states no
# vocabulary; no single vocabulary puts all four Zero Bubble models within 0.5% of their
# headlines (1.5B needs >= 38.3k tokens, 14.6B needs <= 37.9k), so the headlines are rounded
# loosely. That preset is held to its published precision (0.1B) instead, like all four below.
WITHIN_HALF_PERCENT = [name for name in PUBLISHED if name != "zb-1.5b"]


def test_every_preset_has_a_published_figure():
    assert set(PUBLISHED) == set(MODEL_PRESETS)


@pytest.mark.parametrize("name", WITHIN_HALF_PERCENT)
def test_parameter_count_within_half_a_percent_of_published(name):
    count = parameter_count(MODEL_PRESETS[name])
    assert abs(count / PUBLISHED[name] - 1) <= 0.005, (name, count, PUBLISHED[name])


@pytest.mark.parametrize("name", [n for n in PUBLISHED if n.startswith("zb-")])
def test_zero_bubble_counts_round_to_the_published_figure(name):
    assert round(parameter_count(MODEL_PRESETS[name]) / 1e9, 1) == PUBLISHED[name] / 1e9


def test_gpt3_175b_matches_the_paper_appendix_to_four_digits():
    # Brown et al. 2020, Table D.1: 174,600M parameters.
    assert round(parameter_count(MODEL_PRESETS["gpt3-175b"]) / 1e8) == 1746


def test_exact_counts_by_hand():
    # GPT-3 XL: 24 blocks of 12h^2 + 13h, tied embedding, learned positions, final LayerNorm.
    h, v, s = 2048, 50257, 2048
    assert parameter_count(MODEL_PRESETS["gpt3-1.3b"]) == 24 * (12 * h * h + 13 * h) + (
        v * h + s * h + 2 * h
    )
    # Llama 3 8B: q, o h^2; k, v h x 1024; SwiGLU 3 h ffn; two RMSNorms; untied head; final norm.
    h, f, v = 4096, 14336, 128256
    block = 2 * h * h + 2 * h * 1024 + 3 * h * f + 2 * h
    assert parameters_per_block(MODEL_PRESETS["llama3-8b"]) == block
    assert parameter_count(MODEL_PRESETS["llama3-8b"]) == 32 * block + 2 * v * h + h == 8030261248


def test_each_architecture_switch_changes_the_count():
    base = TransformerConfig(layers=2, hidden=64, heads=4, seq=32, vocab=96)
    n = parameter_count(base)
    h = 64
    assert parameter_count(_with(base, kv_heads=1)) == n - 2 * 2 * (h * 48 + 48)
    assert parameter_count(_with(base, mlp="swiglu")) == n + 2 * (h * 4 * h + 4 * h)
    assert parameter_count(_with(base, norm="rmsnorm")) == n - 5 * h
    assert parameter_count(_with(base, position="rope")) == n - 32 * h
    assert parameter_count(_with(base, tied_embeddings=False)) == n + 96 * h
    no_bias = 2 * (3 * h + h + 4 * h + h) + 5 * h  # attention, MLP and LayerNorm shifts
    assert parameter_count(_with(base, bias=False)) == n - no_bias


def _with(config, **changes):
    values = {f.name: getattr(config, f.name) for f in fields(config)}
    return TransformerConfig(**{**values, **changes})


@pytest.mark.parametrize("name", ["gpt3-175b", "llama3-70b"])
def test_stages_hold_every_parameter_once_plus_the_tied_head_copy(name):
    config = MODEL_PRESETS[name]
    p = 8
    per = config.layers // p
    blocks = [per] * p
    blocks[-1] += config.layers - per * p
    total = sum(
        stage_parameters(config, b, first=i == 0, last=i == p - 1) for i, b in enumerate(blocks)
    )
    copy = config.vocab * config.hidden if config.tied_embeddings else 0
    assert total == parameter_count(config) + copy
    assert stage_parameters(config, config.layers, first=True, last=True) == parameter_count(config)
    assert stage_parameters(config, 0, first=True, last=False) == embedding_parameters(config)


def test_stage_parameters_rejects_a_bad_block_count():
    with pytest.raises(PebbleError, match="blocks"):
        stage_parameters(MODEL_PRESETS["llama3-8b"], -1, first=True, last=False)


def test_preset_rows_and_lookup():
    rows = preset_rows()
    assert [r[0] for r in rows] == list(MODEL_PRESETS)
    for name, summary, count, source in rows:
        assert count == parameter_count(MODEL_PRESETS[name])
        assert summary and source
    assert model_preset(" Llama3-8B ") is MODEL_PRESETS["llama3-8b"]
    with pytest.raises(PebbleError, match="llama3-9b"):
        model_preset("llama3-9b")


# ---------------------------------------------------------------- hardware


@pytest.mark.parametrize("name", list(HARDWARE_PRESETS))
def test_every_hardware_field_is_positive_and_finite(name):
    preset = HARDWARE_PRESETS[name]
    assert preset.name == name
    for field in ("peak_flops", "memory_bytes", "memory_bandwidth"):
        assert math.isfinite(getattr(preset, field)) and getattr(preset, field) > 0
    for field in ("nvlink_bandwidth", "internode_bandwidth"):
        assert 0 < getattr(preset, field) < preset.memory_bandwidth
    assert preset.internode_bandwidth < preset.nvlink_bandwidth
    assert preset.gpus_per_node == (1 if name == "gh200" else 8)  # a superchip is its node
    assert 0 < preset.host_link_bandwidth and 0 < preset.host_memory_bytes and preset.host_source
    assert 0.3 <= preset.efficiency <= 0.6
    assert preset.source and preset.efficiency_source
    assert sustained_flops(preset) == preset.peak_flops * preset.efficiency


def test_datasheet_numbers():
    assert HARDWARE_PRESETS["a100-80gb"].peak_flops == 312e12
    assert HARDWARE_PRESETS["h100-80gb"].memory_bandwidth == 3.35e12
    assert HARDWARE_PRESETS["h200"].memory_bytes == 141 * 2**30
    assert HARDWARE_PRESETS["a100-40gb"].memory_bytes == 40 * 2**30


def test_parse_names_and_aliases():
    assert parse_hardware_preset("h100") is HARDWARE_PRESETS["h100-80gb"]
    assert parse_hardware_preset(" H100-80GB ") is HARDWARE_PRESETS["h100-80gb"]
    assert parse_hardware_preset("a100-40gb") is HARDWARE_PRESETS["a100-40gb"]


def test_parse_overrides():
    preset = parse_hardware_preset("h100,efficiency=0.45")
    assert preset.efficiency == 0.45 and preset.name == "h100-80gb"
    assert sustained_flops(preset) == pytest.approx(0.45 * 989.4e12)
    assert HARDWARE_PRESETS["h100-80gb"].efficiency == 0.40  # the preset itself is untouched
    preset = parse_hardware_preset("a100-80gb, mem=79GiB, membw=2T, ib=50e9, gpus=4, flops=300T")
    assert preset.memory_bytes == 79 * 2**30
    assert preset.memory_bandwidth == 2e12
    assert preset.internode_bandwidth == 50e9
    assert preset.gpus_per_node == 4 and isinstance(preset.gpus_per_node, int)
    assert preset.peak_flops == 300e12
    assert parse_hardware_preset("h200,memory=140GB").memory_bytes == 140 * 10**9
    assert parse_hardware_preset("h200,nvlink_bandwidth=400e9").nvlink_bandwidth == 400e9


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("", "hardware preset"),
        ("tpu-v5", "tpu-v5"),
        ("a100", "a100-40gb"),
        ("h100,speed=2", "speed"),
        ("h100,efficiency", "efficiency"),
        ("h100,=0.4", "key=value"),
        ("h100,efficiency=fast", "fast"),
        ("h100,efficiency=nan", "nan"),
        ("h100,flops=inf", "inf"),
        ("h100,flops=0", "flops"),
        ("h100,flops=-1e12", "flops"),
        ("h100,memory=-5", "memory"),
        ("h100,efficiency=1.5", "efficiency"),
        ("h100,gpus=2.5", "gpus"),
        ("h100,membw=3XB/s", "membw"),
    ],
)
def test_bad_hardware_text_is_one_pebble_error(text, named):
    with pytest.raises(PebbleError, match=named) as info:
        parse_hardware_preset(text)
    message = str(info.value)
    assert "\n" not in message and message.endswith(".")


def test_constructing_a_bad_preset_is_rejected():
    good = HARDWARE_PRESETS["h100-80gb"]
    values = {f.name: getattr(good, f.name) for f in fields(HardwarePreset)}
    for field, bad in [
        ("peak_flops", 0.0),
        ("peak_flops", math.nan),
        ("memory_bandwidth", math.inf),
        ("gpus_per_node", 8.0),
        ("efficiency", -0.1),
    ]:
        with pytest.raises(PebbleError, match=field):
            HardwarePreset(**{**values, field: bad})


def test_hardware_rows():
    rows = hardware_rows()
    assert [r[0] for r in rows] == list(HARDWARE_PRESETS)
    assert all(summary and "efficiency" in source for _, summary, source in rows)
