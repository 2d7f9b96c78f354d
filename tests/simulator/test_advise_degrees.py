"""advise over the degrees of issue 24: context parallelism (c), expert parallelism (e, for a
mixture of experts) and the sharding stages z2/z3 (``--zero-stages``). Its bounds stay lower
bounds on every simulated configuration, and branch and bound still finds the exhaustive top."""

from __future__ import annotations

import pytest

from simulator.analytic.advise import AUTO, evaluator, family_traits, search
from simulator.analytic.advise.enumeration import candidates
from simulator.analytic.advise.memory_bounds import memory_bound
from simulator.analytic.advise.stage_tables import table_of
from simulator.analytic.advise.time_bounds import time_bound
from simulator.errors import PebbleError
from tests.simulator.advise_harness import request_for

DENSE = "transformer:layers=8,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16,attention=math"
MOE = (
    "transformer:layers=4,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16,experts=4,top_k=2,"
    "expert_ffn=64"
)
FAMILIES = ("1f1b", "zb-h1", "interleaved-1f1b", "zb-v", AUTO)


def request_of(model: str, memory: str, **changes):
    """``request_for`` with this file's defaults: 4 sequences a step over ``FAMILIES``."""
    changes.setdefault("global_batch", 4)
    changes.setdefault("families", FAMILIES)
    return request_for(model, memory, **changes)


def assert_bounds_hold(request, text, hardware, top=3):
    evaluate = evaluator(text)
    exhaustive = search(request, hardware, evaluate, top=top, prune=False)
    assert len(exhaustive.top) == top
    for outcome in exhaustive.simulated:
        c = outcome.candidate
        traits = family_traits(c.schedule)
        table = table_of(request.spec, c, hardware)
        assert time_bound(c, traits, table, hardware) <= outcome.step_time * (1 + 1e-9), c
        assert memory_bound(c, traits, table) <= outcome.peak_memory, c
    pruned = search(request, hardware, evaluate, top=top)
    assert [o.candidate for o in pruned.top] == [o.candidate for o in exhaustive.top]
    assert [o.step_time for o in pruned.top] == [o.step_time for o in exhaustive.top]
    return exhaustive


def test_context_parallel_and_zero_2_3_bounds_hold_on_every_simulated_configuration():
    request, text, hardware = request_of(
        DENSE, "1.5MiB", recompute=("none", "full"), shardings=(1, 2, 3)
    )
    exhaustive = assert_bounds_hold(request, text, hardware)
    seen = {(o.candidate.cp, o.candidate.layout.sharding) for o in exhaustive.simulated}
    assert {c for c, _ in seen} == {1, 2, 4, 8}
    assert {z for _, z in seen} == {0, 1, 2, 3}
    assert any(c > 1 and z >= 2 for c, z in seen)


def test_expert_parallel_bounds_hold_on_every_simulated_configuration():
    request, text, hardware = request_of(MOE, "3MiB", recompute=("none",), shardings=(1, 3))
    exhaustive = assert_bounds_hold(request, text, hardware)
    experts = {o.candidate.ep for o in exhaustive.simulated}
    assert experts == {1, 2, 4}
    for o in exhaustive.simulated:
        c = o.candidate
        assert (c.dp * c.cp) % c.ep == 0 and 4 % c.ep == 0


def test_fixed_degrees_are_kept_and_a_dense_model_has_no_expert_degree():
    request, _, _ = request_of(DENSE, "40GiB", context=2, families=("1f1b",))
    assert {(c.cp, c.ep) for c in candidates(request)} == {(2, 1)}
    request, _, _ = request_of(DENSE, "40GiB", expert=2, families=("1f1b",))
    with pytest.raises(PebbleError, match="--ep 2"):
        list(candidates(request))


def test_context_degrees_stay_within_a_node_with_the_tensor_degree():
    request, _, _ = request_of(DENSE, "40GiB", gpus=32, global_batch=8, families=("1f1b",))
    pairs = {(c.tp, c.cp) for c in candidates(request)}
    assert max(t * c for t, c in pairs) == 8
    assert (4, 2) in pairs and (1, 8) in pairs and (2, 8) not in pairs
