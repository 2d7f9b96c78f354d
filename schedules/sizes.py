"""Size checks shared by the generators and the registry: one clear sentence per mistake.

Why a module of its own: every generator can be called directly (tests, notebooks), so each
checks its own sizes; the registry runs the same checks before it dispatches, and both must say
the same thing.
"""

from __future__ import annotations

from schedules.actions import Schedule
from schedules.errors import ScheduleError


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_counts(family: str, num_ranks: object, num_microbatches: object, chunks: object) -> None:
    """Ranks, microbatches and (if given) chunks must be positive integers."""
    for label, value in (("ranks", num_ranks), ("microbatches", num_microbatches)):
        if not _is_count(value):
            raise ScheduleError(
                f"{family} needs a positive whole number of {label}, got {value!r}."
            )
    if chunks is not None and not _is_count(chunks):
        raise ScheduleError(
            f"{family} needs a positive whole number of chunks (stages per rank), got {chunks!r}."
        )


def one_chunk(family: str, num_ranks: int, num_microbatches: int, chunks: int | None) -> None:
    """Families that put exactly one stage on each rank accept chunks None or 1."""
    check_counts(family, num_ranks, num_microbatches, chunks)
    if chunks not in (None, 1):
        raise ScheduleError(
            f"{family} puts one stage on each rank, so chunks must be 1 (got {chunks})."
        )


def two_chunks(family: str, num_ranks: int, num_microbatches: int, chunks: int | None) -> None:
    """V-shaped families hold exactly two stages per rank; None means 2."""
    check_counts(family, num_ranks, num_microbatches, chunks)
    if chunks not in (None, 2):
        raise ScheduleError(
            f"{family} holds exactly two stages per rank in a V, so chunks must be 2 "
            f"(got {chunks})."
        )


def check_layout(schedule: Schedule) -> None:
    """Ranks, microbatches and the stage -> rank mapping make sense before any action is read."""
    num_ranks = schedule.num_ranks
    m = schedule.num_microbatches
    if num_ranks == 0:
        raise ScheduleError(f"schedule {schedule.name!r} has no ranks.")
    if not isinstance(m, int) or isinstance(m, bool) or m < 1:
        raise ScheduleError(
            f"schedule {schedule.name!r} needs a positive number of microbatches, got {m!r}."
        )
    if not schedule.stage_to_rank:
        raise ScheduleError(f"schedule {schedule.name!r} maps no stages to ranks.")
    owned = [0] * num_ranks
    for stage_index, rank in enumerate(schedule.stage_to_rank):
        if not isinstance(rank, int) or not 0 <= rank < num_ranks:
            raise ScheduleError(
                f"stage {stage_index} is mapped to rank {rank!r}, but the schedule has "
                f"{num_ranks} ranks (0..{num_ranks - 1})."
            )
        owned[rank] += 1
    for rank, count in enumerate(owned):
        if count == 0:
            raise ScheduleError(f"rank {rank} owns no stage; every rank needs at least one.")
