"""A mixture of experts at scale: published total and active parameter counts, the footprint
and FLOP rules under expert parallelism, the expert layout degree, per-rank expert memory
under the precision recipe, and the all-to-all bytes (``expert_parallel.py``)."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest

from schedules.registry import build_schedule
from simulator.errors import PebbleError
from simulator.model import partition
from simulator.model.layout import Layout
from simulator.model.parse import parse_model
from simulator.model.transformer import TransformerConfig
from simulator.model.transformer.dims import ID_BYTES, Dims
from simulator.model.transformer.expert_parallel import moe_all_to_all_bytes
from simulator.model.transformer.moe import MixtureOfExperts
from simulator.model.transformer.presets import (
    MODEL_PRESETS,
    active_parameter_count,
    expert_parameters,
    parameter_count,
)
from simulator.run.rank_memory import static_memory

# (total, active) as published; see tests/simulator/test_presets.py for the totals' sources
PUBLISHED_ACTIVE = {
    # Mistral AI, "Mixtral of experts" (2023-12-11): "uses 12.9B parameters per token"
    "mixtral-8x7b": 12.9e9,
    # Qwen/Qwen1.5-MoE-A2.7B model card: "2.7B activated parameters during runtime"
    "qwen1.5-moe-a2.7b": 2.7e9,
}


@pytest.mark.parametrize("name", list(PUBLISHED_ACTIVE))
def test_active_parameters_within_half_a_percent_of_published(name):
    count = active_parameter_count(MODEL_PRESETS[name])
    assert abs(count / PUBLISHED_ACTIVE[name] - 1) <= 0.005, (name, count)


def test_mixtral_counts_by_hand():
    """32 x (attention 2 x 4096^2 + 2 x 4096 x 1024, 8 SwiGLU experts 3 x 4096 x 14336, router
    4096 x 8, two norms) + two 32000 x 4096 tables + the final norm."""
    h, f, v = 4096, 14336, 32000
    block = 2 * h * h + 2 * h * 1024 + 8 * 3 * h * f + 8 * h + 2 * h
    config = MODEL_PRESETS["mixtral-8x7b"]
    assert parameter_count(config) == 32 * block + 2 * v * h + h == 46_702_792_704
    active = 32 * (block - 6 * 3 * h * f) + 2 * v * h + h
    assert active_parameter_count(config) == active


def test_dense_first_layers_count_a_dense_mlp():
    config = TransformerConfig(
        layers=4, hidden=8, heads=2, seq=4, vocab=7, ffn=20, experts=4, expert_ffn=6
    )
    dense = replace(config, dense_layers=1)
    mlp = 2 * 8 * 20 + 20 + 8  # GELU with biases
    moe = 8 * 4 + 4 * expert_parameters(config)
    assert parameter_count(dense) - parameter_count(config) == mlp - moe


# ---------------------------------------------------------------- footprint and FLOPs


MIXTRAL = MODEL_PRESETS["mixtral-8x7b"]


def test_dropless_footprint_counts_the_routed_rows():
    """One Mixtral block, b = 1, bf16: the cached tensors by hand (T = 32768, k = 2)."""
    dims = Dims(MIXTRAL, 1, 2)
    T, h, f, E, k = 32768, 4096, 14336, 8, 2
    fp = MixtureOfExperts.footprint(dims)
    expected = [
        2 * T * h,  # input
        2 * T * E,  # router probabilities
        T * k * ID_BYTES,  # chosen experts
        T * k * ID_BYTES,  # route of each row
        E * ID_BYTES,  # rows per expert
        2 * T * k * h,  # dispatched tokens
        2 * T * k * 2 * f,  # fc1 output (gate and up)
        2 * T * k * f,  # activation output
        2 * T * k * h,  # expert outputs
    ]
    assert list(fp.F) == expected
    assert sum(fp.F) + sum(fp.I) + sum(fp.W) == 0 and sum(fp.F) + sum(fp.B) == 0


def test_a_capacity_pads_every_expert_to_its_capacity():
    config = replace(MIXTRAL, capacity_factor=1.25, seq=4096)
    C = math.ceil(1.25 * 2 * 4096 * 2 / 8)
    fp = MixtureOfExperts.footprint(Dims(config, 2, 2))
    assert fp.F[5] == 2 * 8 * C * 4096  # dispatched tokens, E x C rows


def test_flops_count_only_the_chosen_experts():
    """Per sequence: router 2 s h E, k experts' three SwiGLU matrices 2 s k 3 h f, the same
    in each phase; a dense MLP of one expert's width costs k times less."""
    s, h, f, E, k = 32768, 4096, 14336, 8, 2
    flops = MixtureOfExperts.flops(Dims(MIXTRAL, 1, 2))
    assert flops.F == flops.I == flops.W == 2 * s * h * E + 2 * s * k * 3 * h * f


def test_the_imbalance_factor_scales_the_busiest_expert_rank_only():
    config = replace(MIXTRAL, router_imbalance=1.5)
    one_rank = MixtureOfExperts.flops(Dims(config, 1, 2))
    assert one_rank == MixtureOfExperts.flops(Dims(MIXTRAL, 1, 2))  # all experts on one device
    ep = Dims(config, 1, 2, Layout(expert=4))
    router = 2 * 32768 * 4096 * 8
    routed = 2 * 32768 * 2 * 1.5 * 3 * 4096 * 14336
    assert MixtureOfExperts.flops(ep).F == pytest.approx(router + routed, rel=1e-12)
    assert MixtureOfExperts.footprint(ep).F[5] == 2 * math.ceil(32768 * 2 * 1.5) * 4096


def test_expert_parallelism_splits_the_routed_experts_only():
    whole = Dims(MIXTRAL, 1, 2)
    split = Dims(MIXTRAL, 1, 2, Layout(expert=4))
    experts = MixtureOfExperts.expert_param_count(whole)
    assert experts == 8 * 3 * 4096 * 14336
    assert MixtureOfExperts.expert_param_count(split) == experts // 4
    router = 4096 * 8
    assert MixtureOfExperts.param_count(split) == router + experts // 4


# ---------------------------------------------------------------- the layout's expert degree


def test_an_expert_degree_is_a_layout_now():
    layout = Layout.parse("p4 t2 e4 d8 z1")
    assert layout.expert == 4 and layout.expert_data == 2
    assert layout.expert_optimizer_shards == 2 and layout.optimizer_shards == 8
    assert Layout(expert=4, data=8).expert_optimizer_shards == 1  # z0: nothing sharded
    assert layout.devices == 4 * 2 * 8  # expert ranks reuse the data ranks


@pytest.mark.parametrize(
    ("model", "layout", "says"),
    [
        ("llama3-8b", "e2 d2", "expert parallelism (e2) needs a mixture-of-experts model"),
        ("mixtral-8x7b", "e4 d2", "expert parallelism e4 must divide the data x context ranks"),
        ("mixtral-8x7b", "e3 d3", "expert parallelism e3 does not divide the model's 8 experts"),
    ],
)
def test_an_impossible_expert_degree_is_one_sentence(model, layout, says):
    with pytest.raises(PebbleError, match=re.escape(says)) as error:
        Layout.parse(layout).check_model(parse_model(model))
    assert str(error.value).endswith(".") and "\n" not in str(error.value)


def test_each_rank_holds_its_experts_state_over_the_expert_data_group():
    """Mixtral on 2 pipeline ranks, e4 d8 z1, Megatron's bf16 recipe (18 bytes: 6 kept, 12
    sharded): dense parameters shard their 12 bytes over d = 8, routed experts (already split
    4 ways) over d / e = 2."""
    layout = Layout(pipeline=2, expert=4, data=8, sharding=1)
    spec = replace(parse_model("mixtral-8x7b"), dtype="bfloat16", layout=layout.for_layers())
    schedule = build_schedule("1f1b", 2, 4)
    parts = partition(spec, schedule.num_stages)
    memory = static_memory(spec, schedule, parts, 1, layout)
    infos = spec.layers()
    for rank, layers in enumerate(parts.stage_layers):
        params = sum(infos[i].param_count() for i in layers)
        experts = sum(infos[i].expert_param_count() for i in layers)
        assert experts > 0
        assert memory[rank].parameters == 2 * params
        assert memory[rank].gradients == 4 * params
        dense = params - experts
        assert memory[rank].optimizer_state == -(-dense * 12 // 8) + -(-experts * 12 // 2)
    whole = sum(infos[i].expert_param_count() for i in range(len(infos)))
    assert whole == 32 * 8 * 3 * 4096 * 14336 // 4


# ---------------------------------------------------------------- all-to-all


def test_all_to_all_bytes_by_the_formula():
    """Dropless Mixtral, b = 1, bf16, e = 4: T k = 65,536 rows of 4096 x 2 bytes, 3/4 leave."""
    traffic = moe_all_to_all_bytes(MIXTRAL, Layout(expert=4, data=4), 1, 2)
    rows = 32768 * 2
    assert traffic.dispatch == traffic.combine == rows * 3 // 4 * 4096 * 2
    assert traffic.forward == traffic.backward == 2 * traffic.dispatch
    assert traffic.busiest_receive == traffic.dispatch  # a balanced router
    skewed = replace(MIXTRAL, router_imbalance=1.25)
    assert moe_all_to_all_bytes(skewed, Layout(expert=4), 1, 2).busiest_receive == (
        math.ceil(rows * 3 / 4 * 1.25) * 4096 * 2
    )
    assert moe_all_to_all_bytes(MIXTRAL, Layout(), 1, 2).forward == 0


def test_all_to_all_with_a_capacity_sends_the_padded_buffers():
    config = replace(MIXTRAL, capacity_factor=1.0, seq=4096)
    traffic = moe_all_to_all_bytes(config, Layout(expert=8), 2, 2)
    C = math.ceil(2 * 4096 * 2 / 8)
    assert traffic.dispatch == 8 * C * 7 // 8 * 4096 * 2


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((MODEL_PRESETS["llama3-8b"], Layout(), 1, 2), "belongs to a mixture-of-experts model"),
        ((MIXTRAL, Layout(expert=3), 1, 2), "does not divide the model's 8 experts"),
        ((MIXTRAL, Layout(), 0, 2), "microbatch_sequences must be a positive integer"),
    ],
)
def test_all_to_all_refuses_what_it_cannot_count(args, says):
    with pytest.raises(PebbleError, match=re.escape(says)):
        moe_all_to_all_bytes(*args)
