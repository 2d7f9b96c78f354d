"""The transformer layers' rules reproduce the published closed forms exactly.

Memory: Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
Models" (arXiv 2205.05198), Table 2: the activation bytes of one GPT block (LayerNorm, GELU MLP
with ffn = 4h, as many key/value heads as heads, dropout on) with 2-byte activations and 1-byte
dropout masks, without parallelism, with tensor parallelism and with tensor + sequence
parallelism; and section 4.1's itemisation of the 34 sbh.

FLOPs and parameters: Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on
GPU Clusters Using Megatron-LM": a block's forward is 24 bsh^2 (1 + s/(6h)); an iteration is
72 BsLh^2 (1 + s/(6h) + V/(12hL)) without recomputation and their eq. (3),
96 BsLh^2 (1 + s/(6h) + V/(16Lh)), with full recomputation; eq. (2) counts the parameters.

Both count the "math" attention core (``attention="math"``), which these tests name: Megatron-LM
kept the s x s scores then. The sums are taken over the per-layer rules (``footprint``,
``flops``, ``param_count``) that the analytic executor uses, and compared in exact rational
arithmetic: equality, not closeness.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest

from simulator.model.transformer import (
    TransformerConfig,
    parameter_count,
    transformer_layer_infos,
)
from simulator.model.transformer import footprint as paper

HEADS_BY_HIDDEN = [(1024, 16), (2560, 40), (6144, 48), (12288, 96), (12, 4)]
SEQS = [512, 2048, 8]
MICROBATCHES = [1, 4]
TENSOR_PARALLEL = [1, 2, 4, 8]

GRID = [
    (s, b, h, a, t)
    for (h, a), s, b, t in itertools.product(HEADS_BY_HIDDEN, SEQS, MICROBATCHES, TENSOR_PARALLEL)
    if a % t == 0 and s % t == 0 and (h > 100) == (s > 100)
]


def gpt_block(s: int, h: int, a: int, vocab: int = 51200, layers: int = 1):
    """A GPT block with the math attention core: the s x s tensors Table 2 counts, and the
    backward (twice the forward) Narayanan et al.'s FLOP formulas count."""
    config = TransformerConfig(
        layers=layers, hidden=h, heads=a, seq=s, vocab=vocab, dropout=0.1, attention="math"
    )
    return config, [info for info in transformer_layer_infos(config) if info.block == 1]


def forward_bytes(infos, b: int, itemsize: int = 2, t: int = 1, sp: bool = False) -> int:
    """What one block caches in its forward: the sum of every layer's F footprint."""
    return sum(sum(info.footprint(b, itemsize, t, sp).F) for info in infos)


def test_the_grid_is_not_trivial():
    assert len(GRID) >= 60
    assert {t for *_, t in GRID} == set(TENSOR_PARALLEL)


@pytest.mark.parametrize(("s", "b", "h", "a", "t"), GRID)
def test_block_footprint_equals_korthikanti_table_2(s, b, h, a, t):
    _, block = gpt_block(s, h, a)
    if t == 1:
        no_parallelism = paper.activations_no_parallelism(s, b, h, a)
        assert forward_bytes(block, b) == no_parallelism
        assert no_parallelism == s * b * h * 34 + 5 * a * s * s * b  # the same, multiplied out
    assert forward_bytes(block, b, t=t) == paper.activations_tensor_parallel(s, b, h, a, t)
    assert forward_bytes(block, b, t=t, sp=True) == paper.activations_tensor_sequence_parallel(
        s, b, h, a, t
    )


@pytest.mark.parametrize(("s", "b", "h", "a"), [(2048, 1, 12288, 96), (8, 3, 12, 4)])
def test_section_4_1_itemisation(s, b, h, a):
    """Attention 11 sbh + 5 as^2 b, MLP 19 sbh, the two LayerNorms 4 sbh, and each named tensor
    where one layer caches it."""
    _, block = gpt_block(s, h, a)
    sbh, as2b = s * b * h, a * s * s * b
    by_kind: dict[str, list[int]] = {}
    for info in block:
        by_kind.setdefault(info.kind, []).append(sum(info.footprint(b, 2).F))
    assert by_kind["ln"] == [2 * sbh, 2 * sbh]
    assert by_kind["qkv"] == [2 * sbh]  # QKV input
    q, k, probs, mask, dropped, v = block[3].footprint(b, 2).F  # the attention core
    assert (q + k, probs, mask, dropped, v) == (4 * sbh, 2 * as2b, as2b, 2 * as2b, 2 * sbh)
    assert by_kind["attn_out"] == [2 * sbh]  # projection input
    assert by_kind["dropout"] == [sbh, sbh]  # the two residual dropout masks, 1 byte
    assert by_kind["mlp_up"] + by_kind["mlp_gelu"] + by_kind["mlp_down"] == [
        2 * sbh,
        8 * sbh,
        8 * sbh,
    ]
    assert by_kind["fork"] == by_kind["add"] == [0, 0]
    attention = sum(sum(i.footprint(b, 2).F) for i in block[:7]) - 2 * sbh  # less the norm
    mlp = sum(sum(i.footprint(b, 2).F) for i in block[7:]) - 2 * sbh
    assert (attention, mlp) == (11 * sbh + 5 * as2b, 19 * sbh)


@pytest.mark.parametrize("itemsize", [4, 8])
@pytest.mark.parametrize(("s", "b", "h", "a", "t"), [(2048, 2, 12288, 96, 8), (8, 3, 12, 4, 2)])
def test_masks_stay_at_one_byte_for_wider_activations(itemsize, s, b, h, a, t):
    """Korthikanti's forms assume 2-byte activations; at ``itemsize`` bytes every activation
    scales by itemsize / 2, the dropout masks (2 sbh + as^2 b, over t) do not."""
    _, block = gpt_block(s, h, a)
    for sp, form in (
        (False, paper.activations_tensor_parallel),
        (True, paper.activations_tensor_sequence_parallel),
    ):
        residual_masks = Fraction(2 * s * b * h, t if sp else 1)
        masks = residual_masks + Fraction(a * s * s * b, t)
        expected = Fraction(itemsize, 2) * (form(s, b, h, a, t) - masks) + masks
        assert forward_bytes(block, b, itemsize, t, sp) == expected


@pytest.mark.parametrize(("s", "b", "h", "a", "t"), [g for g in GRID if g[4] > 1][::5])
def test_selective_and_full_recompute_rows(s, b, h, a, t):
    """Table 2's recompute rows from the same rules: selective recompute drops exactly the
    attention core's probabilities, mask and dropout output (keeping q, k, v); full recompute
    keeps only the block's 2-byte input, which is what the first LayerNorm caches."""
    _, block = gpt_block(s, h, a)
    for sp, form in (
        (False, paper.activations_tensor_parallel_selective),
        (True, paper.activations_tensor_sequence_parallel_selective),
    ):
        _, _, probs, mask, dropped, _ = block[3].footprint(b, 2, t, sp).F
        assert forward_bytes(block, b, 2, t, sp) - probs - mask - dropped == form(s, b, h, t)
    assert block[1].footprint(b, 2).F == (paper.activations_full_recompute(s, b, h),)


# ---------------------------------------------------------------- FLOPs


def flops(infos, t: int = 1):
    rules = [info.flops(t) for info in infos]
    return (
        sum(r.F for r in rules),
        sum(r.I for r in rules),
        sum(r.W for r in rules),
    )


FLOP_GRID = [(2048, 12288, 96), (4096, 8192, 64), (1024, 2048, 16), (8, 12, 4)]


@pytest.mark.parametrize(("s", "h", "a"), FLOP_GRID)
@pytest.mark.parametrize("t", [1, 2, 4])
def test_block_forward_flops_equal_narayanan(s, h, a, t):
    """Per sequence (b = 1), per tensor-parallel rank: 24 sh^2 (1 + s/(6h)) / t; the backward
    is twice the forward, split into I (input gradients, attention) and W (weights)."""
    _, block = gpt_block(s, h, a)
    forward, backward_input, backward_weight = flops(block, t)
    assert Fraction(forward) == paper.block_forward_flops(1, s, h) / t
    assert backward_input + backward_weight == 2 * forward
    assert Fraction(backward_weight) == Fraction(24 * s * h * h, t)  # the four weight matrices


@pytest.mark.parametrize(("s", "h", "a"), FLOP_GRID)
@pytest.mark.parametrize(("layers", "vocab"), [(96, 50257), (2, 11)])
def test_model_flops_equal_the_iteration_formulas(s, h, a, layers, vocab):
    """Forward + backward of the whole model per sequence (B = 1) is 72 sLh^2 (1 + s/(6h) +
    V/(12hL)); re-running every block's forward once more (full recompute) gives eq. (3)."""
    config, _ = gpt_block(s, h, a, vocab, layers)
    infos = transformer_layer_infos(config)
    forward, backward_input, backward_weight = flops(infos)
    assert Fraction(forward + backward_input + backward_weight) == paper.model_training_flops(
        1, s, layers, h, vocab
    )
    recomputed, _, _ = flops([i for i in infos if i.is_transformer_block])
    total = forward + backward_input + backward_weight + recomputed
    assert Fraction(total) == paper.model_training_flops_full_recompute(1, s, layers, h, vocab)


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("layers", "h", "a", "s", "vocab"),
    [(96, 12288, 96, 2048, 50257), (24, 2048, 16, 2048, 50257), (2, 12, 4, 8, 11)],
)
def test_gpt_parameter_count_equals_narayanan_eq_2(layers, h, a, s, vocab):
    """Eq. (2) leaves out the final LayerNorm (2h); a tied LM head adds nothing, an untied one
    adds V h."""
    config = TransformerConfig(layers=layers, hidden=h, heads=a, seq=s, vocab=vocab)
    expected = paper.gpt_parameter_count(layers, h, vocab, s) + 2 * h
    assert parameter_count(config) == expected
    untied = TransformerConfig(
        layers=layers, hidden=h, heads=a, seq=s, vocab=vocab, tied_embeddings=False
    )
    assert parameter_count(untied) == expected + vocab * h


def test_gpt3_175b_has_175_billion_parameters():
    config = TransformerConfig(layers=96, hidden=12288, heads=96, seq=2048, vocab=50257)
    assert parameter_count(config) == pytest.approx(175e9, rel=0.005)
