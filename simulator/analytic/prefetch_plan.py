"""When each offloaded microbatch's prefetch is issued: a table both executors follow.

Why a table: a prefetch brings a microbatch's activations back to the device, and from the
moment its copy starts the device holds those bytes again. Issued too early, the bytes sit on
the device long before the backward needs them and offload lowers the device's peak little;
issued too late, the backward waits. The best moment depends on the timing (when the backward
can start, how long the copy takes), which only a timed run knows, but it must be something a
running rank can act on. So the moment is named by the rank's own action list: the prefetch of
the backward at position ``b`` has the *issue point* ``(k, delay)``, meaning "``delay`` after
the rank has finished its action ``k - 1``" (``k <= b``; ``k = b``: after the action just
before the backward). The analytic clock (``offload_clock``) times the run by this table, and
the Ray executor issues the same copies at the same points (``prefetch_table.plan_issue_points``
gives a planned run's table).

The rule (PipeOffload's, Wan, Qi et al. 2025, arXiv 2503.01328: its runtime places each reload
as late as it can before its backward, walking the backwards from the last;
``megatron/core/pipeline_parallel/zerobubble/scheduler/offloading.py``, ``add_send_recv``, in
sail-sg/zero-bubble-pipeline-parallelism at 39f2c186):

* from a timing of the run without prefetch waits, each backward's *ready* time is when it could
  start; the copies of one rank's host-to-device stream run one at a time in backward order;
* walking the rank's backwards from the last, a copy must end by its backward's ready time and
  by the start of the next copy on the stream; its latest start is that deadline less its copy
  time. It is issued exactly then (just in time, so the bytes are back for the shortest
  while), named as the last action to end before it plus the time since;
* a copy that cannot end by its deadline (its offload ends too late, or the stream is full) is
  issued at the *earliest* point, as soon as its forward has ended, with no delay: its wait is
  the least the stream allows, exposed as a ``wait`` span and in the breakdown.

Why a delay and not only a position: before a rank's first backward the pipeline leaves it idle
(1F1B's warmup bubble), and no action ends inside that gap. A position alone would bring the
bytes back at the gap's start; with the delay they come back at its end. An executor whose
timing differs from the plan's (the Ray executor's numpy ranks) may drop the delay: issuing at
the boundary only brings the bytes back earlier, never late.

A rank, 1F1B's first of four, its first backward fetching microbatch 0 (``=`` its copy)::

    compute  F0  F1  F2  F3  . . . . . . . . . . . B0  F4  B1
    old:                 ^ issued as F3 starts: back on the device for the whole idle gap
    new:                     ^ point 4 (F3 ended) ... + delay ^ just in time
    h2d                                            ==

The issue points are positions in the rank's action list (``Schedule.actions[rank]``), the same
every step; a microbatch that does not go out (selective plans, or a backward that follows its
forward at once) has no entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

_EPS = 1e-12  # relative slack for comparing times


@dataclass(frozen=True)
class Fetch:
    """One backward's prefetch on one rank: positions of its forward and backward in the
    rank's action list, the copy's duration (one way), and when the backward could start."""

    forward: int
    backward: int
    copy: float
    ready: float


class IssuePoint(NamedTuple):
    """Where a prefetch is issued: ``delay`` time units after the rank has finished its action
    at ``position - 1``. The delay places a copy inside an idle gap or an action (just in
    time); an executor whose timing differs from the plan's may drop it: issuing at the
    boundary only brings the bytes back earlier, never late."""

    position: int
    delay: float = 0.0


def issue_points(ends: Sequence[float], fetches: Sequence[Fetch]) -> list[IssuePoint]:
    """Each fetch's issue point on one rank. ``ends``: the rank's action ends in its order,
    from a timing without prefetch waits; ``fetches`` in backward order (the host-to-device
    stream's order). Offloads start when their forward ends, one at a time in forward order."""
    if not fetches:
        return []
    slack = _EPS * max(1.0, max(abs(e) for e in ends))
    offloaded = [0.0] * len(fetches)  # when each microbatch's offload ends
    stream = float("-inf")
    for n in sorted(range(len(fetches)), key=lambda n: fetches[n].forward):
        stream = offloaded[n] = max(ends[fetches[n].forward], stream) + fetches[n].copy
    points = [IssuePoint(0)] * len(fetches)
    next_begin = float("inf")  # when the next copy on the stream starts
    for n in range(len(fetches) - 1, -1, -1):
        fetch = fetches[n]
        latest = min(fetch.ready, next_begin) - fetch.copy
        k = fetch.backward
        if offloaded[n] <= latest + slack:  # just in time
            while k > fetch.forward + 1 and ends[k - 1] > latest:
                k -= 1
            points[n] = IssuePoint(k, max(0.0, latest - ends[k - 1]))
            next_begin = max(latest, offloaded[n])
        else:  # cannot end in time: as early as it may, so it waits the least
            points[n] = IssuePoint(fetch.forward + 1)
            next_begin = offloaded[n]
    return points


def prefetch_issue_points(
    order: Mapping[int, Sequence[tuple[int, str, int]]],
    ends: Mapping[tuple[int, str, int], float],
    starts: Mapping[tuple[int, str, int], float],
    copies: Mapping[tuple[int, int], float],
    *,
    forward_kinds: Sequence[str] = ("F",),
    backward_kinds: Sequence[str] = ("B", "I"),
) -> dict[tuple[int, int], IssuePoint]:
    """``(stage, microbatch) -> IssuePoint(k, delay)``: the prefetch of that microbatch's
    backward is issued ``delay`` after its rank has finished the action at position ``k - 1``
    of ``order[rank]``.

    ``order``: each rank's actions ``(stage, kind, microbatch)`` in run order (a schedule's
    ``actions``); ``starts`` and ``ends``: a timing of those actions without prefetch waits
    (the analytic executor's prediction without offload, or a measured step); ``copies``:
    the one-way copy time of each microbatch that goes out, keyed ``(stage, microbatch)``.
    A backward that directly follows its forward gets no point (nothing to hide behind)."""
    table: dict[tuple[int, int], IssuePoint] = {}
    for actions in order.values():
        forward_at = {}
        keys, fetches = [], []
        for position, (stage, kind, mb) in enumerate(actions):
            if kind in forward_kinds:
                forward_at[(stage, mb)] = position
            elif kind in backward_kinds and (stage, mb) in copies:
                f = forward_at.get((stage, mb))
                if f is None or f == position - 1:
                    continue
                keys.append((stage, mb))
                fetches.append(Fetch(f, position, copies[(stage, mb)], starts[(stage, kind, mb)]))
        rank_ends = [ends[action] for action in actions]
        table.update(zip(keys, issue_points(rank_ends, fetches), strict=True))
    return table
