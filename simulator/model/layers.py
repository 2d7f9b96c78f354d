"""What every numpy layer shares: hand-written forward and split backward phases, caching
through ActivationCache, and the footprint and FLOP rules' types.

The rules, as the CS231n notes in shared/seeds teach them:

* ``forward(mb, x)`` caches what the backward needs, keyed by microbatch: the layer's *input*
  (the previous layer's output). Sigmoid and Tanh cache their *output* instead, because their
  derivative is cheaper from it (sigma' = y(1-y), tanh' = 1-y^2).
* ``backward_input(mb, grad_out) -> grad_in`` (the ``I`` action). A parametric layer then keeps
  exactly what its weight gradient still needs: its input (already cached) plus the output
  gradient, which it puts into the cache. A layer without parameters frees everything here.
* ``backward_weight(mb)`` (the ``W`` action) accumulates parameter gradients with ``+=`` and
  frees the input and the output gradient.
* ``backward(mb, grad_out)`` (the ``B`` action) does both at once and never caches the output
  gradient, so a full backward only ever frees memory.

Every layer states its memory rule once, in ``footprint``: the signed byte changes each phase
makes to the cache. The analytic executor predicts memory from these rules and a test checks
that the real layers move exactly these bytes.

The layers themselves are written on this: an MLP's in ``mlp_layers``, the losses in ``losses``,
the transformer's in ``transformer/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schedules.dependencies import Work
from simulator.model.cache import ActivationCache

Phase = str  # an action kind: a footprint is given per kind (``B`` frees what I and W together do)


@dataclass(frozen=True)
class Footprint:
    """Signed cache byte changes of one layer for one microbatch, per phase, in order."""

    F: tuple[int, ...]
    I: tuple[int, ...]
    W: tuple[int, ...]
    B: tuple[int, ...]

    def phase(self, kind: Phase) -> tuple[int, ...]:
        """The changes of phase ``kind``; a kind a layer does not know moves nothing."""
        return getattr(self, kind, ())


@dataclass(frozen=True)
class Flops:
    """Floating-point operations per microbatch row for each work part: the forward ``F``, the
    input-backward ``I`` and the weight-backward ``W`` (``schedules.kind_traits``)."""

    F: float
    I: float
    W: float

    def of(self, work: Work) -> float:
        """FLOPs of an action doing ``work`` (its ``KindRule.work``: ``B`` is ``I + W``)."""
        return work.cost(vars(self))


class LayerDescription:
    """What a layer is without building it: a mixin for the descriptors that model specs list
    (``LayerInfo``, ``TransformerLayerInfo``). A subclass gives ``index``, ``kind`` and the
    layer class ``cls``; the rest follows from them."""

    index: int
    kind: str

    @property
    def has_params(self) -> bool:
        return self.cls.has_params  # type: ignore[attr-defined]

    @property
    def name(self) -> str:
        return f"{self.index}:{self.kind}"


class Layer:
    """Base class: a layer with a global index, a shared cache and (maybe) parameters.

    Why a class per layer with explicit phases: pipeline schedules split the backward into
    ``I`` and ``W`` and interleave microbatches, so each layer must be able to run any phase for
    any microbatch in any order the schedule allows, holding state only in the cache.
    """

    kind = "layer"
    has_params = False
    # the cache slot where its forward keeps its input (None: it keeps its output instead)
    input_key: str | None = "input"

    def __init__(self, layer_index: int, in_features: int, out_features: int, dtype: np.dtype):
        self.layer_index = layer_index
        self.in_features = in_features
        self.out_features = out_features
        self.dtype = np.dtype(dtype)
        self.cache = ActivationCache()
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    @property
    def name(self) -> str:
        return f"{self.layer_index}:{self.kind}"

    def zero_grad(self) -> None:
        for grad in self.grads.values():
            grad.fill(0.0)

    def _put(self, mb: int, key: str, array: np.ndarray) -> None:
        self.cache.put(self.layer_index, mb, key, array)

    def _pop(self, mb: int, key: str) -> np.ndarray:
        return self.cache.pop(self.layer_index, mb, key)

    def _peek(self, mb: int, key: str) -> np.ndarray:
        return self.cache.peek(self.layer_index, mb, key)

    def forward(self, mb: int, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward_input(self, mb: int, grad_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward_weight(self, mb: int) -> None:
        """Parameterless layers have nothing to do in ``W``."""

    def backward(self, mb: int, grad_out: np.ndarray) -> np.ndarray:
        grad_in = self.backward_input(mb, grad_out)
        self.backward_weight(mb)
        return grad_in

    @classmethod
    def footprint(cls, in_features: int, out_features: int, rows: int, itemsize: int) -> Footprint:
        """Default for elementwise layers: cache the input in F, free it in I (or B)."""
        size = rows * in_features * itemsize
        return Footprint(F=(size,), I=(-size,), W=(), B=(-size,))

    @classmethod
    def flops(cls, in_features: int, out_features: int) -> Flops:
        return Flops(F=4.0 * in_features, I=4.0 * in_features, W=0.0)


class ParametricLayer(Layer):
    """A layer with weights: caches its input in F; ``I`` also caches the output gradient, which
    ``W`` needs with the input; ``B`` does both at once and caches nothing more.

    Why one base: the cache protocol of a split backward is the same for every layer with
    weights; a subclass says only how to compute the input gradient and the weight gradients.
    """

    has_params = True

    def _grad_input(self, x: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _accumulate(self, x: np.ndarray, grad_out: np.ndarray) -> None:
        raise NotImplementedError

    def forward(self, mb, x):
        self._put(mb, "input", x)
        return self._forward(x)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward_input(self, mb, grad_out):
        self._put(mb, "grad_out", grad_out)
        return self._grad_input(self._peek(mb, "input"), grad_out)

    def backward_weight(self, mb):
        x = self._pop(mb, "input")
        grad_out = self._pop(mb, "grad_out")
        self._accumulate(x, grad_out)

    def backward(self, mb, grad_out):
        x = self._pop(mb, "input")
        self._accumulate(x, grad_out)
        return self._grad_input(x, grad_out)

    @classmethod
    def footprint(cls, in_features, out_features, rows, itemsize):
        x = rows * in_features * itemsize
        g = rows * out_features * itemsize
        return Footprint(F=(x,), I=(g,), W=(-x, -g), B=(-x,))


class Loss(Layer):
    """Base for losses: the last layer of the model; ``forward`` returns the scalar loss.

    ``scale`` multiplies the summed per-row loss; the trainer sets it to 1 / (rows in the whole
    batch), so the loss is the batch mean and the gradients summed over microbatches equal the
    gradient of the whole batch.
    """

    scale = 1.0

    def forward(self, mb, x, targets=None):  # type: ignore[override]
        raise NotImplementedError

    def backward_input(self, mb, grad_out=None):  # type: ignore[override]
        raise NotImplementedError

    def backward(self, mb, grad_out=None):  # type: ignore[override]
        """A loss has no parameters and starts from itself: ``B`` is ``I``."""
        return self.backward_input(mb, grad_out)
