"""The worked numbers in the seed notes (shared/seeds), checked against our layers.

* 001: ``Y = XW + b`` gives ``dX = dY W^T``, ``dW = X^T dY``, ``db`` = column sum of ``dY``;
  and its printed two-layer PyTorch example (4-decimal numbers, so compared at ~1e-3).
* 002: the softmax loss gradient ``(p - onehot(y)) / N``, built step by step as the note does.
* 003: ``f = (x + y) z`` at (-2, 5, -4) has gradient [-4, -4, 3]; the sigmoid neuron
  ``w = [2, -3, -3]``, ``x = [-1, -2]`` has ``dx = [0.393, -0.590]``, ``dw = [-0.197, -0.393,
  0.197]``.
* 003/004: the staged ``f(x, y) = (x + sigma(y)) / (sigma(x) + (x + y)^2)``: the stages our
  layers can play (both sigmoids, the sum x + y, the square) are played by them, the rest
  (division, product) is the note's code, and the result equals the note's hand-written
  backward and finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.model.losses import MSE, SoftmaxCrossEntropy
from simulator.model.mlp_layers import Linear, Sigmoid

F64 = np.float64


def linear_with(weights, bias=None) -> Linear:
    weights = np.asarray(weights, dtype=F64)
    layer = Linear(0, weights.shape[0], weights.shape[1], F64, rng=np.random.default_rng(0))
    layer.params["W"][...] = weights
    layer.params["b"][...] = 0.0 if bias is None else np.asarray(bias, dtype=F64)
    return layer


# ---------------------------------------------------------------- seed 001


@pytest.mark.parametrize("split", [False, True])
def test_001_linear_backward_is_the_closed_form(split):
    rng = np.random.default_rng(1)
    n, d, m = 5, 3, 4
    x, w, b = rng.standard_normal((n, d)), rng.standard_normal((d, m)), rng.standard_normal(m)
    dy = rng.standard_normal((n, m))
    layer = linear_with(w, b)

    y = layer.forward(0, x)
    np.testing.assert_allclose(y, x @ w + b, rtol=1e-14)
    if split:
        dx = layer.backward_input(0, dy)
        layer.backward_weight(0)
    else:
        dx = layer.backward(0, dy)

    # written out element by element, independently of the layer's vectorised code
    dx_ref = np.array(
        [[sum(dy[i, k] * w[j, k] for k in range(m)) for j in range(d)] for i in range(n)]
    )
    dw_ref = np.array(
        [[sum(x[i, j] * dy[i, k] for i in range(n)) for k in range(m)] for j in range(d)]
    )
    db_ref = np.array([sum(dy[i, k] for i in range(n)) for k in range(m)])
    assert dx.shape == x.shape and layer.grads["W"].shape == w.shape
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], dw_ref, rtol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], db_ref, rtol=1e-12)


# The numbers printed in seed 001's PyTorch session (x, w1, b1, w2, b2 themselves are not).
SEED001_Y = [0.1177, -0.4787, 1.1570, -0.7038, -0.3809]
SEED001_Y2 = [1.0282, 2.7791, 2.5685, -1.9691, 2.8020]
SEED001_LOSS = 25.1672
SEED001_DY2 = [1.8210, 6.5158, 2.8230, -2.5306, 6.3659]
SEED001_DY1 = [
    [0.1996, 3.5949, -2.6491, 0.7318],
    [0.7140, 12.8628, -9.4787, 2.6183],
    [0.3094, 5.5730, -4.1067, 1.1344],
    [-0.2773, -4.9956, 3.6813, -1.0169],
    [0.6976, 12.5669, -9.2606, 2.5581],
]
SEED001_DW1 = [
    [2.6609, 47.9346, -35.3232, 9.7575],
    [0.1913, 3.4460, -2.5394, 0.7015],
    [0.2197, 3.9581, -2.9167, 0.8057],
]
SEED001_DB1 = [1.6432, 29.6020, -21.8138, 6.0257]


def test_001_mse_loss_and_its_gradient_2_times_y2_minus_y():
    loss = MSE(3, 1, 1, F64)  # scale 1: l = sum((y - y2)^2), as in the note
    y2 = np.array(SEED001_Y2).reshape(5, 1)
    value = loss.forward(0, y2, np.array(SEED001_Y))
    assert value == pytest.approx(SEED001_LOSS, abs=5e-3)
    dy2 = loss.backward_input(0)
    assert dy2.shape == (5, 1)
    np.testing.assert_allclose(dy2[:, 0], SEED001_DY2, atol=1e-3)


def test_001_two_layer_example_backward():
    """y1 = x w1 + b1; y2 = y1 w2 + b2; l = sum((y - y2)^2). Rebuild what the printout fixes."""
    dy1_printed = np.array(SEED001_DY1)
    # w2 is not printed, but dy1 = dy2 w2^T, so row 0 of dy1 gives it
    w2 = (dy1_printed[0] / SEED001_DY2[0]).reshape(4, 1)

    loss = MSE(3, 1, 1, F64)
    layer2 = linear_with(w2)
    y1_any = np.zeros((5, 4))  # dy1 and db1 do not depend on y1, nor on x
    layer2.forward(0, y1_any)
    loss.forward(0, np.array(SEED001_Y2).reshape(5, 1), np.array(SEED001_Y))
    dy2 = loss.backward_input(0)
    dy1 = layer2.backward(0, dy2)
    np.testing.assert_allclose(dy1, dy1_printed, atol=1e-3)  # rows 1..4 are real checks

    # dw1 = x^T dy1 is rank one (dy1 is), so any x with x^T dy2 = c reproduces it, where c is
    # fixed by the printed dw1's first column: c = dw1[:, 0] / w2[0]
    dw1_printed = np.array(SEED001_DW1)
    c = dw1_printed[:, 0] / w2[0, 0]
    dy2_flat = dy2[:, 0]
    x = np.outer(dy2_flat, c) / (dy2_flat @ dy2_flat)
    layer1 = linear_with(np.ones((3, 4)))
    layer1.forward(0, x)
    layer1.backward(0, dy1)
    np.testing.assert_allclose(layer1.grads["W"], dw1_printed, rtol=2e-3, atol=2e-3)
    # b1's gradient: the column sum of dy1 (broadcasting adds b1 to every row)
    np.testing.assert_allclose(layer1.grads["b"], SEED001_DB1, atol=1e-3)


# ---------------------------------------------------------------- seed 002


def test_002_softmax_loss_gradient_step_by_step():
    rng = np.random.default_rng(2)
    n, c = 6, 4
    score = rng.standard_normal((n, c)) * 3.0
    y = rng.integers(0, c, n)
    loss = SoftmaxCrossEntropy(0, c, c, F64)
    loss.scale = 1.0 / n
    value = loss.forward(0, score, y)
    grad = loss.backward_input(0)

    # L = 1/N sum_i ( -score[i, y_i] + log(rowsum_i) ),  rowsum = sum_j exp(score)
    rowsum = np.exp(score).sum(axis=1)
    expected_loss = (-score[np.arange(n), y] + np.log(rowsum)).sum() / n
    assert value == pytest.approx(expected_loss, rel=1e-12)

    # the note's derivation, literally
    d_score = np.zeros_like(score)
    d_score[range(n), y] -= 1
    d_rowsum = 1.0 / rowsum
    d_score += d_rowsum[:, np.newaxis] * np.exp(score)
    d_score /= n
    np.testing.assert_allclose(grad, d_score, rtol=1e-12, atol=1e-15)

    # and its closed form (p - onehot) / N
    p = np.exp(score) / rowsum[:, None]
    np.testing.assert_allclose(grad, (p - np.eye(c)[y]) / n, rtol=1e-12, atol=1e-15)


def test_002_bias_gradient_is_a_column_sum_through_softmax():
    rng = np.random.default_rng(3)
    n, d, c = 5, 3, 4
    x, y = rng.standard_normal((n, d)), rng.integers(0, c, n)
    layer = linear_with(rng.standard_normal((d, c)), rng.standard_normal(c))
    loss = SoftmaxCrossEntropy(1, c, c, F64)
    loss.scale = 1.0 / n
    loss.forward(0, layer.forward(0, x), y)
    d_score = loss.backward_input(0)
    layer.backward(0, d_score)
    np.testing.assert_allclose(layer.grads["b"], d_score.sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(layer.grads["W"], x.T @ d_score, rtol=1e-14)


# ---------------------------------------------------------------- seeds 003 / 004


def test_003_f_equals_x_plus_y_times_z():
    """f = (x + y) z as Linear(2, 1) with the tied weight W = [[z], [z]] on input [x, y].

    The input gradient is [z, z] = [-4, -4]; z is used twice, so its gradient is the sum of the
    two weight gradients (gradients add up at forks): x + y = 3.
    """
    x, y, z = -2.0, 5.0, -4.0
    layer = linear_with([[z], [z]])
    f = layer.forward(0, np.array([[x, y]]))
    assert f[0, 0] == -12.0
    dxy = layer.backward(0, np.ones((1, 1)))
    dz = layer.grads["W"].sum()
    assert [dxy[0, 0], dxy[0, 1], dz] == [-4.0, -4.0, 3.0]


def test_003_sigmoid_neuron():
    """w = [2, -3, -3] (the last is the bias), x = [-1, -2]: Linear(2, 1) then Sigmoid."""
    w, x = [2.0, -3.0, -3.0], [-1.0, -2.0]
    linear = linear_with([[w[0]], [w[1]]], [w[2]])
    sigmoid = Sigmoid(1, 1, 1, F64)
    out = sigmoid.forward(0, linear.forward(0, np.array([x])))
    dx = linear.backward(0, sigmoid.backward(0, np.ones((1, 1))))[0]
    dw = [*linear.grads["W"][:, 0], linear.grads["b"][0]]

    # the note's code, literally
    dot = w[0] * x[0] + w[1] * x[1] + w[2]
    f = 1.0 / (1 + math.exp(-dot))
    ddot = (1 - f) * f
    dx_note = [w[0] * ddot, w[1] * ddot]
    dw_note = [x[0] * ddot, x[1] * ddot, 1.0 * ddot]

    assert out[0, 0] == pytest.approx(f, rel=1e-15)
    np.testing.assert_allclose(dx, dx_note, rtol=1e-15)
    np.testing.assert_allclose(dw, dw_note, rtol=1e-15)
    # the values the note quotes
    np.testing.assert_allclose(dx, [0.393, -0.590], atol=1e-3)
    np.testing.assert_allclose(dw, [-0.197, -0.393, 0.197], atol=1e-3)


def staged_by_the_note(x: float, y: float) -> tuple[float, float, float]:
    """Seed 004's forward and backward for f(x, y) = (x + s(y)) / (s(x) + (x + y)^2), verbatim."""
    sigy = 1.0 / (1 + math.exp(-y))
    num = x + sigy
    sigx = 1.0 / (1 + math.exp(-x))
    xpy = x + y
    xpysqr = xpy**2
    den = sigx + xpysqr
    invden = 1.0 / den
    f = num * invden
    dnum = invden
    dinvden = num
    dden = (-1.0 / (den**2)) * dinvden
    dsigx = (1) * dden
    dxpysqr = (1) * dden
    dxpy = (2 * xpy) * dxpysqr
    dx = (1) * dxpy
    dy = (1) * dxpy
    dx += ((1 - sigx) * sigx) * dsigx
    dx += (1) * dnum
    dsigy = (1) * dnum
    dy += ((1 - sigy) * sigy) * dsigy
    return f, dx, dy


def staged_with_layers(x: float, y: float) -> tuple[float, float, float]:
    """The same computation, with our layers playing every stage they can.

    sigma(x), sigma(y): one Sigmoid on the row [x, y]; x + y: Linear(2, 1) with W = [[1], [1]];
    (x + y)^2: MSE against 0 with scale = upstream gradient (its gradient is 2 diff scale).
    The division and the final product are the note's own lines.
    """
    xy = np.array([[x, y]])
    sig = Sigmoid(0, 2, 2, F64)
    add = linear_with([[1.0], [1.0]])
    square = MSE(2, 1, 1, F64)

    sigx, sigy = sig.forward(0, xy)[0]
    xpy = add.forward(0, xy)
    xpysqr = square.forward(0, xpy, np.zeros(1))
    num = x + sigy
    den = sigx + xpysqr
    invden = 1.0 / den
    f = num * invden

    dnum, dinvden = invden, num
    dden = (-1.0 / den**2) * dinvden
    square.scale = dden  # upstream gradient of xpysqr
    dxpy = square.backward_input(0)
    dxy = add.backward(0, dxpy)[0]  # routes dxpy to both x and y
    dsig = sig.backward(0, np.array([[dden, dnum]]))[0]  # d/dsigx = dden, d/dsigy = dnum
    dx = dxy[0] + dsig[0] + dnum  # gradients add up at forks
    dy = dxy[1] + dsig[1]
    return f, dx, dy


@pytest.mark.parametrize(("x", "y"), [(3.0, -4.0), (-2.0, 5.0), (0.5, 0.25)])
def test_004_staged_computation(x, y):
    f_note, dx_note, dy_note = staged_by_the_note(x, y)
    f, dx, dy = staged_with_layers(x, y)
    assert f == pytest.approx(f_note, rel=1e-14)
    assert dx == pytest.approx(dx_note, rel=1e-12)
    assert dy == pytest.approx(dy_note, rel=1e-12)

    h = 1e-6

    def fd(dxh, dyh):
        return (
            staged_by_the_note(x + dxh, y + dyh)[0] - staged_by_the_note(x - dxh, y - dyh)[0]
        ) / (2 * h)

    assert dx == pytest.approx(fd(h, 0.0), rel=1e-6)
    assert dy == pytest.approx(fd(0.0, h), rel=1e-6)
