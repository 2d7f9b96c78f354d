"""The cost model: unit costs, FLOP costs, and measured profiles (direct and calibrated)."""

from __future__ import annotations

import math

import pytest

from schedules.registry import build_schedule
from simulator.analytic.costs import (
    Hardware,
    flop_costs,
    parse_unit_costs,
    unit_costs,
)
from simulator.analytic.profile import Profile, profile_costs
from simulator.errors import PebbleError
from simulator.model import ModelSpec, partition

SPEC = ModelSpec(widths=(16, 64, 64, 64, 64, 8), dtype="float32")


def synthetic_profile(spec, stages, rows, rate, only_b=False) -> Profile:
    """What a machine sustaining ``rate`` FLOP/s in every phase would have measured."""
    parts = partition(spec, stages)
    costs = flop_costs(spec, parts, rows, Hardware(flops_per_second=rate), comm=False)
    rows_out = []
    for c in costs.stage_costs:
        if only_b:
            rows_out.append({"F": c.F, "I": None, "W": None, "B": c.I + c.W})
        else:
            rows_out.append({"F": c.F, "I": c.I, "W": c.W, "B": None})
    return Profile(
        spec.to_text(),
        rows,
        [[r[0], r[-1]] for r in parts.stage_layers],
        rows_out,
        {"latency": 1e-3},
    )


def test_unit_costs_split_a_rank_between_its_chunks_by_layer_share():
    schedule = build_schedule("interleaved-1f1b", 2, 4, 2)
    parts = partition(ModelSpec.uniform(4), 4)
    costs = unit_costs(schedule, parts, 1.0, 2.0, 3.0)
    for stage in costs.stage_costs:
        assert (stage.F, stage.I, stage.W, stage.of("B")) == (0.5, 1.0, 1.5, 2.5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {"F": 1.0, "I": 1.0, "W": 1.0}),
        ("F=2", {"F": 2.0, "I": 1.0, "W": 1.0}),
        ("f=1,i=2,w=0.5", {"F": 1.0, "I": 2.0, "W": 0.5}),
        ("B=3", {"F": 1.0, "I": 1.5, "W": 1.5}),
    ],
)
def test_parse_unit_costs(text, expected):
    assert parse_unit_costs(text) == expected


@pytest.mark.parametrize("text", ["F", "F=-1", "X=1", "F=nan", "F=abc"])
def test_parse_unit_costs_rejects_bad_input(text):
    with pytest.raises(PebbleError):
        parse_unit_costs(text)


def test_transfer_time_is_latency_plus_bytes_over_bandwidth():
    parts = partition(SPEC, 2)
    costs = flop_costs(SPEC, parts, 32, Hardware(1e9, link_bandwidth=1e6, link_latency=0.5))
    sent = 32 * 64 * 4  # rows x width of the boundary x float32
    assert costs.boundary_bytes[0] == sent
    assert costs.transfer_time(0) == pytest.approx(0.5 + sent / 1e6)


def test_profile_round_trip_and_bad_files(tmp_path):
    profile = synthetic_profile(SPEC, 2, 32, 1e9)
    path = tmp_path / "profile.json"
    profile.save(path)
    assert Profile.load(path) == profile
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PebbleError):
        Profile.load(tmp_path / "bad.json")
    with pytest.raises(PebbleError):
        Profile.load(tmp_path / "missing.json")


def test_a_profile_on_its_own_split_is_used_directly_and_scales_with_rows():
    profile = synthetic_profile(SPEC, 2, 32, 1e9)
    parts = partition(SPEC, 2)
    direct = profile_costs(profile, SPEC, parts, 64)
    for cost, measured in zip(direct.stage_costs, profile.costs, strict=True):
        assert cost.F == pytest.approx(2 * measured["F"])
        assert cost.W == pytest.approx(2 * measured["W"])
    assert direct.comm_latency == 1e-3


@pytest.mark.parametrize("only_b", [False, True])
@pytest.mark.parametrize("stages", [1, 3, 4])
def test_a_profile_calibrates_other_splits_to_the_measured_flop_rate(stages, only_b):
    """Measured at 2 stages on a machine doing 1e9 FLOP/s; predicting 1, 3 or 4 stages must give
    exactly what a 1e9 FLOP/s hardware model gives for that split."""
    rate = 1e9
    profile = synthetic_profile(SPEC, 2, 32, rate, only_b=only_b)
    parts = partition(SPEC, stages)
    calibrated = profile_costs(profile, SPEC, parts, 48)
    expected = flop_costs(SPEC, parts, 48, Hardware(flops_per_second=rate), comm=False)
    for got, want in zip(calibrated.stage_costs, expected.stage_costs, strict=True):
        assert got.F == pytest.approx(want.F)
        assert got.of("B") == pytest.approx(want.of("B"))
        if not only_b:
            assert got.I == pytest.approx(want.I)
            assert got.W == pytest.approx(want.W)


def test_a_profile_calibrates_a_different_model_too():
    profile = synthetic_profile(SPEC, 2, 32, 2e9)
    wider = ModelSpec(widths=(16, 256, 256, 8), dtype="float32")
    parts = partition(wider, 2)
    got = profile_costs(profile, wider, parts, 32)
    want = flop_costs(wider, parts, 32, Hardware(flops_per_second=2e9), comm=False)
    assert [c.F for c in got.stage_costs] == pytest.approx([c.F for c in want.stage_costs])
    assert math.isfinite(got.stage_costs[0].W)
