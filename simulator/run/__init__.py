"""The run layer: a complete, validated run built from plain values, before anything executes.

Why one face: a script, a notebook, a benchmark and the CLI all build a run the same way::

    from simulator.run import Layout, make_schedule, plan_run
    plan = plan_run(make_schedule("1f1b", 4, 8), "llama3-8b", layout=Layout(tensor=2, data=4))

then hand the plan to an executor (``simulator.analytic.run_plan.simulate_plan`` or
``simulator.ray_pipeline.executor.RayPipeline``).
"""

from simulator.model.layout import Layout
from simulator.run.plan import (
    CostSource,
    RunPlan,
    default_train_model,
    plan_run,
    plan_training,
)
from simulator.run.schedule_source import make_schedule

__all__ = [
    "CostSource",
    "Layout",
    "RunPlan",
    "default_train_model",
    "make_schedule",
    "plan_run",
    "plan_training",
]
