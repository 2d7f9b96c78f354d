"""An ``auto`` schedule trains on Ray exactly what the sequential reference trains."""

from __future__ import annotations

import pytest

from schedules.auto import AutoProblem, auto_schedule
from simulator.model import ModelSpec
from simulator.model.optim import OptimizerConfig
from simulator.model.reference import TrainConfig, train_reference
from simulator.ray_pipeline.executor import RayOptions, RayPipeline
from simulator.run import plan_training
from tests.simulator.test_ray_executor import max_rel


@pytest.mark.parametrize(
    ("layout", "limit", "weight"),
    [("loop", 4.0, 0.5), ("v", 4.0, 0.5), ("v", 2.0, 0.5)],  # the last needs a full B
)
def test_auto_trains_like_the_sequential_reference(ray_session, layout, limit, weight):
    problem = AutoProblem(
        2, 4, forward=1.0, backward_input=1.3, backward_weight=0.6, transfer=0.2,
        memory_weight=weight, memory_input_rise=0.9 if limit == 2.0 else None,
        memory_limit=limit, layout=layout,
    )  # fmt: skip
    schedule = auto_schedule(problem)
    hidden = (16,) * max(2, schedule.num_stages - 1)
    config = TrainConfig(
        model=ModelSpec(widths=(2, *hidden, 3), activation="tanh", dtype="float64", seed=7),
        batch_size=32,
        microbatches=4,
        steps=2,
        optimizer=OptimizerConfig("sgd", lr=0.3, momentum=0.9),
    )
    with RayPipeline(
        plan_training(schedule, config), config, RayOptions(calibrate=False)
    ) as pipeline:
        result = pipeline.run(config.steps, check=True)
    assert max_rel(result.first_step_gradients, train_reference(config, steps=1).gradients) <= 1e-9
    reference = train_reference(config)
    assert max_rel(result.weights, reference.weights()) <= 1e-9
    assert result.losses == pytest.approx(reference.losses, rel=1e-9)
    for rank, actions in enumerate(schedule.actions):
        assert result.action_order[(0, rank)] == [str(a) for a in actions]
