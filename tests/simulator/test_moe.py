"""The mixture-of-experts layer: gradients (with the load-balancing loss) against central
differences in float64, its forward against a token-by-token mixture, capacity and dropped
tokens, the split backward, and a tiny MoE GPT trained on Ray equal to the sequential reference.

The whole-model gradchecks, the cache bytes of every phase and the block list run on a MoE
model too, in ``test_transformer_layers.py`` (its ``moe`` config)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from simulator.analytic.costs import unit_costs
from simulator.analytic.executor import simulate
from simulator.model import partition
from simulator.model.cache import ActivationCache
from simulator.model.optim import OptimizerConfig
from simulator.model.parse import parse_model
from simulator.model.reference import TrainConfig, set_loss_scale, train_reference
from simulator.model.transformer import TransformerConfig, transformer_layer_infos
from simulator.model.transformer.moe import MixtureOfExperts
from simulator.model.transformer.moe_rules import capacity
from simulator.ray_pipeline.executor import RayOptions, RayPipeline
from simulator.run import Layout, plan_training
from tests.simulator.test_gradcheck import numeric_grad, rel_error
from tests.simulator.test_ray_executor import max_rel, schedule_named

TOLERANCE = 1e-6
BASE = TransformerConfig(
    layers=2, hidden=8, heads=2, seq=5, vocab=7, experts=4, expert_ffn=6, moe_aux_coef=0.3
)
VARIANTS = {
    "dropless-gelu-bias": BASE,
    "capacity-drops": replace(BASE, capacity_factor=0.5),
    "swiglu-shared-no-bias": replace(BASE, mlp="swiglu", bias=False, shared_experts=1),
    "top1-no-renormalise-shared-capacity": replace(
        BASE, top_k=1, norm_topk=False, capacity_factor=1.0, shared_experts=2
    ),
    "top3-no-aux": replace(BASE, top_k=3, moe_aux_coef=0.0),
}


def moe_layer(config: TransformerConfig, seed: int = 3) -> MixtureOfExperts:
    info = next(i for i in transformer_layer_infos(config) if i.kind == "moe")
    layer = info.build("float64", seed)
    rng = np.random.default_rng(seed)
    for key, param in layer.params.items():
        if key in ("b1", "b2", "c1", "c2"):  # zero biases would hide a wrong bias gradient
            param[:] = 0.3 * rng.standard_normal(param.shape)
    return layer  # type: ignore[return-value]


def loss_of(layer: MixtureOfExperts, x, g) -> float:
    """``sum(g * y)`` plus the layer's load-balancing loss, in a throwaway cache."""
    saved = layer.cache
    layer.cache = ActivationCache()
    try:
        return float(np.sum(g * layer.forward(0, x))) + layer.aux_loss
    finally:
        layer.cache = saved


@pytest.mark.parametrize("name", list(VARIANTS))
def test_gradients_with_the_aux_loss_match_central_differences(name):
    layer = moe_layer(VARIANTS[name])
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 8))
    g = rng.standard_normal(x.shape)
    layer.forward(0, x)
    layer.zero_grad()
    grad_in = layer.backward(0, g)
    assert len(layer.cache) == 0
    objective = lambda: loss_of(layer, x, g)  # noqa: E731
    assert rel_error(grad_in, numeric_grad(objective, x)) < TOLERANCE
    assert set(layer.grads) == set(layer.params)
    for key, param in layer.params.items():
        err = rel_error(layer.grads[key], numeric_grad(objective, param))
        assert err < TOLERANCE, f"{name} gradient of {key}: {err:.2e}"


def test_the_aux_loss_reaches_the_router_gradient():
    """Without the loss the router's gradient is different: the gradcheck above sees it."""
    rng = np.random.default_rng(2)
    x, g = rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 5, 8))
    grads = []
    for coef in (0.0, 0.3):
        layer = moe_layer(replace(BASE, moe_aux_coef=coef))
        layer.forward(0, x)
        layer.backward(0, g)
        grads.append(layer.grads["router"].copy())
        assert (layer.aux_loss > 0) == (coef > 0)
    assert rel_error(grads[0], grads[1]) > 1e-3


def test_a_balanced_router_adds_exactly_the_coefficient():
    """Switch's loss ``coef * E * sum_e f_e P_e`` is ``coef`` when every P_e is 1/E (a zero
    router), whatever f; weighted by the microbatch's share of the batch."""
    layer = moe_layer(replace(BASE, moe_aux_coef=0.25))
    layer.params["router"][:] = 0.0
    x = np.random.default_rng(3).standard_normal((2, 5, 8))
    set_loss_scale([layer], 8)  # a batch of 8 sequences, this microbatch holds 2
    layer.forward(0, x)
    assert layer.aux_loss == pytest.approx(0.25 * 2 / 8, rel=1e-12)


@pytest.mark.parametrize("norm_topk", [True, False])
def test_dropless_forward_is_the_gated_sum_of_each_tokens_top_k_experts(norm_topk):
    """Token by token, with the experts as plain MLPs: the softmax over all experts, the k
    largest, renormalised (Mixtral) or not (Switch), plus the shared expert."""
    config = replace(BASE, top_k=2, norm_topk=norm_topk, shared_experts=1)
    layer = moe_layer(config)
    p = layer.params
    x = np.random.default_rng(4).standard_normal((2, 5, 8))
    y = layer.forward(0, x)

    def gelu(z):
        return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))

    for b in range(2):
        for s in range(5):
            token = x[b, s]
            logits = token @ p["router"]
            probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
            top = np.argsort(-probs)[:2]
            gates = probs[top] / probs[top].sum() if norm_topk else probs[top]
            expected = gelu(token @ p["S1"] + p["c1"]) @ p["S2"] + p["c2"]
            for gate, e in zip(gates, top, strict=True):
                hidden = gelu(token @ p["W1"][e] + p["b1"][e])
                expected = expected + gate * (hidden @ p["W2"][e] + p["b2"][e])
            assert np.allclose(y[b, s], expected, rtol=1e-12, atol=1e-12)


def test_a_capacity_keeps_first_choices_first_and_drops_the_rest():
    """cf 0.5: C = ceil(0.5 * 10 * 2 / 4) = 3 rows per expert, 20 assignments for 12 rows; a
    dropped assignment contributes nothing, and no expert holds more than C."""
    config = replace(BASE, capacity_factor=0.5, moe_aux_coef=0.0)
    layer = moe_layer(config)
    assert capacity(10, config) == 3
    x = np.random.default_rng(5).standard_normal((2, 5, 8))
    layer.forward(0, x)
    route = layer.cache.peek(layer.layer_index, 0, "route")
    selected = layer.cache.peek(layer.layer_index, 0, "selected")
    assert route.shape == (4 * 3,)
    kept = route[route >= 0]
    assert kept.size < selected.size  # tokens were dropped
    experts = selected.reshape(-1)[kept]
    assert np.array_equal(experts, np.repeat(np.arange(4), 3)[route >= 0])
    for e in range(4):
        chose = np.flatnonzero(selected.reshape(-1) == e)
        first = chose[chose % 2 == 0]  # first choices (slot 0) of expert e, in token order
        held = kept[experts == e]
        assert list(held[: min(first.size, 3)]) == list(first[:3])


def test_split_backward_equals_full_backward_bit_for_bit():
    config = VARIANTS["top1-no-renormalise-shared-capacity"]
    rng = np.random.default_rng(6)
    xs = [rng.standard_normal((2, 5, 8)) for _ in range(2)]
    gs = [rng.standard_normal((2, 5, 8)) for _ in range(2)]
    runs = []
    for split in (True, False):
        layer = moe_layer(config)
        grads_in = []
        for mb in range(2):
            layer.forward(mb, xs[mb])
        for mb in (1, 0):  # backwards in the other order, as a pipeline may
            if split:
                grads_in.append(layer.backward_input(mb, gs[mb]))
                layer.backward_weight(mb)
            else:
                grads_in.append(layer.backward(mb, gs[mb]))
        assert len(layer.cache) == 0
        runs.append((grads_in, {k: g.copy() for k, g in layer.grads.items()}))
    (split_in, split_grads), (full_in, full_grads) = runs
    assert all(np.array_equal(a, b) for a, b in zip(split_in, full_in, strict=True))
    assert all(np.array_equal(split_grads[k], full_grads[k]) for k in full_grads)


def test_the_block_list_routes_after_the_dense_layers():
    config = replace(BASE, layers=4, dense_layers=2)
    kinds = {}
    for info in transformer_layer_infos(config):
        kinds.setdefault(info.block, []).append(info.kind)
    assert [("moe" in kinds[b], "mlp_up" in kinds[b]) for b in range(1, 5)] == [
        (False, True),
        (False, True),
        (True, False),
        (True, False),
    ]


# ---------------------------------------------------------------- trained for real on Ray

TINY_MOE = (
    "transformer:layers=2,hidden=32,heads=4,seq=16,vocab=96,dropout=0.1,seed=3,dtype=float64,experts=4,"
    "top_k=2,expert_ffn=24,shared_experts=1,capacity_factor=1.25,moe_aux_coef=0.05"
)


@pytest.mark.parametrize("name", ["1f1b", "zb-h1", "interleaved-1f1b"])
def test_tiny_moe_gpt_on_ray_equals_the_sequential_reference(ray_session, name):
    """Gradients, weights and losses equal the sequential reference's (the router's capacity
    and balance loss see the same microbatches), the loss falls, and every rank's measured
    peak cache bytes equal the analytic prediction from the MoE footprint."""
    schedule = schedule_named(name)
    steps = 3
    config = TrainConfig(
        model=parse_model(TINY_MOE),
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
    assert any(key[1] == "router" for key in result.weights)
    assert result.losses == pytest.approx(reference.losses, rel=1e-9)
    assert result.losses[-1] < 0.9 * result.losses[0]
    spec = config.model
    parts = partition(spec, schedule.num_stages)
    predicted = simulate(schedule, unit_costs(schedule, parts), spec, parts, rows, layout=Layout())
    assert [r.peak_activation_bytes for r in result.timeline.summary().per_rank] == [
        r.peak_activation_bytes for r in predicted.summary().per_rank
    ]
