"""Activation offload on Ray: ranks really move their cached arrays to the node's object store
and back, train the same bits as without offload, and measure what the model predicts."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from schedules.registry import build_schedule
from schedules.validate import validate
from simulator.errors import PebbleError
from simulator.model import ModelSpec
from simulator.model.offload import stage_offload_bytes
from simulator.model.optim import OptimizerConfig
from simulator.model.reference import TrainConfig
from simulator.ray_pipeline.executor import RayOptions, RayPipeline
from simulator.ray_pipeline.offload_setup import issue_table
from simulator.run import plan_training

UNCALIBRATED = RayOptions(calibrate=False)

# a loop with two chunks per rank, a split backward (I then W), and a loop with recomputation
# (a plain loop runs in the selective test below)
CASES = [
    ("interleaved-1f1b", 2, None),
    ("zb-h1", None, None),
    ("1f1b", None, "full"),
]


def _config(schedule) -> TrainConfig:
    return TrainConfig(
        model=ModelSpec(widths=(2, 16, 16, 16, 16, 3), activation="tanh", dtype="float64", seed=3),
        batch_size=8 * schedule.num_microbatches,
        microbatches=schedule.num_microbatches,
        steps=2,
        optimizer=OptimizerConfig("sgd", lr=0.3, momentum=0.9),
    )


def _train(schedule, config, recompute, offload):
    plan = plan_training(schedule, config, recompute=recompute, offload=offload)
    with RayPipeline(plan, config, UNCALIBRATED) as pipeline:
        result = pipeline.run(config.steps, check=True)
        predicted = pipeline.prediction(result) if offload else None
        return plan, result, predicted


@pytest.mark.parametrize(("name", "chunks", "recompute"), CASES)
def test_offload_trains_the_same_bits_and_moves_the_predicted_bytes(
    ray_session, name, chunks, recompute
):
    schedule = build_schedule(name, 2, 4, chunks)
    config = _config(schedule)
    _, kept, _ = _train(schedule, config, recompute, None)
    plan, sent, predicted = _train(schedule, config, recompute, "full")

    # the same bits: a copy to the host and back changes nothing that is trained
    for key, grad in kept.first_step_gradients.items():
        assert np.array_equal(sent.first_step_gradients[key], grad), key
    for key, weight in kept.weights.items():
        assert np.array_equal(sent.weights[key], weight), key
    assert sent.losses == kept.losses

    # every copy the analytic executor predicts ran on Ray, with the predicted bytes, and
    # those bytes are what the forward's work leaves cached in the offloaded blocks
    copies = _copies(sent.timeline)
    assert copies == _copies(predicted)
    assert copies, "full offload sent nothing"
    per_stage = stage_offload_bytes(
        plan.spec,
        plan.partition,
        plan.microbatch_rows,
        validate(schedule).rule,
        plan.offload,
        plan.recompute.stages if plan.recompute is not None else None,
    )
    for (_, stage, _, _, _), nbytes in copies.items():
        assert nbytes == sum(b for _, b in per_stage[stage])

    # each prefetch starts no earlier than the end of the action before its issue point
    issue = issue_table(plan, validate(schedule))
    assert issue
    for o in sent.timeline.offload:
        if o.kind != "prefetch":
            continue
        point = issue[(o.stage, o.microbatch)]
        mine = sorted(
            (e for e in sent.timeline.events if e.rank == o.rank and e.step == o.step),
            key=lambda e: e.start,
        )
        assert o.start >= mine[point.position - 1].end

    # the device holds what the schedule stores less what is on the host, at every action's
    # end: the real cache bytes against the model's accounting, on the measured clock
    _assert_device_is_stored_less_host(sent.timeline)
    for rank in range(schedule.num_ranks):
        _, totals = sent.timeline.rank_memory(rank)
        assert totals[-1] == 0


def _copies(timeline) -> dict:
    """(rank, stage, kind, microbatch, step) -> bytes of every offload and prefetch (replica 0);
    each must be unique."""
    keys = Counter()
    out = {}
    for o in timeline.offload:
        if o.kind == "wait" or o.replica != 0:
            continue
        key = (o.rank, o.stage, o.kind, o.microbatch, o.step)
        keys[key] += 1
        out[key] = o.bytes
    assert max(keys.values(), default=1) == 1
    return out


def _assert_device_is_stored_less_host(timeline) -> None:
    held = {(a.stage, a.kind): a.held for a in timeline.meta.action_memory}
    cache = sorted(timeline.cache, key=lambda c: c.time)
    for rank in range(timeline.num_ranks):
        events = sorted(
            (e for e in timeline.events if e.rank == rank and e.replica == 0), key=lambda e: e.start
        )
        changes = [(c.time, c.bytes) for c in cache if c.rank == rank and c.replica == 0]
        copies = [o for o in timeline.offload if o.rank == rank and o.kind != "wait"]
        stored = 0
        for event in events:
            stored += held[(event.stage, event.kind)]
            end = event.end
            device = sum(d for t, d in changes if t <= end)
            on_host = sum(
                o.bytes if o.kind == "offload" else -o.bytes
                for o in copies
                if (o.end if o.kind == "offload" else o.start) <= end
            )
            assert device == stored - on_host, (rank, event)


def test_selective_is_solved_on_this_machine_and_sends_what_it_chose(ray_session):
    """Solved before step 0 at calibration's costs over the host link a rank timed: the ranks
    send exactly the microbatches the solved plan names, and train the same bits."""
    schedule = build_schedule("1f1b", 2, 4, None)
    wide = ModelSpec(widths=(2, 512, 512, 512, 3), activation="tanh", dtype="float64", seed=3)
    config = replace(_config(schedule), model=wide, batch_size=1024, steps=1)  # copies can hide
    _, kept, _ = _train(schedule, config, None, None)
    plan = plan_training(schedule, config, offload="selective")
    with RayPipeline(plan, config, UNCALIBRATED) as pipeline:  # it calibrates all the same
        sent = pipeline.run(config.steps, check=True)
        solved = pipeline.plan.offload
    assert solved.pending is None and sent.timeline.meta.offload == "selective"
    chosen = {
        (stage, mb)
        for stage, plan_of in enumerate(solved.stages)
        if plan_of.active
        for mb in range(schedule.num_microbatches)
        if plan_of.sends(mb)
    }
    went = {(o.stage, o.microbatch) for o in sent.timeline.offload if o.kind == "offload"}
    assert went == chosen  # (what hides depends on this machine's speed: maybe nothing)
    for key, grad in kept.first_step_gradients.items():
        assert np.array_equal(sent.first_step_gradients[key], grad), key


def test_a_joint_budget_on_ray_is_one_sentence(ray_session):
    schedule = build_schedule("1f1b", 2, 4, None)
    config = _config(schedule)
    plan = plan_training(schedule, config, recompute="budget:90%", offload="budget:90%")
    with pytest.raises(PebbleError, match="not jointly with --recompute budget"):
        RayPipeline(plan, config, UNCALIBRATED)
