"""The schedule families ``advise`` tries: how each lays stages on ranks and runs its backward
(what the bounds need to know of it), and which (family, chunks) pairs suit a pipeline of p
ranks running m microbatches (a pair the family's own size rule would refuse is never tried).
"""

from __future__ import annotations

from dataclasses import dataclass

from schedules.actions import v_stage_to_rank
from schedules.dependencies import PIPELINE_RULE, KindRule
from schedules.registry import SCHEDULES, build_schedule, canonical_name
from simulator.analytic.advise.space import AUTO


@dataclass(frozen=True)
class FamilyTraits:
    """How a schedule family lays stages on ranks and runs the backward, found by building a
    tiny instance (2 ranks, 4 microbatches) once."""

    name: str
    layout: str  # "loop" (stage s on rank s mod p), "v" (down the ranks and back up) or "chunks"
    # (auto: loop with one chunk, V with two)
    split: bool  # any I or W action (a split backward): no B chain after a rank's last action
    fixed_chunks: bool
    default_chunks: int


def family_traits(name: str) -> FamilyTraits:
    if name == AUTO:  # a split backward (I and W), in a loop or a V: traits that bound any
        return FamilyTraits(AUTO, "chunks", True, False, 1)
    family = SCHEDULES[canonical_name(name)]
    probe = build_schedule(family.name, 2, 4, None)
    v = probe.chunks
    layout = "v" if v == 2 and probe.stage_to_rank == v_stage_to_rank(2, 2) else "loop"
    split = any(
        _splits_the_backward(PIPELINE_RULE.rule(a.kind)) for acts in probe.actions for a in acts
    )
    return FamilyTraits(family.name, layout, split, family.fixed_chunks, family.default_chunks)


def _splits_the_backward(rule: KindRule) -> bool:
    """A backward that does only one of the input and the weight gradient (``I`` or ``W``)."""
    return rule.is_backward and not (rule.sends_gradient and rule.completes_weight_gradient)


def schedule_choices(traits: FamilyTraits, p: int, m: int, max_chunks: int, blocks: int):
    """(family, chunks) pairs that suit p ranks and m microbatches."""
    names = {family.name for family in traits}
    for family in traits:
        if p == 1 and "1f1b" in names and family.name != "1f1b":
            continue  # one rank: every family is 1F1B or worse
        if family.name == AUTO:
            chunk_options = [1, 2]  # --layout loop, v
        elif family.fixed_chunks:
            chunk_options = [family.default_chunks]
        else:
            chunk_options = list(range(2, max_chunks + 1))
        for v in chunk_options:
            if p * v > blocks:
                continue
            if family.name == "interleaved-1f1b" and m % p:
                continue
            if family.name == "dualpipe-v" and m < 2 * p:
                continue
            yield family.name, v
