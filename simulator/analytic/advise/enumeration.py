"""The walk over ``advise``'s search space: every configuration of a request, in a fixed order,
built from the layouts (``degrees``), the microbatchings of the batch, the schedule families
(``families``) and the memory policies (``policies``) that suit each; or one ``PebbleError``
sentence saying why there is none.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace

from simulator.analytic.advise.degrees import blocks_of, divisors, expert_degrees, layer_degrees
from simulator.analytic.advise.families import family_traits, schedule_choices
from simulator.analytic.advise.policies import distinct_policies, offload_choices
from simulator.analytic.advise.space import Candidate, Request
from simulator.errors import PebbleError
from simulator.numbers import MAX_DP


def candidates(request: Request) -> Iterator[Candidate]:
    """Every configuration of ``request``, tensor- then pipeline-major, each offload policy right
    after the same configuration without offload; raises when none is possible."""
    traits = [family_traits(name) for name in request.families]
    blocks = blocks_of(request.spec)
    found = False
    for base in layer_degrees(request):
        for p in divisors(request.gpus // base.devices):
            d = request.gpus // (base.devices * p)
            if p > blocks or d > MAX_DP or request.global_batch % d:
                continue
            if request.data not in (None, d):
                continue
            zero = request.distributed_optimizer and replace(base, data=d).gradient_replicas > 1
            stages = request.shardings if zero and request.shardings else (request.sharding,)
            for layer in expert_degrees(request, base, d):
                for size in divisors(request.global_batch // d):
                    m = request.global_batch // (d * size)
                    for name, v in schedule_choices(traits, p, m, request.max_chunks, blocks):
                        policies = distinct_policies(request.spec, layer, p * v, request.recompute)
                        offloads = offload_choices(request, name, p)
                        for policy in policies:
                            for z in stages:
                                for off in offloads:
                                    found = True
                                    yield Candidate(
                                        name,
                                        p,
                                        layer.tensor,
                                        d,
                                        m,
                                        size,
                                        v,
                                        policy,
                                        zero,
                                        sharding=z,
                                        cp=layer.context,
                                        cp_comm=request.cp_comm,
                                        ep=layer.expert,
                                        offload=off,
                                    )
    if not found and "none" not in request.offload:
        raise PebbleError(
            f"advise --offload {','.join(request.offload)} searches pipelines of two or more "
            f"ranks with a named schedule, and {request.gpus} GPUs with this model and batch "
            "have none; add none to the list."
        )
    if not found:
        given = [
            (name, value)
            for name, value in (
                ("--tp", request.tensor),
                ("--cp", request.context),
                ("--ep", request.expert),
                ("--dp", request.data),
            )
            if value is not None
        ]
        fixed = "".join(f" with {name} {value}" for name, value in given)
        per_stage = [(name, value) for name, value in given if name != "--ep"]  # e is within d x c
        fixed_product = math.prod(value for _, value in per_stage)
        if request.gpus % fixed_product:
            named = " and ".join(f"{name} {value}" for name, value in per_stage)
            raise PebbleError(
                f"{named} use{'s' if len(per_stage) == 1 else ''} {fixed_product} GPUs per "
                f"pipeline stage, which does not divide the {request.gpus} GPUs; choose degrees "
                "whose product divides it."
            )
        raise PebbleError(
            f"no split of {request.gpus} GPUs into pipeline x tensor x data degrees{fixed} suits "
            f"a global batch of {request.global_batch} sequences and this model; the "
            "data-parallel degree must divide the batch."
        )
