"""Every layer class by its ``kind`` name, as model specs name them."""

from __future__ import annotations

from simulator.model.layers import GELU, Layer, LayerNorm, Linear, ReLU, Sigmoid, Tanh
from simulator.model.losses import MSE, SoftmaxCrossEntropy

LAYER_CLASSES: dict[str, type[Layer]] = {
    cls.kind: cls
    for cls in (Linear, ReLU, Sigmoid, Tanh, GELU, LayerNorm, SoftmaxCrossEntropy, MSE)
}
