"""The ``budget:`` solver against brute force, and its walk against the analytic executor.

Brute force: every segment plan of every stage (each block kept, or in a segment of adjacent
blocks), simulated by the analytic executor; the cheapest plan (recompute FLOPs) whose every
rank's peak is within the budget must cost exactly what the solver's plan costs, and the
solver's plan must be within the budget when simulated.
"""

from __future__ import annotations

import itertools

import pytest

from schedules.registry import build_schedule
from simulator.analytic.costs import unit_costs
from simulator.analytic.executor import simulate
from simulator.analytic.recompute_costs import stage_recompute_flops
from simulator.errors import PebbleError
from simulator.model import ModelSpec
from simulator.model.parse import parse_model
from simulator.model.partitioning import partition
from simulator.model.recompute import RecomputePlan, StageRecompute, recompute_units
from simulator.run import recompute_budget as rb
from simulator.units import human_bytes

MLP = ModelSpec(widths=(3, 8, 16, 8, 12, 8, 8, 4), layernorm=True)
GPT = parse_model("transformer:layers=4,hidden=16,heads=4,seq=8,vocab=96,dropout=0.1")
ROWS = 3


def _true_peaks(timeline) -> dict[int, int]:
    """Per rank, the true peak (stored activations plus a running backward's gradient tensors
    and recomputation): what the budget bounds, and what "fits" counts."""
    return {r.rank: r.true_peak_bytes for r in timeline.summary().per_rank}


def segmentations(units):
    """Every plan of one stage: each unit kept, or in a segment of adjacent units."""
    if not units:
        yield ()
        return
    yield from segmentations(units[1:])  # the first unit kept
    for length in range(1, len(units) + 1):
        run = units[:length]
        if any(run[i][1] + 1 != run[i + 1][0] for i in range(length - 1)):
            break
        for rest in segmentations(units[length:]):
            yield ((run[0][0], run[-1][1]), *rest)


def every_plan(schedule, spec, parts) -> list[tuple[int, float]]:
    """(highest rank peak, recompute FLOPs per row) of every plan, simulated."""
    infos = spec.layers()
    per_stage = [
        list(segmentations(recompute_units([infos[i] for i in layers])))
        for layers in parts.stage_layers
    ]
    costs = unit_costs(schedule, parts)
    out = []
    for combo in itertools.product(*per_stage):
        plan = RecomputePlan("brute", tuple(StageRecompute(c) for c in combo))
        timeline = simulate(schedule, costs, spec, parts, ROWS, recompute=plan)
        flops = sum(r for r, _ in stage_recompute_flops(spec, parts, plan))
        out.append((max(_true_peaks(timeline).values()), flops))
    return out


@pytest.mark.parametrize(
    ("spec", "name", "ranks"),
    [(MLP, "1f1b", 2), (MLP, "gpipe", 2), (MLP, "zb-v", 2), (GPT, "1f1b", 2), (GPT, "zb-h1", 2)],
)
def test_the_solver_equals_brute_force(spec, name, ranks):
    schedule = build_schedule(name, ranks, 4)
    parts = partition(spec, schedule.num_stages)
    none = simulate(schedule, unit_costs(schedule, parts), spec, parts, ROWS)
    top = max(_true_peaks(none).values())
    plans = every_plan(schedule, spec, parts)
    for share in (1.0, 0.9, 0.75, 0.6, 0.45, 0.3):
        budget = int(top * share)
        expected = min((f for peak, f in plans if peak <= budget), default=None)
        if expected is None:
            with pytest.raises(PebbleError, match="no recompute plan keeps rank"):
                rb.solve_budget(schedule, spec, parts, ROWS, budget)
            continue
        plan = rb.solve_budget(schedule, spec, parts, ROWS, budget)
        timeline = simulate(
            schedule, unit_costs(schedule, parts), spec, parts, ROWS, recompute=plan
        )
        assert max(_true_peaks(timeline).values()) <= budget, share
        got = sum(r for r, _ in stage_recompute_flops(spec, parts, plan))
        assert got == pytest.approx(expected, rel=1e-12), share


def test_the_walk_is_the_analytic_peak():
    """For arbitrary placements (every front member of every stage), the rank walk's peak is
    the analytic executor's."""
    spec = MLP
    for name in ("interleaved-1f1b", "dualpipe-v", "zb-h2"):
        schedule = build_schedule(name, 2, 4)
        parts = partition(spec, schedule.num_stages)
        infos = spec.layers()
        fronts, held = {}, {}
        for s, layers in enumerate(parts.stage_layers):
            pieces, kept, held[s] = rb._pieces(spec, infos, layers, ROWS)
            fronts[s] = rb.stage_placements(pieces, kept)
        walks = [rb.rank_walk(schedule, r, held) for r in range(schedule.num_ranks)]
        for pick in itertools.islice(itertools.product(*fronts.values()), 0, None, 7):
            plan = RecomputePlan(
                "walk",
                tuple(
                    StageRecompute(
                        tuple(
                            (a + parts.stage_layers[s][0], b + parts.stage_layers[s][0])
                            for a, b in p.segments
                        )
                    )
                    for s, p in enumerate(pick)
                ),
            )
            peaks = simulate(
                schedule, unit_costs(schedule, parts), spec, parts, ROWS, recompute=plan
            )
            peaks = _true_peaks(peaks)
            for walk in walks:
                assert walk.peak([pick[s] for s in walk.stages]) == peaks[walk.rank]


def test_a_share_budget_is_of_the_fullest_rank():
    schedule = build_schedule("gpipe", 2, 4)
    parts = partition(MLP, 2)
    none = simulate(schedule, unit_costs(schedule, parts), MLP, parts, ROWS)
    top = max(_true_peaks(none).values())
    share = rb.solve_budget(schedule, MLP, parts, ROWS, 0.5)
    exact = rb.solve_budget(schedule, MLP, parts, ROWS, int(top * 0.5))
    assert share.stages == exact.stages


def test_an_impossible_budget_names_the_lowest_peak_there_is():
    """The sentence's "still peaks at" is the least peak any plan reaches on the fullest
    rank (brute force over every plan), not the plan that stores the least."""
    schedule = build_schedule("1f1b", 2, 4)
    parts = partition(MLP, schedule.num_stages)
    lowest = min(peak for peak, _ in every_plan(schedule, MLP, parts))
    with pytest.raises(PebbleError) as failed:
        rb.solve_budget(schedule, MLP, parts, ROWS, lowest - 1)
    assert f"still peaks at {human_bytes(lowest)}" in str(failed.value)
