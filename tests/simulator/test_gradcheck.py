"""Finite-difference gradient checks (central differences, float64) for every layer, both losses
and whole models run through ``Stage``; plus an optional cross-check against PyTorch autograd.

For a layer without a loss the objective is the scalar ``sum(g * y)`` with a random upstream
gradient ``g``, so ``dObjective/dy = g`` and the layer's backward is checked for a generic
upstream gradient, not just for ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.model import ModelSpec, partition
from simulator.model.cache import ActivationCache
from simulator.model.layers import Layer, Loss
from simulator.model.losses import MSE, SoftmaxCrossEntropy
from simulator.model.mlp_layers import GELU, LayerNorm, Linear, ReLU, Sigmoid, Tanh
from simulator.model.reference import set_loss_scale
from simulator.model.stage import Stage

STEP = 1e-6
TOLERANCE = 1e-6


def rel_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """||a - n|| / max(||a||, ||n||): scale-free, and zero only when both agree."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    denom = max(np.linalg.norm(analytic), np.linalg.norm(numeric), 1e-300)
    return float(np.linalg.norm(analytic - numeric) / denom)


def numeric_grad(f, array: np.ndarray, step: float = STEP) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to ``array``, perturbed in place."""
    grad = np.zeros_like(array, dtype=np.float64)
    flat = array.reshape(-1)  # a view: writes reach ``array``
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + step
        plus = f()
        flat[i] = old - step
        minus = f()
        flat[i] = old
        grad.reshape(-1)[i] = (plus - minus) / (2.0 * step)
    return grad


def fresh_forward(layer: Layer, x: np.ndarray, targets=None):
    """Forward in a throwaway cache, so repeated evaluations never collide in the cache."""
    saved = layer.cache
    layer.cache = ActivationCache()
    try:
        if isinstance(layer, Loss):
            return layer.forward(0, x, targets)
        return layer.forward(0, x)
    finally:
        layer.cache = saved


def make_layer(cls, n_in: int, n_out: int, rng) -> Layer:
    if cls is Linear:
        layer = Linear(3, n_in, n_out, np.float64, rng=rng)
        layer.params["b"][:] = rng.standard_normal(n_out)  # a zero bias would hide bugs
        return layer
    if cls is LayerNorm:
        layer = LayerNorm(3, n_in, n_in, np.float64, rng=rng)
        layer.params["gamma"][:] = rng.uniform(0.5, 1.5, n_in)  # gamma = 1 would hide bugs
        layer.params["beta"][:] = rng.standard_normal(n_in)
        return layer
    return cls(3, n_in, n_in, np.float64)


def layer_input(cls, rows: int, n_in: int, rng) -> np.ndarray:
    x = rng.standard_normal((rows, n_in))
    if cls is ReLU:
        # keep every input away from the kink at 0 (far beyond the step), but include small
        # inputs of both signs so a mask with the wrong threshold is caught
        x = np.sign(x) * (0.1 + np.abs(x))
        x[0, :4] = [1e-3, -1e-3, 0.02, -0.02]
    return x


LAYER_CASES = [
    (Linear, 4, 3),
    (ReLU, 5, 5),
    (Sigmoid, 5, 5),
    (Tanh, 5, 5),
    (GELU, 5, 5),
    (LayerNorm, 6, 6),
]


@pytest.mark.parametrize(("cls", "n_in", "n_out"), LAYER_CASES, ids=lambda v: getattr(v, "kind", v))
def test_layer_gradients_match_central_differences(cls, n_in, n_out):
    rng = np.random.default_rng(1234)
    rows = 4
    layer = make_layer(cls, n_in, n_out, rng)
    x = layer_input(cls, rows, n_in, rng)
    g = rng.standard_normal((rows, n_out))

    def objective() -> float:
        return float(np.sum(g * fresh_forward(layer, x)))

    layer.forward(0, x)
    layer.zero_grad()
    grad_in = layer.backward(0, g)
    assert len(layer.cache) == 0

    err = rel_error(grad_in, numeric_grad(objective, x))
    assert err < TOLERANCE, f"{cls.kind} input gradient: relative error {err:.2e}"
    assert set(layer.grads) == set(layer.params)
    for name, param in layer.params.items():
        err = rel_error(layer.grads[name], numeric_grad(objective, param))
        assert err < TOLERANCE, f"{cls.kind} gradient of {name}: relative error {err:.2e}"


@pytest.mark.parametrize("scale", [1.0, 1.0 / 7.0])
def test_cross_entropy_gradient_matches_central_differences(scale):
    rng = np.random.default_rng(7)
    rows, classes = 7, 4
    loss = SoftmaxCrossEntropy(9, classes, classes, np.float64)
    loss.scale = scale
    x = rng.standard_normal((rows, classes)) * 2.0
    targets = rng.integers(0, classes, rows)

    loss.forward(0, x, targets)
    grad = loss.backward_input(0)
    numeric = numeric_grad(lambda: fresh_forward(loss, x, targets), x)
    assert rel_error(grad, numeric) < TOLERANCE
    assert len(loss.cache) == 0


@pytest.mark.parametrize("scale", [1.0, 1.0 / 6.0])
@pytest.mark.parametrize("outputs", [1, 3])
def test_mse_gradient_matches_central_differences(scale, outputs):
    rng = np.random.default_rng(8)
    rows = 6
    loss = MSE(9, outputs, outputs, np.float64)
    loss.scale = scale
    x = rng.standard_normal((rows, outputs))
    targets = rng.standard_normal((rows, outputs))
    if outputs == 1:
        targets = targets[:, 0]  # a flat target vector for one output, as in seed 001

    loss.forward(0, x, targets)
    grad = loss.backward(0)
    numeric = numeric_grad(lambda: fresh_forward(loss, x, targets), x)
    assert rel_error(grad, numeric) < TOLERANCE
    assert len(loss.cache) == 0


def test_gradcheck_detects_a_wrong_gradient():
    """The checker itself must be able to fail: a Sigmoid with a wrong derivative is caught."""

    class BrokenSigmoid(Sigmoid):
        def backward_input(self, mb, grad_out):
            y = self._pop(mb, "output")
            return grad_out * y  # missing the (1 - y) factor

    rng = np.random.default_rng(0)
    layer = BrokenSigmoid(0, 3, 3, np.float64)
    x = rng.standard_normal((2, 3))
    g = rng.standard_normal((2, 3))
    layer.forward(0, x)
    grad = layer.backward(0, g)
    numeric = numeric_grad(lambda: float(np.sum(g * fresh_forward(layer, x))), x)
    assert rel_error(grad, numeric) > 1e-2


# ---------------------------------------------------------------- whole models through Stage

MODEL_CASES = [
    ModelSpec(widths=(3, 5, 4, 3), activation=act, loss=loss, layernorm=ln, seed=11)
    for act in ("relu", "sigmoid", "tanh", "gelu")
    for loss, ln in (("cross_entropy", True), ("mse", False))
] + [ModelSpec(widths=(3, 6, 2), activation="tanh", loss="mse", layernorm=True, seed=2)]


def _randomise_params(layers: list[Layer], rng) -> None:
    for layer in layers:
        if layer.kind == "linear":
            layer.params["b"][:] = 0.3 * rng.standard_normal(layer.params["b"].shape)
        if layer.kind == "layernorm":
            layer.params["gamma"][:] = rng.uniform(0.5, 1.5, layer.params["gamma"].shape)
            layer.params["beta"][:] = 0.3 * rng.standard_normal(layer.params["beta"].shape)


def _model_data(spec: ModelSpec, rows: int, rng):
    x = rng.standard_normal((rows, spec.widths[0]))
    if spec.loss == "mse":
        return x, rng.standard_normal((rows, spec.widths[-1]))
    return x, rng.integers(0, spec.widths[-1], rows)


def _relu_is_safe(stages: list[Stage], x) -> bool:
    """True when no ReLU input is within 1e-3 of 0 (finite differences would straddle the kink)."""
    for stage in stages:
        for layer in stage.layers:
            if isinstance(layer, Loss):
                return True
            if isinstance(layer, ReLU) and np.min(np.abs(x)) < 1e-3:
                return False
            x = fresh_forward(layer, x)
    return True


def _pipeline_loss(stages: list[Stage], x, targets, mb: int = 0) -> float:
    out = x
    for stage in stages:
        out = stage.forward(mb, out, targets if stage.is_last else None)
    return out


def _pipeline_backward(stages: list[Stage], mb: int = 0, split: bool = False) -> np.ndarray:
    grad = None
    for stage in reversed(stages):
        if split:
            grad = stage.backward_input(mb, grad)
            stage.backward_weight(mb)
        else:
            grad = stage.backward(mb, grad)
    return grad


@pytest.mark.parametrize("spec", MODEL_CASES, ids=lambda s: s.to_text())
def test_model_gradients_match_central_differences(spec):
    rng = np.random.default_rng(spec.seed)
    rows = 5
    layers = spec.build()
    set_loss_scale(layers, rows)
    _randomise_params(layers, rng)
    # two stages, as on two pipeline ranks, so activations and gradients cross a boundary
    cut = partition(spec, 2).stage_layers[1].start
    stages = [Stage(0, layers[:cut]), Stage(1, layers[cut:])]
    x, targets = _model_data(spec, rows, rng)
    while not _relu_is_safe(stages, x):
        x, targets = _model_data(spec, rows, rng)

    def objective() -> float:
        value = _pipeline_loss(stages, x, targets, mb=1)
        _pipeline_backward(stages, mb=1)  # empties the cache again
        return value

    for stage in stages:
        stage.zero_grad()
    _pipeline_loss(stages, x, targets)
    grad_in = _pipeline_backward(stages)
    analytic = {(l.layer_index, k): g.copy() for l in layers for k, g in l.grads.items()}

    assert rel_error(grad_in, numeric_grad(objective, x)) < TOLERANCE
    for layer in layers:
        for name, param in layer.params.items():
            err = rel_error(analytic[(layer.layer_index, name)], numeric_grad(objective, param))
            assert err < TOLERANCE, f"{layer.name}.{name}: relative error {err:.2e}"


# ---------------------------------------------------------------- optional: PyTorch autograd


def test_gradients_equal_torch_autograd():
    torch = pytest.importorskip("torch")
    spec = ModelSpec(widths=(4, 8, 6, 3), activation="gelu", loss="ce", layernorm=True, seed=5)
    rng = np.random.default_rng(0)
    rows = 10
    layers = spec.build()
    set_loss_scale(layers, rows)
    _randomise_params(layers, rng)
    x, targets = _model_data(spec, rows, rng)
    stage = Stage(0, layers)
    loss = stage.forward(0, x, targets)
    grad_in = stage.backward(0)

    tx = torch.tensor(x, requires_grad=True)
    h = tx
    tparams = {}
    for layer in layers:
        if isinstance(layer, Loss):
            break
        p = {k: torch.tensor(v, requires_grad=True) for k, v in layer.params.items()}
        tparams[layer.layer_index] = p
        if layer.kind == "linear":
            h = h @ p["W"] + p["b"]
        elif layer.kind == "layernorm":
            h = torch.nn.functional.layer_norm(
                h, (h.shape[1],), p["gamma"], p["beta"], eps=LayerNorm.eps
            )
        else:
            h = torch.nn.functional.gelu(h, approximate="tanh")
    tloss = torch.nn.functional.cross_entropy(h, torch.tensor(targets))
    tloss.backward()

    np.testing.assert_allclose(loss, tloss.item(), rtol=1e-12)
    np.testing.assert_allclose(grad_in, tx.grad.numpy(), rtol=1e-10, atol=1e-14)
    for layer in layers:
        for name, grad in layer.grads.items():
            expected = tparams[layer.layer_index][name].grad.numpy()
            np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-14)
