"""The Ray executor trains exactly what the sequential reference trains, on every schedule."""

from __future__ import annotations

import time

import numpy as np
import pytest

from schedules.registry import build_schedule, list_schedules
from simulator.analytic.costs import unit_costs
from simulator.analytic.executor import simulate
from simulator.errors import PebbleError
from simulator.model import ModelSpec
from simulator.model.optim import OptimizerConfig
from simulator.model.reference import TrainConfig, train_reference
from simulator.ray_pipeline.executor import RankFailure, RayOptions, RayPipeline
from simulator.run import Layout, plan_training
from simulator.timeline.breakdown import PARTS
from tests.simulator.test_breakdown_sum import assert_adds_up

RANKS, MICROBATCHES = 2, 4
UNCALIBRATED = RayOptions(calibrate=False)  # where the run's timing is not what is tested


def config_for(schedule, dp=1, steps=3, optimizer=None) -> TrainConfig:
    hidden = (16,) * max(2, schedule.num_stages - 1)
    return TrainConfig(
        model=ModelSpec(widths=(2, *hidden, 3), activation="tanh", dtype="float64", seed=7),
        batch_size=8 * MICROBATCHES * dp,
        microbatches=schedule.num_microbatches,
        steps=steps,
        optimizer=optimizer or OptimizerConfig("sgd", lr=0.3, momentum=0.9),
    )


def schedule_named(name):
    chunks = 2 if name in ("interleaved-1f1b", "zb-v", "dualpipe-v") else None
    return build_schedule(name, RANKS, MICROBATCHES, chunks)


def max_rel(a: dict, b: dict) -> float:
    worst = 0.0
    for key, ref in b.items():
        scale = max(float(np.abs(ref).max()), 1e-300)
        worst = max(worst, float(np.abs(a[key] - ref).max()) / scale)
    return worst


SCHEDULE_NAMES = [name for name, _ in list_schedules()]


# two replicas on one schedule per layout and backward (loop, interleaved loop, split W, V):
# the reduction reads each layer's gradient when it is complete, which is where schedules
# differ; every other schedule with one replica (replica 0 of a two-replica run checks all a
# one-replica run does)
TWO_REPLICAS = ("1f1b", "interleaved-1f1b", "zb-h1", "zb-v")
DP_CASES = [(name, 2 if name in TWO_REPLICAS else 1) for name in SCHEDULE_NAMES]


@pytest.mark.parametrize(("name", "dp"), DP_CASES)
def test_pipelined_training_equals_sequential_reference(ray_session, name, dp):
    """The two-replica cases are calibrated first (each stage's actions run alone before step
    0, the default): the calibration leaves no trace in what is trained, nor in the memory
    measured; the others skip it (it takes seconds a run, and tests nothing more there). One
    run per case checks the weights, the order each actor ran, the measured activation peaks
    against the analytic prediction, and that the measured step breakdown adds up."""
    schedule = schedule_named(name)
    config = config_for(schedule, dp=dp)
    options = RayOptions() if dp > 1 else UNCALIBRATED
    plan = plan_training(schedule, config, layout=Layout(data=dp))
    with RayPipeline(plan, config, options) as pipeline:
        result = pipeline.run(config.steps, check=True)
        predicted = simulate(
            schedule,
            unit_costs(schedule, pipeline.partition),
            config.model,
            pipeline.partition,
            pipeline.microbatch_rows,
        )
        states = ray_session.get([a.end_step.remote(99) for a in pipeline.actors[0]])
    one_step = train_reference(config, steps=1)
    three_steps = train_reference(config)
    assert max_rel(result.first_step_gradients, one_step.gradients) <= 1e-9
    assert max_rel(result.weights, three_steps.weights()) <= 1e-9
    assert result.losses == pytest.approx(three_steps.losses, rel=1e-9)
    # the order each actor ran equals its list in the schedule, in every replica
    for replica in range(dp):
        for rank, actions in enumerate(schedule.actions):
            assert result.action_order[(replica, rank)] == [str(a) for a in actions]
    assert_measured_memory_is_predicted(result.timeline, predicted, states, schedule.num_ranks)
    breakdown = assert_adds_up(result.timeline)
    assert (breakdown.parts[:, :, PARTS.index("compute")] > 0).all()


def assert_measured_memory_is_predicted(measured_run, predicted, states, ranks: int) -> None:
    """Each rank's activation peak is the analytic one, replica 0's caches are empty after the
    step, and every cache change is matched (each rank's running total returns to 0)."""
    measured = {r.rank: r.peak_activation_bytes for r in measured_run.summary().per_rank}
    expected = {r.rank: r.peak_activation_bytes for r in predicted.summary().per_rank}
    assert measured == expected
    assert all(s["cache_bytes"] == 0 and s["cached"] == 0 for s in states)
    for rank in range(ranks):
        _, totals = measured_run.rank_memory(rank)
        assert totals[-1] == 0


def test_adam_and_float32_still_match(ray_session):
    schedule = schedule_named("1f1b")
    config = config_for(schedule, optimizer=OptimizerConfig("adam", lr=0.01))
    with RayPipeline(plan_training(schedule, config), config, UNCALIBRATED) as pipeline:
        result = pipeline.run(config.steps)
    assert max_rel(result.weights, train_reference(config).weights()) <= 1e-9


@pytest.mark.parametrize("name", ["1f1b", "zb-h1"])
def test_every_layer_gradient_is_recorded_once_per_step(ray_session, name):
    schedule = schedule_named(name)
    config = config_for(schedule, steps=2)
    with RayPipeline(plan_training(schedule, config), config, UNCALIBRATED) as pipeline:
        timeline = pipeline.run(config.steps).timeline
    param_layers = [l.index for l in timeline.meta.layers if l.has_params]
    for step in range(2):
        ready = sorted(g.layer for g in timeline.grad_ready if g.step == step)
        assert ready == param_layers
    if name == "1f1b":
        # with a full backward, B(0, m-1) needs B(1, m-1): the last layer's gradient is
        # complete before the first layer's. (ZB-H1 defers W, so there it may come either way.)
        step0 = {g.layer: g.time for g in timeline.grad_ready if g.step == 0}
        assert step0[param_layers[-1]] < step0[param_layers[0]]


def test_dead_rank_is_named_and_no_rank_applies_the_step(ray_session):
    schedule = schedule_named("1f1b")
    config = config_for(schedule, steps=3)
    pipeline = RayPipeline(
        plan_training(schedule, config), config, RayOptions(step_timeout=60, calibrate=False)
    )
    try:
        began = time.time()
        with pytest.raises(RankFailure) as failure:
            pipeline.run(3, fault=(1, 1, 0))
        assert time.time() - began < 60
        assert "rank 1" in str(failure.value) and "step 1" in str(failure.value)
        assert failure.value.step == 1
        survivor = ray_session.get(pipeline.actors[0][0].weights.remote())
    finally:
        pipeline.shutdown()
    after_one_step = train_reference(config, steps=1).weights()
    for key, value in survivor.items():
        np.testing.assert_array_equal(value, after_one_step[key])


def test_retry_restarts_the_dead_rank_and_ends_like_a_fault_free_run(ray_session):
    schedule = schedule_named("gpipe")
    config = config_for(schedule, steps=3)
    # calibrated, so the runtime meter reads rank 0's node through rank 0, the rank killed
    with RayPipeline(
        plan_training(schedule, config), config, RayOptions(retries=1, step_timeout=60)
    ) as pipeline:
        result = pipeline.run(3, fault=(2, 0, 0))
    assert result.restarts == 1
    assert max_rel(result.weights, train_reference(config).weights()) <= 1e-9
    # the meter stopped at the restart and kept step 1's window, read before it
    if pipeline._meter is not None:
        assert not pipeline._meter.reading and set(pipeline._meter.windows) <= {1}
    assert result.profile.call_cpu >= 0 and result.profile.cores >= 1


def test_impossible_sizes_are_one_sentence(ray_session):
    schedule = schedule_named("1f1b")
    config = TrainConfig(model=ModelSpec(widths=(2, 8, 3)), batch_size=10, microbatches=4)
    with pytest.raises(PebbleError) as error:
        RayPipeline(plan_training(schedule, config), config)
    assert "does not split" in str(error.value)


def test_a_diverging_run_stops_in_one_sentence(ray_session):
    schedule = schedule_named("1f1b")
    config = TrainConfig(
        model=ModelSpec(widths=(2, 16, 16, 1), activation="relu", loss="mse", seed=7),
        dataset="regression",
        batch_size=32,
        microbatches=MICROBATCHES,
        steps=6,
        optimizer=OptimizerConfig("sgd", lr=1e150, momentum=0.0),
    )
    with (
        RayPipeline(plan_training(schedule, config), config, UNCALIBRATED) as pipeline,
        pytest.raises(PebbleError, match="diverged"),
    ):
        pipeline.run(6)
