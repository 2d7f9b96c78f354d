"""The first half of ``advise``'s branch and bound: every configuration's closed-form memory and
time bounds, before anything is simulated.

Why in groups of one layer layout (``Candidate.layer``: its tensor, context and expert degrees):
a configuration's bounds read the stage tables of its layer layout (``stage_tables``, cached per
layout, split and recompute policy), so a group's configurations share most of their work.
Groups are independent, which lets the local workers (``local_pool``) bound them side by side;
merged back in enumeration order, the answer is the same as one process bounding them in turn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial

from simulator.analytic.advise.enumeration import candidates
from simulator.analytic.advise.families import family_traits
from simulator.analytic.advise.fates import ACTIVATIONS, STATIC, TOO_LARGE, Fate
from simulator.analytic.advise.memory_bounds import memory_bound, static_bytes, with_budget
from simulator.analytic.advise.space import Candidate, Request
from simulator.analytic.advise.stage_tables import memory_of, table_of
from simulator.analytic.advise.time_bounds import time_bound
from simulator.analytic.costs import Hardware
from simulator.model.layout import Layout

NEAR_MISS = 0.10  # over the limit by at most this share of it: a near miss worth listing
BOUND_REPORT_EVERY = 100  # candidates between progress reports while bounding in this process
Progress = Callable[[str, int, int, object], None]  # (phase, done, total, result)
Spread = Callable[[Callable, list], Iterator]  # (work, items): work(item) for each, any order


@dataclass(frozen=True)
class GroupBounds:
    """What bounding one group found: (enumeration index, time bound, candidate) of those that
    may fit, (enumeration index, fate) of those dropped, and the group's smallest memory bound."""

    kept: list[tuple[int, float, Candidate]]
    fates: list[tuple[int, Fate]]
    smallest: int | None
    over: int  # dropped by the memory bound
    large: int  # too many Timeline rows to simulate
    size: int  # configurations in the group


def bounded(
    request: Request,
    hardware: Hardware,
    progress: Progress | None = None,
    spread: Spread | None = None,
) -> tuple[list[tuple[float, Candidate]], dict]:
    """Every candidate's bounds: (time bound, candidate) for those that may fit, sorted, and
    counts {considered, pruned_memory, too_large, smallest_memory_bound, fates}. ``spread``
    bounds the groups elsewhere (local workers); by default this process bounds them."""
    everything = list(candidates(request))
    groups = _groups(everything)
    if spread is None:
        done = [0]

        def tick() -> None:
            done[0] += 1
            if progress is not None and done[0] % BOUND_REPORT_EVERY == 0:
                progress("bounds", done[0], len(everything), None)

        parts: Iterable[GroupBounds] = (
            bound_group(request, hardware, group, tick) for group in groups
        )
    else:
        parts = spread(partial(bound_group, request, hardware), groups)
    kept, fates, over, large, smallest, considered = [], [], 0, 0, None, 0
    for part in parts:
        kept += part.kept
        fates += part.fates
        over, large, considered = over + part.over, large + part.large, considered + part.size
        if part.smallest is not None:
            smallest = part.smallest if smallest is None else min(smallest, part.smallest)
        if progress is not None and spread is not None:
            progress("bounds", considered, len(everything), None)
    if progress is not None:
        progress("bounds", len(everything), len(everything), None)
    kept.sort(key=lambda item: (item[1], item[2].label()))
    fates.sort(key=lambda item: item[0])
    counts = {
        "considered": len(everything),
        "pruned_memory": over,
        "too_large": large,
        "smallest_memory_bound": smallest,
        "fates": [fate for _, fate in fates],
    }
    return [(bound, c) for _, bound, c in kept], counts


def _groups(everything: list[Candidate]) -> list[list[tuple[int, Candidate]]]:
    """The candidates by layer layout, each with its enumeration index, largest group first
    (so that spread work ends evenly)."""
    groups: dict[Layout, list[tuple[int, Candidate]]] = {}
    for index, c in enumerate(everything):
        groups.setdefault(c.layer, []).append((index, c))
    return sorted(groups.values(), key=len, reverse=True)


def bound_group(
    request: Request,
    hardware: Hardware,
    group: list[tuple[int, Candidate]],
    tick: Callable[[], None] | None = None,
) -> GroupBounds:
    """The bounds of one group's candidates (see ``bounded``); ``tick`` after each."""
    traits = {name: family_traits(name) for name in request.families}
    traits = {t.name: t for t in traits.values()}
    layers = len(request.spec.layers())
    kept, fates, over, large, smallest = [], [], 0, 0, None
    times: dict[Candidate, float] = {}  # a configuration without offload: its time bound

    def near_time(c: Candidate, memory: int) -> float | None:
        """The time bound of a configuration over the limit by at most ``NEAR_MISS``: a
        near-miss candidate (the rest need none)."""
        if memory > request.memory_limit * (1 + NEAR_MISS):
            return None
        return time_bound(c, traits[c.schedule], table_of(request.spec, c, hardware), hardware)

    for index, c in group:
        if tick is not None:
            tick()
        memory_table = memory_of(request.spec, c)  # the times only for those that may fit
        memory = memory_bound(c, traits[c.schedule], memory_table)
        smallest = memory if smallest is None else min(smallest, memory)
        if memory > request.memory_limit:
            over += 1
            static = max(static_bytes(c, traits[c.schedule], memory_table))
            verdict = STATIC if static > request.memory_limit else ACTIVATIONS
            fates.append((index, Fate(c, verdict, memory, static, near_time(c, memory))))
            continue
        if c.rows(traits[c.schedule].split, layers) > request.max_rows:
            large += 1
            fates.append((index, Fate(c, TOO_LARGE, memory)))
            continue
        c = with_budget(c, traits[c.schedule], request.memory_limit)
        twin = c.without_offload()  # offload only delays: the same time bound as without it
        if twin not in times:
            table = table_of(request.spec, c, hardware)
            times[twin] = time_bound(c, traits[c.schedule], table, hardware)
        kept.append((index, times[twin], c))
    return GroupBounds(kept, fates, smallest, over, large, len(group))
