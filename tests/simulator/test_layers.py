"""Layer mechanics: the split backward (I then W) equals the full backward (B), bit for bit;
caches empty after every step; gradients accumulate and zero; float32 models stay float32."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.model import ModelSpec
from simulator.model.cache import ActivationCache
from simulator.model.layer_kinds import LAYER_CLASSES
from simulator.model.layers import Layer, Loss
from simulator.model.losses import MSE, SoftmaxCrossEntropy
from simulator.model.mlp_layers import GELU, LayerNorm, Linear, ReLU, Sigmoid, Tanh
from simulator.model.optim import OptimizerConfig
from simulator.model.reference import set_loss_scale, train_step
from simulator.model.stage import Stage

PLAIN_LAYERS = [Linear, ReLU, Sigmoid, Tanh, GELU, LayerNorm]
ROWS = 6


def build(cls, n_in: int, n_out: int, dtype, seed: int = 0) -> Layer:
    rng = np.random.default_rng(seed)
    if cls.has_params:
        layer = cls(4, n_in, n_out, dtype, rng=rng)
        for param in layer.params.values():  # non-trivial b, gamma, beta
            param[...] = param + rng.standard_normal(param.shape).astype(dtype)
        return layer
    return cls(4, n_in, n_in, dtype)


def out_width(cls, n_in: int, n_out: int) -> int:
    return n_out if cls is Linear else n_in


def test_every_layer_kind_is_registered():
    expected = {Linear, ReLU, Sigmoid, Tanh, GELU, LayerNorm, SoftmaxCrossEntropy, MSE}
    assert set(LAYER_CLASSES.values()) == expected
    for kind, cls in LAYER_CLASSES.items():
        assert cls.kind == kind


@pytest.mark.parametrize("cls", PLAIN_LAYERS, ids=lambda c: c.kind)
def test_split_backward_equals_full_backward_bitwise(cls):
    rng = np.random.default_rng(3)
    n_in, n_out = 5, 4
    full, split = build(cls, n_in, n_out, np.float64), build(cls, n_in, n_out, np.float64)
    for name in full.params:
        np.testing.assert_array_equal(full.params[name], split.params[name])
    # several microbatches, split ones interleaved out of order as a schedule would
    xs = [rng.standard_normal((ROWS, n_in)) for _ in range(3)]
    gs = [rng.standard_normal((ROWS, out_width(cls, n_in, n_out))) for _ in range(3)]
    for mb, x in enumerate(xs):
        np.testing.assert_array_equal(full.forward(mb, x), split.forward(mb, x))
    full_in = [full.backward(mb, gs[mb]) for mb in (2, 0, 1)]
    split_in = [split.backward_input(mb, gs[mb]) for mb in (2, 0, 1)]
    for mb in (0, 2, 1):
        split.backward_weight(mb)
    for a, b in zip(full_in, split_in, strict=True):
        np.testing.assert_array_equal(a, b)
    for name in full.grads:
        np.testing.assert_array_equal(full.grads[name], split.grads[name])
    assert len(full.cache) == len(split.cache) == 0
    assert full.cache.total_bytes == split.cache.total_bytes == 0


def test_weight_gradient_waits_for_backward_weight():
    """After I only, a parametric layer has not touched its gradients; W adds them."""
    rng = np.random.default_rng(0)
    layer = build(Linear, 3, 2, np.float64)
    x, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layer.forward(0, x)
    layer.backward_input(0, g)
    assert not np.any(layer.grads["W"]) and not np.any(layer.grads["b"])
    layer.backward_weight(0)
    np.testing.assert_allclose(layer.grads["W"], x.T @ g, rtol=1e-15)


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_stage_split_backward_equals_full_backward_bitwise(split, loss):
    spec = ModelSpec(widths=(3, 7, 5, 4), activation="gelu", loss=loss, layernorm=True, seed=4)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((8, 3))
    y = rng.integers(0, 4, 8) if loss == "cross_entropy" else rng.standard_normal((8, 4))
    slices = [slice(0, 4), slice(4, 8)]
    stages = []
    for _ in range(2):
        layers = spec.build()
        set_loss_scale(layers, 8)
        stages.append(Stage(0, layers))
    loss_full = train_step(stages[0], x, y, slices, split_backward=False)
    loss_split = train_step(stages[1], x, y, slices, split_backward=split)
    assert loss_full == loss_split
    for a, b in zip(stages[0].layers, stages[1].layers, strict=True):
        for name in a.grads:
            np.testing.assert_array_equal(a.grads[name], b.grads[name])
    for stage in stages:
        assert len(stage.cache) == 0 and stage.cache.total_bytes == 0


def test_stage_split_and_full_return_the_same_input_gradient():
    spec = ModelSpec(widths=(3, 6, 6, 2), activation="tanh", loss="ce", layernorm=True, seed=1)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((5, 3)), rng.integers(0, 2, 5)
    a, b = Stage(0, spec.build()), Stage(0, spec.build())
    a.forward(0, x, y)
    b.forward(0, x, y)
    grad_a = a.backward(0)
    grad_b = b.backward_input(0)
    assert len(b.cache) > 0  # inputs and output gradients wait for W
    b.backward_weight(0)
    np.testing.assert_array_equal(grad_a, grad_b)
    assert len(b.cache) == 0 and b.cache.total_bytes == 0


def test_stage_run_dispatches_each_kind():
    spec = ModelSpec(widths=(2, 4, 3), seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 2)), rng.integers(0, 3, 4)
    ref, run = Stage(0, spec.build()), Stage(0, spec.build())
    ready = []
    run.on_weight_grad = lambda layer, mb: ready.append((layer, mb))
    assert run.run("F", 0, x, y) == ref.forward(0, x, y)
    np.testing.assert_array_equal(run.run("I", 0), ref.backward(0))
    assert ready == []
    run.run("W", 0)
    assert ready == [(2, 0), (0, 0)]  # weight gradients become ready last layer first
    run.run("F", 1, x, y)
    run.run("B", 1)
    assert ready[2:] == [(2, 1), (0, 1)]


def test_stage_predict_leaves_the_cache_alone():
    spec = ModelSpec(widths=(2, 4, 3), seed=0)
    stage = Stage(0, spec.build())
    x = np.random.default_rng(0).standard_normal((5, 2))
    logits = stage.predict(x)
    assert logits.shape == (5, 3)
    assert len(stage.cache) == 0 and stage.cache.total_bytes == 0
    assert all(layer.cache is stage.cache for layer in stage.layers)


def test_a_full_training_step_empties_every_cache():
    spec = ModelSpec(widths=(2, 8, 8, 3), activation="relu", layernorm=True, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((12, 2)), rng.integers(0, 3, 12)
    stage = Stage(0, spec.build())
    seen = []
    stage.cache.add_listener(seen.append)
    slices = [slice(0, 4), slice(4, 8), slice(8, 12)]
    for split in (False, True):
        train_step(stage, x, y, slices, split_backward=split)
        assert len(stage.cache) == 0
        assert stage.cache.total_bytes == 0
        assert all(stage.cache.layer_bytes(i) == 0 for i in stage.layer_indices)
    assert seen and seen[-1].total_bytes == 0
    assert sum(event.delta_bytes for event in seen) == 0


def test_cache_refuses_to_overwrite_and_names_missing_slots():
    cache = ActivationCache()
    cache.put(1, 0, "input", np.zeros(3))
    with pytest.raises(KeyError, match="already filled"):
        cache.put(1, 0, "input", np.zeros(3))
    with pytest.raises(KeyError, match="layer 1 has no cached 'grad_out' for microbatch 0"):
        cache.pop(1, 0, "grad_out")
    assert cache.total_bytes == 24 and cache.layer_bytes(1) == 24


def test_backward_without_forward_is_an_error():
    layer = build(Linear, 3, 2, np.float64)
    with pytest.raises(KeyError):
        layer.backward(0, np.zeros((2, 2)))


# ---------------------------------------------------------------- accumulation and zero_grad


@pytest.mark.parametrize("microbatches", [1, 2, 3, 4, 6, 12])
@pytest.mark.parametrize("split", [False, True])
def test_microbatch_gradients_sum_to_the_whole_batch_gradient(microbatches, split):
    spec = ModelSpec(widths=(2, 9, 7, 3), activation="tanh", layernorm=True, seed=6)
    rng = np.random.default_rng(microbatches)
    rows = 12
    x, y = rng.standard_normal((rows, 2)), rng.integers(0, 3, rows)

    whole = Stage(0, spec.build())
    set_loss_scale(whole.layers, rows)
    loss_whole = train_step(whole, x, y, [slice(0, rows)])

    parts = Stage(0, spec.build())
    set_loss_scale(parts.layers, rows)
    size = rows // microbatches
    slices = [slice(i * size, (i + 1) * size) for i in range(microbatches)]
    loss_parts = train_step(parts, x, y, slices, split_backward=split)

    np.testing.assert_allclose(loss_parts, loss_whole, rtol=1e-12)
    for a, b in zip(whole.layers, parts.layers, strict=True):
        for name in a.grads:
            np.testing.assert_allclose(b.grads[name], a.grads[name], rtol=1e-12, atol=1e-15)


def test_gradients_accumulate_until_zeroed():
    spec = ModelSpec(widths=(2, 5, 3), activation="sigmoid", layernorm=True, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 2)), rng.integers(0, 3, 4)
    stage = Stage(0, spec.build())
    stage.forward(0, x, y)
    stage.backward(0)
    once = {(l.layer_index, k): g.copy() for l in stage.layers for k, g in l.grads.items()}
    assert all(np.any(g) for g in once.values())
    stage.forward(1, x, y)
    stage.backward(1)
    for layer in stage.layers:
        for name, grad in layer.grads.items():
            np.testing.assert_allclose(grad, 2 * once[(layer.layer_index, name)], rtol=1e-14)
    grads_before = {id(g) for l in stage.layers for g in l.grads.values()}
    stage.zero_grad()
    for layer in stage.layers:
        for grad in layer.grads.values():
            assert not np.any(grad)
    # zeroed in place: optimizers and reducers holding these arrays see the zeros
    assert grads_before == {id(g) for l in stage.layers for g in l.grads.values()}


# ---------------------------------------------------------------- dtype discipline


def _check_float32(array, what):
    assert isinstance(array, np.ndarray), what
    assert array.dtype == np.float32, f"{what} is {array.dtype}"


@pytest.mark.parametrize("cls", PLAIN_LAYERS, ids=lambda c: c.kind)
@pytest.mark.parametrize("split", [False, True])
def test_float32_layers_stay_float32(cls, split):
    rng = np.random.default_rng(0)
    layer = build(cls, 5, 4, np.float32)
    for name, param in layer.params.items():
        _check_float32(param, f"{cls.kind} param {name}")
        _check_float32(layer.grads[name], f"{cls.kind} grad {name}")
    x = rng.standard_normal((ROWS, 5)).astype(np.float32)
    g = rng.standard_normal((ROWS, out_width(cls, 5, 4))).astype(np.float32)
    _check_float32(layer.forward(0, x), f"{cls.kind} output")
    for slot in list(layer.cache.keys()):
        _check_float32(layer.cache.peek(*slot), f"{cls.kind} cached {slot}")
    if split:
        _check_float32(layer.backward_input(0, g), f"{cls.kind} input gradient")
        for slot in list(layer.cache.keys()):
            _check_float32(layer.cache.peek(*slot), f"{cls.kind} cached {slot}")
        layer.backward_weight(0)
    else:
        _check_float32(layer.backward(0, g), f"{cls.kind} input gradient")
    for name, grad in layer.grads.items():
        _check_float32(grad, f"{cls.kind} grad {name}")


@pytest.mark.parametrize("cls", [SoftmaxCrossEntropy, MSE], ids=lambda c: c.kind)
def test_float32_losses_stay_float32(cls):
    rng = np.random.default_rng(0)
    loss = cls(2, 3, 3, np.float32)
    loss.scale = 1.0 / ROWS
    x = rng.standard_normal((ROWS, 3)).astype(np.float32)
    # targets come as the dataset makes them: int64 labels, or float64 values for MSE
    targets = rng.integers(0, 3, ROWS) if cls is SoftmaxCrossEntropy else rng.random((ROWS, 3))
    value = loss.forward(0, x, targets)
    assert isinstance(value, float)
    for slot in list(loss.cache.keys()):
        cached = loss.cache.peek(*slot)
        if slot[2] == "targets":
            assert cached.dtype == np.int64
        else:
            _check_float32(cached, f"{cls.kind} cached {slot}")
    _check_float32(loss.backward_input(0), f"{cls.kind} gradient")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_float32_model_stays_float32_through_training(optimizer):
    spec = ModelSpec(
        widths=(2, 8, 8, 3), activation="gelu", layernorm=True, dtype="float32", seed=0
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 2)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    layers = spec.build()
    set_loss_scale(layers, 8)
    stage = Stage(0, layers)
    opt = OptimizerConfig(name=optimizer, lr=0.01).build()
    arrays = []

    def watch(event):
        if event.delta_bytes > 0:
            arrays.append(stage.cache.peek(event.layer_index, event.microbatch_index, event.key))

    stage.cache.add_listener(watch)
    for _ in range(2):
        out = x
        for layer in layers:
            if isinstance(layer, Loss):
                break
            out = layer.forward(9, out)
            _check_float32(out, f"{layer.name} output")
        layer.cache.clear()
        train_step(stage, x, y, [slice(0, 4), slice(4, 8)], split_backward=True)
        opt.step(layers)
    assert arrays
    for array in arrays:
        assert array.dtype in (np.float32, np.int64)
    for layer in layers:
        for name in layer.params:
            _check_float32(layer.params[name], f"{layer.name}.{name}")
            _check_float32(layer.grads[name], f"{layer.name} grad {name}")
    for slot in opt.state.values():
        for value in slot.values():
            _check_float32(value, "optimizer state")
    assert isinstance(stage.forward(0, x, y), float)
    _check_float32(stage.backward(0), "stage input gradient")
