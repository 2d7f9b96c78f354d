"""Communication of data parallelism under each sharding stage: the bytes one rank moves, per
block and per step, for the cost model to time.

Why apart from the timing: what moves is a property of the sharding stage and the precision
recipe alone; when it moves and how long it takes on which link is the cost model's
(``simulator.analytic``). These functions give the bytes and the moment of the step each
collective belongs to, nothing else.

Ring collectives over ``n`` ranks of a tensor of ``S`` bytes, whole (Thakur, Rabenseifner and
Gropp 2005, "Optimization of Collective Communication Operations in MPICH", section 4: the ring
all-gather and reduce-scatter move ``(n-1)/n S`` per rank, an all-reduce is the two in turn; the
bus-bandwidth factors of NVIDIA's nccl-tests ``doc/PERFORMANCE.md`` are the same):

==============  ==============
collective      bytes per rank
==============  ==============
all-gather      (n-1)/n S
reduce-scatter  (n-1)/n S
all-reduce      2 (n-1)/n S
==============  ==============

Per block (the unit gathered and reduced at once, ``rank_memory.stage_units``) of ``P``
parameters, ``G = P x`` the recipe's gradient bytes (Megatron's ``bf16``
accumulates and reduces fp32 main gradients, 4) and ``W = P x`` its weight bytes:

* **z0** (plain data parallelism): the gradients accumulate over the ``m`` microbatches and are
  all-reduced once per step, ``2 (n-1)/n G``.
* **z1** (the distributed optimizer): one reduce-scatter of the gradients per step, ``(n-1)/n
  G``, and after the optimizer step an all-gather of the updated weights, ``(n-1)/n W``: the
  same bytes as z0's all-reduce (ZeRO section 7.2.1; Megatron-LM
  ``docs/user-guide/features/dist_optimizer.md``).
* **z2**: a rank keeps only its gradient shard, so it cannot accumulate whole gradients over
  microbatches: the reduce-scatter runs after every microbatch's backward (DeepSpeed's ZeRO-2
  reduces at every micro-step), ``m (n-1)/n G``, then the weights' all-gather once.
* **z3** (FSDP): before every microbatch's forward of the block its weights are all-gathered,
  and again before its backward (they were freed in between), ``2 m (n-1)/n W``; its gradients
  are reduce-scattered after every backward, ``m (n-1)/n G``; no all-gather after the step (each
  rank updates the shard it keeps).

At ``m = 1`` with 2-byte weights and gradients (ZeRO's recipe) and ``n`` large these are ZeRO's
section 7.2 volumes: ``2 Psi`` for z0, z1 and z2, ``3 Psi`` (1.5x) for z3
(``tests/simulator/test_sharding.py``). The routed experts of a mixture of experts move over
their own, smaller group (``Sharding.expert_replicas``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from simulator.model.precision import Precision
from simulator.model.sharding import Sharding


def ring_factor(ranks: int) -> float:
    """``(n-1)/n``: the share of a whole tensor each of ``ranks`` ranks sends in a ring
    all-gather or reduce-scatter (0 for one rank: nothing moves)."""
    return (ranks - 1) / ranks if ranks > 1 else 0.0


def all_gather_bytes(size: float, ranks: int) -> float:
    """Bytes one rank sends (and receives) to gather a tensor of ``size`` bytes whole."""
    return ring_factor(ranks) * size


def reduce_scatter_bytes(size: float, ranks: int) -> float:
    """Bytes one rank sends (and receives) to reduce a ``size``-byte tensor into shards."""
    return ring_factor(ranks) * size


def all_reduce_bytes(size: float, ranks: int) -> float:
    """Bytes one rank sends (and receives) to all-reduce a ``size``-byte tensor: a
    reduce-scatter, then an all-gather."""
    return 2 * ring_factor(ranks) * size


@dataclass(frozen=True)
class BlockTraffic:
    """What one rank sends for one block's data parallelism (it receives as much), by the moment
    of the step it belongs to: ``forward_gather`` and ``backward_gather`` before every
    microbatch's forward and backward of the block (z3), ``gradient`` per gradient reduction
    (an ``all-reduce`` or a ``reduce-scatter``, ``collective``), which runs after every
    microbatch's backward when ``per_microbatch`` (z2, z3) or once the step's last backward of
    the block is done, and ``weight_gather`` once after the optimizer step (z1, z2)."""

    forward_gather: float
    backward_gather: float
    gradient: float
    collective: str
    per_microbatch: bool
    weight_gather: float

    def per_step(self, microbatches: int) -> float:
        """Every byte the block's data parallelism moves in a step of ``microbatches``."""
        reductions = microbatches if self.per_microbatch else 1
        gathers = microbatches * (self.forward_gather + self.backward_gather)
        return gathers + reductions * self.gradient + self.weight_gather


def block_traffic(
    params: int, recipe: Precision, sharding: Sharding, experts: int = 0
) -> BlockTraffic:
    """One block of ``params`` parameters on one rank (``experts`` of them routed experts,
    reduced over the expert group), under ``sharding`` and the precision ``recipe`` (see the
    module docstring for each stage's formula)."""
    stage = sharding.stage
    parts = ((params - experts, sharding.replicas), (experts, sharding.expert_replicas))
    weights = [(count * recipe.weights, n) for count, n in parts]
    gradients = [(count * recipe.gradients, n) for count, n in parts]
    gather = sum(all_gather_bytes(size, n) for size, n in weights) if stage >= 3 else 0.0
    if stage == 0:
        reduce = sum(all_reduce_bytes(size, n) for size, n in gradients)
    else:
        reduce = sum(reduce_scatter_bytes(size, n) for size, n in gradients)
    return BlockTraffic(
        forward_gather=gather,
        backward_gather=gather,
        gradient=reduce,
        collective="all-reduce" if stage == 0 else "reduce-scatter",
        per_microbatch=stage >= 2,
        weight_gather=(
            sum(all_gather_bytes(size, n) for size, n in weights) if stage in (1, 2) else 0.0
        ),
    )


def step_traffic(
    blocks: Iterable[tuple[int, int]], recipe: Precision, sharding: Sharding, microbatches: int
) -> float:
    """Bytes one rank sends for the data parallelism of its ``blocks`` (each ``(parameters,
    routed-expert parameters)``, ``rank_memory.stage_units``) in one step of ``microbatches``."""
    return sum(
        block_traffic(params, recipe, sharding, experts).per_step(microbatches)
        for params, experts in blocks
    )
