"""When nothing fits: which floor stops every configuration, and what would lift it.

Why: "the least any needs is 133 GiB; shrink the batch" cannot help when the floor is static
memory (weights, gradients, optimizer state), which no batch, microbatch, schedule or recompute
policy changes. This module finds the floor from the search's fates and measures the remedies
that can be measured with the bounds alone: how many more GPUs bring the static memory under the
limit, what full sharding (ZeRO-3) would leave, whether recompute was already searched and
whether the headroom alone is in the way. It prints nothing; ``simulator.cli.advise_reasons``
words it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from simulator.analytic.advise.enumeration import candidates
from simulator.analytic.advise.families import family_traits
from simulator.analytic.advise.fates import MEMORY_VERDICTS, STATIC
from simulator.analytic.advise.memory_bounds import static_bytes
from simulator.analytic.advise.placement import stage_to_rank
from simulator.analytic.advise.search import SearchResult
from simulator.analytic.advise.space import Candidate, Request
from simulator.analytic.advise.stage_tables import table_of
from simulator.analytic.costs import Hardware
from simulator.errors import PebbleError

GROWTH = (2, 4, 8, 16)  # multiples of the GPUs tried for "more GPUs"


@dataclass(frozen=True)
class NoFit:
    """Why nothing fits ``limit`` bytes per GPU, and what would help (None: not measured)."""

    static_floor: bool  # every configuration's static memory alone is over the limit
    least_static: int  # the smallest static memory of any configuration's fullest rank
    least_static_label: str
    least_memory: int  # the smallest memory bound of any configuration
    least_memory_label: str
    more_gpus: tuple[int, int] | None  # (GPUs, their least static memory) that is under it
    zero3_static: int | None  # the least-static layout's static memory fully sharded (ZeRO-3)
    full_recompute_searched: bool
    within_headroom: bool  # the least memory bound fits the device without the reserve


def diagnose(request: Request, result: SearchResult, hardware: Hardware) -> NoFit:
    """The floor and the remedies, from the fates of a search in which nothing fit."""
    memory = [f for f in result.fates if f.verdict in MEMORY_VERDICTS]
    if not memory:
        raise PebbleError("no configuration was dropped for memory; nothing to diagnose.")
    lowest_static = min(memory, key=lambda f: (f.static, f.candidate.label()))
    lowest = min(memory, key=lambda f: (f.memory_bound, f.candidate.label()))
    static_floor = all(f.verdict == STATIC for f in memory) and len(memory) == result.considered
    return NoFit(
        static_floor=static_floor,
        least_static=lowest_static.static,
        least_static_label=lowest_static.candidate.layout.to_text(),
        least_memory=lowest.memory_bound,
        least_memory_label=lowest.candidate.label(),
        more_gpus=_more_gpus(request, hardware) if static_floor else None,
        zero3_static=_zero3(request, lowest_static.candidate, hardware),
        full_recompute_searched="full" in request.recompute,
        within_headroom=lowest.memory_bound <= request.memory_limit + request.headroom,
    )


def least_static(request: Request, hardware: Hardware) -> int | None:
    """The smallest static memory (fullest rank) over ``request``'s configurations; None when it
    has none. Static memory does not depend on the schedule's order or the recompute policy, so
    one family and one policy suffice."""
    lean = replace(request, families=(request.families[0],), recompute=("none",))
    traits = family_traits(lean.families[0])
    least = None
    try:
        for c in candidates(lean):
            table = table_of(lean.spec, c, hardware, "none")
            static = max(static_bytes(c, traits, table))
            least = static if least is None else min(least, static)
    except PebbleError:
        return None
    return least


def _more_gpus(request: Request, hardware: Hardware) -> tuple[int, int] | None:
    """The fewest GPUs, a multiple of the request's, whose least static memory is under the
    limit: (GPUs, that memory)."""
    for k in GROWTH:
        gpus = request.gpus * k
        try:
            grown = replace(request, gpus=gpus)
        except PebbleError:
            continue
        least = least_static(grown, hardware)
        if least is not None and least <= request.memory_limit:
            return gpus, least
    return None


def _zero3(request: Request, c: Candidate, hardware: Hardware) -> int | None:
    """The fullest rank's parameters, gradients and optimizer state of ``c`` all split over its
    ``d`` replicas (ZeRO-3, before its gathered layers and buckets); None with one replica."""
    if c.dp == 1:
        return None
    table = table_of(request.spec, c, hardware)
    owner = stage_to_rank(family_traits(c.schedule), c.pp, c.chunks)
    per_rank = [0] * c.pp
    for stage, rank in enumerate(owner):
        per_rank[rank] += table.params[stage]
    return -(-max(per_rank) * table.recipe.total // c.dp)
