"""The two ends of a residual branch: ``ResidualFork`` and ``ResidualAdd``.

See ``base.py`` for the picture. Neither caches anything: an add's local gradient is 1 for both
inputs (seed 000: "add distributes"), and a fork's gradient is the sum of its two uses.
"""

from __future__ import annotations

from simulator.model.layers import Layer
from simulator.model.transformer.base import Rules


class ResidualFork(Rules, Layer):
    """``x -> (x, x)``: opens a residual branch; backward sums the two gradients.

    Why a layer and not a hidden detail of the block: the pebble graph and the stage see every
    step of the chain, and the sum in the backward is a real operation the notes teach.
    """

    kind = "fork"

    def forward(self, mb, x):
        return x, x

    def backward_input(self, mb, grad_out):
        grad_residual, grad_branch = grad_out
        return grad_residual + grad_branch


class ResidualAdd(Rules, Layer):
    """``(residual, branch) -> residual + branch``: closes the branch; backward copies the
    gradient to both, so the value leaving a block is a plain array again."""

    kind = "add"

    def forward(self, mb, value):
        residual, branch = value
        return residual + branch

    def backward_input(self, mb, grad_out):
        return grad_out, grad_out
