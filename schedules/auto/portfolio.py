"""The search: build every candidate, keep those within the memory limit, return the fastest.

Why a fixed portfolio: each generator is good somewhere and none everywhere, and each costs one
pass over the step's actions (p = 32, m = 256 on a V is 49,152 of them). The generated
candidates below were chosen by a greedy set cover over 124 problems (the paper's settings at 1,
1.5, 2 and 3 times its memory limits, and random costs, transfers, memory and limits, both
objectives, both layouts) against the full grid (3 warmup depths x 3 W rules x 2 priorities,
every skeleton): on 122 they lose nothing to the grid, on two 0.06% and 0.5%, at a sixth of its
cost. The hand-written families and the one-microbatch-at-a-time fallback are always scored.

Two shortcuts keep the answer and save time (``advise`` asks auto for dozens of problems):

* a generator asked twice for the same thing (two warmup depths that memory clips to the same
  warmups) runs once: the second would tie the first, and the first listed wins a tie;
* under the makespan objective every candidate is given the best makespan so far (``give_up``):
  one that surely ends later (some rank's clock plus the work it still owes is past it) stops
  and scores nothing, since it cannot win.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from schedules.auto import skeletons as shapes
from schedules.auto.execute import Played, play, split_backward
from schedules.auto.greedy import list_schedule
from schedules.auto.problem import AutoProblem
from schedules.auto.timing import Rows, Tables, Timing, fits, retime
from schedules.errors import ScheduleError

# (warmup extra, W rule, forward first) for the list scheduler, per layout
LOOP_LISTS = ((0, "worst", False), (1, "worst", False), (1, "fit", False), (0, "worst", True))
V_LISTS = ((-1, "worst", True), (-1, "worst", False))
# (warmup extra, W rule) for the 1F1B-shaped skeleton (one stage per rank)
LOOP_SHAPES = ((-1, "fit"), (0, "worst"))
V_RULES = ("worst", "fit")  # for ZB-V's order (deeper V shapes and DualPipeV's: worst only)

GIVE_UP_SLACK = 1e-9  # relative: a candidate gives up only when surely slower, not on rounding
Builder = Callable[[Tables, float], "Played | Rows | None"]  # (tables, give_up)


@dataclass(frozen=True)
class Scored:
    """A candidate that fits: its rows, timing and the generator that made it (``label``,
    e.g. ``list+1/worst``), kept so a benchmark or a test can say which generator won."""

    label: str
    rows: Rows
    timing: Timing


def search(problem: AutoProblem) -> Scored:
    """The fastest candidate within the limit under ``problem.objective`` (the first listed
    wins a tie, hand-written families first)."""
    tables = Tables(problem)
    best: Scored | None = None
    for label, build in candidates(tables, problem):
        give_up = math.inf
        if best is not None and problem.objective == "makespan":
            give_up = best.timing.makespan * (1 + GIVE_UP_SLACK)
        scored = _score(tables, label, build, give_up)
        if scored is not None and (
            best is None
            or scored.timing.value(problem.objective) < best.timing.value(problem.objective)
        ):
            best = scored
    if best is None:  # one-at-a-time fits any limit ``AutoProblem`` accepts
        raise ScheduleError("auto found no schedule within the memory limit.")
    return best


def candidates(tables: Tables, problem: AutoProblem) -> list[tuple[str, Builder]]:
    """Every candidate as (label, builder), in tie-breaking order; a skeleton or list run
    with the same warmups and rules as an earlier one is left out (it would tie it)."""
    zero = problem.objective == "makespan"
    found: list[tuple[str, Builder]] = [
        (name, lambda t, g, n=name: shapes.hand_written(t, n)) for name in shapes.families(tables)
    ]
    found.append(("one-at-a-time", lambda t, g: shapes.one_at_a_time(t, split=False)))
    asked: set[tuple] = set()
    if tables.S == tables.p:
        for extra, rule in LOOP_SHAPES:
            warm = shapes.warmups(tables, extra)
            if ("shape", tuple(warm), rule) in asked:
                continue
            asked.add(("shape", tuple(warm), rule))
            found.append(
                (
                    f"1f1b-shape{extra:+d}/{rule}",
                    lambda t, g, w=warm, r=rule: play(
                        t, shapes.one_f_one_b_shape(t, w), r, zero, give_up=g
                    ),
                )
            )
        lists = LOOP_LISTS
    else:
        for deeper in shapes.v_depths(tables):
            for rule in V_RULES if deeper == 0 else V_RULES[:1]:
                found.append(
                    (
                        f"v-shape{deeper:+d}/{rule}",
                        lambda t, g, d=deeper, r=rule: play(
                            t, shapes.v_shape(t, d), r, zero, give_up=g
                        ),
                    )
                )
        if "dualpipe-v" in shapes.families(tables):
            for rule in V_RULES[:1]:
                found.append(
                    (
                        f"dualpipe-v-order/{rule}",
                        lambda t, g, r=rule: play(
                            t,
                            split_backward(shapes.hand_written(t, "dualpipe-v")),
                            r,
                            zero,
                            give_up=g,
                        ),
                    )
                )
        lists = V_LISTS
    for extra, rule, first in lists:
        warm = shapes.warmups(tables, extra)
        if ("list", tuple(warm), rule, first) in asked:
            continue
        asked.add(("list", tuple(warm), rule, first))
        label = f"list{extra:+d}/{rule}" + ("/forward-first" if first else "")
        found.append(
            (
                label,
                lambda t, g, w=warm, r=rule, f=first: list_schedule(t, w, r, f, zero, give_up=g),
            )
        )
    return found


def _score(tables: Tables, label: str, build: Builder, give_up: float = math.inf) -> Scored | None:
    """Build, check memory and time a candidate; None if it cannot be built, does not fit or
    surely ends after ``give_up`` (a makespan)."""
    made = build(tables, give_up)
    if made is None:
        return None
    if isinstance(made, Played):  # admitted action by action within the limit: it fits
        return Scored(label, made.rows, made.timing)
    if not fits(tables, made):
        return None
    timing = retime(tables, made, give_up)
    return None if timing is None else Scored(label, made, timing)
