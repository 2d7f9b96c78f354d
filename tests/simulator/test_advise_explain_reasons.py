"""``advise --explain LAYOUT`` for a layout no searched configuration has: the reason is the rule
advise really applies (context and expert parallelism and ZeRO-2/3 are searched), naming the flag
that changes it, and never an old "not searched yet"."""

from __future__ import annotations

from dataclasses import replace

import pytest

from simulator.analytic.advise import evaluator, search
from simulator.analytic.advise.explain import explain
from tests.simulator.advise_harness import request_for, small_request

MOE = (
    "transformer:layers=2,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16,attention=math,"
    "experts=4,top_k=2"
)


def searched(request, text, hardware, **changes):
    """(request, its search's result), the request narrowed by ``changes`` (fewer families or
    policies keep a one-off search quick)."""
    request = replace(request, **changes)
    return request, search(request, hardware, evaluator(text, request.memory_limit), top=5)


def quick(**fields):
    """The dense harness request with ``fields``, searched over 1F1B without recompute."""
    zero = fields.pop("zero", True)
    request, text, hardware = small_request(zero=zero, **fields)
    return searched(request, text, hardware, families=("1f1b",), recompute=("none",))


@pytest.fixture(scope="module")
def dense():
    return searched(*small_request())


def moe_request(**changes):
    """A two-block mixture of four experts (top-2) on 8 A100s, searched over 1F1B without
    recompute, with ``changes`` to the request."""
    request, text, hardware = request_for(MOE, families=("1f1b",), recompute=("none",))
    return searched(request, text, hardware, **changes)


@pytest.fixture(scope="module")
def moe():
    return moe_request()


def reason(text: str, request, result) -> str:
    """The not-searched sentence for ``text``, which no configuration of ``result`` has."""
    found = explain(text, request, result)
    assert not found.fates, f"{text} was searched: {found.fates[0].candidate.label()}"
    assert found.not_searched and "yet" not in found.not_searched
    return found.not_searched


def test_context_parallel_layouts_are_searched(dense):
    request, result = dense
    for text in ("c2", "p1 t2 sp c2 d2", "c4"):
        found = explain(text, request, result)
        assert found.fates and not found.not_searched
        context = int(text.split("c")[-1][0])
        assert {f.candidate.layout.context for f in found.fates} == {context}


def test_a_context_degree_that_is_not_a_power_of_two_names_the_rule_and_cp(dense):
    text = reason("c3", *dense)
    assert "powers of two" in text and "--cp 3" in text


def test_a_context_group_beyond_a_node_names_the_node():
    text = reason("p1 t4 sp c4 d1", *quick(gpus=16))
    assert "8-GPU node" in text and "t4 x c4" in text and "--cp 4" in text


def test_a_fixed_context_degree_names_cp():
    request, result = quick(context=2)
    assert explain("c2", request, result).fates
    assert "--cp 2 fixes the context degree" in reason("c4", request, result)


def test_an_allgather_exchange_needs_cp_comm(dense):
    assert "--cp-comm allgather" in reason("c2ag", *dense)
    request, result = quick(cp_comm="allgather")
    found = explain("c2ag", request, result)
    assert found.fates and {f.candidate.layout.cp_comm for f in found.fates} == {"allgather"}


def test_experts_need_a_mixture_of_experts_model(dense, moe):
    assert "mixture-of-experts" in reason("e2", *dense)
    assert "mixture-of-experts" in reason("p4 t2 sp c2 e2 d8", *dense)
    request, result = moe
    found = explain("e2", request, result)
    assert found.fates and {f.candidate.layout.expert for f in found.fates} == {2}


def test_an_expert_degree_names_the_experts_the_ranks_it_reuses_or_ep(moe):
    request, result = moe
    assert "4 routed experts" in reason("e3", request, result)
    text = reason("p4 d2 e4", request, result)
    assert "data x context" in text and "d2 x c1" in text
    fixed, result = moe_request(expert=2)
    assert {f.candidate.layout.expert for f in result.fates} == {2}
    assert "--ep 2 fixes the expert degree" in reason("e4", fixed, result)


def test_a_sharding_stage_not_searched_names_the_flag_that_searches_it(dense):
    request, result = dense
    assert "--zero-stages 1,3" in reason("z3", request, result)
    assert "--zero-stages 1,2,3 adds z3" in reason("z3", *quick(shardings=(1, 2)))
    assert "--no-distributed-optimizer" in reason("p1 t1 c1 d8 z0", request, result)
    off = reason("z1", *quick(zero=False))
    assert "--no-distributed-optimizer" in off and "--zero-stages 1" in off
    assert explain("z2", *quick(shardings=(1, 2))).fates


def test_the_devices_count_the_context_degree(dense):
    text = reason("p3 c2", *dense)
    assert "p x t x c x d" in text and "p3 x c2 = 6 does not divide" in text
    text = reason("p2 t2 sp c2 d2", *dense)
    assert "p x t x c x d" in text and "p2 x t2 x c2 x d2 = 16 is more than them" in text
    assert "p1 x t2 x c2 x d1 = 4 is not them" in reason("p1 t2 sp c2 d1", *dense)
