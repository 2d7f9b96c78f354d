"""``auto``: a schedule searched for given costs under a per-rank activation memory limit.

Why: a user does not want a list of names but the fastest schedule for *their* costs and
*their* memory. Qi et al. ("Zero Bubble Pipeline Parallelism", ICLR 2024, section 3 and
appendix G) showed that a search under a memory limit beats every hand-written schedule: their
ZB-2p reaches near-zero bubble with 2p microbatches of activations. This package does that
search with its own generators and returns an ordinary ``Schedule`` (kinds F, I, W, and B when a
hand-written family wins), which validates, exports, simulates and trains like any other.

The problem (``AutoProblem``): p ranks, m microbatches, per stage the times of F, I and W, the
transfer time between ranks, what F allocates and what I leaves for W, and a limit per rank.
Layout ``loop`` has one stage per rank; ``v`` two (rank r holds stages r and 2p-1-r, as ZB-V).

The algorithm, in two sentences: build a portfolio of candidate orders (the registry's
hand-written families as written; 1F1B-shaped skeletons whose warmup per stage covers the first
microbatch's round trip as far as memory allows; ZB-V's and DualPipeV's orders, the V made
deeper when memory allows; and a list scheduler that runs, on each rank in time order, the ready
I, else an admissible F, else a pending W), slotting each skeleton's weight-gradient actions
into the idle gaps they fit or where the zero-bubble authors' "keep the largest bubble small"
rule puts them; keep the candidates whose exact memory peak is within the limit and return the
one with the smallest step time under the package's own timing model, which is the analytic
executor's (``timing``; a test holds them equal).

Guarantees:

* the result is valid (dependencies, completeness, no deadlock: ``schedules.validate``);
* every rank's activation peak is within its limit, counting an I's rise exactly;
* it is never slower, under the chosen objective, than any hand-written family of the same
  layout that fits the limit (they are candidates); on all 33 settings of the paper's tables it
  matches or beats the published ZB-1p, ZB-2p and ZB-V bubble rates
  (``tests/schedules/test_auto_paper.py``);
* a limit below one microbatch's forwards of a rank's stages (``memory_floor``) is refused in
  one sentence; at or above it a schedule is always found (one microbatch at a time fits);
* building costs about a dozen passes over the p * m * 3 actions: p = 32, m = 256 takes about a
  second (``benchmarks/auto_schedule.py``). It is a heuristic: no optimality is claimed beyond
  the above (the exact problem is an integer program, the paper's appendix G).

Objectives: ``makespan`` (every rank starts at 0, the step ends with the last action: the
analytic executor's step time) or ``span`` (the longest first-to-last time of a rank: the
paper's "cost", the step time when steps overlap without a synchronising optimizer step).

Timelines (p=3, m=6; F = I = W = 1, no transfer cost, I leaves half of F's memory for W;
objective span; one cell is one unit of time)::

    memory limit 3 (1F1B's: the paper's ZB-1p, which is ZB-H1), span 20
    r0: 0F0 0F1 0F2 .   .   0I0 0W0 0F3 0I1 0W1 0F4 0I2 0W2 0F5 0I3 0W3 0I4 0W4 0I5 0W5
    r1: .   1F0 1F1 .   1I0 1F2 1I1 1W0 1F3 1I2 1W1 1F4 1I3 1W2 1F5 1I4 1W3 1I5 1W4 1W5
    r2: .   .   2F0 2I0 2F1 2I1 2F2 2I2 2W0 2F3 2I3 2W1 2F4 2I4 2W2 2F5 2I5 2W3 2W4 2W5

    memory limit 4, span 19
    r0: 0F0 0F1 0F2 0F3 .   0I0 0W0 0F4 0I1 0W1 0F5 0I2 0I3 0I4 0W2 0I5 0W3 0W4 0W5
    r1: .   1F0 1F1 .   1I0 1F2 1I1 1F3 1I2 1F4 1I3 1F5 1I4 1W0 1I5 1W1 1W2 1W3 1W4 1W5
    r2: .   .   2F0 2I0 2F1 2I1 2F2 2I2 2F3 2I3 2F4 2I4 2F5 2I5 2W0 2W1 2W2 2W3 2W4 2W5

    memory limit 6 (2p: the paper's ZB-2p), span 18: no rank idles between its first and last
    r0: 0F0 0F1 0F2 0F3 0F4 0I0 0W0 0F5 0I1 0W1 0I2 0W2 0I3 0W3 0I4 0W4 0I5 0W5
    r1: .   1F0 1F1 1F2 1I0 1F3 1I1 1F4 1I2 1W0 1F5 1I3 1W1 1I4 1W2 1I5 1W3 1W4 1W5
    r2: .   .   2F0 2I0 2F1 2I1 2F2 2I2 2F3 2I3 2F4 2I4 2W0 2F5 2I5 2W1 2W2 2W3 2W4 2W5
"""

from __future__ import annotations

from schedules.actions import Action, Schedule
from schedules.auto.portfolio import search
from schedules.auto.problem import KIND_NAMES, AutoProblem
from schedules.auto.timing import Tables, Timing, peak_memory, retime, rows_of_schedule
from schedules.dependencies import Kind
from schedules.errors import ScheduleError

__all__ = [
    "AutoProblem",
    "Timing",
    "auto_schedule",
    "bubble_rate",
    "schedule_peaks",
    "schedule_timing",
]


def auto_schedule(problem: AutoProblem) -> Schedule:
    """The fastest schedule the search finds for ``problem`` within its memory limit."""
    best = search(problem)
    kinds = [Kind(name) for name in KIND_NAMES]
    actions = [tuple(Action(s, kinds[k], j) for s, k, j in row) for row in best.rows]
    return Schedule("auto", problem.num_microbatches, problem.stage_to_rank, tuple(actions))


def schedule_timing(problem: AutoProblem, schedule: Schedule) -> Timing:
    """Each rank's first start and last end for ``schedule`` at ``problem``'s costs (the
    package's timing model: the analytic executor's rules)."""
    _check_sizes(problem, schedule)
    timing = retime(Tables(problem), rows_of_schedule(schedule))
    if timing is None:
        raise ScheduleError(f"schedule {schedule.name!r} deadlocks; validate it first.")
    return timing


def schedule_peaks(problem: AutoProblem, schedule: Schedule) -> list[float]:
    """Each rank's activation memory peak for ``schedule`` under ``problem``'s deltas."""
    _check_sizes(problem, schedule)
    return peak_memory(Tables(problem), rows_of_schedule(schedule))


def bubble_rate(problem: AutoProblem, schedule: Schedule) -> float:
    """The paper's bubble rate, (cost - work) / cost: cost is ``problem.objective`` of the
    schedule, work the busiest rank's compute (m (F + I + W) per stage it holds)."""
    cost = schedule_timing(problem, schedule).value(problem.objective)
    return (cost - max(problem.work())) / cost if cost > 0 else 0.0


def _check_sizes(problem: AutoProblem, schedule: Schedule) -> None:
    if (
        schedule.stage_to_rank != problem.stage_to_rank
        or schedule.num_microbatches != problem.num_microbatches
    ):
        raise ScheduleError(
            f"schedule {schedule.name!r} does not have the problem's layout and microbatches."
        )
