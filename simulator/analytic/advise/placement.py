"""Which rank runs which stage under a schedule family's layout: what the time and memory
bounds walk rank by rank, and what ``no_fit`` counts a rank's static memory over.

A family lays its stages in a loop (stage s on rank s mod p) or a V (down the ranks and back up);
auto takes the loop with one chunk and the V with two. Each placement is worked out once.
"""

from __future__ import annotations

from functools import lru_cache

from schedules.actions import loop_stage_to_rank, v_stage_to_rank
from simulator.analytic.advise.families import FamilyTraits


def stage_to_rank(traits: FamilyTraits, p: int, v: int) -> tuple[int, ...]:
    v_layout = traits.layout == "v" or (traits.layout == "chunks" and v == 2)
    return _placement(v_layout, p, v)[0]


def stages_of_ranks(traits: FamilyTraits, p: int, v: int) -> tuple[tuple[int, ...], ...]:
    """Per rank, its stages in order (``stage_to_rank`` turned around)."""
    v_layout = traits.layout == "v" or (traits.layout == "chunks" and v == 2)
    return _placement(v_layout, p, v)[1]


@lru_cache(maxsize=1024)
def _placement(v_layout: bool, p: int, v: int):
    owner = tuple(v_stage_to_rank(p, v) if v_layout else loop_stage_to_rank(p, v))
    ranks: list[list[int]] = [[] for _ in range(p)]
    for s, r in enumerate(owner):
        ranks[r].append(s)
    return owner, tuple(tuple(mine) for mine in ranks)
