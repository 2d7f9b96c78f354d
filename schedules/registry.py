"""Every built-in schedule family by name: the one place the CLI, executors and tests look up.

Names are ours (``1f1b``, ``zb-h1``); PyTorch's ``torch.distributed.pipelining`` class names
(``GPipe``, ``1F1B``, ``Interleaved1F1B``, ``ZBVZeroBubble``, ``DualPipeV``, with or without the
``Schedule`` prefix) work too, in any case. PyTorch's ``InterleavedZeroBubble`` (ZB1P over
several chunks) is not an alias: no family here is that schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from schedules.actions import Schedule, ScheduleError
from schedules.dualpipe_v import dualpipe_v
from schedules.gpipe import gpipe
from schedules.interleaved import interleaved_1f1b
from schedules.naive import naive
from schedules.one_f_one_b import one_f_one_b
from schedules.sizes import check_counts
from schedules.zbv import zb_v
from schedules.zero_bubble import zb_h1, zb_h2

Generator = Callable[[int, int, int | None], Schedule]


@dataclass(frozen=True)
class ScheduleFamily:
    """A generator with what a user needs to choose it: a one-line description and its chunks.

    ``default_chunks`` is what ``chunks=None`` means; ``fixed_chunks`` says whether that is the
    only value the family accepts (one stage per rank, or a V of two).
    """

    name: str
    generator: Generator
    description: str
    default_chunks: int
    fixed_chunks: bool


SCHEDULES: dict[str, ScheduleFamily] = {
    family.name: family
    for family in (
        ScheduleFamily(
            "naive",
            naive,
            "one microbatch at a time through the whole pipe, no overlap (baseline)",
            1,
            True,
        ),
        ScheduleFamily(
            "gpipe", gpipe, "all forwards, then all backwards (Huang et al. 2019)", 1, True
        ),
        ScheduleFamily(
            "1f1b",
            one_f_one_b,
            "PipeDream-Flush: warmup forwards, then one backward per forward (Narayanan 2021)",
            1,
            True,
        ),
        ScheduleFamily(
            "interleaved-1f1b",
            interleaved_1f1b,
            "Megatron virtual stages: v loop-mapped chunks per rank, bubble / v; m % p == 0",
            2,
            False,
        ),
        ScheduleFamily(
            "zb-h1",
            zb_h1,
            "zero bubble H1: split backward, 1F1B memory, a third of its bubble (Qi 2024)",
            1,
            True,
        ),
        ScheduleFamily(
            "zb-h2",
            zb_h2,
            "zero bubble H2: up to 2p-1 in flight, no idle between a rank's first and last",
            1,
            True,
        ),
        ScheduleFamily(
            "zb-v",
            zb_v,
            "zero bubble V: two V-mapped chunks per rank, 1F1B memory, near-zero bubble",
            2,
            True,
        ),
        ScheduleFamily(
            "dualpipe-v",
            dualpipe_v,
            "DeepSeek DualPipeV: V layout, forward/backward pairs of the two chunks; m >= 2p",
            2,
            True,
        ),
    )
}

_ALIASES = {
    "gpipe": "gpipe",
    "1f1b": "1f1b",
    "pipedreamflush": "1f1b",
    "interleaved1f1b": "interleaved-1f1b",
    "interleaved": "interleaved-1f1b",
    "zbh1": "zb-h1",
    "zbh2": "zb-h2",
    "zbv": "zb-v",
    "zbvzerobubble": "zb-v",
    "dualpipev": "dualpipe-v",
}


def canonical_name(name: str) -> str:
    """Our name for ``name``: exact names, PyTorch class names and ``_``/case variants.

    Raises ``ScheduleError`` listing the known names if nothing matches.
    """
    key = str(name).strip().lower().replace("_", "-")
    if key in SCHEDULES:
        return key
    if key.startswith("schedule") and len(key) > len("schedule"):
        key = key[len("schedule") :].lstrip("-")
    if key in SCHEDULES:
        return key
    compact = key.replace("-", "")
    if compact in _ALIASES:
        return _ALIASES[compact]
    known = ", ".join(SCHEDULES)
    raise ScheduleError(f"unknown schedule {name!r}; known schedules are {known}.")


def list_schedules() -> list[tuple[str, str]]:
    """(name, one-line description) for every family, in the order a user should meet them."""
    return [(family.name, family.description) for family in SCHEDULES.values()]


def build_schedule(
    name: str, num_ranks: int, num_microbatches: int, chunks: int | None = None
) -> Schedule:
    """Generate the ``name`` schedule for ``num_ranks`` ranks and ``num_microbatches``.

    ``chunks`` (stages per rank) defaults to the family's; families with a fixed layout accept
    only that value. Every size is checked before anything is generated, so a mistake is one
    sentence: the counts here, the family's own rules (fixed chunks, m % p for interleaved,
    m >= 2p for DualPipeV) at the top of its generator.
    """
    family = SCHEDULES[canonical_name(name)]
    check_counts(family.name, num_ranks, num_microbatches, chunks)
    if chunks is None:
        chunks = family.default_chunks
    return family.generator(num_ranks, num_microbatches, chunks)
