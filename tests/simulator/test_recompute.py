"""Activation recomputation, executed for real and predicted: every policy on every schedule.

* Gradients equal the no-recompute run bit for bit (the forward is deterministic, dropout masks
  come from seeds), on the MLP and on a tiny GPT with dropout.
* Each rank's measured peak of cached bytes equals the analytic executor's prediction, and the
  recompute sub-spans it predicts are the ones the stages ran.
* Caches are empty after every step.
* Korthikanti et al. 2022, Table 2 (the math attention core, named): with 16-bit activations,
  what a block keeps after its forward under ``selective`` is ``sbh (10 + 24/t)`` (``34 sbh /
  t`` with sequence parallelism), and under ``full`` the block's ``2 sbh`` input, computed by
  the same plan the executors run.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from schedules.dependencies import PIPELINE_RULE
from schedules.registry import SCHEDULES, build_schedule
from simulator.analytic.costs import unit_costs
from simulator.analytic.executor import simulate
from simulator.errors import PebbleError
from simulator.model import ModelSpec
from simulator.model.action_work import action_work
from simulator.model.layout import Layout
from simulator.model.memory_plan import input_bytes
from simulator.model.parse import parse_model
from simulator.model.partitioning import partition
from simulator.model.recompute import (
    RecomputePolicy,
    StageRecompute,
    group_units,
    plan_stages,
    recompute_units,
)
from simulator.model.reference import TrainConfig
from simulator.model.transformer import TransformerConfig, transformer_layer_infos
from simulator.model.transformer import footprint as paper
from simulator.model.transformer.spec import TransformerSpec
from simulator.timeline import Timeline
from tests.simulator.recompute_harness import play, same_bits

MLP = ModelSpec(widths=(3, 8, 8, 8, 8, 8, 8, 4), layernorm=True, activation="tanh")
GPT = "transformer:layers=4,hidden=16,heads=4,seq=8,vocab=96,dropout=0.1,dtype=float64"
# the math attention core: the one whose scores selective recompute drops (under the default,
# flash, selective keeps and computes what none does)
GPT_MATH = GPT + ",attention=math"
MLP_POLICIES = ["full", "sqrt", "every:2", "0:full,1:none", "selective"]
GPT_POLICIES = ["full", "selective", "sqrt", "every:3"]


def _case(name: str, spec, ranks=2, m=4):
    schedule = build_schedule(name, ranks, m)
    parts = partition(spec, schedule.num_stages)
    if spec.is_transformer:
        x, y = TrainConfig(model=spec, batch_size=m, microbatches=m).data()
    else:
        rng = np.random.default_rng(1)
        x, y = rng.standard_normal((4 * m, 3)), rng.integers(0, 4, 4 * m)
    return schedule, parts, x, y


def _check(schedule, spec, parts, x, y, policies):
    rows = len(x) // schedule.num_microbatches
    base = play(schedule, spec, parts, x, y)
    for text in policies:
        plan = plan_stages(RecomputePolicy.parse(text), spec, parts)
        got = play(schedule, spec, parts, x, y, plan)
        predicted = simulate(
            schedule, unit_costs(schedule, parts), spec, parts, rows, recompute=plan
        )
        assert same_bits(got.gradients, base.gradients), text
        assert got.losses == base.losses, text
        assert got.peaks == predicted.peak_activation_bytes(), text
        assert not any(got.left.values()), text
        spans = sorted((s, mb) for s, mb, _, _ in got.spans)
        assert spans == sorted((r.stage, r.microbatch) for r in predicted.recompute), text
        assert (predicted.meta.recompute != "") == plan.active


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_every_policy_on_the_mlp(name):
    schedule, parts, x, y = _case(name, MLP)
    _check(schedule, MLP, parts, x, y, MLP_POLICIES)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_every_policy_on_a_tiny_gpt_with_dropout(name):
    spec = parse_model(GPT)
    schedule, parts, x, y = _case(name, spec)
    _check(schedule, spec, parts, x, y, GPT_POLICIES)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_selective_recompute_of_a_math_core_on_a_tiny_gpt(name):
    """Selective recompute really drops and recomputes with the math core: same bits, the
    predicted peaks and sub-spans."""
    spec = parse_model(GPT_MATH)
    schedule, parts, x, y = _case(name, spec)
    _check(schedule, spec, parts, x, y, ["selective"])


def test_recompute_lowers_the_peak_and_lengthens_the_backward():
    """On GPipe (all forwards first) full recompute keeps only block inputs, so every rank's
    peak drops; each backward takes longer by its recompute, so the step does too."""
    spec = parse_model(GPT)
    schedule, parts, x, y = _case("gpipe", spec)
    costs = unit_costs(schedule, parts)
    none = simulate(schedule, costs, spec, parts, 1)
    full = simulate(
        schedule,
        costs,
        spec,
        parts,
        1,
        recompute=plan_stages(RecomputePolicy.parse("full"), spec, parts),
    )
    assert all(full.peak_activation_bytes()[r] < none.peak_activation_bytes()[r] for r in (0, 1))
    assert full.summary().makespan > none.summary().makespan
    assert all(f > 0 for f in full.meta.recompute_flops)
    for span in full.recompute:  # inside its backward event
        event = next(
            e
            for e in full.events
            if (e.stage, e.microbatch) == (span.stage, span.microbatch) and e.kind in "IB"
        )
        assert event.start <= span.start < span.end <= event.end


def test_a_timeline_with_recompute_round_trips(tmp_path):
    spec = parse_model(GPT_MATH)  # selective recompute sub-spans to write
    schedule, parts, _, _ = _case("1f1b", spec)
    plan = plan_stages(RecomputePolicy.parse("selective"), spec, parts)
    timeline = simulate(schedule, unit_costs(schedule, parts), spec, parts, 1, recompute=plan)
    timeline.save(tmp_path / "t.json")
    back = Timeline.load(tmp_path / "t.json")
    assert list(back.recompute) == list(timeline.recompute) != []
    assert back.meta.recompute == "selective"
    assert back.meta.recompute_flops == timeline.meta.recompute_flops


# ---------------------------------------------------------------- Korthikanti et al. 2022


def _kept_after_forward(config, s_unused, b, t, sp, recompute):
    """Bytes one block keeps per microbatch after its forward, from the executors' own plan."""
    spec = TransformerSpec(config, dtype="bfloat16", layout=Layout(tensor=t, sequence_parallel=sp))
    infos = transformer_layer_infos(config, Layout(tensor=t, sequence_parallel=sp))
    block = [info for info in infos if info.block == 1]
    first = block[0].index
    plan = recompute.relative(first) if recompute.segments else recompute
    checkpoints = tuple(input_bytes(spec, infos, first + a, b) for a, _ in plan.segments)
    items = action_work(block, b, 2, PIPELINE_RULE.rule("F"), plan, checkpoints)
    return sum(item.delta for item in items)


KORTHIKANTI = [(2048, 1, 12288, 96, 8), (2048, 4, 6144, 48, 4), (512, 2, 2560, 40, 2)]


@pytest.mark.parametrize(("s", "b", "h", "a", "t"), KORTHIKANTI)
def test_selective_and_full_equal_korthikanti_table_2(s, b, h, a, t):
    config = TransformerConfig(
        layers=1, hidden=h, heads=a, seq=s, vocab=51200, dropout=0.1, attention="math"
    )
    block = [info for info in transformer_layer_infos(config) if info.block == 1]
    full = StageRecompute(((block[0].index, block[-1].index),))
    selective = StageRecompute(selective=True)
    assert _kept_after_forward(config, s, b, t, False, selective) == (
        paper.activations_tensor_parallel_selective(s, b, h, t)
    )
    assert _kept_after_forward(config, s, b, t, True, selective) == (
        paper.activations_tensor_sequence_parallel_selective(s, b, h, t)
    )
    for tp in (1, t):
        assert _kept_after_forward(config, s, b, tp, False, full) == (
            paper.activations_full_recompute(s, b, h)
        )
    none = _kept_after_forward(config, s, b, t, False, StageRecompute())
    assert Fraction(none) == paper.activations_tensor_parallel(s, b, h, a, t)


def test_full_recompute_flops_are_narayanan_eq_3():
    """A whole model under ``full``: forward + backward + recompute FLOPs per sequence equal
    96 sLh^2 (1 + s/(6h) + V/(16Lh)) (Narayanan et al. 2021, eq. 3), which counts the math
    attention core's backward (twice its forward)."""
    from simulator.analytic.recompute_costs import stage_recompute_flops

    s, h, a, layers, vocab = 2048, 12288, 96, 4, 50257
    config = TransformerConfig(
        layers=layers, hidden=h, heads=a, seq=s, vocab=vocab, attention="math"
    )
    spec = TransformerSpec(config, dtype="bfloat16")
    parts = partition(spec, 2)
    plan = plan_stages(RecomputePolicy.parse("full"), spec, parts)
    extra = sum(r for r, _ in stage_recompute_flops(spec, parts, plan))
    rules = [info.flops() for info in spec.layers()]
    total = sum(r.F + r.I + r.W for r in rules) + extra
    assert Fraction(total) == paper.model_training_flops_full_recompute(1, s, layers, h, vocab)


# ---------------------------------------------------------------- policies


def test_units_skip_the_loss_block_and_the_transformer_ends():
    infos = MLP.layers()
    units = recompute_units(infos)
    assert units[0] == (0, 2) and all(not infos[b].kind.endswith("entropy") for _, b in units)
    assert units[-1][1] < len(infos) - 2  # the last block (linear + loss) is kept
    gpt = parse_model(GPT).layers()
    assert {gpt[a].block for a, _ in recompute_units(gpt)} == {1, 2, 3, 4}
    assert group_units([(0, 1), (2, 3), (4, 5), (8, 9)], 2) == ((0, 3), (4, 5), (8, 9))


def test_sqrt_is_chen_segments():
    spec = ModelSpec(widths=(4,) * 18)  # 17 blocks: 16 droppable on one stage
    parts = partition(spec, 1)
    (stage,) = plan_stages(RecomputePolicy.parse("sqrt"), spec, parts).stages
    assert len(stage.segments) == 4  # ceil(sqrt(16)) = 4 blocks per segment


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "needs a policy"),
        ("fast", "cannot read 'fast'"),
        ("every:0", "every:K needs"),
        ("full,none", "two whole-model policies"),
        ("0:full,0:none", "names stage 0 twice"),
        ("0:budget:1GiB", "whole model"),
        ("budget:0%", "percentage"),
        ("budget:lots", "budget takes bytes"),
    ],
)
def test_bad_policies_are_one_sentence(text, message):
    with pytest.raises(PebbleError, match=message):
        RecomputePolicy.parse(text)


def test_a_stage_beyond_the_model_is_named():
    with pytest.raises(PebbleError, match="names stage 5"):
        plan_stages(RecomputePolicy.parse("5:full"), MLP, partition(MLP, 2))


def test_budgets_parse():
    assert RecomputePolicy.parse("budget:60%").budget == pytest.approx(0.6)
    assert RecomputePolicy.parse("budget:2GiB").budget == 2 * 2**30
    assert RecomputePolicy.parse("0:full,1:sqrt").to_text() == "0:full,1:sqrt"


def test_a_profile_leaves_the_recompute_out():
    """A profile derived from a run under a policy holds each kind's own cost: the same as
    from the run without recomputation, so one profile predicts every policy."""
    from simulator.analytic.costs import Hardware, flop_costs
    from simulator.analytic.profile import Profile

    spec = parse_model(GPT)
    schedule, parts, _, _ = _case("zb-h1", spec)
    costs = flop_costs(spec, parts, 1, Hardware())
    profiles = [
        Profile.from_timeline(simulate(schedule, costs, spec, parts, 1, recompute=plan))
        for plan in (None, plan_stages(RecomputePolicy.parse("full"), spec, parts))
    ]
    for plain, recomputed in zip(profiles[0].costs, profiles[1].costs, strict=True):
        assert plain.keys() == recomputed.keys()
        for kind, cost in plain.items():  # a kind never run is None in both
            assert recomputed[kind] == (None if cost is None else pytest.approx(cost, rel=1e-9))


@pytest.mark.parametrize("name", ["1f1b", "zb-h1"])
def test_the_recompute_spans_take_the_time_recompute_adds(name):
    """Under unit costs (not proportional to FLOPs) each backward is longer by its recompute,
    and its recompute sub-spans together last exactly that long."""
    schedule, parts, _, _ = _case(name, MLP)
    costs = unit_costs(schedule, parts)
    plain = simulate(schedule, costs, MLP, parts, 4)
    plan = plan_stages(RecomputePolicy.parse("every:2"), MLP, parts)
    recomputed = simulate(schedule, costs, MLP, parts, 4, recompute=plan)
    busy = {r.rank: r.busy for r in plain.summary().per_rank}
    for rank in recomputed.summary().per_rank:
        added = rank.busy - busy[rank.rank]
        assert recomputed.recompute_time()[rank.rank] == pytest.approx(added, rel=1e-12)
