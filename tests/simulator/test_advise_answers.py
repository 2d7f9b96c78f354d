"""advise's answers a user can act on: the headroom, one row per distinct run, the auto budget
in human units, the reasons behind every drop, near misses, --explain and the no-fit floor."""

from __future__ import annotations

from dataclasses import replace

import pytest

from schedules.registry import SCHEDULES
from simulator.analytic.advise import AUTO, Request, RunText, evaluator, search
from simulator.analytic.advise.bounding import NEAR_MISS
from simulator.analytic.advise.evaluate import limit_text
from simulator.analytic.advise.explain import explain
from simulator.analytic.advise.fates import FITS, MEMORY_VERDICTS, SAME, STATIC
from simulator.analytic.advise.headroom import Headroom, usable_memory
from simulator.analytic.advise.near_miss import near_misses
from simulator.analytic.advise.no_fit import diagnose, least_static
from simulator.analytic.advise.search import same_run
from simulator.analytic.cost_source import parse_hardware
from simulator.analytic.hardware import parse_hardware_preset
from simulator.errors import PebbleError
from simulator.model.parse import parse_model
from simulator.units import parse_bytes

MODEL = "transformer:layers=8,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16"
GiB = 2**30


def request_at(limit: int, gpus: int = 8, **changes):
    hardware = f"a100-40gb,memory={limit}"
    preset = parse_hardware_preset(hardware)
    request = Request(
        spec=parse_model(MODEL),
        hardware=preset,
        gpus=gpus,
        global_batch=8,
        memory_limit=limit,
        families=(*SCHEDULES, AUTO),
        **changes,
    )
    return request, RunText(MODEL, hardware), parse_hardware(hardware)


@pytest.fixture(scope="module")
def searched():
    request, text, hardware = request_at(2 * 2**20)
    evaluate = evaluator(text, request.memory_limit)
    return request, text, hardware, evaluate, search(request, hardware, evaluate, top=5)


def test_the_headroom_is_a_share_or_bytes_and_refuses_what_it_cannot_read():
    assert Headroom.parse("5%").bytes_of(80 * GiB) == 4 * GiB
    assert Headroom.parse("4GiB").bytes_of(40 * GiB) == 4 * GiB
    assert Headroom.parse("0").bytes_of(80 * GiB) == 0
    assert usable_memory(80 * GiB, Headroom.parse("5%")) == 76 * GiB
    for junk in ("lots", "100%", "-1GiB", "nan"):
        with pytest.raises(PebbleError, match="--headroom"):
            Headroom.parse(junk)
    with pytest.raises(PebbleError, match="leaves nothing"):
        usable_memory(2 * GiB, Headroom.parse("2GiB"))


@pytest.mark.parametrize("limit", [44522807296, 5 * GiB + 1, 1_006_000, 1023])
def test_the_auto_budget_prints_in_human_units_never_above_the_budget(limit):
    text = limit_text(limit)
    assert not text.isdigit() or limit < 1024
    assert limit - parse_bytes(text) < max(0.01 * 2**30, 0.01 * limit)
    assert parse_bytes(text) <= limit
    assert limit_text(44522807296) == "41.46GiB"


def test_every_row_is_a_distinct_run_and_its_twins_are_named(searched):
    request, _, _, _, result = searched
    runs = [same_run(o) for o in result.top]
    assert len(set(runs)) == len(runs)
    twins = [f for f in result.fates if f.verdict == SAME]
    assert twins, "the small model has auto plans equal to a named family"
    for twin in twins:
        assert (
            twin.same_as in result.aliases
            and twin.candidate.label() in result.aliases[twin.same_as]
        )
        row = next(f.outcome for f in result.fates if f.candidate.label() == twin.same_as)
        assert same_run(row) == same_run(twin.outcome)
        assert (row.step_time, row.peak_memory) == (
            twin.outcome.step_time,
            twin.outcome.peak_memory,
        )
        assert row.candidate.schedule != AUTO  # shown as the named family


def test_every_configuration_has_one_fate(searched):
    request, _, _, _, result = searched
    assert len(result.fates) == result.considered
    assert len({f.candidate for f in result.fates}) == result.considered
    for fate in result.fates:
        if fate.verdict in MEMORY_VERDICTS:
            assert fate.memory_bound > request.memory_limit
            assert (fate.static > request.memory_limit) == (fate.verdict == STATIC)
    assert all(
        f.outcome.peak_memory <= request.memory_limit for f in result.fates if f.verdict == FITS
    )


def test_near_misses_are_faster_than_the_first_row_and_over_by_a_little(searched):
    """The first row of the registry families, under a limit one byte below its peak, is the
    first near miss: over by one byte, faster than every row that still fits. (Auto re-plans
    to any limit, so it never nearly misses.)"""
    request, text, hardware, _, _ = searched
    named = replace(request, families=tuple(SCHEDULES))
    evaluate = evaluator(text, named.memory_limit)
    first = search(named, hardware, evaluate, top=3).top[0]
    tight = replace(named, memory_limit=first.peak_memory - 1)
    evaluate_tight = evaluator(text, tight.memory_limit)
    again = search(tight, hardware, evaluate_tight, top=3)
    misses = near_misses(again, tight.memory_limit, tight.headroom, evaluate_tight)
    assert misses[0].outcome.candidate == first.candidate and misses[0].over == 1
    for miss in misses:
        assert 0 < miss.over <= NEAR_MISS * tight.memory_limit
        assert miss.outcome.step_time < again.top[0].step_time
        assert miss.over == miss.outcome.peak_memory - tight.memory_limit


def test_explain_finds_a_layouts_fate_or_says_why_it_was_never_searched(searched):
    request, _, _, _, result = searched
    first = result.top[0].candidate
    found = explain(first.layout.to_text(), request, result)
    assert found.fates[0].candidate == first and found.ranks[first.label()] == 1
    assert not found.not_searched
    assert "p x t x d" in explain("p3", request, result).not_searched
    assert "t8 does not divide the model" in explain("p1 t8 d1", request, result).not_searched
    with pytest.raises(PebbleError, match="cannot read"):
        explain("p4 q2", request, result)


def test_no_fit_names_static_memory_as_the_floor_and_how_many_gpus_lift_it():
    request, _, hardware = request_at(2 * 2**20)
    at_8, at_16 = least_static(request, hardware), least_static(replace(request, gpus=16), hardware)
    assert at_16 < at_8
    limit = (at_8 + at_16) // 2
    tight, text, hardware = request_at(limit)
    result = search(tight, hardware, evaluator(text, limit), top=3)
    assert not result.top
    d = diagnose(tight, result, hardware)
    assert d.static_floor and d.least_static == at_8
    assert d.more_gpus == (16, at_16)


def test_no_fit_names_the_activations_when_static_memory_fits():
    request, _, hardware = request_at(2 * 2**20, recompute=("none",))
    floor = least_static(request, hardware)
    limit = floor + 1  # some static memory fits, but no activations on top of it
    tight, text, hardware = request_at(limit, recompute=("none",))
    result = search(tight, hardware, evaluator(text, limit), top=3)
    assert not result.top
    d = diagnose(tight, result, hardware)
    assert not d.static_floor and not d.full_recompute_searched
    assert d.least_memory > limit
