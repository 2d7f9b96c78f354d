"""What the offload tests share: one planned run timed by the analytic executor at given costs,
with or without an offload."""

from __future__ import annotations

from simulator.analytic.executor import simulate


def time_plan(plan, costs, offload=None):
    """The analytic Timeline of ``plan`` at ``costs`` (an ``OffloadRun`` or None)."""
    return simulate(
        plan.schedule,
        costs,
        plan.spec,
        plan.partition,
        plan.microbatch_rows,
        layout=plan.layout,
        offload=offload,
    )
