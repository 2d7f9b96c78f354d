"""The cost profile's schema check: Profile.load (a profile.json or a measured timeline.json)
and profile_costs refuse negative, NaN and infinite times, bad row counts and stages that do
not tile the model, in one sentence naming the file, the field and the value."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.analytic.profile import Profile, profile_costs
from simulator.errors import PebbleError
from simulator.model.parse import parse_model
from simulator.model.partitioning import partition
from tests.simulator.test_timeline_schema import (
    ENCODINGS,
    FUZZ,
    MUTATIONS,
    loads_or_one_sentence,
    mutated_file,
    one_sentence,
    simulated,
)


@pytest.fixture(scope="module")
def measured() -> dict:
    """A timeline.json in seconds (FLOP costs), as `train --out` writes one."""
    return simulated(steps=2, dp=1, hardware="flops=1e12").to_dict()


@pytest.fixture(scope="module")
def good(measured) -> dict:
    """A profile.json: the profile measured from that Timeline."""
    profile = asdict(Profile.from_timeline(simulated(steps=2, dp=1, hardware="flops=1e12")))
    profile["transfer"]["bandwidth"] = 25e9
    return profile


def refused(tmp_path, doc, match: str, name="profile.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    with pytest.raises(PebbleError, match=match) as info:
        Profile.load(path)
    message = one_sentence(info.value)
    assert message.startswith(str(path)), message
    return message


def test_a_good_profile_and_a_measured_timeline_load(tmp_path, good, measured):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(good))
    profile = Profile.load(path)
    assert asdict(profile) == good
    timeline_path = tmp_path / "timeline.json"
    timeline_path.write_text(json.dumps(measured))
    assert Profile.load(timeline_path).costs == profile.costs
    spec = parse_model(profile.model)
    costs = profile_costs(profile, spec, partition(spec, 2), profile.microbatch_rows)
    assert all(c.F > 0 for c in costs.stage_costs)


def test_only_a_full_backward_measured_is_enough(tmp_path, good):
    doc = copy.deepcopy(good)
    for cost in doc["costs"]:
        cost.update(I=None, W=None, B=0.5)
    del doc["costs"][0]["I"], doc["costs"][0]["W"]  # an absent kind reads as not measured
    path = tmp_path / "b.json"
    path.write_text(json.dumps(doc))
    assert Profile.load(path).costs[0] == {
        "F": doc["costs"][0]["F"],
        "I": None,
        "W": None,
        "B": 0.5,
    }


def cost(doc, stage=0) -> dict:
    return doc["costs"][stage]


CASES = [
    (lambda d: cost(d).update(F=-0.002), r"costs\[0\]\.F is -0\.002, outside 0\.\.1e\+12"),
    (lambda d: cost(d).update(I=math.nan), r"costs\[0\]\.I is NaN, not a finite number"),
    (lambda d: cost(d, 1).update(W=math.inf), r"costs\[1\]\.W is Infinity, not a finite"),
    (lambda d: cost(d).update(F="1"), r"costs\[0\]\.F must be a number, got \"1\""),
    (lambda d: cost(d).update(F=True), r"costs\[0\]\.F must be a number, got true"),
    (lambda d: cost(d).update(F=None), r"costs\[0\] has no F time"),
    (lambda d: cost(d).update(I=None, B=None), r"costs\[0\] has neither a B time nor both I"),
    (lambda d: cost(d).update(X=1.0), r"costs\[0\] has an unknown field \"X\""),
    (lambda d: d["costs"].pop(), r"costs has 1 entries, but stages has 2"),
    (lambda d: d["costs"].__setitem__(1, 0.1), r"costs\[1\] must be an object, got 0\.1"),
    (lambda d: d.update(microbatch_rows=0), r"microbatch_rows is 0, outside 1\.\."),
    (lambda d: d.update(microbatch_rows=1.5), r"microbatch_rows must be an integer, got 1\.5"),
    (lambda d: d.update(microbatch_rows=10**12), r"microbatch_rows is .*MAX_MICROBATCH_ROWS"),
    (lambda d: d.pop("microbatch_rows"), r"the profile has no 'microbatch_rows' field"),
    (
        lambda d: d.update(stages=[[0, 0], [2, 3]]),
        r"stages\[1\] is \[2, 3\]; .* should start at layer 1",
    ),
    (
        lambda d: d.update(stages=[[0, 2], [2, 3]]),
        r"stages\[1\] is \[2, 3\]; .* should start at layer 3",
    ),
    (lambda d: d.update(stages=[[0, 1], [3, 2]]), r"stages\[1\] is \[3, 2\]"),
    (lambda d: d.update(stages=[[0, 1], [2, 2]]), r"stages end at layer 2, but the model has 4"),
    (lambda d: d.update(stages=[[0, 1], [2, 9]]), r"stages\[1\]\[1\] is 9, outside 0\.\.3"),
    (lambda d: d.update(stages=[[0, 1], [2]]), r"stages\[1\] must be \[first_layer, last_layer\]"),
    (lambda d: d.update(stages="0-1"), r"stages must be a list, got \"0-1\""),
    (lambda d: d.update(stages=[]), r"stages is empty"),
    (lambda d: d.update(model="x"), r"model \"x\" cannot be read \(cannot read 'x'"),
    (lambda d: d.update(model=None), r"model must be a model spec string, got null"),
    (lambda d: d["transfer"].update(latency=-1), r"transfer\.latency is -1, outside 0\.\."),
    (lambda d: d["transfer"].update(bandwidth=math.inf), r"transfer\.bandwidth is Infinity"),
    (lambda d: d["transfer"].update(lat=1), r"transfer has an unknown field \"lat\""),
    (lambda d: d.update(transfer=[1]), r"transfer must be an object"),
    (lambda d: d.update(step_overhead=-1e-3), r"step_overhead is -0\.001, outside 0\.\."),
    (lambda d: d.update(step_overhead=math.nan), r"step_overhead is NaN"),
    (lambda d: d.update(version=2), r"version is 2; pebblesim reads cost profile version 1"),
    (lambda d: d.update(version="1"), r"version is \"1\""),
    (lambda d: d.pop("version"), r"the profile has no 'version' field"),
    (lambda d: d.update(costz=[]), r"the profile has an unknown field \"costz\""),
]


@pytest.mark.parametrize(("edit", "match"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_a_bad_profile_value_is_one_sentence(tmp_path, good, edit, match):
    doc = copy.deepcopy(good)
    edit(doc)
    refused(tmp_path, doc, match)


def test_a_negative_time_is_refused_not_reported_as_a_291_percent_bubble(good):
    """The probe's case: F < 0 made profile_costs predict a bubble of 291 %."""
    profile = Profile(**{**copy.deepcopy(good), "version": 1})
    profile.costs[0]["F"] = -0.5
    spec = parse_model(profile.model)
    with pytest.raises(PebbleError, match=r"^the cost profile: costs\[0\]\.F is -0\.5"):
        profile_costs(profile, spec, partition(spec, 2), 32)
    profile.costs[0]["F"] = math.nan
    with pytest.raises(PebbleError, match=r"costs\[0\]\.F is NaN, not a finite number\.$"):
        profile_costs(profile, spec, partition(spec, 3), 32)


def test_a_measured_timeline_is_checked_as_a_timeline_and_as_a_profile(tmp_path, measured):
    doc = copy.deepcopy(measured)
    doc["events"][2]["end"] = -1.0
    refused(tmp_path, doc, r"events\[2\]\.end is -1\.0", "timeline.json")
    doc = copy.deepcopy(measured)
    doc["meta"]["microbatch_rows"] = 0  # a legacy file: the profile would divide by it
    refused(tmp_path, doc, r"\(the profile measured from it\): microbatch_rows is 0", "t.json")
    doc["meta"]["time_unit"] = "unit"
    refused(
        tmp_path, doc, r"t\.json: a cost profile needs a measured Timeline in seconds", "t.json"
    )


def test_files_that_are_not_profiles(tmp_path):
    for raw, match in [
        (b"{nope", "not JSON"),
        (b"[]", "its JSON is a list, not an object"),
        ('{"model": "é"}'.encode("latin-1"), "0xe9 at offset 11 is not UTF-8"),
    ]:
        path = tmp_path / "p.json"
        path.write_bytes(raw)
        with pytest.raises(PebbleError, match=match) as info:
            Profile.load(path)
        assert one_sentence(info.value).startswith(str(path))
    with pytest.raises(PebbleError, match=r"is a directory, not a cost profile file\.$"):
        Profile.load(tmp_path)
    with pytest.raises(PebbleError, match=r"^no cost profile file at"):
        Profile.load(tmp_path / "missing.json")


# ------------------------------------------------------------------ mutation (hypothesis)
def _load_and_use(path) -> Profile | None:
    profile = loads_or_one_sentence(Profile.load, path)
    if profile is not None:  # what loads predicts a finite, non-negative run
        spec = parse_model(profile.model)
        costs = profile_costs(profile, spec, partition(spec, 2), 16)
        assert all(math.isfinite(c.F) and c.F >= 0 for c in costs.stage_costs)
    return profile


@FUZZ
@given(mutations=MUTATIONS, encoding=ENCODINGS, cut=st.floats(0.0, 1.0))
def test_a_mutated_profile_loads_or_is_one_sentence(tmp_path, good, mutations, encoding, cut):
    path = tmp_path / "mutated-profile.json"
    mutated_file(good, path, mutations, encoding, cut)
    _load_and_use(path)


@FUZZ
@given(mutations=MUTATIONS, encoding=ENCODINGS, cut=st.floats(0.0, 1.0))
def test_a_mutated_measured_timeline_as_profile(tmp_path, measured, mutations, encoding, cut):
    path = tmp_path / "mutated-timeline.json"
    mutated_file(measured, path, mutations, encoding, cut)
    _load_and_use(path)
