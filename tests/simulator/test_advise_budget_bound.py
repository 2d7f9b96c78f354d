"""advise's time bound for auto under a tight activation budget: it reads the bytes auto's own
problem holds per forward, stays below what the executor predicts, and prunes what it should."""

from __future__ import annotations

from dataclasses import replace

from simulator.analytic.advise import (
    AUTO,
    candidates,
    evaluator,
    family_traits,
    search,
    time_bound,
)
from simulator.analytic.advise.evaluate import placement
from simulator.analytic.advise.memory_bounds import with_budget
from simulator.analytic.advise.stage_tables import table_of
from simulator.analytic.auto_plan import empty_schedule, problem_for
from simulator.analytic.cost_source import cost_model
from simulator.run.plan import CostSource, plan_run
from tests.simulator.advise_harness import small_request


def _auto_candidates(request):
    """Auto's configurations with their activation budgets, as the search makes them."""
    traits = family_traits(AUTO)
    for c in candidates(request):
        if c.schedule == AUTO and c.offload == "none":
            yield with_budget(c, traits, request.memory_limit)


def test_auto_holds_the_bytes_per_forward_the_bound_reads():
    """Auto's problem (``problem_for``) holds per stage the stage table's cached bytes times the
    microbatch's sequences: the ``f_s`` the budget bound divides the budget by."""
    request, text, hardware = small_request("1.5MiB")
    checked = 0
    for c in list(_auto_candidates(request))[::3]:
        empty = empty_schedule(c.pp, c.microbatches, placement(c))
        plan = plan_run(
            empty,
            text.model,
            batch_size=c.global_batch,
            layout=c.layout,
            recompute=None if c.recompute == "none" else c.recompute,
            costs=CostSource(hardware=text.hardware),
        )
        problem = problem_for(plan, cost_model(plan), None, placement(c))
        table = table_of(request.spec, c, hardware)
        assert list(problem.memory_forward) == [float(b * c.microbatch_size) for b in table.cached]
        checked += 1
    assert checked > 5


def test_the_budget_bound_holds_bites_and_keeps_the_top():
    """Under a tight limit auto runs a few microbatches at a time: the bound (with its budget
    term) stays below every simulated auto step, is above the bound without the term for some,
    and the pruned search still gives the exhaustive top."""
    request, text, hardware = small_request("1200000")
    request = replace(request, families=("1f1b", "zb-v", AUTO))
    evaluate = evaluator(text)
    exhaustive = search(request, hardware, evaluate, top=3, prune=False)
    traits, bites = family_traits(AUTO), 0
    for outcome in exhaustive.simulated:
        c = outcome.candidate
        if c.schedule != AUTO:
            continue
        table = table_of(request.spec, c, hardware)
        bound = time_bound(c, traits, table, hardware)
        assert bound <= outcome.step_time * (1 + 1e-9), c
        bites += bound > time_bound(replace(c, auto_memory=None), traits, table, hardware)
    assert bites > 0
    pruned = search(request, hardware, evaluate, top=3)
    assert [o.candidate for o in pruned.top] == [o.candidate for o in exhaustive.top]
    assert [o.step_time for o in pruned.top] == [o.step_time for o in exhaustive.top]
