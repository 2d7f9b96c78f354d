"""advise's closed-form bounds are lower bounds, and its branch and bound finds what an
exhaustive search finds."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from schedules.registry import SCHEDULES, build_schedule
from simulator.analytic.advise import (
    AUTO,
    candidates,
    evaluator,
    family_traits,
    memory_bound,
    run_candidate,
    search,
    stage_table,
    time_bound,
)
from simulator.analytic.advise.memory_bounds import (
    deferred_weights,
    kept_per_forward,
    static_bytes,
    warmup_forwards,
)
from simulator.analytic.advise.policies import distinct_policies
from simulator.analytic.advise.space import RECOMPUTE_POLICIES
from simulator.analytic.advise.stage_tables import table_of
from simulator.analytic.recompute_costs import stage_recompute_shares
from simulator.analytic.roofline_costs import layer_recompute_seconds
from simulator.errors import PebbleError
from simulator.model.layout import UNSHARDED
from simulator.model.memory_plan import memory_plans
from simulator.model.parse import parse_model
from simulator.run import make_schedule, plan_run
from simulator.run.rank_memory import static_memory
from tests.simulator.advise_harness import MODEL, small_request


# the math attention core: selective recompute has scores to drop only there, and the default
# recompute axis (none, selective, full) is three different runs only then
def forwards_before_first_backward(schedule) -> list[int]:
    out = []
    for actions in schedule.actions:
        count = 0
        for action in actions:
            if action.kind.value != "F":
                break
            count += 1
        out.append(count)
    return out


@pytest.mark.parametrize("family", list(SCHEDULES))
def test_warmup_closed_forms_never_exceed_the_schedule(family):
    exact = 0
    for p in range(1, 7):
        for m in range(1, 3 * p + 2):
            for v in (2, 3) if family == "interleaved-1f1b" else (None,):
                try:
                    schedule = build_schedule(family, p, m, v)
                except Exception:
                    continue
                actual = forwards_before_first_backward(schedule)
                for rank in range(p):
                    bound = warmup_forwards(family, p, m, v or schedule.chunks, rank)
                    assert bound <= actual[rank], (family, p, m, v, rank)
                    exact += bound == actual[rank]
    assert exact > 0


@pytest.mark.parametrize("zero", [True, False])
def test_static_bytes_are_the_executors(zero):
    request, text, hardware = small_request(zero=zero, global_batch=32)
    for c in [c for c in candidates(request) if c.schedule != AUTO][::7]:
        traits = family_traits(c.schedule)
        table = table_of(request.spec, c, hardware)
        chunks = None if SCHEDULES[c.schedule].fixed_chunks else c.chunks
        schedule = make_schedule(c.schedule, c.pp, c.microbatches, chunks)
        plan = plan_run(schedule, text.model, batch_size=c.global_batch, layout=c.layout)
        expected = static_memory(
            plan.spec, schedule, plan.partition, plan.microbatch_rows, plan.layout
        )
        assert static_bytes(c, traits, table) == [m.total for m in expected]


def test_bounds_hold_and_branch_and_bound_finds_the_exhaustive_top():
    """Every family, auto and the default recompute axis (none, selective, full)."""
    request, text, hardware = small_request(memory="1.5MiB", global_batch=4)
    assert request.recompute == ("none", "selective", "full")
    evaluate = evaluator(text)
    exhaustive = search(request, hardware, evaluate, top=4, prune=False)
    assert exhaustive.considered == len(exhaustive.simulated) + exhaustive.refused
    assert len(exhaustive.simulated) > 150
    for outcome in exhaustive.simulated:  # every bound is below what the executor predicts
        c = outcome.candidate
        traits = family_traits(c.schedule)
        table = table_of(request.spec, c, hardware)
        assert time_bound(c, traits, table, hardware) <= outcome.step_time * (1 + 1e-9), c
        assert memory_bound(c, traits, table) <= outcome.peak_memory, c
    fitting = {o.candidate.recompute for o in exhaustive.simulated if o.fits}
    assert fitting == {"none", "selective", "full"}
    pruned = search(request, hardware, evaluate, top=4)
    assert pruned.pruned_memory > 0 and pruned.pruned_time > 0
    assert len(pruned.simulated) < len(exhaustive.simulated) / 3
    assert [o.candidate for o in pruned.top] == [o.candidate for o in exhaustive.top]
    assert [o.step_time for o in pruned.top] == [o.step_time for o in exhaustive.top]
    assert pruned.considered == exhaustive.considered


def test_the_top_under_a_tight_limit_needs_recompute_and_pruning_still_finds_it():
    """Where the fastest fitting configurations recompute, the pruned search returns them (a
    loop, a V and auto: the test above covers every family)."""
    request, text, hardware = small_request(memory="1200000", global_batch=4)
    request = replace(request, families=("1f1b", "zb-v", AUTO))
    evaluate = evaluator(text)
    exhaustive = search(request, hardware, evaluate, top=3, prune=False)
    assert {o.candidate.recompute for o in exhaustive.top} - {"none"}
    pruned = search(request, hardware, evaluate, top=3)
    assert [o.candidate for o in pruned.top] == [o.candidate for o in exhaustive.top]


def test_the_bounds_see_each_policys_kept_bytes_and_recompute_seconds():
    """Per stage: full keeps less than selective, selective less than none (attention's scores),
    and the backward is longer by exactly the executor's recompute (``apply_recompute``: on the
    roofline, the seconds of what it re-runs)."""
    request, _, hardware = small_request()
    tables = {p: stage_table(request.spec, UNSHARDED, 4, hardware, p) for p in request.recompute}
    none, selective, full = (tables[p] for p in ("none", "selective", "full"))
    blocks = range(1, 3)  # stages 1 and 2 hold transformer blocks only
    for s in blocks:
        assert full.cached[s] < selective.cached[s] < none.cached[s]
        assert none.I[s] < selective.I[s] < full.I[s]
        assert full.F[s] == none.F[s] and full.W[s] == none.W[s]
    plan = plan_run(make_schedule("1f1b", 4, 4, None), MODEL, batch_size=4, recompute="full")
    shapes = memory_plans(plan.spec, plan.partition, 1, recompute=plan.recompute.stages)
    kept = [sum(d for _, d, _ in shapes[(s, "F")].changes) for s in range(4)]
    assert [kept_per_forward(full, s, "full") for s in range(4)] == kept
    timed = SimpleNamespace(
        recompute_seconds=layer_recompute_seconds(plan.spec, 1, hardware.preset)
    )
    ratios = stage_recompute_shares(timed, plan.spec, plan.partition, plan.recompute)
    assert full.I == pytest.approx(
        [i + r * f for i, r, f in zip(none.I, ratios, none.F, strict=True)]
    )
    with pytest.raises(ValueError, match="full"):
        kept_per_forward(none, 1, "full")


def test_a_policy_that_is_another_on_this_split_is_searched_once():
    from simulator.model.spec import ModelSpec

    spec = parse_model(MODEL)
    assert distinct_policies(ModelSpec.uniform(4), UNSHARDED, 2, RECOMPUTE_POLICIES) == (
        "none",
        "full",
    )
    assert distinct_policies(spec, UNSHARDED, 2, ("none", "selective", "full", "sqrt")) == (
        "none",
        "selective",
        "full",
        "sqrt",
    )
    # a fused core keeps no scores to drop: selective is none
    flash = parse_model(MODEL.replace("attention=math", "attention=flash"))
    assert distinct_policies(flash, UNSHARDED, 2, RECOMPUTE_POLICIES) == ("none", "full")
    # ten stages of one block (or embedding or head) each: sqrt and every:1 are full
    assert distinct_policies(spec, UNSHARDED, 10, ("full", "sqrt", "every:1", "none")) == (
        "full",
        "none",
    )


@pytest.mark.parametrize("policy", ["budget:50%", "0:full", "1:none,0:full"])
def test_a_policy_that_depends_on_the_split_is_refused(policy):
    with pytest.raises(PebbleError, match="whole-model recompute policies"):
        small_request(recompute=(policy,))


def test_every_candidate_splits_the_gpus_and_the_batch():
    request, _, _ = small_request(gpus=16, global_batch=48)
    seen = list(candidates(request))
    assert len(seen) == len(set(seen))
    for c in seen:
        assert c.pp * c.tp * c.cp * c.dp == 16
        assert c.dp * c.microbatches * c.microbatch_size == 48
        assert c.tp * c.cp <= 8 and c.distributed_optimizer == (c.dp * c.cp > 1)
    assert {c.cp for c in seen} == {1, 2, 4, 8}


def test_one_run_is_what_simulate_builds():
    request, text, _ = small_request()
    c = next(iter(candidates(request)))
    timeline = run_candidate(c, text)
    assert timeline.meta.memory_capacity == request.memory_limit
    assert timeline.meta.devices == c.gpus


def test_configurations_too_large_to_simulate_are_skipped_and_counted():
    request, text, hardware = small_request(memory="40GiB", global_batch=16, max_rows=1500)
    result = search(request, hardware, evaluator(text), top=3)
    layers = len(request.spec.layers())
    assert result.too_large > 0
    for outcome in result.simulated:
        assert (
            outcome.candidate.rows(family_traits(outcome.candidate.schedule).split, layers) <= 1500
        )
    assert result.considered == (
        result.too_large + result.pruned_memory + result.pruned_time + len(result.simulated)
    )


def _held_before_each_action(schedule, rank: int, forward: float, left: float):
    """What ``rank`` holds (cached forwards and inputs-gradients' leftovers awaiting their W)
    after each of its actions, in its order: the stored level the executor walks."""
    forwards = lefts = 0
    for action in schedule.actions[rank]:
        kind = action.kind.value
        forwards += {"F": 1, "I": -1, "B": -1}.get(kind, 0)
        lefts += {"I": 1, "W": -1}.get(kind, 0)
        yield forwards * forward + lefts * left


@pytest.mark.parametrize("family", ["zb-h1", "zb-h2"])
def test_deferred_weight_counts_are_reached_by_the_schedule(family):
    """Some moment of each rank's order holds at least the forwards and pending Ws
    ``deferred_weights`` counts, whatever the bytes of each (the closed form is exact at the
    last rank's first W)."""
    exact = 0
    for p in range(1, 9):
        for m in range(1, 4 * p + 1):
            schedule = build_schedule(family, p, m, None)
            for rank in range(p):
                forwards, lefts = deferred_weights(family, p, m, rank)
                for forward, left in ((1.0, 1.25), (1.0, 0.25), (2.0, 7.0)):
                    held = max(_held_before_each_action(schedule, rank, forward, left))
                    counted = forwards * forward + lefts * left
                    assert counted <= held + 1e-9, (family, p, m, rank, forward, left)
                    exact += lefts > 0 and counted == held
    assert exact > 0


def test_the_deferred_weight_bound_holds_and_bites():
    """On a request where ZB-H1 and ZB-H2 run enough microbatches, their memory bound stays
    below the executor's peak and is above the warmup-only bound for some."""
    request, text, hardware = small_request(memory=None, global_batch=32)
    request = replace(request, families=("zb-h1", "zb-h2"), recompute=("none",))
    evaluate = evaluator(text)
    bites = checked = 0
    for c in candidates(request):
        if c.pp < 2 or c.microbatches < c.pp:
            continue
        traits = family_traits(c.schedule)
        table = table_of(request.spec, c, hardware)
        bound = memory_bound(c, traits, table)
        assert bound <= evaluate(c).peak_memory, c
        warm_only = memory_bound(c, traits, replace(table, left=(0,) * len(table.left)))
        bites += bound > warm_only
        checked += 1
    assert checked > 10 and bites > 0
