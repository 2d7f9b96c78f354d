"""The parallel layouts ``advise`` tries: which tensor, context and expert degrees a request and
its model allow, and the model as one rank of such a layout holds it.

A degree is kept only if the model splits by it (heads, kv heads, FFN, vocabulary; the sequence
into ``2c`` chunks; the routed experts), so every configuration ``enumeration`` builds from
these can be planned; the tensor and context groups stay within a node.
"""

from __future__ import annotations

import math
from dataclasses import replace

from simulator.analytic.advise.space import Request
from simulator.errors import PebbleError
from simulator.model.layout import Layout
from simulator.model.transformer.spec import TransformerSpec
from simulator.numbers import MAX_TP


def divisors(n: int) -> list[int]:
    """Every divisor of ``n``, ascending (trial division up to its square root)."""
    small = [k for k in range(1, math.isqrt(n) + 1) if n % k == 0]
    return small + [n // k for k in reversed(small) if k * k != n]


def tensor_degrees(request: Request) -> list[int]:
    """Tensor-parallel degrees that stay within a node and divide the model (heads, kv heads,
    FFN, vocabulary)."""
    return sorted({layer.tensor for layer in layer_degrees(request)})


def context_degrees(request: Request, tp: int) -> list[int]:
    """Context-parallel degrees to try beside ``tp``: the one fixed by ``--cp``, else powers of
    two with ``tp * c`` within a node (the K/V exchange runs on every attention layer, so it
    wants the node's links, as Megatron Core places the context group next to the tensor one)."""
    if request.context is not None:
        return [request.context]
    node = request.hardware.gpus_per_node
    out, c = [], 1
    while tp * c <= node and c <= MAX_TP:
        out.append(c)
        c *= 2
    return out


def layer_degrees(request: Request) -> list[Layout]:
    """Layer layouts (``Layout.for_layers``: tensor with sequence parallelism, context and its
    K/V exchange; expert 1, ``expert_degrees`` adds it) whose devices divide the GPUs, whose
    tensor group stays within a node and that the model can be split by (heads, kv heads, FFN,
    vocabulary; the sequence into ``2c`` chunks; attention that can exchange K/V)."""
    node = request.hardware.gpus_per_node
    out = []
    for t in divisors(request.gpus):
        if t > node or node % t or request.tensor not in (None, t):
            continue
        for c in context_degrees(request, t):
            if request.gpus % (t * c):
                continue
            try:
                layer = Layout(
                    tensor=t,
                    sequence_parallel=t > 1,
                    context=c,
                    cp_comm=request.cp_comm if c > 1 else "ring",
                )
                sharded(request.spec, layer)
            except PebbleError:
                continue
            out.append(layer)
    return out


def expert_degrees(request: Request, layer: Layout, dp: int) -> list[Layout]:
    """``layer`` with each expert-parallel degree for a mixture of experts: those dividing its
    context ranks times ``dp`` (the ranks it reuses) and the routed experts (the one fixed by
    ``--ep``); ``layer`` alone (e1) for a dense model."""
    config = request.spec.config
    if not getattr(config, "is_moe", False):
        return [layer] if request.expert in (None, 1) else []
    out = []
    for e in divisors(math.gcd(dp * layer.context, config.experts)):
        if e > MAX_TP or request.expert not in (None, e):
            continue
        try:
            sharded(request.spec, replace(layer, expert=e))
        except PebbleError:
            continue
        out.append(replace(layer, expert=e))
    return out


def sharded(spec: TransformerSpec, layer: Layout) -> TransformerSpec:
    """The spec held by one rank of the layer layout ``layer`` (only the degrees that shard a
    layer, ``Layout.for_layers``, so that the tables cached per layout are not made again for
    every pipeline or data degree; tensor parallelism with sequence parallelism, as advise
    always pairs them)."""
    if layer != layer.for_layers():
        raise ValueError(f"advise's tables take a layer layout alone, got {layer}.")
    if layer.sequence_parallel != (layer.tensor > 1):
        raise ValueError(f"advise pairs sp with every tensor degree above 1, got {layer}.")
    return replace(spec, layout=layer)


def blocks_of(spec: TransformerSpec) -> int:
    """Partition units (embedding, each transformer block, head): the most stages possible."""
    return len({info.block for info in spec.layers()})
