"""Profile.from_timeline: any measured-style Timeline (seconds, with its model and layers) gives
the cost profile that reproduces it, so `simulate --profile` takes a timeline.json too."""

from __future__ import annotations

import json

import pytest

from schedules.registry import build_schedule
from simulator.analytic.costs import Hardware, flop_costs
from simulator.analytic.executor import simulate
from simulator.analytic.profile import Profile, profile_costs
from simulator.errors import PebbleError
from simulator.model import ModelSpec, partition

SPEC = ModelSpec(widths=(8, 64, 64, 64, 4))


def seconds_timeline(steps: int = 1):
    schedule = build_schedule("zb-h1", 2, 4)
    parts = partition(SPEC, 2)
    costs = flop_costs(SPEC, parts, 16, Hardware(flops_per_second=1e9), comm=False)
    return schedule, parts, costs, simulate(schedule, costs, SPEC, parts, 16, steps=steps)


def test_profile_from_timeline_recovers_the_costs_it_was_simulated_with():
    _, parts, costs, timeline = seconds_timeline()
    profile = Profile.from_timeline(timeline)
    assert profile.model == SPEC.to_text() and profile.microbatch_rows == 16
    assert profile.stages == [[r[0], r[-1]] for r in parts.stage_layers]
    for measured, stage_cost in zip(profile.costs, costs.stage_costs, strict=True):
        for kind in ("F", "I", "W"):
            assert measured[kind] == pytest.approx(stage_cost.of(kind), rel=1e-12)
        assert measured["B"] is None  # zb-h1 never runs a full backward


def test_a_profile_from_a_timeline_predicts_the_same_run():
    schedule, parts, _, timeline = seconds_timeline(steps=3)
    again = simulate(
        schedule,
        profile_costs(Profile.from_timeline(timeline), SPEC, parts, 16),
        SPEC,
        parts,
        16,
        steps=3,
    )
    assert again.summary().makespan == pytest.approx(timeline.summary().makespan, rel=1e-9)


def test_profile_load_reads_a_timeline_file(tmp_path):
    _, _, _, timeline = seconds_timeline()
    path = tmp_path / "timeline.json"
    timeline.save(path)
    assert Profile.load(path).costs == Profile.from_timeline(timeline).costs
    path.write_text(json.dumps({**timeline.to_dict(), "meta": {"time_unit": "unit"}}))
    with pytest.raises(PebbleError, match="measured Timeline in seconds"):
        Profile.load(path)


def test_the_gap_after_step_zero_is_warm_up_and_left_out():
    """A run whose first optimizer step took 5 s longer (allocating its state) has the step
    overhead of the steps after it; with two steps there is only that gap, and it counts."""
    _, _, _, timeline = seconds_timeline(steps=4)
    usual = Profile.from_timeline(timeline).step_overhead

    def later(rows, first_step):
        return [
            r._replace(
                start=r.start + 5.0 * (r.step >= first_step),
                end=r.end + 5.0 * (r.step >= first_step),
            )
            for r in rows
        ]

    timeline.events = later(timeline.events, 1)
    timeline.optimizer = later(timeline.optimizer, 1)
    assert Profile.from_timeline(timeline).step_overhead == pytest.approx(usual, rel=1e-12)
    _, _, _, two = seconds_timeline(steps=2)
    two.events, two.optimizer = later(two.events, 1), later(two.optimizer, 1)
    assert Profile.from_timeline(two).step_overhead == pytest.approx(usual + 5.0, rel=1e-12)
