"""``--offload budget:`` is exact (issue 25): on small runs, every plan of the space is timed and
the solver's (exposed time, bytes) equals the brute-force least at every budget that matters;
the two facts its cut-offs rest on hold on every plan; the plan limit and an impossible budget
each say so in one sentence."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pytest

from schedules import build_schedule
from simulator.analytic.cost_source import cost_model, hardware_preset
from simulator.analytic.executor import simulate
from simulator.analytic.offload_budget import TIE, choice, movable_pairs, solve_budget_exact
from simulator.analytic.offload_costs import host_link
from simulator.analytic.offload_solve import greedy
from simulator.analytic.offload_timing import PlanTimer
from simulator.analytic.run_plan import simulate_plan
from simulator.errors import PebbleError
from simulator.run.plan import CostSource, plan_run
from simulator.timeline.report import offload_waits, summary_dict

# (model, schedule, ranks, microbatches, hardware): 8 to 12 movable pairs each
CASES = [
    ("zb-1.5b", "interleaved", 2, 4, "a100-80gb"),  # the optimum waits at some budgets
    ("zb-1.5b", "interleaved", 2, 4, "h100-80gb"),
    ("zb-1.5b", "gpipe", 2, 4, "h100-80gb"),
    ("zb-1.5b", "1f1b", 3, 4, "h100-80gb"),
]


@dataclass(frozen=True)
class Case:
    plan: object
    costs: object
    link: object
    baseline: object

    def timer(self) -> PlanTimer:
        return PlanTimer(self.plan, self.costs, self.link, self.baseline)


@functools.cache
def _case(model, schedule, ranks, microbatches, hardware) -> Case:
    plan = plan_run(
        build_schedule(schedule, ranks, microbatches), model, costs=CostSource(hardware=hardware)
    )
    costs = cost_model(plan)
    link = host_link(hardware_preset(hardware), plan.layout.devices, costs.time_unit)
    baseline = simulate(
        plan.schedule, costs, plan.spec, plan.partition, plan.microbatch_rows, layout=plan.layout
    )
    return Case(plan, costs, link, baseline)


@functools.cache
def _every_plan(*key):
    """The timer, the movable pairs and the timing of every subset of them (bit k: pair k)."""
    timer = _case(*key).timer()
    pairs = movable_pairs(timer)
    stages = timer.plan.partition.num_stages
    timings = [
        timer.time(choice(pairs, [k for k in range(len(pairs)) if mask >> k & 1], stages))
        for mask in range(1 << len(pairs))
    ]
    return timer, pairs, timings


def _least(timings, budget):
    """Brute force: the least (exposed, bytes) within ``budget``, or None."""
    fits = [t for t in timings if max(t.peaks) <= budget]
    if not fits:
        return None
    exposed = min(t.exposed for t in fits)
    return exposed, min(t.moved for t in fits if t.exposed <= exposed + TIE)


@pytest.mark.parametrize("key", CASES)
def test_the_solver_finds_the_brute_force_least_at_every_budget(key):
    """The least cost changes only where a plan's peak is the budget, so every distinct peak
    (and one byte under the lowest) is every budget there is. The search may time every plan
    (where a wait is needed it can prune by the cover alone); the timer has them cached."""
    timer, pairs, timings = _every_plan(*key)
    assert 8 <= len(pairs) <= 12
    budgets = sorted({max(t.peaks) for t in timings})
    for budget in [budgets[0] - 1, *budgets]:
        least = _least(timings, budget)
        if least is None:
            with pytest.raises(PebbleError, match=r"no offload plan keeps rank \d within"):
                solve_budget_exact(timer, budget, None, limit=1 << len(pairs))
            continue
        solved = solve_budget_exact(timer, budget, greedy(timer, budget), 1 << len(pairs))
        assert solved.proven
        assert solved.exposed == pytest.approx(least[0], abs=TIE)
        assert solved.moved == least[1]
        assert max(timer.time(solved.chosen).peaks) <= budget


def test_some_optimum_waits_and_neither_figure_is_monotone():
    """The interleaved run on A100 needs waits at its lowest budgets, and sending one pair
    more can lower the exposed time or raise a peak: the search cannot prune by either."""
    _, pairs, timings = _every_plan(*CASES[0])
    budgets = sorted({max(t.peaks) for t in timings})
    assert _least(timings, budgets[0])[0] > 0
    n = len(pairs)
    ups = [(mask, mask | 1 << k) for mask in range(1 << n) for k in range(n) if not mask >> k & 1]
    assert any(timings[b].exposed < timings[a].exposed - TIE for a, b in ups)
    assert any(max(timings[b].peaks) > max(timings[a].peaks) for a, b in ups)


@pytest.mark.parametrize("key", CASES[:3])
def test_cover_an_action_sheds_at_most_the_pairs_in_flight(key):
    """Fact 1 of ``offload_budget``: an action's level is at least its no-offload level less
    the sent pairs of its rank in flight at it."""
    timer, pairs, timings = _every_plan(*key)
    index = np.arange(len(timer.run))
    inflight = np.array(
        [(timer.run.ranks == p.rank) & (index > p.forward) & (index < p.backward) for p in pairs]
    )
    none = np.maximum(timer.during, timer.after)
    for mask, t in enumerate(timings):
        sent = np.array([mask >> k & 1 for k in range(len(pairs))])
        shed = (inflight * (sent * np.array([p.size for p in pairs]))[:, None]).sum(axis=0)
        assert (t.levels >= none - shed).all()


@pytest.mark.parametrize("key", CASES[:3])
def test_separation_plans_that_never_wait(key):
    """Fact 2: dropping a pair from a plan with no wait leaves no wait, and such a plan's ranks
    each hold what they would with only their own pairs sent."""
    timer, pairs, timings = _every_plan(*key)
    n = len(pairs)
    for mask, t in enumerate(timings):
        if t.exposed > 0:
            continue
        for k in range(n):
            assert timings[mask & ~(1 << k)].exposed == 0
        for r in range(timer.ranks):
            own = sum(1 << k for k in range(n) if mask >> k & 1 and pairs[k].rank == r)
            assert timings[own].peaks[r] == t.peaks[r]


@pytest.mark.parametrize("key", CASES[:2])
def test_the_timer_is_the_executor(key):
    """The solver's oracle gives the executor's own peaks and waits, plan after plan."""
    case = _case(*key)
    timer, pairs, _ = _every_plan(*key)
    rng = np.random.default_rng(5)
    stages = case.plan.partition.num_stages
    for _ in range(4):
        sent = [k for k in range(len(pairs)) if rng.random() < 0.5]
        chosen = choice(pairs, sent, stages)
        timeline = simulate(
            case.plan.schedule,
            case.costs,
            case.plan.spec,
            case.plan.partition,
            case.plan.microbatch_rows,
            layout=case.plan.layout,
            offload=timer.offload_run("x", chosen),
        )
        peaks = tuple(r.true_peak_bytes for r in timeline.summary().per_rank)
        assert peaks == timer.time(chosen).peaks
        exposed = sum(offload_waits(timeline).values())
        assert exposed == pytest.approx(timer.time(chosen).exposed, abs=TIE)


def test_the_plan_limit_returns_the_best_found_and_says_so():
    key = CASES[0]
    budgets = sorted({max(t.peaks) for t in _every_plan(*key)[2]})
    timer = _case(*key).timer()
    seed = greedy(timer, budgets[1])
    solved = solve_budget_exact(timer, budgets[1], seed, limit=3)
    assert not solved.proven and max(timer.time(solved.chosen).peaks) <= budgets[1]
    timer = _case(*key).timer()
    with pytest.raises(PebbleError, match=r"found in \d+ plans searched \(the search stops"):
        solve_budget_exact(timer, budgets[0], None, limit=3)


def _predict(offload, recompute=None, hardware="a100-80gb"):
    plan = plan_run(
        build_schedule("interleaved", 2, 4),
        "zb-1.5b",
        costs=CostSource(hardware=hardware),
        offload=offload,
        recompute=recompute,
    )
    return simulate_plan(plan)


def test_a_planned_run_meets_its_budget():
    """The lowest budget met with no wait: proven least within the default plan limit."""
    _, _, timings = _every_plan(*CASES[0])
    budget = min(max(t.peaks) for t in timings if t.exposed == 0)
    timeline = _predict(f"budget:{budget}")
    peaks = [r["true_peak_bytes"] for r in summary_dict(timeline)["per_rank"]]
    assert max(peaks) <= budget
    assert sum(offload_waits(timeline).values()) == pytest.approx(_least(timings, budget)[0])
    assert timeline.meta.offload == f"budget:{budget}"


def test_an_impossible_budget_is_one_sentence_naming_the_rank_and_its_least():
    with pytest.raises(PebbleError) as error:
        _predict("budget:1GiB")
    text = str(error.value)
    assert text.startswith("no offload plan keeps rank 0 within 1.0 GiB of activations: ")
    assert "at the least of the" in text and text.count(".") <= 3 and "\n" not in text
