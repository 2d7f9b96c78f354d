"""Model specs, the layer list they describe, and how that list is split into stages.

Why a spec separate from the layers: the analytic executor must reason about a 128-stage model
without allocating a single weight, and a Ray actor must build only its own stages. Both read the
same ``LayerInfo`` list, so they agree on indices, shapes, FLOPs and cache bytes.

Weights initialise from (seed, global layer index) only, never from the partition, so every
schedule and every partition trains the identical model as the sequential reference.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np

from simulator.errors import PebbleError
from simulator.model.layer_kinds import LAYER_CLASSES
from simulator.model.layers import Flops, Footprint, Layer, LayerDescription
from simulator.model.precision import Precision, default_precision

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu")
LOSSES = {"cross_entropy": "cross_entropy", "ce": "cross_entropy", "mse": "mse"}
DTYPES = ("float64", "float32")
MAX_WIDTHS = 100_001  # 100,000 Linear blocks: far beyond any pipeline's stages
MAX_WIDTH = 10_000_000
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class ModelSpec:
    """An MLP: Linear layers of the given widths, each but the last followed by an optional
    LayerNorm and the activation, then the loss. Typed and frozen so it pickles to actors."""

    widths: tuple[int, ...] = (2, 64, 64, 3)
    activation: str = "relu"
    loss: str = "cross_entropy"
    dtype: str = "float64"
    layernorm: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        widths = tuple(int(w) for w in self.widths)
        object.__setattr__(self, "widths", widths)
        if len(widths) < 2 or any(w <= 0 for w in widths):
            raise PebbleError(
                f"model widths must be at least two positive integers, got {list(widths)[:8]}."
            )
        if len(widths) > MAX_WIDTHS or max(widths) > MAX_WIDTH:
            raise PebbleError(
                f"an MLP spec may have at most {MAX_WIDTHS:,} widths of at most {MAX_WIDTH:,} "
                f"each, got {len(widths):,} up to {max(widths):,}."
            )
        if self.activation not in ACTIVATIONS:
            raise PebbleError(
                f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}."
            )
        if self.loss not in LOSSES:
            raise PebbleError(f"unknown loss {self.loss!r}; choose cross_entropy (ce) or mse.")
        object.__setattr__(self, "loss", LOSSES[self.loss])
        if self.dtype not in DTYPES:
            raise PebbleError(f"unknown dtype {self.dtype!r}; choose float64 or float32.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise PebbleError(f"the model seed must be a non-negative integer, got {self.seed!r}.")
        if self.seed < 0:
            raise PebbleError(f"the model seed must be a non-negative integer, got {self.seed}.")

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize

    @property
    def recipe(self) -> Precision:
        """Weights, gradients and Adam's two moments in the model's own dtype (what its numpy
        layers hold): ``fp64`` or ``fp32``."""
        return default_precision(self.itemsize)

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """Parse ``2-64-64-3`` or ``widths=2-64-64-3,activation=tanh,loss=mse,dtype=float32,
        layernorm=1,seed=3`` (any subset of keys; bare widths may lead)."""
        kwargs: dict[str, object] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                key, value = "widths", part
            key = key.strip()
            if key in kwargs:
                raise PebbleError(f"model spec {text!r} gives {key} twice.")
            try:
                if key == "widths":
                    kwargs["widths"] = tuple(int(w) for w in value.replace("x", "-").split("-"))
                elif key in ("activation", "loss", "dtype"):
                    kwargs[key] = value.strip()
                elif key == "layernorm":
                    flag = value.strip().lower()
                    if flag not in _TRUE + _FALSE:
                        raise PebbleError(
                            f"cannot read {part!r} in model spec {text!r}; "
                            "layernorm takes 1/0, true/false, yes/no or on/off."
                        )
                    kwargs[key] = flag in _TRUE
                elif key == "seed":
                    kwargs[key] = int(value)
                else:
                    raise PebbleError(
                        f"unknown model key {key!r} in {text!r}; "
                        "use widths, activation, loss, dtype, layernorm, seed."
                    )
            except ValueError:
                raise PebbleError(f"cannot read {part!r} in model spec {text!r}.") from None
        return cls(**kwargs)  # type: ignore[arg-type]

    def to_text(self) -> str:
        return (
            f"widths={'-'.join(map(str, self.widths))},activation={self.activation},"
            f"loss={self.loss},dtype={self.dtype},layernorm={int(self.layernorm)},seed={self.seed}"
        )

    @classmethod
    def uniform(cls, blocks: int, width: int = 1024, **kwargs) -> ModelSpec:
        """``blocks`` equal Linear(width, width) blocks: the default model for ``simulate``."""
        return cls(widths=(width,) * (blocks + 1), **kwargs)

    def layers(self) -> tuple[LayerInfo, ...]:
        """The flat layer list, loss included, with global indices and block numbers (built
        once per spec: the partition, both memory rules and the cost model all read it)."""
        return _mlp_layers(self)

    def _layer_list(self) -> tuple[LayerInfo, ...]:
        infos: list[LayerInfo] = []
        last = len(self.widths) - 2
        for block, (fan_in, fan_out) in enumerate(zip(self.widths, self.widths[1:], strict=False)):
            infos.append(LayerInfo(len(infos), "linear", fan_in, fan_out, block))
            if block < last:
                if self.layernorm:
                    infos.append(LayerInfo(len(infos), "layernorm", fan_out, fan_out, block))
                infos.append(LayerInfo(len(infos), self.activation, fan_out, fan_out, block))
            else:
                infos.append(LayerInfo(len(infos), self.loss, fan_out, fan_out, block))
        return tuple(infos)

    def build(self, layer_indices: range | None = None) -> list[Layer]:
        """Instantiate layers (all, or the given contiguous indices) with seeded weights."""
        infos = self.layers()
        chosen = infos if layer_indices is None else [infos[i] for i in layer_indices]
        return [info.build(self) for info in chosen]

    def with_dtype(self, dtype: str) -> ModelSpec:
        return replace(self, dtype=dtype)

    def output_bytes(self, info: LayerInfo, rows: int) -> int:
        """Bytes a microbatch of ``rows`` rows sends out of layer ``info`` to the next stage."""
        return rows * info.out_features * self.itemsize

    def param_count(self, info: LayerInfo) -> int:
        """Parameters of layer ``info``: a Linear's weights and biases, a LayerNorm's scale
        and shift."""
        if info.kind == "linear":
            return (info.in_features + 1) * info.out_features
        if info.kind == "layernorm":
            return 2 * info.in_features
        return 0

    @property
    def is_transformer(self) -> bool:
        return False


@dataclass(frozen=True)
class LayerInfo(LayerDescription):
    """What is known about one layer without building it: index, kind, shape, block."""

    index: int
    kind: str
    in_features: int
    out_features: int
    block: int

    @property
    def cls(self) -> type[Layer]:
        return LAYER_CLASSES[self.kind]

    def footprint(self, rows: int, itemsize: int) -> Footprint:
        return self.cls.footprint(self.in_features, self.out_features, rows, itemsize)

    def flops(self) -> Flops:
        return self.cls.flops(self.in_features, self.out_features)

    def gradient_bytes(self, rows: int, itemsize: int) -> int:
        """Bytes of the gradients this layer's backward holds at once: the one arriving (its
        output's width) and the one it produces (its input's)."""
        return rows * (self.in_features + self.out_features) * itemsize

    def residual_gradient_bytes(self, rows: int, itemsize: int) -> int:
        """An MLP has no residual branch."""
        return 0

    def build(self, spec: ModelSpec) -> Layer:
        rng = np.random.default_rng([spec.seed, self.index])
        cls = self.cls
        if cls.has_params:
            return cls(self.index, self.in_features, self.out_features, spec.dtype, rng=rng)
        return cls(self.index, self.in_features, self.out_features, spec.dtype)


@functools.lru_cache(maxsize=16)
def _mlp_layers(spec: ModelSpec) -> tuple[LayerInfo, ...]:
    return spec._layer_list()
