"""Datasets that need no download: the CS231n spiral and a smooth regression set."""

from __future__ import annotations

import numpy as np

from simulator.errors import PebbleError
from simulator.model.batch import microbatch_rows


def spiral(points_per_class: int = 100, classes: int = 3, seed: int = 0, dtype="float64"):
    """CS231n's spiral: ``classes`` interleaved arms in 2-D, not linearly separable.

    Returns ``(x, y)`` with x of shape (points_per_class * classes, 2) and integer labels y.
    """
    rng = np.random.default_rng(seed)
    n = points_per_class
    x = np.zeros((n * classes, 2))
    y = np.zeros(n * classes, dtype=np.int64)
    for j in range(classes):
        ix = slice(n * j, n * (j + 1))
        radius = np.linspace(0.0, 1.0, n)
        theta = np.linspace(j * 4.0, (j + 1) * 4.0, n) + rng.standard_normal(n) * 0.2
        x[ix] = np.c_[radius * np.sin(theta), radius * np.cos(theta)]
        y[ix] = j
    order = rng.permutation(len(y))  # shuffle so every microbatch sees every class
    return x[order].astype(dtype), y[order]


def regression(
    rows: int = 256, features: int = 2, outputs: int = 1, seed: int = 0, dtype="float64"
):
    """y = sin(3 x0) + x1^2 (+ more sines for more outputs) plus a little noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(rows, features))
    cols = [np.sin(3.0 * x[:, 0] + k) + x[:, min(1, features - 1)] ** 2 for k in range(outputs)]
    y = np.stack(cols, axis=1) + 0.05 * rng.standard_normal((rows, outputs))
    return x.astype(dtype), y.astype(dtype)


DATASETS = ("spiral", "regression")


def load(name: str, in_features: int, out_features: int, rows: int, seed: int, dtype: str):
    """A dataset shaped for a model with the given input and output widths."""
    if name == "spiral":
        if in_features != 2:
            raise PebbleError(
                f"the spiral has 2 features, but the model's input width is {in_features}."
            )
        per_class = -(-rows // out_features)
        x, y = spiral(per_class, out_features, seed, dtype)
        return x[:rows], y[:rows]
    if name == "regression":
        return regression(rows, in_features, out_features, seed, dtype)
    raise PebbleError(f"unknown dataset {name!r}; choose {' or '.join(DATASETS)}.")


def split_microbatches(rows: int, microbatches: int) -> list[slice]:
    """Equal row slices; the pipeline needs every microbatch the same size."""
    size = microbatch_rows(rows, microbatches)
    return [slice(i * size, (i + 1) * size) for i in range(microbatches)]
