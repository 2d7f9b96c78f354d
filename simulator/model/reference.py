"""The sequential reference: one process, one stage holding every layer, microbatches in turn.

Why it exists: it is the ground truth. Every pipelined run, on any schedule and any partition,
must produce the gradients and weights this loop produces (to rounding).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.model.data import chars, load, split_microbatches
from simulator.model.layers import Layer, Loss
from simulator.model.optim import OptimizerConfig
from simulator.model.spec import ModelSpec
from simulator.model.stage import Stage


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what is trained: model, data, batch, microbatches, optimizer."""

    model: ModelSpec = field(default_factory=ModelSpec)
    dataset: str = "spiral"
    batch_size: int = 96
    microbatches: int = 4
    steps: int = 3
    data_seed: int = 0
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        if getattr(self.model, "is_transformer", False):  # token windows of the corpus
            config = self.model.config
            return chars(self.batch_size, config.seq, config.vocab, self.data_seed)
        return load(
            self.dataset,
            self.model.widths[0],
            self.model.widths[-1],
            self.batch_size,
            self.data_seed,
            self.model.dtype,
        )

    def microbatch_slices(self) -> list[slice]:
        return split_microbatches(self.batch_size, self.microbatches)


def set_loss_scale(layers: list[Layer], rows: int) -> None:
    """Make the loss the mean over the whole batch of ``rows`` rows (a layer's auxiliary loss,
    a mixture of experts' load balance, is weighted the same way)."""
    for layer in layers:
        if isinstance(layer, Loss) or getattr(layer, "adds_auxiliary_loss", False):
            layer.scale = 1.0 / rows


@dataclass
class ReferenceResult:
    """Per-step losses, the gradients of the last step and the final layers."""

    losses: list[float]
    gradients: dict[tuple[int, str], np.ndarray]
    stage: Stage

    @property
    def layers(self) -> list[Layer]:
        return self.stage.layers

    def weights(self) -> dict[tuple[int, str], np.ndarray]:
        return weights_of(self.layers)


def gradients_of(layers: list[Layer]) -> dict[tuple[int, str], np.ndarray]:
    """Copies of every parameter gradient, keyed by (global layer index, parameter name)."""
    return {(l.layer_index, k): g.copy() for l in layers for k, g in l.grads.items()}


def weights_of(layers: list[Layer]) -> dict[tuple[int, str], np.ndarray]:
    """Copies of every parameter, keyed by (global layer index, parameter name)."""
    return {(l.layer_index, k): p.copy() for l in layers for k, p in l.params.items()}


def train_step(stage: Stage, x, y, slices: list[slice], split_backward: bool = False) -> float:
    """Forward and backward every microbatch in turn, accumulating gradients; returns the loss."""
    stage.zero_grad()
    stage.losses.clear()
    for mb, rows in enumerate(slices):
        stage.forward(mb, x[rows], y[rows])
        if split_backward:
            stage.backward_input(mb)
            stage.backward_weight(mb)
        else:
            stage.backward(mb)
    return float(sum(stage.losses.values()))


def train_reference(config: TrainConfig, steps: int | None = None) -> ReferenceResult:
    """Train ``config`` sequentially for ``steps`` (default ``config.steps``) optimizer steps."""
    x, y = config.data()
    layers = config.model.build()
    set_loss_scale(layers, len(x))
    stage = Stage(0, layers)
    optimizer = config.optimizer.build()
    slices = config.microbatch_slices()
    losses, grads = [], {}
    for _ in range(config.steps if steps is None else steps):
        losses.append(train_step(stage, x, y, slices))
        grads = gradients_of(layers)
        optimizer.step(layers)
    return ReferenceResult(losses, grads, stage)


def accuracy(stage: Stage, x: np.ndarray, y: np.ndarray) -> float:
    """Classification accuracy of the model's logits."""
    return float((stage.predict(x).argmax(axis=1) == y).mean())
