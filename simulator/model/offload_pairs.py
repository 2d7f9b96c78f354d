"""Which microbatches' pebbles go to the host under an offload plan, read off a validated run.

Why one function for both executors: the analytic clock (``simulator.analytic.offload_clock``)
and the Ray rank (``simulator.ray_pipeline.copy_streams``) must send exactly the same pebbles,
or "measured bytes equal predicted bytes" would compare two different plans. The rule:

* a stage sends only what its plan sends (``plan_sends``: an active ``StageOffload`` and a
  microbatch it sends; the analytic clock also asks that the blocks cache some bytes);
* the pair is the microbatch's forward and its backward that sends the gradient (``B`` or
  ``I``: the one that reads the cached activations);
* a pair whose backward is the very next action of its rank after the forward stays on the
  device: nothing runs between in which a copy could hide, so it could only wait::

      rank 0:  F0 F1 F2 B0 B1 ...   F0..B0: F1, F2 run between: F0 may go out
      rank 3:  F0 B0 F1 B1 ...      F0 then B0 at once: F0 stays
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def offload_pairs(run, sends: Callable[[int, int], bool]) -> dict[int, int]:
    """``backward order index -> forward order index`` of every (stage, microbatch) whose
    offloadable blocks go to the host. ``run``: the schedule's ``DryRun``; ``sends(stage,
    microbatch)``: does the plan send it (``plan_sends``)?"""
    rule = run.rule
    kinds = run.kinds.astype(str)
    forward = np.isin(kinds, rule.having("is_forward"))
    back = np.isin(kinds, rule.having("sends_gradient"))
    previous: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, r in enumerate(run.ranks.tolist()):
        previous[i] = last.get(r, -1)
        last[r] = i
    forward_of = {
        (int(run.stages[i]), int(run.microbatches[i])): i for i in np.flatnonzero(forward).tolist()
    }
    pairs: dict[int, int] = {}
    for i in np.flatnonzero(back).tolist():
        stage, microbatch = int(run.stages[i]), int(run.microbatches[i])
        j = forward_of.get((stage, microbatch))
        if j is None or previous[i] == j or not sends(stage, microbatch):
            continue
        pairs[i] = j
    return pairs


def plan_sends(stages) -> Callable[[int, int], bool]:
    """``sends`` of an ``OffloadPlan``'s ``stages`` (one ``StageOffload`` per stage)."""
    return lambda stage, microbatch: stages[stage].active and stages[stage].sends(microbatch)
