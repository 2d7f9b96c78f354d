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
    return sorted({t for t, _ in layer_degrees(request)})


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


def layer_degrees(request: Request) -> list[tuple[int, int]]:
    """(tensor, context) pairs that divide the GPUs, keep the tensor group within a node and
    that the model can be split by (heads, kv heads, FFN, vocabulary; the sequence into
    ``2c`` chunks; attention that can exchange K/V)."""
    node = request.hardware.gpus_per_node
    out = []
    for t in divisors(request.gpus):
        if t > node or node % t or request.tensor not in (None, t):
            continue
        for c in context_degrees(request, t):
            if request.gpus % (t * c):
                continue
            try:
                sharded(request.spec, t, c, cp_comm=request.cp_comm)
            except PebbleError:
                continue
            out.append((t, c))
    return out


def expert_degrees(request: Request, tp: int, cp: int, dp: int) -> list[int]:
    """Expert-parallel degrees for a mixture of experts: those dividing ``dp * cp`` (the ranks
    it reuses) and the routed experts (the one fixed by ``--ep``); 1 for a dense model."""
    config = request.spec.config
    if not getattr(config, "is_moe", False):
        return [1] if request.expert in (None, 1) else []
    out = []
    for e in divisors(math.gcd(dp * cp, config.experts)):
        if e > MAX_TP or request.expert not in (None, e):
            continue
        try:
            sharded(request.spec, tp, cp, e, request.cp_comm)
        except PebbleError:
            continue
        out.append(e)
    return out


def sharded(
    spec: TransformerSpec, tp: int, cp: int = 1, ep: int = 1, cp_comm: str = "ring"
) -> TransformerSpec:
    """The spec held by one rank of tensor degree ``tp`` (sequence parallel with it), context
    degree ``cp`` and expert degree ``ep``."""
    layout = Layout(
        tensor=tp,
        sequence_parallel=tp > 1,
        context=cp,
        cp_comm=cp_comm if cp > 1 else "ring",
        expert=ep,
    )
    return replace(spec, layout=layout)


def blocks_of(spec: TransformerSpec) -> int:
    """Partition units (embedding, each transformer block, head): the most stages possible."""
    return len({info.block for info in spec.layers()})
