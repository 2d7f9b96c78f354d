"""The search: build every candidate, keep those within the memory limit, return the fastest.

Why a fixed portfolio: each generator is good somewhere and none everywhere, and each costs one
pass over the step's actions (p = 32, m = 256 on a V is 49,152 of them). The generated
candidates below were chosen by a greedy set cover over 124 problems (the paper's settings at 1,
1.5, 2 and 3 times its memory limits, and random costs, transfers, memory and limits, both
objectives, both layouts) against the full grid (3 warmup depths x 3 W rules x 2 priorities,
every skeleton): on 122 they lose nothing to the grid, on two 0.06% and 0.5%, at a sixth of its
cost. The hand-written families and the one-microbatch-at-a-time fallback are always scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from schedules.auto import skeletons as shapes
from schedules.auto.execute import Played, play, split_backward
from schedules.auto.greedy import list_schedule
from schedules.auto.problem import AutoProblem
from schedules.auto.timing import Rows, Tables, Timing, fits, retime

# (warmup extra, W rule, forward first) for the list scheduler, per layout
LOOP_LISTS = ((0, "worst", False), (1, "worst", False), (1, "fit", False), (0, "worst", True))
V_LISTS = ((-1, "worst", True), (-1, "worst", False))
# (warmup extra, W rule) for the 1F1B-shaped skeleton (one stage per rank)
LOOP_SHAPES = ((-1, "fit"), (0, "worst"))
V_RULES = ("worst", "fit")  # for ZB-V's order (deeper V shapes and DualPipeV's: worst only)

Builder = Callable[[Tables], "Played | Rows | None"]


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
    scored = [_score(tables, label, build) for label, build in candidates(tables, problem)]
    found = [s for s in scored if s is not None]
    return min(found, key=lambda s: s.timing.value(problem.objective))


def candidates(tables: Tables, problem: AutoProblem) -> list[tuple[str, Builder]]:
    """Every candidate as (label, builder), in tie-breaking order."""
    zero = problem.objective == "makespan"
    found: list[tuple[str, Builder]] = [
        (name, lambda t, n=name: shapes.hand_written(t, n)) for name in shapes.families(tables)
    ]
    found.append(("one-at-a-time", lambda t: shapes.one_at_a_time(t, split=False)))
    if tables.S == tables.p:
        for extra, rule in LOOP_SHAPES:
            found.append(
                (
                    f"1f1b-shape{extra:+d}/{rule}",
                    lambda t, e=extra, r=rule: play(
                        t, shapes.one_f_one_b_shape(t, shapes.warmups(t, e)), r, zero
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
                        lambda t, d=deeper, r=rule: play(t, shapes.v_shape(t, d), r, zero),
                    )
                )
        if "dualpipe-v" in shapes.families(tables):
            for rule in V_RULES[:1]:
                found.append(
                    (
                        f"dualpipe-v-order/{rule}",
                        lambda t, r=rule: play(
                            t, split_backward(shapes.hand_written(t, "dualpipe-v")), r, zero
                        ),
                    )
                )
        lists = V_LISTS
    for extra, rule, first in lists:
        label = f"list{extra:+d}/{rule}" + ("/forward-first" if first else "")
        found.append(
            (
                label,
                lambda t, e=extra, r=rule, f=first: list_schedule(
                    t, shapes.warmups(t, e), r, f, zero
                ),
            )
        )
    return found


def _score(tables: Tables, label: str, build: Builder) -> Scored | None:
    """Build, check memory and time a candidate; None if it cannot be built or does not fit."""
    made = build(tables)
    if made is None:
        return None
    rows = made.rows if isinstance(made, Played) else made
    if not fits(tables, rows):
        return None
    timing = made.timing if isinstance(made, Played) else retime(tables, rows)
    return None if timing is None else Scored(label, rows, timing)
