"""Calibration (``ray_pipeline.calibration``) and the machine it reads (``ray_pipeline.machine``).

That a calibrated run trains exactly what the sequential reference trains is held by
``test_ray_executor`` (its equivalence tests calibrate first); here: what calibration records,
and the helpers' closed forms. No timing is asserted, only that times are there and sane.
"""

from __future__ import annotations

import os
import statistics
import time
from types import SimpleNamespace

import pytest

from schedules.registry import build_schedule
from simulator.analytic.profile import Profile
from simulator.model import ModelSpec
from simulator.model.optim import OptimizerConfig
from simulator.model.reference import TrainConfig
from simulator.ray_pipeline.calibrated_profile import calibrated_profile
from simulator.ray_pipeline.calibration import Calibration
from simulator.ray_pipeline.executor import RayPipeline
from simulator.ray_pipeline.machine import (
    NodeState,
    cpu_between,
    process_cpu_seconds,
    session_cpu_seconds,
    session_processes,
    shared_cores,
    threads_cpu_seconds,
    usable_cores,
)
from simulator.ray_pipeline.runtime_meter import RuntimeMeter
from simulator.run import plan_training
from simulator.timeline import Timeline


def test_shared_cores_of_one_node_and_of_a_spread():
    assert shared_cores([("a", 2)] * 4) == 2
    assert shared_cores([("a", 8)] * 4) == 8
    # two nodes of 2 cores, 2 ranks each: as if 4 ranks shared 4 cores
    assert shared_cores([("a", 2), ("a", 2), ("b", 2), ("b", 2)]) == 4
    # the crowded node sets the pace: 3 ranks on 2 cores crowd 4 ranks as 8/3 cores would
    assert shared_cores([("a", 2), ("a", 2), ("a", 2), ("b", 64)]) == 2


def test_the_machine_readings():
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)
    if session_cpu_seconds(os.getpid()) is None:
        pytest.skip("this system's /proc does not give per-thread run times")
    # this process alone: its children (Ray's, after the Ray tests) may exit in between
    before = threads_cpu_seconds((os.getpid(),))
    began = time.thread_time()
    while time.thread_time() - began < 0.05:
        pass
    after = threads_cpu_seconds((os.getpid(),))
    assert after - before >= 0.04
    # the main thread alone: this test's busy loop ran on it
    assert os.getpid() in session_processes(os.getpid())
    main = threads_cpu_seconds((os.getpid(),), main_only=True)
    began = time.thread_time()
    while time.thread_time() - began < 0.05:
        pass
    assert threads_cpu_seconds((os.getpid(),), main_only=True) - main >= 0.04
    assert threads_cpu_seconds((2**22 + 1,)) is None  # no such process: nothing to say
    assert process_cpu_seconds((os.getpid(), 2**22 + 1))[1] is None


def test_cpu_between_two_readings_counts_the_processes_both_found():
    began = NodeState("n", 2, 0.0, 9.0, 0.0, 1, None, (7, 8, 9), (4.0, 2.0, 3.0))
    ended = NodeState("n", 2, 1.0, 9.5, 0.0, 1, None, (7, 9, 10), (4.5, None, 5.0))
    # 7 ran 0.5 s; 8 is gone from the second reading, 9 exited before it, 10 started after
    # the first: none of them counts
    assert cpu_between(began, ended) == pytest.approx(0.5)
    # readings without per-process times: the totals
    assert cpu_between(began._replace(per_process=()), ended) == pytest.approx(0.5)
    assert cpu_between(began._replace(cpu=None), ended) is None


def _reading(wall, cpu, ranks_cpu, cost=0.0):
    return NodeState("node", 2, wall, cpu, cost, 1, ranks_cpu)


def test_the_runtime_meter_charges_every_cpu_second_once():
    """A window's runtime CPU off the ranks is the session's CPU minus the ranks' main threads
    minus the idle load over its wall time; per call, averaged over the kept windows. On the
    ranks, the main threads' CPU beyond the actions' own scales the calibrated overheads."""
    meter = RuntimeMeter(
        probe=None,
        driver=("node", 1),
        processes=((0, 0, 11), (1, 0, 12)),
        calls=10,
        node_calls=6,
        node_sends=4,
        load=0.1,
    )
    window = meter.window(_reading(1.0, 5.0, 3.0), _reading(1.5, 6.3, 3.8))
    assert window == pytest.approx((1.3 - 0.8 - 0.1 * 0.5, 0.5, 0.8))
    assert meter.window(_reading(1.0, None, 3.0), _reading(1.5, 6.3, 3.8)) is None
    # a process gone by the closing reading counts for neither (its CPU left with it)
    opened = NodeState("node", 2, 1.0, 5.0, 0.0, 1, 3.0, (7, 8), (4.0, 1.0))
    gone = NodeState("node", 2, 1.5, 5.3, 0.0, 1, 3.8, (7, 8), (5.3, None))
    assert meter.window(opened, gone) == pytest.approx((1.3 - 0.8 - 0.1 * 0.5, 0.5, 0.8))
    # the closing reading's own CPU ran on a rank's main thread: not the runtime's
    closed = meter.window(_reading(1.0, 5.0, 3.0), _reading(1.5, 6.3, 3.8, cost=0.1))
    assert closed == pytest.approx((window[0], 0.5, 0.7))
    calibration = SimpleNamespace(call_overhead=0.01, send_overhead=0.02)
    assert meter.result(SimpleNamespace(action_cpu=[]), calibration) is None  # nothing kept
    meter.keep(0, (9.0, 1.0, 9.0))  # step 0 is the warm-up: not kept
    meter.keep(1, window)
    meter.keep(2, (0.2, 0.5, 0.7))
    meter.keep(2, (0.25, 0.5, 0.9))  # a rerun of step 2 replaces its window
    row = SimpleNamespace
    timeline = SimpleNamespace(
        action_cpu=[
            row(rank=0, replica=0, step=1, cpu=0.3),
            row(rank=1, replica=0, step=2, cpu=0.5),
            row(rank=2, replica=0, step=2, cpu=7.0),  # a rank on another node: not read
            row(rank=0, replica=0, step=0, cpu=7.0),  # the warm-up step: no window
        ]
    )
    measured = meter.result(timeline, calibration)
    assert measured.call_cpu == pytest.approx((0.45 + 0.25) / (10 * 2))
    on_ranks = 0.8 + 0.9 - (0.3 + 0.5)
    assert measured.overhead_scale == pytest.approx(on_ranks / (2 * (6 * 0.01 + 4 * 0.02)))
    # the calibrated profile takes both: the CPU per call, and the overheads scaled
    profile = Profile(model="widths=2-3", microbatch_rows=1, stages=[[0, 0]], costs=[{}], cores=2)
    cal = Calibration(costs=[{}], call_overhead=0.01, transfer=0.0, cores=2, send_overhead=0.02)
    scaled = calibrated_profile(profile, cal, measured)
    assert scaled.call_cpu == measured.call_cpu
    assert scaled.call_overhead == pytest.approx(0.01 * measured.overhead_scale)
    assert scaled.send_overhead == pytest.approx(0.02 * measured.overhead_scale)


def test_a_calibrated_run_records_its_machine_and_alone_times(ray_session, tmp_path):
    schedule = build_schedule("zb-h1", 2, 4)
    config = TrainConfig(
        model=ModelSpec(widths=(2, 16, 16, 3), activation="tanh", dtype="float64", seed=7),
        batch_size=32,
        microbatches=4,
        steps=2,
        optimizer=OptimizerConfig("sgd", lr=0.1),
    )
    with RayPipeline(plan_training(schedule, config), config) as pipeline:
        result = pipeline.run(2)
        predicted = pipeline.prediction(result)
    timeline = result.timeline
    profile, meta = result.profile, timeline.meta
    assert profile.cores == meta.cores == predicted.meta.cores >= 1
    # every action's CPU time is recorded, and lies within its span
    spans = {
        (e.rank, e.stage, e.kind, e.microbatch, e.step): e.end - e.start for e in timeline.events
    }
    cpu = {(c.rank, c.stage, c.kind, c.microbatch, c.step): c.cpu for c in timeline.action_cpu}
    assert cpu.keys() == spans.keys()
    assert all(0 < cpu[key] <= spans[key] + 1e-4 for key in spans)
    # each kind's work is the mean CPU time of its actions after step 0
    for stage, costs in enumerate(profile.costs):  # ZB-H1 runs F, I and W, never B
        assert costs["B"] is None
        for kind in "FIW":
            times = [v for (_, s, k, _, step), v in cpu.items() if (s, k, step) == (stage, kind, 1)]
            assert costs[kind] == pytest.approx(statistics.fmean(times), rel=1e-12)
    # the alone times calibration measured are kept beside them, kind for kind
    for alone, costs in zip(meta.alone_costs, profile.costs, strict=True):
        assert {k for k, v in alone.items() if v} == {k for k, v in costs.items() if v}
    assert profile.call_overhead > 0 and profile.call_cpu >= 0 and profile.background_load >= 0
    # the CPU per call is the run's own, over its compared step; the idle load is charged
    if pipeline._meter is not None:
        assert set(pipeline._meter.windows) == {1}
        measured = pipeline._meter.result(timeline, pipeline.calibration)
        assert profile.call_cpu == measured.call_cpu
        scale = measured.overhead_scale
        assert profile.call_overhead == pytest.approx(pipeline.calibration.call_overhead * scale)
    assert profile.background_load == pipeline.calibration.background_load
    # the profile and the Timeline keep all of it through a file
    profile.save(tmp_path / "profile.json")
    assert Profile.load(tmp_path / "profile.json") == profile
    result.timeline.save(tmp_path / "timeline.json")
    assert Timeline.load(tmp_path / "timeline.json").meta == meta
    assert Profile.load(tmp_path / "timeline.json").costs == profile.costs
    assert calibrated_profile(profile, None) is profile


def test_calibration_waits_for_a_quiet_machine(monkeypatch):
    """Calibration starts once the machine is nearly idle: it polls until the busy cores fall
    under SETTLE_BUSY, stops at once where the machine cannot say, and gives up at the timeout."""
    from simulator.ray_pipeline import calibration

    readings = iter([1.6, 0.9, 0.1, 5.0])
    polled = []

    def busy(window):
        polled.append(window)
        return next(readings)

    calibration.settle(busy)
    assert len(polled) == 3
    polled.clear()
    calibration.settle(lambda window: polled.append(window))  # None: unknown
    assert len(polled) == 1
    monkeypatch.setattr(calibration, "SETTLE_TIMEOUT", 0.05)
    waited = calibration.settle(lambda window: 2.0)
    assert 0.05 <= waited < 1.0
