"""Precision recipes: their bytes per parameter against their sources, the ``precision`` key of
a transformer spec, and whole-rank memory (simulate's and advise's bounds') counted by them."""

from __future__ import annotations

import pytest

from schedules.registry import SCHEDULES, build_schedule
from simulator.analytic.advise import AUTO, candidates, family_traits, stage_table
from simulator.analytic.advise.memory_bounds import static_bytes
from simulator.errors import PebbleError
from simulator.model import ModelSpec, partition
from simulator.model.layout import Layout
from simulator.model.parse import parse_model
from simulator.model.precision import (
    DEFAULT_TWO_BYTE,
    PRECISIONS,
    Precision,
    default_precision,
    precision_named,
)
from simulator.model.transformer.spec import TransformerSpec
from simulator.run import make_schedule, plan_run
from simulator.run.rank_memory import static_memory
from tests.simulator.advise_harness import request_for

SMALL = "transformer:layers=8,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16"


@pytest.mark.parametrize(
    ("name", "parts", "total", "zero_kept", "zero_split"),
    [
        # Megatron-LM docs/user-guide/features/dist_optimizer.md (d98e8a64): "bf16 parameters,
        # fp32 gradients: 18, 6 + 12/d"; "fp32 parameters, fp32 gradients: 16, 8 + 8/d".
        ("bf16", (2, 4, 4, 8), 18, 6, 12),
        ("fp32", (4, 4, 0, 8), 16, 8, 8),
        # Rajbhandari et al. 2020 (ZeRO), section 3.1: 2 + 2 + K, K = 12.
        ("bf16-grads", (2, 2, 4, 8), 16, 4, 12),
        # DeepSeek-V3 report, section 3.3: fp32 master weights and gradients, bf16 AdamW moments.
        ("fp8", (2, 4, 4, 4), 14, 6, 8),
        ("fp64", (8, 8, 0, 16), 32, 16, 16),
    ],
)
def test_each_recipe_counts_its_sources_bytes(name, parts, total, zero_kept, zero_split):
    recipe = precision_named(name)
    assert (recipe.weights, recipe.gradients, recipe.master, recipe.moments) == parts
    assert recipe.total == total
    assert recipe.sharded == ("master", "moments")
    for d in (1, 2, 8, 64):
        assert recipe.per_parameter(d) == pytest.approx(zero_kept + zero_split / d, abs=1e-12)
    assert recipe.name == name and recipe.to_text() == name and recipe.source and recipe.summary


def test_rank_bytes_split_only_the_sharded_part_rounding_up():
    recipe = precision_named("bf16")
    assert recipe.rank_bytes(1000, 1) == (2000, 4000, 12000)
    assert recipe.rank_bytes(1000, 7) == (2000, 4000, -(-12000 // 7))
    partial = Precision("half", 2, 2, 4, 8, "moments sharded only", "a test", sharded=("moments",))
    assert partial.rank_bytes(10, 4) == (20, 20, 40 + 20)


def test_zero_1_shards_only_the_optimizer_state():
    with pytest.raises(PebbleError, match="ZeRO-1 shards only master and moments"):
        Precision("bad", 2, 2, 4, 8, "", "", sharded=("gradients",))


def test_the_default_recipe_follows_the_dtype():
    assert default_precision(2) is DEFAULT_TWO_BYTE is PRECISIONS["bf16"]  # Megatron-LM's
    assert default_precision(4) is PRECISIONS["fp32"]
    assert default_precision(8) is PRECISIONS["fp64"]
    assert ModelSpec(dtype="float32").recipe is PRECISIONS["fp32"]
    assert ModelSpec().recipe is PRECISIONS["fp64"]
    assert parse_model("llama3-8b").recipe is DEFAULT_TWO_BYTE
    assert parse_model(SMALL.replace("bfloat16", "float32")).recipe is PRECISIONS["fp32"]


def test_unknown_recipes_are_one_sentence():
    with pytest.raises(PebbleError, match=r"unknown precision recipe 'fp4'; choose one of bf16"):
        parse_model("llama3-8b,precision=fp4")
    with pytest.raises(PebbleError, match="unknown precision recipe"):
        plan_run(make_schedule("1f1b", 2, 2), SMALL, precision="int8")


def test_the_precision_key_round_trips_and_a_default_leaves_the_text_alone():
    plain = parse_model("llama3-8b")
    assert "precision" not in plain.to_text()
    named = parse_model("llama3-8b,precision=fp8")
    assert named.recipe is PRECISIONS["fp8"]
    assert named.to_text() == plain.to_text() + ",precision=fp8"
    assert TransformerSpec.parse(named.to_text()) == named
    default = parse_model(f"llama3-8b,precision={DEFAULT_TWO_BYTE.name.upper()}")
    assert default == plain and default.to_text() == plain.to_text()
    other = next(p for p in ("bf16", "bf16-grads") if p != DEFAULT_TWO_BYTE.name)
    assert parse_model(f"{SMALL},precision={other}").to_text().endswith(f"precision={other}")


def test_plan_run_sets_the_recipe_and_an_mlp_keeps_its_own():
    schedule = make_schedule("1f1b", 2, 4)
    plan = plan_run(schedule, "llama3-8b,layers=4", precision="fp8")
    assert plan.spec.recipe is PRECISIONS["fp8"] and plan.spec.precision == "fp8"
    assert plan_run(schedule, "llama3-8b,layers=4,precision=fp8").spec == plan.spec
    mlp = plan_run(schedule, "widths=2-8-8-3,dtype=float32", precision="fp32")
    assert mlp.spec.recipe is PRECISIONS["fp32"]
    with pytest.raises(PebbleError, match=r"an MLP keeps .* own dtype \(fp32\); --precision bf16"):
        plan_run(schedule, "widths=2-8-8-3,dtype=float32", precision="bf16")


@pytest.mark.parametrize("name", sorted(PRECISIONS))
@pytest.mark.parametrize("layout", [Layout(), Layout(data=8, sharding=1)])
def test_static_memory_counts_by_the_recipe(name, layout):
    spec = parse_model(f"{SMALL},precision={name}")
    recipe = PRECISIONS[name]
    schedule = build_schedule("1f1b", 4, 8)
    parts = partition(spec, 4)
    infos = spec.layers()
    memory = static_memory(spec, schedule, parts, 1, layout)
    for rank, m in enumerate(memory):
        params = sum(spec.param_count(infos[i]) for i in parts.stage_layers[rank])
        assert m.parameters == params * recipe.weights
        assert m.gradients == params * recipe.gradients
        assert m.optimizer_state == -(-params * recipe.optimizer_state // layout.optimizer_shards)


def test_whole_rank_memory_of_a_run_follows_its_recipe():
    schedule = make_schedule("1f1b", 2, 4)
    totals = {}
    for name in ("bf16", "bf16-grads", "fp8"):
        plan = plan_run(schedule, SMALL, precision=name)
        memory = static_memory(
            plan.spec, schedule, plan.partition, plan.microbatch_rows, plan.layout
        )
        totals[name] = [m.parameters + m.gradients + m.optimizer_state for m in memory]
    params = [t // 16 for t in totals["bf16-grads"]]
    assert totals["bf16"] == [18 * p for p in params]
    assert totals["fp8"] == [14 * p for p in params]


@pytest.mark.parametrize("name", ["bf16", "fp8"])
def test_advise_bounds_count_static_memory_by_the_recipe(name):
    model = f"{SMALL},precision={name}"
    # context degree 1: the tables below are its
    request, _, hardware = request_for(model, global_batch=32, context=1)
    checked = 0
    for c in [c for c in candidates(request) if c.schedule != AUTO][::9]:
        table = stage_table(request.spec, c.layer, c.stages, hardware, c.recompute)
        assert table.recipe is PRECISIONS[name]
        chunks = None if SCHEDULES[c.schedule].fixed_chunks else c.chunks
        schedule = make_schedule(c.schedule, c.pp, c.microbatches, chunks)
        plan = plan_run(schedule, model, batch_size=c.global_batch, layout=c.layout)
        expected = static_memory(
            plan.spec, schedule, plan.partition, plan.microbatch_rows, plan.layout
        )
        assert static_bytes(c, family_traits(c.schedule), table) == [m.total for m in expected]
        checked += 1
    assert checked >= 3
