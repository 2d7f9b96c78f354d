"""A tiny GPT (2 blocks, hidden 64, sequence 32, float64) trains on Ray through every schedule:
the same gradients and weights as the sequential reference, the measured peak bytes of every
rank equal to the analytic prediction, and a falling loss on the built-in character corpus."""

from __future__ import annotations

import pytest

from simulator.analytic.costs import unit_costs
from simulator.analytic.executor import simulate
from simulator.model import partition
from simulator.model.optim import OptimizerConfig
from simulator.model.parse import parse_model
from simulator.model.reference import TrainConfig, train_reference
from simulator.ray_pipeline.executor import RayOptions, RayPipeline
from simulator.run import Layout, plan_training
from tests.simulator.test_ray_executor import max_rel, schedule_named

TINY_GPT = "transformer:layers=2,hidden=64,heads=4,seq=32,vocab=96,dropout=0.1,seed=3,dtype=float64"
STEPS = 3


def gpt_config(schedule, dp: int) -> TrainConfig:
    return TrainConfig(
        model=parse_model(TINY_GPT),
        batch_size=2 * schedule.num_microbatches * dp,
        microbatches=schedule.num_microbatches,
        steps=STEPS,
        optimizer=OptimizerConfig("adam", lr=3e-3),
    )


# one schedule of each layout and backward (loop, interleaved loop, split backward, V) alone,
# and two data-parallel replicas on a loop and a V: the transformer's layers on Ray are what
# this tests (every schedule trains on Ray in test_ray_executor, on an MLP)
CASES = [(name, 1) for name in ("1f1b", "interleaved-1f1b", "zb-h1", "zb-v")]
CASES += [(name, 2) for name in ("1f1b", "zb-v")]


@pytest.mark.parametrize(("name", "dp"), CASES)
def test_tiny_gpt_on_ray_equals_the_sequential_reference(ray_session, name, dp):
    schedule = schedule_named(name)
    config = gpt_config(schedule, dp)
    with RayPipeline(
        plan_training(schedule, config, layout=Layout(data=dp)),
        config,
        RayOptions(calibrate=False),
    ) as pipeline:
        result = pipeline.run(STEPS, check=True)
        rows = pipeline.microbatch_rows
    reference = train_reference(config)
    assert max_rel(result.first_step_gradients, train_reference(config, steps=1).gradients) <= 1e-9
    assert max_rel(result.weights, reference.weights()) <= 1e-9
    assert result.losses == pytest.approx(reference.losses, rel=1e-9)
    assert result.losses[-1] < 0.9 * result.losses[0]
    spec = config.model
    parts = partition(spec, schedule.num_stages)
    predicted = simulate(
        schedule, unit_costs(schedule, parts), spec, parts, rows, layout=Layout(data=dp)
    )
    assert [r.peak_activation_bytes for r in result.timeline.summary().per_rank] == [
        r.peak_activation_bytes for r in predicted.summary().per_rank
    ]
