"""The sequential reference trainer, the optimizers and the datasets.

The reference is the ground truth every pipelined run is held to, so it must itself train:
the spiral loss falls well below where it started, in float64 and float32, and the regression
set's MSE falls too. The optimizers are checked against updates written out by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.errors import PebbleError
from simulator.model import ModelSpec
from simulator.model.data import load, regression, spiral, split_microbatches
from simulator.model.mlp_layers import Linear
from simulator.model.optim import SGD, Adam, OptimizerConfig
from simulator.model.reference import (
    TrainConfig,
    accuracy,
    gradients_of,
    set_loss_scale,
    train_reference,
    train_step,
)
from simulator.model.stage import Stage


def report_accuracy(label: str, result, config: TrainConfig) -> float:
    """Print (shown with ``pytest -s``) and return the training-set accuracy."""
    x, y = config.data()
    acc = accuracy(result.stage, x, y)
    print(f"{label}: loss {result.losses[0]:.4f} -> {result.losses[-1]:.4f}, accuracy {acc:.3f}")
    return acc


# ---------------------------------------------------------------- training


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "optimizer", [OptimizerConfig("sgd", lr=0.5), OptimizerConfig("adam", lr=0.01)]
)
def test_reference_learns_the_spiral(dtype, optimizer):
    config = TrainConfig(
        model=ModelSpec(widths=(2, 64, 64, 3), dtype=dtype, seed=0),
        batch_size=300,
        microbatches=4,
        steps=150,
        optimizer=optimizer,
    )
    result = train_reference(config)
    assert len(result.losses) == 150
    # an untrained 3-class classifier sits near log(3)
    assert result.losses[0] == pytest.approx(math.log(3), rel=0.2)
    assert result.losses[-1] < 0.3 * result.losses[0]
    assert report_accuracy(f"spiral {dtype} {optimizer.name}", result, config) > 0.9
    for value in result.weights().values():
        assert value.dtype == np.dtype(dtype)


def test_reference_fits_the_regression_set():
    config = TrainConfig(
        model=ModelSpec(widths=(2, 32, 32, 1), activation="tanh", loss="mse", seed=1),
        dataset="regression",
        batch_size=128,
        microbatches=2,
        steps=100,
        optimizer=OptimizerConfig("sgd", lr=0.05),
    )
    result = train_reference(config)
    assert result.losses[-1] < 0.3 * result.losses[0]
    x, y = config.data()
    prediction = result.stage.predict(x)
    mse = float(((prediction - y) ** 2).mean())
    assert mse < 0.3 * float(((y - y.mean()) ** 2).mean())  # explains > 70 % of the variance


def test_untrained_accuracy_is_near_chance():
    config = TrainConfig(batch_size=300, microbatches=1)
    x, y = config.data()
    stage = Stage(0, config.model.build())
    assert 0.1 < accuracy(stage, x, y) < 0.6


def test_reference_gradients_are_those_of_the_last_step():
    config = TrainConfig(steps=2)
    result = train_reference(config)
    # replay: train one step by hand, then compute the second step's gradients
    x, y = config.data()
    layers = config.model.build()
    set_loss_scale(layers, len(x))
    stage = Stage(0, layers)
    optimizer = config.optimizer.build()
    losses = [train_step(stage, x, y, config.microbatch_slices())]
    optimizer.step(layers)
    losses.append(train_step(stage, x, y, config.microbatch_slices(), split_backward=True))
    assert losses == pytest.approx(result.losses, rel=1e-12)
    for key, grad in gradients_of(layers).items():
        np.testing.assert_allclose(result.gradients[key], grad, rtol=1e-10, atol=1e-14)


def test_reference_is_deterministic():
    a = train_reference(TrainConfig(steps=3))
    b = train_reference(TrainConfig(steps=3))
    assert a.losses == b.losses
    for key, value in a.weights().items():
        np.testing.assert_array_equal(value, b.weights()[key])


# ---------------------------------------------------------------- optimizers


def one_param_layer(w0, b0) -> Linear:
    layer = Linear(7, 2, 1, np.float64, rng=np.random.default_rng(0))
    layer.params["W"][:, 0] = w0
    layer.params["b"][:] = b0
    return layer


G1 = ([0.5, -2.0], [1.0])
G2 = ([-0.25, 4.0], [0.5])


def run_two_steps(config: OptimizerConfig):
    layer = one_param_layer([1.0, -1.0], [0.25])
    optimizer = config.build()
    for gw, gb in (G1, G2):
        layer.grads["W"][:, 0] = gw
        layer.grads["b"][:] = gb
        optimizer.step([layer])
    return [*layer.params["W"][:, 0], layer.params["b"][0]]


def test_sgd_with_momentum_by_hand():
    lr, mu = 0.1, 0.9
    got = run_two_steps(OptimizerConfig("sgd", lr=lr, momentum=mu))
    p0 = [1.0, -1.0, 0.25]
    g1 = [*G1[0], *G1[1]]
    g2 = [*G2[0], *G2[1]]
    expected = []
    for p, a, b in zip(p0, g1, g2, strict=True):
        v1 = a  # v = mu * 0 + g1
        p1 = p - lr * v1
        v2 = mu * v1 + b
        expected.append(p1 - lr * v2)
    # e.g. W[0]: 1 - 0.1*0.5 - 0.1*(0.45 - 0.25) = 0.93
    assert expected[0] == pytest.approx(0.93, abs=1e-15)
    np.testing.assert_allclose(got, expected, rtol=1e-15)


def test_sgd_without_momentum_is_plain_gradient_descent():
    got = run_two_steps(OptimizerConfig("sgd", lr=0.1, momentum=0.0))
    np.testing.assert_allclose(got, [1.0 - 0.1 * 0.25, -1.0 - 0.1 * 2.0, 0.25 - 0.1 * 1.5])


def test_adam_by_hand():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    got = run_two_steps(OptimizerConfig("adam", lr=lr, beta1=b1, beta2=b2, eps=eps))
    p0 = [1.0, -1.0, 0.25]
    g1 = [*G1[0], *G1[1]]
    g2 = [*G2[0], *G2[1]]
    expected = []
    for p, a, b in zip(p0, g1, g2, strict=True):
        m1, v1 = (1 - b1) * a, (1 - b2) * a * a
        p1 = p - lr * (m1 / (1 - b1)) / (math.sqrt(v1 / (1 - b2)) + eps)
        m2, v2 = b1 * m1 + (1 - b1) * b, b2 * v1 + (1 - b2) * b * b
        p2 = p1 - lr * (m2 / (1 - b1**2)) / (math.sqrt(v2 / (1 - b2**2)) + eps)
        expected.append(p2)
    # the first Adam step moves every parameter by about lr against its gradient's sign
    first = run_one_adam_step(lr)
    np.testing.assert_allclose(first, [1.0 - lr, -1.0 + lr, 0.25 - lr], rtol=1e-6)
    np.testing.assert_allclose(got, expected, rtol=1e-13)


def run_one_adam_step(lr):
    layer = one_param_layer([1.0, -1.0], [0.25])
    layer.grads["W"][:, 0] = G1[0]
    layer.grads["b"][:] = G1[1]
    OptimizerConfig("adam", lr=lr).build().step([layer])
    return [*layer.params["W"][:, 0], layer.params["b"][0]]


def test_optimizer_state_is_per_layer_so_ranks_can_split_the_model():
    """Stepping layers on two optimizers (two ranks) equals stepping them on one."""
    spec = ModelSpec(widths=(3, 5, 4, 2), layernorm=True, seed=3)
    rng = np.random.default_rng(0)
    for name in ("sgd", "adam"):
        config = OptimizerConfig(name, lr=0.05)
        whole, split = spec.build(), spec.build()
        one = config.build()
        two = [config.build(), config.build()]
        for _ in range(3):
            for a, b in zip(whole, split, strict=True):
                for key in a.grads:
                    a.grads[key][...] = b.grads[key][...] = rng.standard_normal(a.grads[key].shape)
            one.step(whole)
            two[0].step(split[:3])
            two[1].step(split[3:])
        for a, b in zip(whole, split, strict=True):
            for key in a.params:
                np.testing.assert_array_equal(a.params[key], b.params[key])


def test_optimizer_config():
    assert isinstance(OptimizerConfig("sgd").build(), SGD)
    assert isinstance(OptimizerConfig("adam").build(), Adam)
    with pytest.raises(PebbleError, match="unknown optimizer 'rmsprop'"):
        OptimizerConfig("rmsprop")


# ---------------------------------------------------------------- data


def test_spiral_shape_labels_and_balance():
    x, y = spiral(50, 3, seed=0)
    assert x.shape == (150, 2) and y.shape == (150,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [50, 50, 50]
    assert np.abs(x).max() <= 1.0 + 1e-12
    assert not np.array_equal(y[:50], np.zeros(50))  # shuffled
    assert spiral(10, 2, dtype="float32")[0].dtype == np.float32
    xs, ys = spiral(50, 3, seed=0)
    np.testing.assert_array_equal(xs, x)
    np.testing.assert_array_equal(ys, y)


def test_regression_is_the_documented_function_plus_small_noise():
    x, y = regression(rows=500, features=2, outputs=2, seed=0)
    assert x.shape == (500, 2) and y.shape == (500, 2)
    clean = np.stack([np.sin(3 * x[:, 0] + k) + x[:, 1] ** 2 for k in range(2)], axis=1)
    assert 0.03 < float(np.std(y - clean)) < 0.07


def test_load_shapes_data_for_the_model():
    x, y = load("spiral", 2, 4, rows=10, seed=0, dtype="float32")
    assert x.shape == (10, 2) and x.dtype == np.float32 and set(y) <= {0, 1, 2, 3}
    x, y = load("regression", 3, 2, rows=8, seed=0, dtype="float64")
    assert x.shape == (8, 3) and y.shape == (8, 2)
    with pytest.raises(PebbleError, match="spiral has 2 features"):
        load("spiral", 3, 4, rows=10, seed=0, dtype="float64")
    with pytest.raises(PebbleError, match="unknown dataset 'mnist'"):
        load("mnist", 2, 3, rows=10, seed=0, dtype="float64")


def test_split_microbatches():
    assert split_microbatches(12, 3) == [slice(0, 4), slice(4, 8), slice(8, 12)]
    with pytest.raises(PebbleError, match="does not split into 5 equal microbatches"):
        split_microbatches(12, 5)
    with pytest.raises(PebbleError, match="positive integer"):
        split_microbatches(12, 0)
    with pytest.raises(PebbleError):
        TrainConfig(batch_size=10, microbatches=4).microbatch_slices()
