"""The fused ("flash") attention layer, alone: gradients against central differences, equality
with the math layer to 1e-12 in float64 over tile sizes that do and do not divide the sequence,
the dropout bits it draws again tile by tile, the bytes it really caches against its footprint
rule (linear in s), its FLOPs, and optionally PyTorch's ``scaled_dot_product_attention``.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.errors import PebbleError
from simulator.model.cache import ActivationCache
from simulator.model.layout import Layout
from simulator.model.transformer import TransformerConfig, transformer_layer_infos
from simulator.model.transformer.attention import CausalSelfAttention
from simulator.model.transformer.dims import Dims
from simulator.model.transformer.dropout import dropout_mask
from simulator.model.transformer.flash_attention import FlashAttention, causal_share, tiles
from simulator.model.transformer.flash_dropout import RNG_STATE_BYTES, keep_tile
from tests.simulator.test_gradcheck import numeric_grad, rel_error

HEAD_DIM = 4
# (heads, kv_heads, rope, dropout): plain, grouped-query, RoPE, and dropout on each
CASES = {
    "mha": (2, 2, False, 0.0),
    "gqa": (4, 2, False, 0.0),
    "gqa-rope": (4, 2, True, 0.0),
    "mha-dropout": (2, 2, False, 0.3),
    "gqa-rope-dropout": (6, 2, True, 0.25),
}
# (block_q, block_k): single rows, tiles that do not divide 7 or 13, one tile, wider than s
BLOCKS = [(1, 1), (2, 3), (3, 2), (4, 4), (5, 7), (13, 13), (64, 64)]


def layers(case: str, block_q: int = 3, block_k: int = 2, dtype=np.float64, layer_index=5):
    """(flash, math) layers of the same shape, seed and index."""
    heads, kv, rope, p = CASES[case]
    args = (layer_index, heads, kv, HEAD_DIM, dtype)
    keywords = {"p": p, "seed": 11, "rope": rope}
    flash = FlashAttention(*args, **keywords, block_q=block_q, block_k=block_k)
    return flash, CausalSelfAttention(*args, **keywords)


def packed(layer, rows: int, seq: int, rng, dtype=np.float64):
    """A packed [q | k | v] input and an upstream gradient for ``layer``."""
    x = rng.standard_normal((rows, seq, layer.in_features)).astype(dtype)
    return x, rng.standard_normal((rows, seq, layer.out_features)).astype(dtype)


def fresh(layer, x):
    saved, layer.cache = layer.cache, ActivationCache()
    try:
        return layer.forward(0, x)
    finally:
        layer.cache = saved


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("case", list(CASES))
def test_flash_gradients_match_central_differences(case):
    rng = np.random.default_rng(3)
    flash, _ = layers(case)
    x, g = packed(flash, 2, 5, rng)
    flash.forward(0, x)
    grad = flash.backward(0, g)
    assert len(flash.cache) == 0 and flash.cache.total_bytes == 0
    numeric = numeric_grad(lambda: float(np.sum(g * fresh(flash, x))), x)
    assert rel_error(grad, numeric) < 1e-7, case


def test_the_gradcheck_catches_a_backward_that_ignores_dropout():
    """A backward that forgets to draw the mask again differs from central differences."""

    class Forgetful(FlashAttention):
        def _keep(self, state, shape, queries, keys):
            return None if self.dropping else super()._keep(state, shape, queries, keys)

        def backward_input(self, mb, grad_out):
            self.dropping = True
            try:
                return super().backward_input(mb, grad_out)
            finally:
                self.dropping = False

    rng = np.random.default_rng(3)
    layer = Forgetful(5, 2, 2, HEAD_DIM, np.float64, p=0.3, seed=11, block_q=3, block_k=2)
    layer.dropping = False
    x, g = packed(layer, 2, 5, rng)
    layer.forward(0, x)
    grad = layer.backward(0, g)
    numeric = numeric_grad(lambda: float(np.sum(g * fresh(layer, x))), x)
    assert rel_error(grad, numeric) > 1e-2


# ---------------------------------------------------------------- flash equals math


@pytest.mark.parametrize(("block_q", "block_k"), BLOCKS)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("seq", [7, 13])
def test_flash_equals_math_to_1e_12(case, block_q, block_k, seq):
    rng = np.random.default_rng(seq)
    flash, math_layer = layers(case, block_q, block_k)
    x, g = packed(flash, 3, seq, rng)
    for mb in (0, 2):  # another microbatch draws other dropout rows
        out, expected = flash.forward(mb, x), math_layer.forward(mb, x)
        assert out.dtype == expected.dtype and out.shape == expected.shape
        assert np.abs(out - expected).max() <= 1e-12 * max(1.0, np.abs(expected).max())
        grad, expected_grad = flash.backward(mb, g), math_layer.backward(mb, g)
        assert np.abs(grad - expected_grad).max() <= 1e-12 * max(1.0, np.abs(expected_grad).max())
    assert len(flash.cache) == 0


def test_dropout_is_on_and_differs_by_microbatch():
    """The equality above is not dropout-free by accident: outputs change with the microbatch
    (its rows draw other bits) and with dropout turned off."""
    rng = np.random.default_rng(0)
    flash, _ = layers("mha-dropout")
    x, _ = packed(flash, 2, 7, rng)
    off = FlashAttention(5, 2, 2, HEAD_DIM, np.float64, p=0.0, seed=11)
    assert not np.allclose(fresh(flash, x), fresh(off, x))
    saved, flash.cache = flash.cache, ActivationCache()
    assert not np.allclose(flash.forward(0, x), flash.forward(1, x))
    flash.cache = saved


def test_the_backward_draws_the_mask_from_the_cached_state_not_the_layer():
    """The RNG state is what the backward reads: bumping the layer's dropout step between the
    forward and the backward changes nothing."""
    rng = np.random.default_rng(1)
    flash, _ = layers("gqa-rope-dropout")
    x, g = packed(flash, 2, 7, rng)
    flash.forward(0, x)
    expected = flash.backward(0, g)
    flash.forward(0, x)
    flash.dropout_step = 9
    assert np.array_equal(flash.backward(0, g), expected)


@pytest.mark.parametrize("first_row", [0, 3, -2])
def test_tiles_of_the_mask_are_the_math_layers_mask(first_row):
    b, heads, s, p = 2, 3, 11, 0.3
    whole = dropout_mask(7, 4, 2, first_row, (b, heads, s, s), p)
    state = np.array([2, first_row], dtype=np.int64)
    for queries in tiles(s, 4):
        for keys in tiles(s, 3):
            tile = keep_tile(7, 4, state, (b, heads, s), queries, keys, p)
            assert np.array_equal(tile, whole[:, :, slice(*queries), slice(*keys)])


def test_tile_sizes_must_be_positive_integers():
    for bad in (0, -1, 2.0, True):
        with pytest.raises(PebbleError):
            FlashAttention(0, 2, 2, HEAD_DIM, np.float64, block_q=bad)


# ---------------------------------------------------------------- bytes


def recorded(layer, run) -> tuple[int, ...]:
    events = []
    layer.cache.add_listener(events.append)
    try:
        run()
    finally:
        layer.cache.remove_listener(events.append)
    return tuple(e.delta_bytes for e in events)


def flash_config(case: str, seq: int) -> TransformerConfig:
    heads, kv, rope, p = CASES[case]
    return TransformerConfig(
        layers=1,
        hidden=heads * HEAD_DIM,
        heads=heads,
        kv_heads=kv,
        seq=seq,
        vocab=5,
        dropout=p,
        position="rope" if rope else "learned",
        attention="flash",
    )


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_phase_moves_exactly_the_footprint(case, dtype):
    config = flash_config(case, seq=9)
    info = next(i for i in transformer_layer_infos(config) if i.kind == "attention")
    layer = info.build(dtype, seed=2)
    assert isinstance(layer, FlashAttention)
    rows = 3
    fp = FlashAttention.footprint(Dims(config, rows, np.dtype(dtype).itemsize))
    assert fp == info.footprint(rows, np.dtype(dtype).itemsize)
    x, g = packed(layer, rows, config.seq, np.random.default_rng(0), np.dtype(dtype))
    assert recorded(layer, lambda: layer.forward(0, x)) == fp.F
    assert recorded(layer, lambda: layer.backward_input(0, g)) == fp.I
    assert recorded(layer, lambda: layer.backward_weight(0)) == fp.W == ()
    assert recorded(layer, lambda: layer.forward(1, x)) == fp.F
    out = []
    assert recorded(layer, lambda: out.append(layer.backward(1, g))) == fp.B
    assert out[0].dtype == np.dtype(dtype) and layer.cache.total_bytes == 0


def measured_forward_bytes(case: str, seq: int, rows: int = 2) -> int:
    config = flash_config(case, seq)
    layer = next(i for i in transformer_layer_infos(config) if i.kind == "attention").build()
    x, _ = packed(layer, rows, seq, np.random.default_rng(0))
    return sum(recorded(layer, lambda: layer.forward(0, x)))


@pytest.mark.parametrize("case", list(CASES))
def test_what_flash_caches_grows_linearly_in_s(case):
    """Measured and predicted: equal steps in s add equal bytes (no s^2 term), while the math
    layer's rule has a second difference."""
    seqs = (8, 16, 24)
    measured = [measured_forward_bytes(case, s) for s in seqs]
    assert measured[2] - 2 * measured[1] + measured[0] == 0
    assert measured[1] > measured[0]
    for itemsize in (2, 4, 8):
        rule = [
            sum(FlashAttention.footprint(Dims(flash_config(case, s), 2, itemsize)).F) for s in seqs
        ]
        assert rule[2] - 2 * rule[1] + rule[0] == 0
        math_rule = [
            sum(CausalSelfAttention.footprint(Dims(flash_config(case, s), 2, itemsize)).F)
            for s in seqs
        ]
        assert math_rule[2] - 2 * math_rule[1] + math_rule[0] > 0


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("t", [1, 2])
def test_the_rule_in_korthikantis_letters(case, t):
    """16-bit activations: q and out 2sbh/t each, k and v 2sbh kv/(a t) each, a float32
    log-sum-exp per row and head, 4asb/t, and 16 bytes of RNG state with dropout."""
    heads, kv, _, p = CASES[case]
    if kv % t:
        pytest.skip("tensor parallelism must divide the key/value heads")
    s, b = 12, 3
    config = flash_config(case, s)
    h, a = config.hidden, config.heads
    fp = FlashAttention.footprint(Dims(config, b, 2, Layout(tensor=t)))
    expected = (4 * s * b * h + 4 * s * b * h * kv // a + 4 * a * s * b) // t
    assert sum(fp.F) == expected + (RNG_STATE_BYTES if p > 0 else 0)
    assert len(fp.F) == (6 if p > 0 else 5)


# ---------------------------------------------------------------- FLOPs and parameters


@pytest.mark.parametrize("case", list(CASES))
def test_flops_forward_as_math_backward_adds_the_rebuilt_scores(case):
    dims = Dims(flash_config(case, 16), 1, 2)
    flash, math_flops = FlashAttention.flops(dims), CausalSelfAttention.flops(dims)
    s, d, a = 16, HEAD_DIM, dims.a
    assert flash.F == math_flops.F == 4 * s * s * d * a
    assert flash.I == 10 * s * s * d * a == math_flops.I + 2 * s * s * d * a
    assert flash.W == math_flops.W == 0
    assert FlashAttention.param_count(dims) == 0


@pytest.mark.parametrize("seq, block", [(256, 64), (4096, 128), (8192, 128), (96, 128)])
def test_causal_share_is_the_area_of_the_tiles_the_kernel_visits(seq, block):
    """The numpy kernel's loops (``tiles``: key tiles up to the query tile's end) cover
    exactly ``causal_share`` of the square, the FLOPs a fused core is charged."""
    visited = sum(
        (q1 - q0) * (k1 - k0) for q0, q1 in tiles(seq, block) for k0, k1 in tiles(q1, block)
    )
    assert visited / seq**2 == pytest.approx(causal_share(seq, block), rel=1e-12)


def test_long_sequence_flops_are_the_causal_half_of_the_math_count():
    dims = Dims(flash_config(next(iter(CASES)), 8192), 1, 2)
    flash, math_flops = FlashAttention.flops(dims), CausalSelfAttention.flops(dims)
    assert flash.F / math_flops.F == pytest.approx(0.5 + 64 / 8192, rel=1e-12)
    assert flash.I == pytest.approx(2.5 * flash.F, rel=1e-12)


# ---------------------------------------------------------------- optional oracle


@pytest.mark.parametrize("case", ["mha", "gqa", "gqa-rope"])
def test_outputs_equal_torch_scaled_dot_product_attention(case):
    torch = pytest.importorskip("torch")
    heads, kv, rope, _ = CASES[case]
    flash, _ = layers(case, 3, 2)
    x, _ = packed(flash, 2, 9, np.random.default_rng(4))
    q, k, v = (torch.tensor(t) for t in flash._split(x))  # rotated as the layer rotates
    k, v = k.repeat_interleave(heads // kv, dim=1), v.repeat_interleave(heads // kv, dim=1)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    b, _, s, d = expected.shape
    expected = expected.transpose(1, 2).reshape(b, s, heads * d).numpy()
    assert np.abs(fresh(flash, x) - expected).max() <= 1e-12
