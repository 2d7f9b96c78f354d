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


CORPUS = """\
A layer caches its input in the forward pass, because its backward pass needs it: the gradient
of a weight is the input times the gradient of the output. Backpropagation is local. Every node
in the graph knows only its inputs and its output, and each multiplies the gradient that arrives
from above by its own local derivative. In a pipeline, each rank holds a slice of the layers.
A microbatch flows down the ranks in the forward pass and its gradient flows back up, and the
bubble is the time a rank waits. One forward and one backward in turn keep only a few
microbatches in flight; splitting the backward into the part for the inputs and the part for
the weights lets the weights wait and fill the bubble. The pebble game asks which activations
to keep and which to compute again: a pebble on a node is a cached tensor, and memory is the
number of pebbles on the board at once.
"""
FIRST_CHAR, VOCAB = 32, 96  # printable ASCII (32..126) and the newline, as ids 0..95


def chars(sequences: int, seq: int, vocab: int = VOCAB, seed: int = 0):
    """Next-character prediction on ``CORPUS``: ``sequences`` windows of ``seq`` token ids
    (a seeded random offset each) and the same windows shifted by one as targets."""
    if vocab < VOCAB:
        raise PebbleError(f"the character corpus needs a vocabulary of {VOCAB}, got {vocab}.")
    ids = np.array(
        [VOCAB - 1 if c == "\n" else ord(c) - FIRST_CHAR for c in CORPUS], dtype=np.int64
    )
    if seq + 1 > len(ids):
        raise PebbleError(f"the character corpus has {len(ids)} characters, fewer than seq + 1.")
    starts = np.random.default_rng(seed).integers(0, len(ids) - seq, size=sequences)
    windows = np.stack([ids[s : s + seq + 1] for s in starts])
    return windows[:, :-1], windows[:, 1:]


DATASETS = ("spiral", "regression", "chars")


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
    if name == "chars":
        raise PebbleError("the chars dataset trains a transformer: give --model transformer:...")
    raise PebbleError(f"unknown dataset {name!r}; choose {' or '.join(DATASETS)}.")


def split_microbatches(rows: int, microbatches: int) -> list[slice]:
    """Equal row slices; the pipeline needs every microbatch the same size."""
    size = microbatch_rows(rows, microbatches)
    return [slice(i * size, (i + 1) * size) for i in range(microbatches)]
