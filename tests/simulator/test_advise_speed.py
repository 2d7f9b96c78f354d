"""advise's faster bounding gives what the slower one gave: stage tables summed from per-block
ones equal the split's own, the time bound with the roofline's links and optimizer step stays
below every prediction across nodes, and the pruned search still gives the exhaustive top."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from simulator.analytic.advise import (
    AUTO,
    candidates,
    evaluator,
    family_traits,
    search,
    time_bound,
)
from simulator.analytic.advise.block_tables import _per_row_seconds, _stage_memory, local_split
from simulator.analytic.advise.memory_bounds import with_budget
from simulator.analytic.advise.stage_tables import memory_table, table_of
from simulator.analytic.hardware import parse_hardware_preset
from simulator.analytic.roofline_costs import stage_seconds
from simulator.errors import PebbleError
from simulator.model.layout import Layout
from simulator.model.parse import parse_model
from tests.simulator.advise_harness import MODEL, small_request


@pytest.mark.parametrize(
    ("model", "tp", "cp"),
    [(MODEL, 1, 1), (MODEL, 2, 2), ("llama3-8b,seq=4096", 4, 2), ("llama3-8b,seq=4096", 8, 1)],
)
def test_tables_summed_from_blocks_equal_the_splits_own(model, tp, cp):
    spec = parse_model(model)
    preset = parse_hardware_preset("h100-80gb")
    blocks = len({info.block for info in spec.layers()})
    layer = Layout(tensor=tp, sequence_parallel=tp > 1, context=cp)
    for stages in sorted({1, 2, 3, blocks // 2, blocks - 1, blocks}):
        local, split = local_split(spec, layer, stages)
        for policy in ("none", "selective", "full"):
            table = memory_table(spec, layer, stages, policy)
            cached, left, units = _stage_memory(local, split, policy)
            assert (table.cached, table.left, table.layer_params) == (cached, left, units), (
                stages,
                policy,
            )
        for rows in (1, 2):
            summed = _per_row_seconds(spec, layer, stages, preset, rows)
            own, _ = stage_seconds(local, split, rows, preset, local.layout)
            for a, b in zip(summed, own, strict=True):
                for part in ("F", "I", "W"):
                    assert math.isclose(getattr(a, part) * rows, getattr(b, part), rel_tol=1e-12)


def test_the_time_bound_holds_across_nodes():
    """32 GPUs of 8 a node: data groups and pipeline neighbours over the network, the
    optimizer step and the reduction after the backward (the H100's and A100's default)."""
    request, text, hardware = small_request(None, gpus=32, global_batch=16)
    evaluate = evaluator(text)
    checked = tight = 0
    for c in list(candidates(request))[::7]:
        traits = family_traits(c.schedule)
        c = with_budget(c, traits, request.memory_limit)
        bound = time_bound(c, traits, table_of(request.spec, c, hardware), hardware)
        try:
            outcome = evaluate(c)
        except PebbleError:
            continue
        assert bound <= outcome.step_time * (1 + 1e-9), c.label()
        checked += 1
        tight += bound >= 0.9 * outcome.step_time
    assert checked > 120 and tight > checked / 4


def test_the_pruned_search_across_nodes_gives_the_exhaustive_top():
    """Over a loop, a V and the automatic family (every family is searched exhaustively on one
    node in ``test_advise_bounds``; here the point is two nodes)."""
    request, text, hardware = small_request(gpus=16, global_batch=4)
    request = replace(request, families=("1f1b", "zb-v", AUTO))
    evaluate = evaluator(text, request.memory_limit)
    pruned = search(request, hardware, evaluate, top=5)
    exhaustive = search(request, hardware, evaluate, top=5, prune=False)
    assert [o.candidate for o in pruned.top] == [o.candidate for o in exhaustive.top]
    assert [o.step_time for o in pruned.top] == [o.step_time for o in exhaustive.top]
    assert len(pruned.simulated) < len(exhaustive.simulated) / 4
