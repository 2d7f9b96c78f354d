"""Files written before flash attention became the default: a transformer's model text without an
``attention=`` key counted the math core, and a profile or Timeline holding one keeps
predicting what it predicted (``parse.recorded_model``); typed by a user, the same text is
flash."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from schedules.registry import build_schedule
from simulator.analytic.costs import Hardware, flop_costs
from simulator.analytic.executor import simulate
from simulator.analytic.profile import Profile, profile_costs
from simulator.model import partition
from simulator.model.parse import parse_model, recorded_model

# what ``to_text`` writes for the math model, and what it wrote before the flip (no key)
TYPED = "transformer:layers=4,hidden=32,heads=4,seq=16,vocab=96,attention=math"
MATH = parse_model(TYPED).to_text()
OLD = MATH.replace(",attention=math", "")


def test_the_text_form_names_the_core_and_a_typed_text_without_it_is_flash():
    assert parse_model(OLD).config.attention == "flash"
    assert parse_model(OLD).to_text() == OLD.replace(",dtype=", ",attention=flash,dtype=")
    assert parse_model(MATH).to_text() == MATH


@pytest.mark.parametrize(
    ("text", "read"),
    [
        (OLD, OLD + ",attention=math"),
        (MATH, MATH),
        (OLD + ",attention=flash", OLD + ",attention=flash"),
        ("gpt3-1.3b", "gpt3-1.3b,attention=math"),
        ("llama3-8b,seq=4096", "llama3-8b,seq=4096,attention=math"),
        ("widths=8-64-4,activation=relu", "widths=8-64-4,activation=relu"),  # an MLP
    ],
)
def test_a_recorded_text_without_the_key_is_math(text, read):
    assert recorded_model(text) == read
    assert parse_model(recorded_model(text)) == parse_model(read)


def math_timeline():
    """A run of the math model in seconds, as a Timeline written before the flip would hold it
    (meta.model without the key)."""
    spec = parse_model(MATH)
    schedule = build_schedule("1f1b", 2, 4)
    parts = partition(spec, 2)
    costs = flop_costs(spec, parts, 2, Hardware(flops_per_second=1e9), comm=False)
    timeline = simulate(schedule, costs, spec, parts, 2)
    assert timeline.meta.model == MATH
    return spec, replace(timeline, meta=replace(timeline.meta, model=OLD))


def test_an_old_profile_and_timeline_keep_predicting_what_they_predicted(tmp_path):
    spec, old_timeline = math_timeline()
    old_timeline.save(tmp_path / "timeline.json")
    written = Profile.from_timeline(old_timeline)
    assert written.model == OLD + ",attention=math"
    (tmp_path / "profile.json").write_text(json.dumps({**asdict(written), "model": OLD}))
    profiles = {name: Profile.load(tmp_path / name) for name in ("profile.json", "timeline.json")}
    four = partition(spec, 4)  # another split: the profile calibrates FLOP rates
    expected = profile_costs(replace(written, model=MATH), spec, four, 2).stage_costs
    for profile in profiles.values():
        assert parse_model(profile.model) == spec
        assert profile_costs(profile, spec, four, 2).stage_costs == expected
    # read as typed (flash: its backward rebuilds the scores) it would predict other times
    flash = profile_costs(replace(written, model=OLD + ",attention=flash"), spec, four, 2)
    assert flash.stage_costs != expected
