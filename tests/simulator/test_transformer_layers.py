"""The numpy transformer layers: gradients, the split backward, microbatch accumulation, seeded
dropout, the residual stream, and the cache bytes each phase moves.

Gradients are checked against central differences in float64, as in ``test_gradcheck.py``: for
a layer without a loss the objective is ``sum(g * y)`` with a random upstream gradient ``g``.
Dropout stays on in the gradchecks: its masks are a function of (seed, layer, step, microbatch),
so every evaluation of the objective sees the same mask.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pytest

from simulator.model.cache import ActivationCache
from simulator.model.layers import Layer, Loss
from simulator.model.reference import set_loss_scale
from simulator.model.stage import Stage
from simulator.model.transformer import (
    TransformerConfig,
    parameter_count,
    set_dropout_step,
    transformer_layer_infos,
    transformer_layers,
)
from simulator.model.transformer.dropout import dropout_mask
from simulator.model.transformer.flash_projection import CORE_OUTPUT, FlashOutputProjection
from simulator.model.transformer.layers import TRANSFORMER_LAYER_CLASSES
from tests.simulator.test_gradcheck import numeric_grad, rel_error

TOLERANCE = 1e-6

GPT = TransformerConfig(layers=2, hidden=8, heads=2, seq=5, vocab=7, dropout=0.25)
GPT_NO_DROPOUT = TransformerConfig(layers=2, hidden=8, heads=2, seq=5, vocab=7, dropout=0.0)
LLAMA = TransformerConfig(
    layers=2,
    hidden=8,
    heads=4,
    kv_heads=2,
    seq=5,
    vocab=7,
    ffn=12,
    mlp="swiglu",
    norm="rmsnorm",
    position="rope",
    dropout=0.25,
    tied_embeddings=False,
    bias=False,
)
# the math attention core (Korthikanti's) beside the default fused one, plain and grouped-query
# with RoPE, dropout on: its gradients and the bytes it moves are checked here too
MATH_CORE = {
    "gpt-math": replace(GPT, attention="math"),
    "llama-math": replace(LLAMA, attention="math"),
}
# a mixture of experts after one dense block, with a capacity that drops tokens and a shared
# expert; its load-balancing loss is off here, where objectives are the model's loss alone
# (tests/simulator/test_moe.py checks it)
MOE = replace(
    GPT,
    experts=4,
    top_k=2,
    expert_ffn=6,
    shared_experts=1,
    capacity_factor=0.75,
    moe_aux_coef=0.0,
    dense_layers=1,
)
# DeepSeek-V3's shape in miniature: multi-head latent attention (every width distinct, so a
# transposed weight cannot pass) with a dense first block and a mixture of experts after it
# (tests/simulator/test_mla.py checks the latent layers on their own)
MLA = replace(
    LLAMA,
    kv_heads=None,
    heads=2,
    dropout=0.0,
    q_lora_rank=6,
    kv_lora_rank=4,
    qk_nope_head_dim=3,
    qk_rope_head_dim=2,
    v_head_dim=5,
    experts=4,
    expert_ffn=6,
    shared_experts=1,
    moe_aux_coef=0.0,
    dense_layers=1,
)
CONFIGS = {
    "gpt": GPT,
    "gpt-no-dropout": GPT_NO_DROPOUT,
    "llama": LLAMA,
    "moe": MOE,
    "mla": MLA,
    **MATH_CORE,
}


# ---------------------------------------------------------------- helpers


def randomise(layers: list[Layer], rng) -> None:
    """Biases and norm gains away from 0 and 1, where a wrong gradient could hide."""
    for layer in layers:
        for name, param in layer.params.items():
            if name == "gamma":
                param[:] = rng.uniform(0.5, 1.5, param.shape)
            elif name in ("b", "beta"):
                param[:] = 0.3 * rng.standard_normal(param.shape)


def run_forward(layers: list[Layer], value, targets=None, mb: int = 0):
    """Forward through ``layers`` in a throwaway cache (for objectives evaluated many times)."""
    scratch = ActivationCache()
    saved = [layer.cache for layer in layers]
    try:
        for layer in layers:
            layer.cache = scratch
            if isinstance(layer, Loss):
                return layer.forward(mb, value, targets)
            value = layer.forward(mb, value)
        return value
    finally:
        for layer, cache in zip(layers, saved, strict=True):
            layer.cache = cache


def dot(upstream, value) -> float:
    """``sum(g * y)`` over arrays or (residual, branch) tuples."""
    if isinstance(value, tuple):
        return sum(dot(g, v) for g, v in zip(upstream, value, strict=True))
    return float(np.sum(upstream * value))


def like(value, rng):
    """A random array (or tuple of arrays) shaped like ``value``."""
    if isinstance(value, tuple):
        return tuple(like(v, rng) for v in value)
    return rng.standard_normal(value.shape)


def sampled_grad(f, array: np.ndarray, count: int, rng):
    """Central differences at ``count`` random entries: (flat indices, numeric gradient)."""
    flat = array.reshape(-1)
    picks = rng.choice(flat.size, size=min(count, flat.size), replace=False)
    numeric = []
    for i in picks:
        old = flat[i]
        flat[i] = old + 1e-6
        plus = f()
        flat[i] = old - 1e-6
        minus = f()
        flat[i] = old
        numeric.append((plus - minus) / 2e-6)
    return picks, np.array(numeric)


def layer_input(info, rows: int, rng):
    cfg = info.config
    if info.kind == "embedding":
        return rng.integers(0, cfg.vocab, (rows, cfg.seq))
    shape = (rows, cfg.seq, info.in_features)
    if info.kind == "add":
        return rng.standard_normal(shape), rng.standard_normal(shape)
    return rng.standard_normal(shape)


def one_of_each_kind(config):
    seen = {}
    for info in transformer_layer_infos(config):
        seen.setdefault(info.kind, info)
    return list(seen.values())


@contextmanager
def core_keeps(layer: Layer, x):
    """Play the fused core for a lone ``FlashOutputProjection``, which reads its input from the
    core's slot in its backward (``flash_projection``); nothing for any other layer."""
    if not isinstance(layer, FlashOutputProjection):
        yield
        return
    layer.cache.put(layer.layer_index - 1, 0, CORE_OUTPUT, x)
    yield
    assert layer.cache.pop(layer.layer_index - 1, 0, CORE_OUTPUT) is x


LAYER_CASES = [
    (name, info)
    for name, config in CONFIGS.items()
    for info in one_of_each_kind(config)
    if info.kind != "token_ce" and (name not in MATH_CORE or info.kind == "attention")
]


# ---------------------------------------------------------------- gradchecks, one layer


@pytest.mark.parametrize(("name", "info"), LAYER_CASES, ids=lambda v: getattr(v, "kind", v))
def test_layer_gradients_match_central_differences(name, info):
    rng = np.random.default_rng(info.index)
    layer = info.build("float64", seed=3)
    randomise([layer], rng)
    x = layer_input(info, 2, rng)
    g = like(run_forward([layer], x), rng)

    def objective() -> float:
        return dot(g, run_forward([layer], x))

    layer.forward(0, x)
    layer.zero_grad()
    with core_keeps(layer, x):
        grad_in = layer.backward(0, g)
    assert len(layer.cache) == 0

    if info.kind == "embedding":
        assert grad_in is None  # token ids have no gradient
    else:
        inputs = x if isinstance(x, tuple) else (x,)
        grads = grad_in if isinstance(grad_in, tuple) else (grad_in,)
        for array, grad in zip(inputs, grads, strict=True):
            err = rel_error(grad, numeric_grad(objective, array))
            assert err < TOLERANCE, f"{name} {info.kind} input gradient: {err:.2e}"
    assert set(layer.grads) == set(layer.params)
    for key, param in layer.params.items():
        err = rel_error(layer.grads[key], numeric_grad(objective, param))
        assert err < TOLERANCE, f"{name} {info.kind} gradient of {key}: {err:.2e}"


@pytest.mark.parametrize("scale", [1.0, 1.0 / 3.0])
def test_token_cross_entropy_gradient_matches_central_differences(scale):
    rng = np.random.default_rng(5)
    info = transformer_layer_infos(GPT)[-1]
    loss = info.build("float64")
    loss.scale = scale
    logits = 2.0 * rng.standard_normal((3, GPT.seq, GPT.vocab))
    targets = rng.integers(0, GPT.vocab, (3, GPT.seq))
    value = loss.forward(0, logits, targets)
    grad = loss.backward_input(0)
    assert len(loss.cache) == 0
    numeric = numeric_grad(lambda: run_forward([loss], logits, targets), logits)
    assert rel_error(grad, numeric) < TOLERANCE
    # the mean over every token of the batch, times 3 * scale (three sequences)
    probs = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    nll = -np.log(np.take_along_axis(probs, targets[..., None], axis=-1))
    assert value == pytest.approx(nll.mean() * 3 * scale, rel=1e-12)


STREAM_KINDS = sorted(
    {info.kind for _, info in LAYER_CASES} - {"embedding", "fork", "add", "token_ce"}
)


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_branch_layers_carry_the_residual_untouched(kind):
    """Given ``(residual, x)``, a layer returns ``(residual, f(x))`` and, backward,
    ``(grad_residual, df(x))``: the same objects for the residual, the same numbers for x."""
    info = next(i for _, i in LAYER_CASES if i.kind == kind)
    rng = np.random.default_rng(0)
    layer = info.build("float64")
    x = layer_input(info, 2, rng)
    residual, grad_residual = rng.standard_normal(3), rng.standard_normal(3)
    plain = layer.forward(0, x)
    grad = like(plain, rng)
    with core_keeps(layer, x):
        plain_in = layer.backward(0, grad)
    out = layer.forward(0, (residual, x))  # the same microbatch: the same dropout mask
    assert out[0] is residual and np.array_equal(out[1], plain)
    with core_keeps(layer, x):
        back = layer.backward(0, (grad_residual, grad))
    assert back[0] is grad_residual and np.array_equal(back[1], plain_in)
    assert len(layer.cache) == 0


# ---------------------------------------------------------------- gradchecks, block and model


def block_layers(config, block: int, seed: int = 0) -> list[Layer]:
    infos = [i for i in transformer_layer_infos(config) if i.block == block]
    return [info.build("float64", seed) for info in infos]


@pytest.mark.parametrize("name", ["gpt", "llama"])
def test_block_gradients_match_central_differences(name):
    config = CONFIGS[name]
    rng = np.random.default_rng(11)
    layers = block_layers(config, block=1)
    randomise(layers, rng)
    stage = Stage(0, layers)
    x = rng.standard_normal((2, config.seq, config.hidden))
    g = rng.standard_normal(x.shape)

    def objective() -> float:
        return dot(g, run_forward(layers, x))

    stage.zero_grad()
    stage.forward(0, x)
    grad_in = stage.backward(0, g)
    assert len(stage.cache) == 0
    assert rel_error(grad_in, numeric_grad(objective, x)) < TOLERANCE
    for layer in stage.param_layers:
        for key, param in layer.params.items():
            picks, numeric = sampled_grad(objective, param, 24, rng)
            err = rel_error(layer.grads[key].reshape(-1)[picks], numeric)
            assert err < TOLERANCE, f"{name} {layer.name}.{key}: {err:.2e}"


def model_data(config, rows: int, rng):
    ids = rng.integers(0, config.vocab, (rows, config.seq))
    return ids, rng.integers(0, config.vocab, (rows, config.seq))


def two_stages(config, layers: list[Layer], cache=None) -> list[Stage]:
    """Cut after the first transformer block, as a two-rank pipeline would."""
    infos = transformer_layer_infos(config)
    cut = next(i.index for i in infos if i.block == 2)
    return [Stage(0, layers[:cut], cache), Stage(1, layers[cut:], cache)]


def pipeline_forward(stages: list[Stage], ids, targets, mb: int = 0):
    value = ids
    for stage in stages:
        value = stage.forward(mb, value, targets if stage.is_last else None)
        if not stage.is_last:
            assert isinstance(value, np.ndarray)  # only plain arrays cross a stage boundary
    return value


def pipeline_backward(stages: list[Stage], mb: int = 0, split: bool = False):
    grad = None
    boundary = []
    for stage in reversed(stages):
        if split:
            grad = stage.backward_input(mb, grad)
            stage.backward_weight(mb)
        else:
            grad = stage.backward(mb, grad)
        boundary.append(grad)
    return boundary


@pytest.mark.parametrize("name", ["gpt", "llama", "moe"])
def test_model_gradients_match_central_differences(name):
    """Two blocks, hidden 8, seq 5, vocabulary 7, dropout on, split over two stages; a sample of
    every parameter's entries is checked against central differences of the mean token loss."""
    config = CONFIGS[name]
    rng = np.random.default_rng(2)
    rows = 3
    layers = transformer_layers(config, seed=4)
    set_loss_scale(layers, rows)
    randomise(layers, rng)
    stages = two_stages(config, layers)
    ids, targets = model_data(config, rows, rng)

    def objective() -> float:
        return run_forward(layers, ids, targets)

    for stage in stages:
        stage.zero_grad()
    loss = pipeline_forward(stages, ids, targets)
    pipeline_backward(stages)
    assert loss == pytest.approx(objective(), rel=1e-14)
    for layer in layers:
        for key, param in layer.params.items():
            picks, numeric = sampled_grad(objective, param, 8, rng)
            err = rel_error(layer.grads[key].reshape(-1)[picks], numeric)
            assert err < TOLERANCE, f"{name} {layer.name}.{key}: {err:.2e}"


# ---------------------------------------------------------------- split backward, microbatches


@pytest.mark.parametrize("name", ["gpt", "llama", "moe"])
def test_split_backward_equals_full_backward_bit_for_bit(name):
    config = CONFIGS[name]
    rng = np.random.default_rng(6)
    ids, targets = model_data(config, 2, rng)
    runs = []
    for split in (True, False):
        layers = transformer_layers(config, seed=1)
        set_loss_scale(layers, 4)
        stages = two_stages(config, layers)
        boundaries = []
        for mb in range(2):  # two microbatches accumulate
            pipeline_forward(stages, (ids + mb) % config.vocab, targets, mb)
            boundaries.append(pipeline_backward(stages, mb, split))
            assert all(len(stage.cache) == 0 for stage in stages)
        grads = {(layer.layer_index, k): g for layer in layers for k, g in layer.grads.items()}
        runs.append((boundaries, grads))
    (split_bounds, split_grads), (full_bounds, full_grads) = runs
    for split_b, full_b in zip(split_bounds, full_bounds, strict=True):
        assert split_b[-1] is None and full_b[-1] is None  # the embedding has no input gradient
        assert np.array_equal(split_b[0], full_b[0])  # the gradient sent across the cut
    assert split_grads.keys() == full_grads.keys()
    for key, grad in split_grads.items():
        assert np.array_equal(grad, full_grads[key]), key


@pytest.mark.parametrize("name", ["gpt-no-dropout", "llama-no-dropout"])
def test_microbatch_gradients_sum_to_the_whole_batch_gradient(name):
    """Dropout off: the masks depend on the microbatch index, so a whole batch run as one
    microbatch would draw different masks from the same batch run as three."""
    config = GPT_NO_DROPOUT if name == "gpt-no-dropout" else _no_dropout(LLAMA)
    rng = np.random.default_rng(8)
    rows, microbatches = 6, 3
    ids, targets = model_data(config, rows, rng)
    results = []
    for count in (1, microbatches):
        layers = transformer_layers(config, seed=2)
        set_loss_scale(layers, rows)
        stage = Stage(0, layers)
        total = 0.0
        for mb, part in enumerate(np.array_split(np.arange(rows), count)):
            total += stage.forward(mb, ids[part], targets[part])
            stage.backward(mb)
        results.append((total, {(l.layer_index, k): g for l in layers for k, g in l.grads.items()}))
    (whole_loss, whole), (split_loss, split) = results
    assert split_loss == pytest.approx(whole_loss, rel=1e-12)
    for key, grad in whole.items():
        scale = max(np.abs(grad).max(), 1e-300)
        assert np.abs(split[key] - grad).max() / scale < 1e-12, key


def _no_dropout(config):
    return replace(config, dropout=0.0)


# ---------------------------------------------------------------- seeded dropout


def test_dropout_masks_are_a_function_of_seed_layer_step_and_microbatch():
    shape, p = (2, 5, 8), 0.25
    mask = dropout_mask(0, 3, 0, 1, shape, p)
    assert mask.dtype == np.bool_ and mask.itemsize == 1
    assert np.array_equal(mask, dropout_mask(0, 3, 0, 1, shape, p))
    for other in ((1, 3, 0, 1), (0, 4, 0, 1), (0, 3, 1, 1), (0, 3, 0, 2), (0, 3, 0, -1)):
        assert not np.array_equal(mask, dropout_mask(*other, shape, p)), other
    big = dropout_mask(0, 0, 0, 0, (200_000,), p)
    assert abs(big.mean() - (1 - p)) < 0.005


def test_rerunning_a_forward_gives_identical_float64_gradients():
    """What a recompute policy needs: F and B of the same microbatch twice, the same bits; a new
    dropout step draws new masks."""
    rng = np.random.default_rng(3)
    ids, targets = model_data(GPT, 2, rng)
    layers = transformer_layers(GPT, seed=5)
    stage = Stage(0, layers)
    grads = []
    for step in (0, 0, 1):
        set_dropout_step(layers, step)
        stage.zero_grad()
        stage.forward(0, ids, targets)
        stage.backward(0)
        grads.append([g.copy() for layer in layers for g in layer.grads.values()])
    assert all(np.array_equal(a, b) for a, b in zip(grads[0], grads[1], strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(grads[0], grads[2], strict=True))


# ---------------------------------------------------------------- the layer list


@pytest.mark.parametrize("name", list(CONFIGS))
def test_blocks_start_with_a_fork_end_with_an_add_and_hand_on_plain_arrays(name):
    config = CONFIGS[name]
    infos = transformer_layer_infos(config)
    assert [i.index for i in infos] == list(range(len(infos)))
    blocks = sorted({i.block for i in infos})
    assert blocks == list(range(config.layers + 2))
    assert [i.kind for i in infos if i.block == 0][0] == "embedding"
    assert [i.kind for i in infos if i.block == config.layers + 1][-2:] == ["lm_head", "token_ce"]
    for block in range(1, config.layers + 1):
        kinds = [i.kind for i in infos if i.block == block]
        assert kinds[0] == "fork" and kinds[-1] == "add" and kinds.count("fork") == 2
        assert ("dropout" in kinds) == (config.dropout > 0)
    layers = transformer_layers(config)
    ids, targets = model_data(config, 2, np.random.default_rng(0))
    value = ids
    for info, layer in zip(infos, layers, strict=True):
        if isinstance(layer, Loss):
            break
        value = layer.forward(0, value)
        last_of_block = info.index + 1 == len(infos) or infos[info.index + 1].block != info.block
        if last_of_block:
            assert isinstance(value, np.ndarray), info.name


@pytest.mark.parametrize("name", list(CONFIGS))
def test_parameter_count_counts_what_numpy_holds_and_a_tied_head_once(name):
    config = CONFIGS[name]
    layers = transformer_layers(config)
    held = sum(p.size for layer in layers for p in layer.params.values())
    tied = config.vocab * config.hidden if config.tied_embeddings else 0
    assert parameter_count(config) == held - tied
    infos = transformer_layer_infos(config)
    assert [i.param_count() for i in infos] == [
        sum(p.size for p in layer.params.values()) for layer in layers
    ]


def test_weights_depend_only_on_seed_and_global_index():
    infos = transformer_layer_infos(GPT)
    whole = transformer_layers(GPT, seed=9)
    part = transformer_layers(GPT, seed=9, layer_indices=range(10, 20))
    for layer in part:
        for key, param in layer.params.items():
            assert np.array_equal(param, whole[layer.layer_index].params[key])
    other = infos[4].build(seed=10).params["W"]
    assert not np.array_equal(other, whole[4].params["W"])


# ---------------------------------------------------------------- cache bytes = footprint


class PhaseRecorder:
    """Listener collecting (layer index, delta bytes) per action on a shared cache."""

    def __init__(self, cache: ActivationCache):
        self.events: list[tuple[int, int]] = []
        cache.add_listener(lambda e: self.events.append((e.layer_index, e.delta_bytes)))

    def during(self, run) -> list[tuple[int, int]]:
        start = len(self.events)
        run()
        return self.events[start:]


def expected_events(infos, kind: str, rows: int, itemsize: int) -> list[tuple[int, int]]:
    order = infos if kind == "F" else infos[::-1]
    if kind == "W":
        order = [i for i in order if i.has_params]
    return [(i.index, d) for i in order for d in i.footprint(rows, itemsize).phase(kind)]


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_layer_moves_exactly_its_footprint(name, dtype):
    """F, I, W on one microbatch and F, B on another, over two stages sharing one cache: the
    listener sees each layer's footprint, in chain order (reverse order backward)."""
    config = CONFIGS[name]
    itemsize = np.dtype(dtype).itemsize
    rows = 3
    infos = transformer_layer_infos(config)
    layers = transformer_layers(config, dtype=dtype)
    set_loss_scale(layers, rows)
    cache = ActivationCache()
    stages = two_stages(config, layers, cache)
    rec = PhaseRecorder(cache)
    ids, targets = model_data(config, rows, np.random.default_rng(0))
    per_stage = [[infos[i] for i in stage.layer_indices] for stage in stages]

    for mb, split in ((0, True), (1, False)):
        value = ids
        for stage, chosen in zip(stages, per_stage, strict=True):
            holder = {}

            def forward(stage=stage, value=value, holder=holder, mb=mb):
                holder["out"] = stage.forward(mb, value, targets if stage.is_last else None)

            assert rec.during(forward) == expected_events(chosen, "F", rows, itemsize)
            value = holder["out"]
            if not stage.is_last:
                assert value.dtype == np.dtype(dtype)
        grad = None
        for stage, chosen in reversed(list(zip(stages, per_stage, strict=True))):
            holder = {}
            kinds = ("I", "W") if split else ("B",)
            for kind in kinds:

                def run(stage=stage, grad=grad, holder=holder, kind=kind, mb=mb):
                    holder[kind] = stage.run(kind, mb, grad)

                assert rec.during(run) == expected_events(chosen, kind, rows, itemsize), kind
            grad = holder["I" if split else "B"]
        assert len(cache) == 0 and cache.total_bytes == 0


def test_the_footprint_tests_cover_every_layer_kind():
    covered = {i.kind for config in CONFIGS.values() for i in transformer_layer_infos(config)}
    assert covered == set(TRANSFORMER_LAYER_CLASSES)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_footprint_conserves_bytes(name):
    """What F caches, I + W (or B) frees; W and B only free."""
    for info in transformer_layer_infos(CONFIGS[name]):
        for tp, sp in ((1, False), (2, False), (2, True)):
            fp = replace(info, config=replace(info.config, seq=6)).footprint(3, 2, tp, sp)
            assert sum(fp.F) + sum(fp.I) + sum(fp.W) == 0, info.name
            assert sum(fp.F) + sum(fp.B) == 0, info.name
            assert all(d > 0 for d in fp.F) and all(d < 0 for d in fp.W + fp.B), info.name
