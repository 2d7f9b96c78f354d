"""Where a run's schedule comes from: a built-in family by name, or a PyTorch-style CSV file.

Why here: every command and the library take a schedule the same way, and a schedule too big to
hold is refused before anything is built (``limits``).
"""

from __future__ import annotations

from pathlib import Path

from schedules.actions import Schedule
from schedules.csv_io import read_csv
from schedules.registry import SCHEDULES, build_schedule, canonical_name
from simulator.errors import PebbleError
from simulator.run.limits import check_actions, check_schedule_size, check_table_size


def make_schedule(
    name: str | None,
    ranks: int | None,
    microbatches: int,
    chunks: int | None = None,
    schedule_file: str | None = None,
    steps: int = 1,
) -> Schedule:
    """A built-in schedule by name, or one read from a PyTorch-style CSV file; refused up
    front when ``steps`` of it would not fit in memory (``limits``). ``auto`` is not a family:
    ``simulator.analytic.auto_plan`` builds it from a plan's costs."""
    if schedule_file:
        if name:
            raise PebbleError("give either --schedule or --schedule-file, not both.")
        if chunks is not None:
            raise PebbleError(
                "--chunks does not apply to --schedule-file: the CSV's rows say which stages "
                "each rank holds."
            )
        schedule = read_csv(Path(schedule_file), microbatches, name=schedule_file)
        if ranks is not None and ranks != schedule.num_ranks:
            raise PebbleError(
                f"{schedule_file} has {schedule.num_ranks} ranks, but --ranks says {ranks}."
            )
        check_table_size(schedule.num_stages, microbatches)
        check_actions(len(schedule) * steps)
        return schedule
    if not name:
        raise PebbleError("name a schedule with --schedule or give --schedule-file.")
    if ranks is None:
        raise PebbleError("--ranks is required with --schedule.")
    family = SCHEDULES[canonical_name(name)]
    check_schedule_size(ranks, chunks or family.default_chunks, microbatches, steps)
    return build_schedule(name, ranks, microbatches, chunks)
