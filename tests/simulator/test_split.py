"""Stage splits: ``balanced`` (by FLOPs, the default), ``even`` (Megatron-LM's equal blocks per
stage, the embedding on the first stage and the head on the last) and explicit blocks per stage."""

from __future__ import annotations

import pytest

from simulator.analytic.run_plan import simulate_plan
from simulator.errors import PebbleError
from simulator.model import partition
from simulator.model.parse import parse_model
from simulator.model.partitioning import balanced_partition
from simulator.model.split import BALANCED, EVEN, Split
from simulator.run import CostSource, make_schedule, plan_run

LLAMA = "llama3-8b,layers=12,seq=256"


def blocks_per_stage(spec, parts) -> list[tuple[int, ...]]:
    """The partition units (``block`` numbers) of each stage."""
    infos = spec.layers()
    return [tuple(sorted({infos[i].block for i in layers})) for layers in parts.stage_layers]


@pytest.mark.parametrize("text", ["balanced", "even", "6,6,5,5", "0,4,4", "12"])
def test_the_text_form_parses_back(text):
    split = Split.parse(text)
    assert split.to_text() == text and str(split) == text
    assert Split.parse(split.to_text()) == split


def test_the_rules():
    assert Split.parse(None) == BALANCED == Split() and Split.parse(" Even ") == EVEN
    assert Split.parse("6,6,5,5") == Split("blocks", (6, 6, 5, 5))
    assert Split.parse(EVEN) is EVEN


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("uneven", "cannot read split 'uneven'; write balanced, even or the blocks per stage"),
        ("4,-1", "whole numbers, 0 or more"),
        ("4,,4", "cannot read split"),
        ("1.5,2", "cannot read split"),
    ],
)
def test_bad_text_is_one_sentence(text, says):
    with pytest.raises(PebbleError, match=says):
        Split.parse(text)


@pytest.mark.parametrize(("stages", "name"), [(4, "1f1b"), (2, "gpipe")])
def test_even_is_megatrons_rule(stages, name):
    """Megatron-LM: layers / (p * v) transformer blocks a stage, the embedding with the first
    stage, the final norm, LM head and loss with the last."""
    spec = parse_model(LLAMA)
    parts = partition(spec, stages, EVEN)
    per_stage = 12 // stages
    units = blocks_per_stage(spec, parts)
    for stage, blocks in enumerate(units):
        core = [b for b in blocks if 1 <= b <= 12]
        assert core == list(range(1 + stage * per_stage, 1 + (stage + 1) * per_stage))
    assert units[0][0] == 0 and units[-1][-1] == 13
    assert sum(len(r) for r in parts.stage_layers) == len(spec.layers())
    kinds = [spec.layers()[i].kind for i in parts.stage_layers[-1]]
    assert kinds[-3:] == ["rmsnorm", "lm_head", "token_ce"]


def test_interleaved_even_splits_the_blocks_over_every_stage():
    spec = parse_model(LLAMA)
    plan = plan_run(make_schedule("interleaved-1f1b", 2, 4, 3), spec, split="even")
    assert plan.split == EVEN
    counts = [
        len([b for b in units if 1 <= b <= 12]) for units in blocks_per_stage(spec, plan.partition)
    ]
    assert counts == [2] * 6


def test_blocks_per_stage_put_the_embedding_first_and_the_head_last():
    spec = parse_model(LLAMA)
    parts = partition(spec, 4, "0,5,5,2")
    units = blocks_per_stage(spec, parts)
    assert units == [(0,), (1, 2, 3, 4, 5), (6, 7, 8, 9, 10), (11, 12, 13)]
    assert blocks_per_stage(spec, partition(spec, 3, "6,6,0"))[-1] == (13,)


@pytest.mark.parametrize(
    ("stages", "text", "says"),
    [
        (
            5,
            "even",
            "12 transformer blocks to divide evenly over the 5 stages; use --split "
            "balanced or give the transformer blocks per stage, e.g. --split 3,3,2,2,2.",
        ),
        (
            3,
            "4,4",
            "gives 8 transformer blocks over 2 stages, but the model has 12 transformer "
            "blocks and the schedule 3 stages.",
        ),
        (3, "4,4,5", "gives 13 transformer blocks"),
        (3, "6,0,6", "leaves stage 1 without a block"),
    ],
)
def test_splits_that_do_not_fit_are_one_sentence(stages, text, says):
    with pytest.raises(PebbleError) as error:
        partition(parse_model(LLAMA), stages, text)
    assert says in str(error.value)


def test_an_mlp_splits_its_linear_blocks():
    spec = parse_model("widths=2-8-8-8-3")  # four Linear blocks
    assert blocks_per_stage(spec, partition(spec, 2, "even")) == [(0, 1), (2, 3)]
    assert blocks_per_stage(spec, partition(spec, 2, "1,3")) == [(0,), (1, 2, 3)]
    with pytest.raises(PebbleError, match="leaves stage 0 without a block"):
        partition(spec, 2, "0,4")
    with pytest.raises(PebbleError, match="4 Linear blocks to divide evenly over the 3 stages"):
        partition(spec, 3, "even")


def test_balanced_stays_the_default():
    spec = parse_model(LLAMA)
    schedule = make_schedule("1f1b", 4, 4)
    plan = plan_run(schedule, spec)
    assert plan.split == BALANCED
    assert plan.partition == balanced_partition(spec, 4) == partition(spec, 4, "balanced")


def test_a_stage_holding_only_the_embedding_runs():
    schedule = make_schedule("1f1b", 3, 3)
    plan = plan_run(
        schedule, LLAMA, split="0,6,6", recompute="selective", costs=CostSource(hardware="h100")
    )
    timeline = simulate_plan(plan)
    per_rank = timeline.summary().per_rank
    assert per_rank[0].memory["parameters"] > 0 and per_rank[0].peak_activation_bytes > 0
    assert timeline.throughput()["step_time"] > 0
