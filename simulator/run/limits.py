"""Resource bounds, checked before anything is allocated: a run that cannot fit is refused in
one sentence that names the limit and how to raise it.

Why estimates up front: a schedule of 10^11 actions would take hours to generate and tens of
gigabytes before any later check could see it. Every size is known from the arguments, so the
cost is too:

* the analytic path holds about ``BYTES_PER_ACTION`` bytes per simulated action at its peak
  (``benchmarks/simulate.py`` measures 1.05-1.1 KB per action for 0.5-1.6 M actions), so a
  run may simulate at most ``MEMORY_SHARE`` of this machine's memory worth of actions;
* the validator keeps a table per action kind over every (stage, microbatch) pair;
* Ray runs one actor per rank and replica.

``PEBBLESIM_MAX_ACTIONS`` and ``PEBBLESIM_MAX_ACTORS`` raise (or lower) the limits.
"""

from __future__ import annotations

import os

from schedules.dependencies import PIPELINE_RULE
from simulator.errors import PebbleError
from simulator.units import human_bytes

BYTES_PER_ACTION = 1200  # measured 1.05-1.1 KB at the peak, with a margin
MEMORY_SHARE = 0.5  # of the machine's physical memory
# the rule's kinds (four) x int64, times four for the validator's working copies
TABLE_BYTES_PER_PAIR = len(PIPELINE_RULE.kinds) * 8 * 4
MAX_ACTORS = 512  # rank actors (ranks x dp) a Ray run may start


def machine_memory() -> int:
    """Physical memory of this machine in bytes (16 GiB if it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


def _override(name: str = "PEBBLESIM_MAX_ACTIONS") -> int | None:
    """The environment variable ``name`` when it is a positive whole number."""
    override = os.environ.get(name, "").strip()
    return int(override) if override.isdigit() and int(override) > 0 else None


def max_actions() -> int:
    """The most actions (over all steps) one analytic run may simulate here."""
    override = _override()
    if override is not None:
        return override
    return int(MEMORY_SHARE * machine_memory() / BYTES_PER_ACTION)


def _limit_sentence(what: str, limit: int, how: str) -> str:
    if _override() is not None:
        return f"{what}; the limit here is {limit:,}, set by PEBBLESIM_MAX_ACTIONS."
    return f"{what}; the limit here is {limit:,} ({how}; set PEBBLESIM_MAX_ACTIONS to change it)."


def check_actions(actions: int, what: str = "this run") -> None:
    """Refuse an analytic run of more than ``max_actions()`` actions (all steps together)."""
    limit = max_actions()
    if actions > limit:
        need = human_bytes(actions * BYTES_PER_ACTION)
        raise PebbleError(
            _limit_sentence(
                f"{what} would simulate {actions:,} actions, about {need} of memory",
                limit,
                f"half of this machine's {human_bytes(machine_memory())}",
            )
        )


def estimated_actions(ranks: int, chunks: int, microbatches: int) -> int:
    """Actions of one step of any schedule of these sizes, at most: F, I and W per stage and
    microbatch."""
    return 3 * ranks * chunks * microbatches


def check_schedule_size(ranks: int, chunks: int, microbatches: int, steps: int = 1) -> None:
    """Before generating: the schedule and its simulation must fit."""
    check_actions(estimated_actions(ranks, chunks, microbatches) * steps, "this schedule")


def check_table_size(stages: int, microbatches: int) -> None:
    """Before validating a CSV: the validator's tables over (stage, microbatch) must fit."""
    pairs = stages * microbatches
    limit = max_actions() * BYTES_PER_ACTION // TABLE_BYTES_PER_PAIR
    if pairs > limit:
        raise PebbleError(
            _limit_sentence(
                f"validating {stages:,} stages x {microbatches:,} microbatches needs tables "
                f"over {pairs:,} (stage, microbatch) pairs",
                limit,
                "pairs that fit in half of this machine's memory",
            )
        )


def check_actors(ranks: int, dp: int) -> None:
    """A Ray run starts ranks x dp actors."""
    limit = _override("PEBBLESIM_MAX_ACTORS") or MAX_ACTORS
    if ranks * dp > limit:
        raise PebbleError(
            f"training {ranks} ranks x {dp} replicas starts {ranks * dp:,} Ray actors; the "
            f"limit is {limit} (set PEBBLESIM_MAX_ACTORS to change it)."
        )
