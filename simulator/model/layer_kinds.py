"""Every layer class by its ``kind`` name, as model specs name them."""

from __future__ import annotations

from simulator.model.layers import Layer
from simulator.model.losses import MSE, SoftmaxCrossEntropy
from simulator.model.mlp_layers import GELU, LayerNorm, Linear, ReLU, Sigmoid, Tanh

LAYER_CLASSES: dict[str, type[Layer]] = {
    cls.kind: cls
    for cls in (Linear, ReLU, Sigmoid, Tanh, GELU, LayerNorm, SoftmaxCrossEntropy, MSE)
}
