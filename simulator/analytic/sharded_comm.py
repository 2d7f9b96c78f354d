"""Communication inside a stage's passes that overlaps its compute: sharded data parallelism's
(ZeRO-2/3, FSDP) parameter all-gathers and gradient reduce-scatters, and expert parallelism's
all-to-all, timed with the collective model of ``roofline_costs`` and added to the F, I and W
parts they lengthen.

Why here and not in the executor: the executor reduces gradients once a step (z0 all-reduce,
z1 reduce-scatter, then the optimizer's all-gather); a sharded stage does more, in every
microbatch's passes, overlapped with that pass's compute, so it is a cost of the pass.

**The overlap (``overlap_chain``).** A pass is its units in order (a unit is one block: a
transformer block, the embedding, the head; FSDP wraps one block a unit, and so does
``simulator.model.sharding``), each with its compute seconds, a *gather* that must end before
the unit runs and a *reduce* issued when the unit (its bucket) is done. One communication
stream runs them in the order they are issued; the compute stream runs the units:

* unit ``i``'s gather is issued when unit ``i - 1`` starts (``prefetch = 1``: one block ahead,
  what ``Sharding.prefetch`` counts in memory; FSDP's ``forward_prefetch`` / backward prefetch,
  DeepSpeed's ``stage3_prefetch_bucket_size``), the first one when the pass starts;
* a reduce is issued when its unit's compute ends; the pass ends when both streams are done
  (the last bucket's reduce-scatter is exposed: nothing of this pass is left to hide it);
* compute that runs while the stream is busy runs ``contention`` slower for the overlapped
  seconds (``HardwarePreset.comm_contention``: communication kernels take SMs and HBM from the
  GEMMs beside them).

So the pass never takes longer than its compute plus all its communication (serial), and
never less than either. With equal units of compute ``c`` and gathers ``g <= c`` and no
contention a forward exposes one gather, ``g``: the rest hide.

**What runs where (ZeRO: Rajbhandari et al. 2020, section 7.2; torchtitan / FSDP2).**

=====  ======================================  ==========================================
stage  in each microbatch's passes             once a step (executor, optimizer)
=====  ======================================  ==========================================
z0     nothing                                 all-reduce of the gradients
z1     nothing                                 reduce-scatter, then all-gather the weights
z2     W: reduce-scatter each gradient bucket  all-gather the weights after the optimizer
z3     F: all-gather each block's weights,     nothing (each pass gathers what it needs)
       I: all-gather them again,
       W: reduce-scatter each bucket
=====  ======================================  ==========================================

ZeRO's volumes: z1 and z2 move 2 Psi per step like plain data parallelism, z3 3 Psi (section
7.2.1-7.2.2); with gradients sharded there is no full gradient buffer to accumulate
microbatches in (``simulator.model.sharding`` holds one bucket), so z2 and z3 reduce-scatter in
every microbatch's backward, as DeepSpeed's ZeRO-2 does at every micro-step, and z3 gathers in
every forward and backward (FSDP's ``reshard_after_forward=True``). Gradients are reduced in the
recipe's gradient bytes, weights gathered in its weight bytes, each over its group's link: the
dense weights over the ``d c`` replicas, the routed experts over the ``d c / e`` expert
replicas. A weight-backward (``W``) needs no weight, so z3 gathers in ``F`` and ``I`` only.

**Expert parallelism (``all_to_all_seconds``).** Megatron Core's all-to-all token dispatcher
(``MoEAlltoAllTokenDispatcher``) dispatches a MoE block's tokens to their experts and combines
the outputs in its forward, and the backward does both again (``expert_parallel``); by default
the exchange runs on the compute stream, exposed (``EP_OVERLAP = 0``; DeepSeek-V3 hides it with
DualPipe's overlapped forward-backward chunks, DeepSeek-AI 2024, arXiv 2412.19437, section
3.2.1, which a schedule would model, not this fraction). An all-to-all over ``e`` ranks runs as
``e - 1`` pairwise exchanges (Thakur, Rabenseifner and Gropp 2005, the pairwise-exchange
algorithm; NCCL issues the ``e - 1`` sends and receives as one group): ``(e - 1)`` latencies
plus the bytes the busiest rank receives (``router_imbalance`` times the mean, dropless) over
the bus bandwidth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from simulator.errors import PebbleError

EP_OVERLAP = 0.0
"""Share of expert parallelism's all-to-all hidden under compute: 0, Megatron Core's default
(the dispatcher's all-to-all runs in the compute stream between the router and the experts)."""


@dataclass(frozen=True)
class Unit:
    """One block of a pass: its compute seconds, the seconds of the gather it needs first and
    of the reduce it issues when done (0: none)."""

    compute: float
    gather: float = 0.0
    reduce: float = 0.0
    network: float = 0.0  # of ``compute``: blocking transfers on the node's network link


def overlap_chain(units: Sequence[Unit], contention: float = 0.0, shared: bool = False) -> float:
    """Seconds a pass of ``units`` takes with its gathers prefetched one unit ahead and its
    reduces issued behind, on one communication stream (module docstring); compute overlapped
    with communication runs ``contention`` slower for the overlapped seconds. With ``shared``
    (the stream's collectives cross the node's network link) a unit's own blocking network
    transfers (``Unit.network``: a context-parallel all-gather, an expert all-to-all) share
    that link with the stream: while both run each moves at half the rate, so both are longer
    by the seconds they overlap (up to the unit's transfer)."""
    if not 0.0 <= contention <= 1.0:
        raise PebbleError(f"the contention factor is a fraction in [0, 1], got {contention!r}.")
    if any(u.compute < 0 or u.gather < 0 or u.reduce < 0 for u in units):
        raise PebbleError("a pass's compute and communication seconds are >= 0.")
    busy: list[tuple[float, float]] = []  # the stream's transfers, in issue order
    stream = 0.0  # when the stream is free
    clock = 0.0  # when the compute stream is free
    gathered = [0.0] * len(units)
    if units:
        stream = units[0].gather
        busy.append((0.0, stream))
        gathered[0] = stream
    for i, unit in enumerate(units):
        start = max(clock, gathered[i])
        if i + 1 < len(units) and units[i + 1].gather > 0:  # prefetch the next block
            begin = max(stream, start)
            stream = begin + units[i + 1].gather
            busy.append((begin, stream))
            gathered[i + 1] = stream
        elif i + 1 < len(units):
            gathered[i + 1] = 0.0
        overlapped = _overlap(busy, start, start + unit.compute)
        both = min(unit.network, _overlap(busy, start, start + unit.network)) if shared else 0.0
        clock = start + unit.compute + contention * (overlapped - both) + both
        if both > 0:  # the stream's transfer in flight lost the same seconds of the link
            a, b = busy[-1]
            busy[-1] = (a, b + both)
            stream = max(stream, b + both)
        if unit.reduce > 0:
            begin = max(stream, clock)
            stream = begin + unit.reduce
            busy.append((begin, stream))
    return max(clock, stream)


def _overlap(busy: list[tuple[float, float]], low: float, high: float) -> float:
    """Seconds of ``[low, high]`` during which the stream is busy."""
    return sum(max(0.0, min(high, b) - max(low, a)) for a, b in busy)


def exposed_seconds(units: Sequence[Unit], contention: float = 0.0, shared: bool = False) -> float:
    """What the pass's communication adds to its compute: ``overlap_chain`` less the compute."""
    return max(0.0, overlap_chain(units, contention, shared) - sum(u.compute for u in units))


def buckets(params: Sequence[int], bucket: int) -> list[int]:
    """Indices of the units (in backward order, sizes ``params``) after which a gradient bucket
    of at least ``bucket`` parameters is complete and reduce-scattered; the last unit always
    closes one (a block larger than the bucket is a bucket of its own)."""
    closes, held = [], 0
    for i, count in enumerate(params):
        held += count
        if held >= bucket or i == len(params) - 1:
            closes.append(i)
            held = 0
    return closes


def ring_seconds(nbytes: float, ranks: int, bandwidth: float, latency: float) -> float:
    """A ring reduce-scatter or all-gather of ``nbytes`` (the whole buffer) over ``ranks``:
    ``(n - 1)`` latencies and ``(n - 1) / n`` of the bytes over the bus bandwidth."""
    if ranks <= 1 or nbytes <= 0:
        return 0.0
    return (ranks - 1) * latency + (ranks - 1) / ranks * nbytes / bandwidth


def all_to_all_seconds(
    busiest_receive: float, ranks: int, bandwidth: float, latency: float
) -> float:
    """One all-to-all over ``ranks`` whose busiest rank receives ``busiest_receive`` bytes from
    the others: ``(n - 1)`` pairwise steps' latency plus those bytes over the bus bandwidth."""
    if ranks <= 1 or busiest_receive <= 0:
        return 0.0
    return (ranks - 1) * latency + busiest_receive / bandwidth
