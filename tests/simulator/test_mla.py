"""Multi-head latent attention: gradients against central differences in float64 (with and
without a query rank, norm gains away from 1), the forward against DeepSeek-V2's equations
written out head by head, the rules by hand at DeepSeek-V3's size, the preset's parameter
counts against the published ones, its Hugging Face config, and the refusals.

Whole-model gradchecks, split-equals-full backward and every layer's cache bytes against its
footprint run on a DeepSeek-shaped toy in ``test_transformer_layers.py`` (its ``mla`` config).

Sources: DeepSeek-AI, "DeepSeek-V2" (arXiv 2405.04434), section 2.1.2-2.1.3, equations 9-19;
"DeepSeek-V3 Technical Report" (arXiv 2412.19437): section 1, "671B total parameters with 37B
activated for each token", section 4.2 the hyper-parameters; deepseek-ai/DeepSeek-V3
config.json (``tests/simulator/hf_configs/deepseek-v3.json``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from simulator.analytic.costs import unit_costs
from simulator.analytic.executor import simulate
from simulator.errors import PebbleError
from simulator.model import partition
from simulator.model.cache import ActivationCache
from simulator.model.layout import Layout
from simulator.model.optim import OptimizerConfig
from simulator.model.parse import parse_model
from simulator.model.reference import TrainConfig, train_reference
from simulator.model.transformer import TransformerConfig, transformer_layer_infos
from simulator.model.transformer.attention import rope_tables, rotate
from simulator.model.transformer.hf_config import read_hf_config
from simulator.model.transformer.presets import (
    active_parameter_count,
    latent_attention_parameters,
    model_preset,
    parameter_count,
)
from simulator.model.transformer.spec import TransformerSpec
from simulator.ray_pipeline.executor import RayOptions, RayPipeline
from simulator.run import plan_training
from tests.simulator.test_gradcheck import numeric_grad, rel_error
from tests.simulator.test_ray_executor import max_rel, schedule_named

HF_CONFIGS = Path(__file__).parent / "hf_configs"
TOLERANCE = 1e-6
TOY = TransformerConfig(
    layers=1,
    hidden=8,
    heads=2,
    seq=5,
    vocab=7,
    mlp="swiglu",
    norm="rmsnorm",
    position="rope",
    dropout=0.0,
    tied_embeddings=False,
    bias=False,
    q_lora_rank=6,
    kv_lora_rank=4,
    qk_nope_head_dim=3,
    qk_rope_head_dim=2,
    v_head_dim=5,
)
VARIANTS = {"q-rank": TOY, "no-q-rank": replace(TOY, q_lora_rank=None)}


def built(config: TransformerConfig, kind: str):
    info = next(i for i in transformer_layer_infos(config) if i.kind == kind)
    layer = info.build("float64", seed=3)
    rng = np.random.default_rng(5)
    for key in ("gq", "gkv"):  # gains away from 1, where a wrong gain gradient could hide
        if key in layer.params:
            layer.params[key][:] = rng.uniform(0.5, 1.5, layer.params[key].shape)
    return layer


def objective_of(layer, x, g):
    def objective() -> float:
        saved, layer.cache = layer.cache, ActivationCache()
        try:
            return float(np.sum(g * layer.forward(0, x)))
        finally:
            layer.cache = saved

    return objective


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("kind", ["mla_qkv", "mla_attention"])
def test_gradients_match_central_differences(name, kind):
    layer = built(VARIANTS[name], kind)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, layer.in_features))
    g = rng.standard_normal((2, 5, layer.out_features))
    objective = objective_of(layer, x, g)
    for split in (False, True):
        layer.forward(0, x)
        layer.zero_grad()
        if split:
            grad_in = layer.backward_input(0, g)
            layer.backward_weight(0)
        else:
            grad_in = layer.backward(0, g)
        assert len(layer.cache) == 0
        assert rel_error(grad_in, numeric_grad(objective, x)) < TOLERANCE
        assert set(layer.grads) == set(layer.params)
        for key, param in layer.params.items():
            err = rel_error(layer.grads[key], numeric_grad(objective, param))
            assert err < TOLERANCE, f"{name} {kind} gradient of {key}: {err:.2e}"


def rms(x, gain):
    return gain * x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + 1e-6)


def test_forward_is_deepseek_v2s_equations_head_by_head():
    """Eq. 9-19 of DeepSeek-V2 for one token t and head i, written as plainly as possible: the
    compressed kv, its norm and up-projection; the decoupled rotary key shared by the heads;
    the causal softmax with scale 1 / sqrt(d_nope + d_rope); values v_head_dim wide."""
    cfg = TOY
    projection, core = built(cfg, "mla_qkv"), built(cfg, "mla_attention")
    p = projection.params
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, cfg.seq, cfg.hidden))
    out = core.forward(0, projection.forward(0, x))[0]
    nope, rope, dv, rkv = 3, 2, 5, 4
    cos, sin = rope_tables(cfg.seq, rope, np.float64)
    h = x[0]
    q_all = rms(h @ p["Wdq"], p["gq"]) @ p["Wuq"]
    compressed = h @ p["Wdkv"]
    kv_all = rms(compressed[:, :rkv], p["gkv"]) @ p["Wukv"]
    k_rope = rotate(compressed[:, rkv:], cos, sin)  # one key for every head
    for i in range(cfg.heads):
        q = q_all[:, i * (nope + rope) : (i + 1) * (nope + rope)]
        q = np.concatenate([q[:, :nope], rotate(q[:, nope:], cos, sin)], axis=1)
        kv = kv_all[:, i * (nope + dv) : (i + 1) * (nope + dv)]
        k = np.concatenate([kv[:, :nope], k_rope], axis=1)
        v = kv[:, nope:]
        for t in range(cfg.seq):
            scores = q[t] @ k[: t + 1].T / np.sqrt(nope + rope)
            weights = np.exp(scores - scores.max())
            expected = (weights / weights.sum()) @ v[: t + 1]
            np.testing.assert_allclose(out[t, i * dv : (i + 1) * dv], expected, rtol=1e-12)


# ---------------------------------------------------------------- DeepSeek-V3's size, by hand
V3 = model_preset("deepseek-v3")
H, A, RQ, RKV, NOPE, ROPE, DV = 7168, 128, 1536, 512, 128, 64, 128


def test_deepseek_v3_attention_parameters_by_hand():
    by_hand = (
        H * RQ
        + RQ
        + RQ * A * (NOPE + ROPE)  # W^DQ, the query norm, W^UQ and W^QR together
        + H * (RKV + ROPE)
        + RKV
        + RKV * A * (NOPE + DV)  # W^DKV with W^KR, the norm, W^UK, W^UV
        + A * DV * H  # W^O
    )
    assert by_hand == latent_attention_parameters(V3) == 187_107_328
    block = [i for i in transformer_layer_infos(V3) if i.block == 1]
    kinds = ("mla_qkv", "mla_attention", "attn_out")
    assert sum(i.param_count() for i in block if i.kind in kinds) == by_hand
    # tensor parallel over 8: the compressions are replicated, the heads split
    t8 = by_hand - (RQ * A * (NOPE + ROPE) + RKV * A * (NOPE + DV) + A * DV * H) * 7 // 8
    assert sum(i.param_count(tp=8) for i in block if i.kind in kinds) == t8


def test_deepseek_v3_is_671b_total_and_37b_active():
    """Section 1 of the report: "671B total parameters with 37B activated for each token"
    (the multi-token prediction module outside both). The exact count is the one the MoE
    preset's hand count gave; the published figures are it cut to whole billions."""
    total, active = parameter_count(V3), active_parameter_count(V3)
    dense_block = 2 * H + 187_107_328 + 3 * H * 18432
    expert = 3 * H * 2048
    moe_block = 2 * H + 187_107_328 + H * 256 + 257 * expert
    ends = 2 * 129280 * H + H  # embedding, untied head, final norm
    assert total == 3 * dense_block + 58 * moe_block + ends == 671_026_404_352
    active_block = moe_block - 248 * expert  # 8 routed + 1 shared of 257
    assert active == 3 * dense_block + 58 * active_block + ends == 37_552_282_624
    assert (total // 10**9, active // 10**9) == (671, 37)


def test_deepseek_v3_core_caches_and_computes_by_hand():
    s, b = V3.seq, 1
    core = next(i for i in transformer_layer_infos(V3) if i.kind == "mla_attention")
    fp = core.footprint(b, 2)
    qk_bytes = 2 * s * A * (NOPE + ROPE)
    assert fp.F == (qk_bytes, qk_bytes, 2 * s * A * DV, 2 * s * A * DV, 4 * s * A)
    assert sum(fp.F) + sum(fp.B) == 0 and fp.W == ()
    flops = core.flops()
    pairs = 2.0 * s * s * A * (0.5 + 0.5 * 128 / s)  # the causal tiles of 128 rows
    assert flops.F == pytest.approx(pairs * (192 + 128), rel=1e-12)
    # scores rebuilt, then dV, dP, dQ, dK
    assert flops.I == pytest.approx(pairs * (3 * 192 + 2 * 128), rel=1e-12)
    math_core = replace(core, config=replace(V3, attention="math")).flops()
    assert math_core.F == 2.0 * s * s * A * (192 + 128)  # the whole square, as MFU counts it
    assert math_core.I == 2 * math_core.F


def test_deepseek_v3_projection_caches_and_computes_by_hand():
    s = V3.seq
    projection = next(i for i in transformer_layer_infos(V3) if i.kind == "mla_qkv")
    forward = (H, RQ, RQ, RKV, RKV)  # input, cq, its norm, ckv, its norm
    assert projection.footprint(1, 2).F == tuple(2 * s * n for n in forward)
    grads = (A * 192, RQ, RQ, A * (NOPE + DV), RKV, RKV + ROPE)
    assert projection.footprint(1, 2).I == tuple(2 * s * n for n in grads)
    gemms = H * RQ + RQ * A * 192 + H * (RKV + ROPE) + RKV * A * (NOPE + DV)
    assert projection.flops().F == projection.flops().W == 2.0 * s * gemms
    # sequence parallel shards the input only; the compressed tensors are counted whole
    with_sp = projection.footprint(1, 2, tp=8, sp=True).F
    assert with_sp == (2 * s * H // 8, *(2 * s * n for n in forward[1:]))


def test_the_output_projection_holds_the_values_width():
    out = next(i for i in transformer_layer_infos(V3) if i.kind == "attn_out")
    assert (out.in_features, out.out_features) == (A * DV, H)
    assert out.param_count() == A * DV * H
    assert out.gradient_bytes(1, 2) == 2 * V3.seq * (H + A * DV)


# ---------------------------------------------------------------- Hugging Face, refusals
def test_the_hugging_face_config_reads_as_the_preset():
    model = read_hf_config(str(HF_CONFIGS / "deepseek-v3.json"))
    assert parameter_count(model.config) == 671_026_404_352
    assert active_parameter_count(model.config) == 37_552_282_624
    # the file's context, its auxiliary coefficient (the report's 0.0001 is the preset's) and
    # kv heads written out are the only differences
    same = replace(model.config, seq=V3.seq, moe_aux_coef=V3.moe_aux_coef, kv_heads=None)
    assert same == V3
    said = " ".join(model.differences)
    assert "sigmoid" in said and "multi-token prediction" in said


def test_a_config_without_a_query_rank_projects_queries_directly(tmp_path):
    raw = (
        (HF_CONFIGS / "deepseek-v3.json")
        .read_text()
        .replace('"q_lora_rank": 1536', '"q_lora_rank": null')
    )
    path = tmp_path / "config.json"
    path.write_text(raw)
    config = read_hf_config(str(path)).config
    assert config.q_lora_rank is None
    assert latent_attention_parameters(config) == (
        H * A * (NOPE + ROPE) + H * (RKV + ROPE) + RKV + RKV * A * (NOPE + DV) + A * DV * H
    )


def test_the_spec_text_round_trips():
    spec = parse_model("deepseek-v3,dtype=bfloat16,tp=8")
    assert parse_model(spec.to_text()) == spec
    assert "kv_lora_rank=512" in spec.to_text()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (dict(kv_lora_rank=None), "q_lora_rank needs kv_lora_rank"),
        (dict(v_head_dim=None), "needs transformer v_head_dim"),
        (dict(qk_rope_head_dim=3), "qk_rope_head_dim must be even"),
        (dict(kv_lora_rank=0), "kv_lora_rank must be a positive integer"),
        (dict(dropout=0.1), "no dropout"),
        (dict(position="learned"), "rotary positions"),
        (dict(bias=True), "no biases"),
        (dict(kv_heads=1), "no kv_heads of its own"),
    ],
)
def test_what_latent_attention_cannot_be_is_one_sentence(change, says):
    with pytest.raises(PebbleError, match=says):
        replace(TOY, **change)


def test_context_parallelism_is_refused_for_latent_attention():
    with pytest.raises(PebbleError, match="context parallelism .* latent attention"):
        TransformerSpec(replace(TOY, seq=8), layout=Layout(context=2))
    assert TransformerSpec(replace(TOY, seq=8)).layout.context == 1  # c1 counts


# ---------------------------------------------------------------- trained for real on Ray
TINY_DEEPSEEK = (
    "transformer:layers=3,hidden=32,heads=4,seq=16,vocab=96,mlp=swiglu,norm=rmsnorm,"
    "position=rope,dropout=0,tied=0,bias=0,dtype=float64,seed=3,q_lora_rank=12,kv_lora_rank=8,"
    "qk_nope_head_dim=6,qk_rope_head_dim=4,v_head_dim=10,experts=4,top_k=2,expert_ffn=24,"
    "shared_experts=1,dense_layers=1,moe_aux_coef=0.05"
)


@pytest.mark.parametrize("name", ["1f1b", "zb-h1"])
def test_tiny_deepseek_on_ray_equals_the_sequential_reference(ray_session, name):
    """A DeepSeek-shaped toy (latent attention, a dense first block, experts after) trained
    on Ray: gradients, weights and losses equal the sequential reference's, the loss falls,
    and every rank's measured peak cache bytes equal the analytic prediction."""
    schedule = schedule_named(name)
    steps = 3
    config = TrainConfig(
        model=parse_model(TINY_DEEPSEEK),
        batch_size=2 * schedule.num_microbatches,
        microbatches=schedule.num_microbatches,
        steps=steps,
        optimizer=OptimizerConfig("adam", lr=3e-3),
    )
    with RayPipeline(
        plan_training(schedule, config, layout=Layout()), config, RayOptions(calibrate=False)
    ) as pipeline:
        result = pipeline.run(steps, check=True)
        rows = pipeline.microbatch_rows
    reference = train_reference(config)
    assert max_rel(result.first_step_gradients, train_reference(config, steps=1).gradients) <= 1e-9
    assert max_rel(result.weights, reference.weights()) <= 1e-9
    assert any(key[1] == "Wukv" for key in result.weights)
    assert result.losses == pytest.approx(reference.losses, rel=1e-9)
    assert result.losses[-1] < 0.9 * result.losses[0]
    spec = config.model
    parts = partition(spec, schedule.num_stages)
    predicted = simulate(schedule, unit_costs(schedule, parts), spec, parts, rows, layout=Layout())
    assert [r.peak_activation_bytes for r in result.timeline.summary().per_rank] == [
        r.peak_activation_bytes for r in predicted.summary().per_rank
    ]
