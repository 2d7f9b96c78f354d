"""The rules of the mixture-of-experts layer (``moe.py``): what it caches per key, its FLOPs
and its parameters on one rank, as functions of shapes and the layout's tensor and expert
degrees, so the analytic executor counts a 671B model without building a weight.

Why apart from the layer: the layer is the numpy maths of routing and its backward; these are
the counting rules the analytic executor, the memory model and ``expert_parallel`` read. The
layer inherits them (``MoERules``), so the Ray executor's measured bytes and the prediction
come from one table, ``cached_bytes``.

Rows of the experts' buffer on one rank (``rank_rows``): ``T k`` dropless, ``E C`` padded to
a capacity ``C = ceil(cf T k / E)``; under expert parallelism the busiest rank's dropless rows
are ``T k`` times ``router_imbalance``.
"""

from __future__ import annotations

import math

from simulator.model.layers import Flops, Footprint
from simulator.model.transformer.base import Rules
from simulator.model.transformer.config import TransformerConfig
from simulator.model.transformer.dims import ID_BYTES, Dims

FORWARD_KEYS = ("input", "probs", "selected", "route", "counts", "xin", "fc1", "act", "eout")
SHARED_FORWARD_KEYS = ("shared_fc1", "shared_act")
INPUT_FREES = ("probs", "selected", "route", "fc1", "eout", "shared_fc1")
INPUT_PUTS = ("d_logits", "d_fc1", "d_eout", "d_shared_fc1", "grad_out")
WEIGHT_FREES = (
    "input",
    "counts",
    "xin",
    "act",
    "shared_act",
    "d_logits",
    "d_fc1",
    "d_eout",
    "d_shared_fc1",
    "grad_out",
)
_SHARED_ONLY = {"shared_fc1", "shared_act", "d_shared_fc1"}


def present_keys(keys: tuple[str, ...], shared: bool) -> tuple[str, ...]:
    """``keys`` less the shared experts' tensors when the layer has no shared experts."""
    return keys if shared else tuple(k for k in keys if k not in _SHARED_ONLY)


def capacity(tokens: int, config: TransformerConfig) -> int:
    """Rows each expert takes of a microbatch of ``tokens`` tokens under the capacity factor."""
    factor = config.capacity_factor or 0.0
    return max(1, math.ceil(factor * tokens * config.num_top_k / config.experts))


def buffer_rows(config: TransformerConfig, tokens: int) -> int:
    """Rows of the experts' buffer on one device holding every expert: ``T k`` dropless, ``E C``
    padded to capacity."""
    if config.capacity_factor is None:
        return tokens * config.num_top_k
    return config.experts * capacity(tokens, config)


def rank_rows(dims: Dims) -> int:
    """Rows the experts of one expert-parallel rank hold for one microbatch.

    Each of the ``e`` ranks of an expert group routes its own ``T`` tokens and receives, on
    average, ``T k`` rows for its ``E / e`` experts: with ``e = 1`` exactly ``buffer_rows``.
    Dropless, the busiest rank receives ``router_imbalance`` times the mean; padded to
    capacity, every rank holds ``(E / e) * e * C = E C`` rows whatever the balance.
    """
    config, tokens = dims.config, dims.moe_tokens
    if config.capacity_factor is not None or dims.e == 1:
        return buffer_rows(config, tokens)
    return math.ceil(tokens * config.num_top_k * config.imbalance)


def rank_rows_per_sequence(dims: Dims) -> float:
    """``rank_rows`` of one sequence without rounding (FLOPs are counted per sequence)."""
    config = dims.config
    rows = float(dims.local_seq * config.num_top_k)
    if config.capacity_factor is not None:
        return rows * config.capacity_factor
    return rows * (config.imbalance if dims.e > 1 else 1.0)


class MoERules(Rules):
    """Footprint, FLOP and parameter rules of ``moe.MixtureOfExperts`` (module docstring)."""

    @classmethod
    def cached_bytes(cls, dims: Dims) -> dict[str, int]:
        """Bytes of every tensor the layer caches, by key, on one rank (module docstring)."""
        config = dims.config
        E, k = config.experts, config.num_top_k
        rows, tokens = rank_rows(dims), dims.moe_tokens
        gated = 2 if config.mlp == "swiglu" else 1
        f, fs = dims.local_expert_ffn, dims.local_shared_ffn
        act = dims.activation_bytes
        return {
            "input": act(dims.seq_tokens * dims.h),
            "probs": act(tokens * E),
            "selected": tokens * k * ID_BYTES,
            "route": rows * ID_BYTES,
            "counts": dims.local_experts * ID_BYTES,
            "xin": act(rows * dims.h),
            "fc1": act(rows * gated * f),
            "act": act(rows * f),
            "eout": act(rows * dims.h),
            "shared_fc1": act(tokens * gated * fs),
            "shared_act": act(tokens * fs),
            "d_logits": act(tokens * E),
            "d_fc1": act(rows * gated * f),
            "d_eout": act(rows * dims.h),
            "d_shared_fc1": act(tokens * gated * fs),
            "grad_out": act(dims.seq_tokens * dims.h),
        }

    @classmethod
    def footprint(cls, dims: Dims) -> Footprint:
        size = cls.cached_bytes(dims)
        shared = dims.config.shared_hidden > 0
        forward = present_keys(FORWARD_KEYS + SHARED_FORWARD_KEYS, shared)
        return Footprint(
            F=tuple(size[k] for k in forward),
            I=tuple(-size[k] for k in present_keys(INPUT_FREES, shared))
            + tuple(size[k] for k in present_keys(INPUT_PUTS, shared)),
            W=tuple(-size[k] for k in present_keys(WEIGHT_FREES, shared)),
            B=tuple(-size[k] for k in forward),
        )

    @classmethod
    def flops(cls, dims: Dims) -> Flops:
        """GEMMs of one sequence on one rank, 2 FLOPs per multiply-add, the same in each phase
        (``Y = XW``, ``dX = dY W^T``, ``dW = X^T dY``): the router over every token, the routed
        experts over the rank's rows (``rank_rows_per_sequence``: only the k chosen experts
        compute, times the router imbalance on the busiest of several expert ranks, or the
        padded capacity), the shared experts over every token."""
        config = dims.config
        gated = 2 if config.mlp == "swiglu" else 1
        tokens = dims.local_seq  # s / c under context parallelism
        router = 2.0 * tokens * dims.h * config.experts
        per_row = 2.0 * dims.h * (gated + 1) * dims.local_expert_ffn
        routed = rank_rows_per_sequence(dims) * per_row
        shared = 2.0 * tokens * dims.h * (gated + 1) * dims.local_shared_ffn
        mac = router + routed + shared
        return Flops(F=mac, I=mac, W=mac)

    @classmethod
    def expert_param_count(cls, dims: Dims) -> int:
        """Routed-expert parameters one rank holds: ``E / e`` experts, inner width over ``t``.
        Their gradients and optimizer state are sharded over the expert data-parallel group,
        not the whole data-parallel group (``simulator.run.rank_memory``)."""
        config = dims.config
        gated = 2 if config.mlp == "swiglu" else 1
        f = dims.local_expert_ffn
        per_expert = dims.h * gated * f + f * dims.h
        if config.bias:
            per_expert += gated * f + dims.h
        return dims.local_experts * per_expert

    @classmethod
    def param_count(cls, dims: Dims) -> int:
        """Router (replicated), this rank's routed experts and the shared experts."""
        config = dims.config
        gated = 2 if config.mlp == "swiglu" else 1
        fs = dims.local_shared_ffn
        shared = dims.h * gated * fs + fs * dims.h if fs else 0
        if fs and config.bias:
            shared += gated * fs + dims.h
        return dims.h * config.experts + cls.expert_param_count(dims) + shared
