"""A busy machine (issue 26): the run measures the CPU other processes took during its compared
steps, the profile carries it as ``outside_load``, the prediction charges it, and the caption
says so with the numbers and the quiet machine's prediction.

``benchmarks/busy_machine.py`` runs the demo beside busy processes; on this 2-core VM, already
loaded by other work (0.91 cores outside the run), 1F1B's prediction was +4.0% with the load
charged and -34.8% without; with two more busy processes (1.22 cores), +20.0% and -53.4%."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from simulator.analytic.profile import Profile, profile_costs
from simulator.model.parse import parse_model
from simulator.model.partitioning import partition
from simulator.ray_pipeline.calibrated_profile import calibrated_profile
from simulator.ray_pipeline.calibration import Calibration
from simulator.ray_pipeline.machine import NodeState, machine_cpu_seconds, outside_between
from simulator.ray_pipeline.runtime_meter import RunRuntime, RuntimeMeter
from visualize.overlay import MakespanError, busy_machine_text


def reading(wall, session_cpu, machine_cpu, ranks_cpu=0.0) -> NodeState:
    return NodeState("node", 2, wall, session_cpu, 0.0, 1, ranks_cpu, machine_cpu=machine_cpu)


def test_outside_cpu_is_the_machines_busy_time_less_the_sessions():
    assert outside_between(reading(0, 5.0, 100.0), reading(1, 6.2, 102.0)) == pytest.approx(0.8)
    # /proc/stat counts 10 ms ticks: a session that ran more than the ticks say is 0, not less
    assert outside_between(reading(0, 5.0, 100.0), reading(1, 6.2, 101.19)) == 0.0
    assert outside_between(reading(0, 5.0, None), reading(1, 6.2, 102.0)) is None
    assert machine_cpu_seconds() is None or machine_cpu_seconds() > 0


def test_the_meter_averages_the_outside_load_over_its_windows():
    meter = RuntimeMeter(None, ("node", 1), ((0, 0, 11),), calls=4, node_calls=2, node_sends=1)
    first = meter.window(reading(0.0, 5.0, 100.0), reading(0.5, 5.6, 101.1))
    assert first == pytest.approx((0.6, 0.5, 0.0))  # the window itself is as before
    assert first.outside == pytest.approx(0.5)
    meter.keep(0, first)  # step 0 is the warm-up: not kept
    meter.keep(1, first)
    meter.keep(2, meter.window(reading(1.0, 6.0, 103.0), reading(2.5, 7.0, 105.5)))
    assert meter.outside_load() == pytest.approx((0.5 + 1.5) / (0.5 + 1.5))
    calibration = SimpleNamespace(call_overhead=0.0, send_overhead=0.0)
    assert meter.result(SimpleNamespace(action_cpu=[]), calibration).outside_load == pytest.approx(
        1.0
    )


def test_the_profile_carries_the_outside_load_below_the_cores():
    profile = Profile(model="widths=2-3", microbatch_rows=1, stages=[[0, 0]], costs=[{}], cores=2)
    cal = Calibration(costs=[{}], call_overhead=0.01, transfer=0.0, cores=2, background_load=0.1)
    assert calibrated_profile(profile, cal, RunRuntime(0.001, 1.0, 0.7)).outside_load == 0.7
    # most of both cores taken: kept to leave the run a tenth of them, as it had (it ran)
    capped = calibrated_profile(profile, cal, RunRuntime(0.001, 1.0, 1.99))
    assert capped.outside_load == pytest.approx(0.9 * 2 - 0.1)
    assert calibrated_profile(profile, cal, RunRuntime(0.001)).outside_load == 0.0


def test_a_prediction_charges_the_outside_load_with_the_background_load():
    spec = parse_model("widths=2-8-8-3")
    split = partition(spec, 2)
    costs = [{"F": 0.01, "I": 0.01, "W": 0.01, "B": None}] * 2
    profile = Profile(
        model=spec.to_text(),
        microbatch_rows=4,
        stages=[[s.start, s.stop - 1] for s in split.stage_layers],
        costs=costs,
        cores=2,
        background_load=0.1,
        outside_load=0.8,
    )
    charged = profile_costs(profile, spec, split, 4)
    quiet = profile_costs(replace(profile, outside_load=0.0), spec, split, 4)
    assert charged.background_load == pytest.approx(0.9)
    assert quiet.background_load == pytest.approx(0.1)


def test_the_caption_says_plainly_when_the_machine_was_busy():
    quiet = MakespanError(predicted=2.2, measured=3.37, error=2.2 / 3.37 - 1, first_step=1)
    text = busy_machine_text(0.91, 2, quiet)
    assert text.startswith("the machine was busy: other processes used 0.91 of its 2 cores")
    assert "which the prediction charges" in text
    assert "on a quiet machine it would predict 2.2 s (34.7% under this run)" in text
    assert busy_machine_text(0.05, 2, quiet) is None  # a quiet machine: no line
    assert "quiet" not in busy_machine_text(0.5, 2, None)
