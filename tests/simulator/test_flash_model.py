"""``attention=flash`` in a whole model: the config key and its text, the layer list's choice of
core (and of the projection that reads the core's output), a model that trains to the math
model's numbers, selective recompute that changes nothing, and a tiny GPT on Ray whose measured
per-rank peak activation bytes equal the prediction.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from schedules.dependencies import PIPELINE_RULE
from schedules.registry import build_schedule
from simulator.analytic.run_plan import simulate_plan
from simulator.errors import PebbleError
from simulator.model.action_work import action_work, recompute_flops
from simulator.model.optim import OptimizerConfig
from simulator.model.parse import parse_model
from simulator.model.partitioning import partition
from simulator.model.recompute import NO_RECOMPUTE, RecomputePolicy, StageRecompute, plan_stages
from simulator.model.reference import TrainConfig, train_reference
from simulator.model.transformer import TransformerConfig, transformer_layer_infos
from simulator.model.transformer import footprint as paper
from simulator.model.transformer.attention import CausalSelfAttention
from simulator.model.transformer.flash_attention import FlashAttention
from simulator.model.transformer.flash_dropout import RNG_STATE_BYTES
from simulator.model.transformer.flash_projection import FlashOutputProjection
from simulator.model.transformer.linear import AttentionProjection
from simulator.model.transformer.spec import TransformerSpec
from simulator.ray_pipeline.executor import RayOptions, RayPipeline
from simulator.run import Layout, plan_run, plan_training
from tests.simulator.recompute_harness import play, same_bits
from tests.simulator.test_ray_executor import max_rel

GPT = TransformerConfig(layers=2, hidden=64, heads=4, seq=32, vocab=96, dropout=0.1)
LLAMA = TransformerConfig(
    layers=2,
    hidden=32,
    heads=4,
    kv_heads=2,
    seq=24,
    vocab=96,
    ffn=48,
    mlp="swiglu",
    norm="rmsnorm",
    position="rope",
    dropout=0.1,
    tied_embeddings=False,
    bias=False,
)
MODELS = {"gpt": GPT, "llama": LLAMA}


def spec_of(config: TransformerConfig, attention: str) -> TransformerSpec:
    return TransformerSpec(replace(config, attention=attention), dtype="float64", seed=3)


# ---------------------------------------------------------------- the config key and its text


def test_the_default_is_flash_and_the_text_names_the_core():
    config = TransformerConfig(layers=1, hidden=8, heads=2, seq=4, vocab=5)
    assert config.attention == config.attention_kind == "flash"
    assert replace(config, attention=None) == config  # one spelling per model
    text = TransformerSpec(config).to_text()
    assert ",attention=flash,dtype=" in text
    assert TransformerSpec.parse(text) == TransformerSpec(config)
    assert TransformerSpec.parse(text.replace(",attention=flash", "")) == TransformerSpec(config)
    math = TransformerSpec(replace(config, attention="math"))
    assert math.config.attention_kind == "math"
    assert math.to_text() == text.replace("attention=flash", "attention=math")
    assert TransformerSpec.parse(math.to_text()) == math


def test_an_unknown_attention_is_one_sentence():
    with pytest.raises(PebbleError, match="unknown attention 'fused'; choose math or flash"):
        TransformerConfig(layers=1, hidden=8, heads=2, seq=4, vocab=5, attention="fused")


@pytest.mark.parametrize(
    "text",
    [
        "transformer:layers=2,hidden=8,heads=2,seq=4,vocab=5,attention=flash",
        "llama3-8b,attention=flash",
    ],
)
def test_the_text_form_reads_attention(text):
    spec = parse_model(text)
    assert spec.config.attention_kind == "flash"
    assert parse_model(spec.to_text()) == spec
    assert parse_model(text.replace("flash", "math")).config.attention == "math"
    assert parse_model(text.replace(",attention=flash", "")) == spec  # the default


@pytest.mark.parametrize("name", list(MODELS))
def test_the_layer_list_puts_the_chosen_core_where_attention_is(name):
    math_infos = transformer_layer_infos(replace(MODELS[name], attention="math"))
    flash_infos = transformer_layer_infos(replace(MODELS[name], attention="flash"))
    assert [i.kind for i in flash_infos] == [i.kind for i in math_infos]
    for math_info, flash_info in zip(math_infos, flash_infos, strict=True):
        if math_info.kind == "attention":
            assert (math_info.cls, flash_info.cls) == (CausalSelfAttention, FlashAttention)
            assert isinstance(flash_info.build(), FlashAttention)
        elif math_info.kind == "attn_out":  # reads the output the fused core keeps
            assert (math_info.cls, flash_info.cls) == (AttentionProjection, FlashOutputProjection)
            assert issubclass(FlashOutputProjection, AttentionProjection)
        else:
            assert flash_info.cls is math_info.cls
        assert flash_info.in_features == math_info.in_features
        assert flash_info.param_count() == math_info.param_count()


@pytest.mark.parametrize(("t", "sp"), [(1, False), (2, False), (4, False), (2, True), (4, True)])
def test_a_flash_block_keeps_korthikantis_selective_bytes_and_its_log_sum_exp(t, sp):
    """A fused core keeps what Korthikanti et al. 2022 count under selective recompute (Table 2:
    q, k, v and the projection's input, the scores rebuilt in the backward), plus its float32
    log-sum-exp (4 asb / t) and, with dropout, its RNG state. Its output is the projection's
    input, one buffer counted once: PyTorch saves it once (test_saved_tensors_oracle), and
    counting it in both layers would add 2 sbh / t."""
    s, b, h, a = 32, 3, 64, 4
    config = TransformerConfig(layers=1, hidden=h, heads=a, seq=s, vocab=96, dropout=0.1)
    block = [i for i in transformer_layer_infos(config) if i.block == 1]
    ours = sum(sum(info.footprint(b, 2, t, sp).F) for info in block)
    if sp:
        table2 = paper.activations_tensor_sequence_parallel_selective(s, b, h, t)
    else:
        table2 = paper.activations_tensor_parallel_selective(s, b, h, t)
    assert ours == table2 + 4 * a * s * b // t + RNG_STATE_BYTES


# ---------------------------------------------------------------- the whole model


@pytest.mark.parametrize("name", list(MODELS))
def test_a_flash_model_trains_to_the_math_models_numbers(name):
    """Same weights (seeded by index), same dropout bits: gradients and two steps of SGD agree
    to 1e-10 (SGD, not Adam, whose update divides near-zero gradients by their own size)."""
    runs = {}
    for attention in ("math", "flash"):
        config = TrainConfig(
            model=spec_of(MODELS[name], attention),
            batch_size=4,
            microbatches=2,
            steps=2,
            optimizer=OptimizerConfig("sgd", lr=0.5),
        )
        runs[attention] = (train_reference(config, steps=1).gradients, train_reference(config))
    (math_grads, math_run), (flash_grads, flash_run) = runs["math"], runs["flash"]
    assert max_rel(flash_grads, math_grads) <= 1e-10
    assert max_rel(flash_run.weights(), math_run.weights()) <= 1e-10
    assert flash_run.losses == pytest.approx(math_run.losses, rel=1e-12)


# ---------------------------------------------------------------- selective recompute


def test_selective_recompute_plans_nothing_for_a_flash_core():
    """The memory plan's work items and the recompute FLOPs: selective equals none for flash,
    where the math core drops its scores and charges their recompute."""
    for attention, changes in (("flash", False), ("math", True)):
        infos = [i for i in spec_of(GPT, attention).layers() if i.block == 1]
        for kind_rule in PIPELINE_RULE.kinds.values():
            work = [action_work(infos, 2, 8, kind_rule, r) for r in (NO_RECOMPUTE, _SELECTIVE)]
            if not changes:
                assert work[0] == work[1], kind_rule.kind
        recomputed, _ = recompute_flops(infos, 2, 8, PIPELINE_RULE, _SELECTIVE)
        assert (recomputed > 0) == changes


_SELECTIVE = StageRecompute(selective=True)


@pytest.mark.parametrize("name", ["1f1b", "zb-h1"])
def test_selective_recompute_of_a_flash_model_changes_nothing(name):
    """Played as the Ray workers play it: the same bits and peaks as without recompute, no
    recompute sub-span, and the prediction agrees (no recompute FLOPs)."""
    spec = spec_of(replace(GPT, seq=16), "flash")
    schedule = build_schedule(name, 2, 4)
    parts = partition(spec, schedule.num_stages)
    x, y = TrainConfig(model=spec, batch_size=4, microbatches=4).data()
    base = play(schedule, spec, parts, x, y)
    selective = plan_stages(RecomputePolicy.parse("selective"), spec, parts)
    got = play(schedule, spec, parts, x, y, selective)
    assert same_bits(got.gradients, base.gradients)
    assert got.peaks == base.peaks and got.spans == []
    plan = plan_run(schedule, spec, batch_size=4, recompute="selective")
    predicted = simulate_plan(plan)
    assert predicted.peak_activation_bytes() == got.peaks
    assert list(predicted.recompute) == []
    assert all(f == 0 for f in predicted.meta.recompute_flops)
    assert (
        predicted.peak_activation_bytes()
        == simulate_plan(plan_run(schedule, spec, batch_size=4)).peak_activation_bytes()
    )


# ---------------------------------------------------------------- on Ray

RAY_CASES = [("gpt", "1f1b", 1), ("gpt", "zb-v", 1), ("llama", "interleaved-1f1b", 2)]


@pytest.mark.parametrize(("model", "name", "dp"), RAY_CASES)
def test_a_tiny_flash_transformer_on_ray_measures_what_is_predicted(ray_session, model, name, dp):
    chunks = 2 if name in ("interleaved-1f1b", "zb-v") else None
    schedule = build_schedule(name, 2, 4, chunks)
    config = TrainConfig(
        model=spec_of(MODELS[model], "flash"),
        batch_size=2 * schedule.num_microbatches * dp,
        microbatches=schedule.num_microbatches,
        steps=2,
        optimizer=OptimizerConfig("adam", lr=3e-3),
    )
    plan = plan_training(schedule, config, layout=Layout(data=dp))
    with RayPipeline(plan, config, RayOptions(calibrate=False)) as pipeline:
        result = pipeline.run(config.steps, check=True)
    reference = train_reference(config)
    assert max_rel(result.weights, reference.weights()) <= 1e-9
    measured = [r.peak_activation_bytes for r in result.timeline.summary().per_rank]
    predicted = simulate_plan(plan).summary().per_rank
    assert measured == [r.peak_activation_bytes for r in predicted]
    math_config = replace(MODELS[model], attention="math")
    math_plan = replace(plan, spec=replace(plan.spec, config=math_config))
    math_peaks = [r.peak_activation_bytes for r in simulate_plan(math_plan).summary().per_rank]
    # lower on every rank holding an attention core (a V's rank 0 holds the embedding and head)
    assert all(f <= m for f, m in zip(measured, math_peaks, strict=True))
    assert sum(measured) < sum(math_peaks)
