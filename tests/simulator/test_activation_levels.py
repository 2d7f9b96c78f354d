"""The two activation numbers: stored activations (what a schedule holds between passes, what
published formulas count) and the true peak (stored plus the working set of the pass in
progress: recomputed activations and the backward's gradient tensors).

Checked three ways: the gradient tensors each layer kind's rule counts against the arrays the
numpy layers really pass backward; stored activations against Korthikanti et al. 2022 Table 2
(no recompute and full recompute) times the microbatches 1F1B keeps in flight; and the
orderings that must hold on every schedule family."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from simulator.analytic.run_plan import simulate_plan
from simulator.model.parse import parse_model
from simulator.model.stage import Stage
from simulator.model.transformer import footprint as paper
from simulator.run import make_schedule, plan_run

SMALL = "transformer:layers=4,hidden=32,heads=4,seq=16,vocab=40,dtype=float64"
LLAMA = (
    "transformer:layers=2,hidden=32,heads=4,kv_heads=2,seq=16,vocab=40,ffn=48,mlp=swiglu,"
    "norm=rmsnorm,position=rope,dropout=0,tied=0,bias=0,dtype=float64"
)


def _branch(value) -> np.ndarray | None:
    """The array a layer acts on: the branch of a residual stream tuple, or the value."""
    return value[1] if isinstance(value, tuple) else value


def _nbytes(value) -> int:
    array = _branch(value)
    return 0 if array is None or np.ndim(array) == 0 else int(np.asarray(array).nbytes)


@pytest.mark.parametrize("model", [SMALL, LLAMA, SMALL + ",attention=math"])
def test_each_layers_gradient_tensors_are_what_the_numpy_layer_passes_backward(model):
    spec = parse_model(model)
    rows = 3
    layers = Stage(0, spec.build()).layers  # one shared cache, as on a rank
    infos = spec.layers()
    rng = np.random.default_rng(0)
    ids = rng.integers(0, spec.config.vocab, size=(rows, spec.config.seq))
    x = ids
    for layer in layers[:-1]:
        x = layer.forward(0, x)
    layers[-1].forward(0, x, ids)
    grad = None
    for layer, info in zip(reversed(layers), reversed(infos), strict=True):
        produced = layer.backward_input(0) if grad is None else layer.backward_input(0, grad)
        measured = _nbytes(grad) + _nbytes(produced)
        assert info.gradient_bytes(rows, spec.itemsize) == measured, info.name
        grad = produced


def _levels(model: str, schedule: str, ranks: int, microbatches: int, **options):
    schedule_value = make_schedule(schedule, ranks, microbatches)
    plan = plan_run(schedule_value, model, batch_size=microbatches, **options)
    return plan, simulate_plan(plan).summary().per_rank


GPT_MATH = "transformer:layers=8,hidden=64,heads=4,seq=32,vocab=64,dtype=bfloat16,attention=math"


def _blocks_on(plan, stage: int) -> int:
    infos = plan.spec.layers()
    blocks = {infos[i].block for i in plan.partition.stage_layers[stage]}
    return sum(1 for b in blocks if 1 <= b <= plan.spec.config.layers)


def _embedding_bytes(plan, rows: int) -> int:
    infos = plan.spec.layers()
    return sum(
        sum(infos[i].footprint(rows, plan.spec.itemsize).F)
        for i in plan.partition.stage_layers[0]
        if infos[i].block == 0
    )


def test_stored_activations_are_table_2_times_the_microbatches_1f1b_keeps():
    ranks, microbatches = 4, 8
    plan, per_rank = _levels(GPT_MATH, "1f1b", ranks, microbatches)
    c = plan.spec.config
    block = paper.activations_no_parallelism(c.seq, 1, c.hidden, c.heads)
    stage0 = _blocks_on(plan, 0) * block + _embedding_bytes(plan, 1)
    # 1F1B's first rank holds `ranks` microbatches before its first backward
    assert per_rank[0].stored_activation_bytes == ranks * stage0
    assert per_rank[0].true_peak_bytes > per_rank[0].stored_activation_bytes


def test_full_recompute_stores_only_block_inputs_and_the_true_peak_holds_one_rebuilt_block():
    ranks, microbatches = 2, 4
    plan, per_rank = _levels(GPT_MATH, "1f1b", ranks, microbatches, recompute="full")
    c = plan.spec.config
    blocks = _blocks_on(plan, 0)
    kept = blocks * paper.activations_full_recompute(c.seq, 1, c.hidden)
    assert per_rank[0].stored_activation_bytes == ranks * (kept + _embedding_bytes(plan, 1))
    # the cache peak holds one block rebuilt; the true peak adds the gradient tensors
    rebuilt = paper.activations_no_parallelism(c.seq, 1, c.hidden, c.heads)
    r = per_rank[0]
    assert r.peak_activation_bytes - r.stored_activation_bytes == rebuilt - Fraction(
        paper.activations_full_recompute(c.seq, 1, c.hidden)
    )
    assert r.true_peak_bytes > r.peak_activation_bytes


@pytest.mark.parametrize(
    "schedule, chunks",
    [("gpipe", 1), ("1f1b", 1), ("interleaved-1f1b", 2), ("zb-h1", 1), ("zb-v", 2)],
)
@pytest.mark.parametrize("recompute", [None, "selective", "full"])
def test_stored_at_most_cache_peak_at_most_true_peak(schedule, chunks, recompute):
    options = {"recompute": recompute} if recompute else {}
    schedule_value = make_schedule(schedule, 2, 4, chunks=chunks)
    plan = plan_run(schedule_value, GPT_MATH, batch_size=4, **options)
    timeline = simulate_plan(plan)
    for r in timeline.summary().per_rank:
        assert 0 < r.stored_activation_bytes <= r.peak_activation_bytes <= r.true_peak_bytes
        assert r.memory["activations"] == r.true_peak_bytes
        assert r.memory["stored_activations"] == r.stored_activation_bytes
    # a file written without the per-action table reads both numbers as the cache peak
    data = timeline.to_dict()
    del data["meta"]["action_memory"]
    old = type(timeline).from_dict(data)
    for r in old.summary().per_rank:
        assert r.stored_activation_bytes == r.true_peak_bytes == r.peak_activation_bytes


def test_two_numbers_survive_the_json_round_trip():
    plan = plan_run(make_schedule("1f1b", 2, 4), GPT_MATH, batch_size=4)
    timeline = simulate_plan(plan)
    again = type(timeline).from_dict(timeline.to_dict())
    assert again.meta.action_memory == timeline.meta.action_memory
    assert [(r.stored_activation_bytes, r.true_peak_bytes) for r in again.summary().per_rank] == [
        (r.stored_activation_bytes, r.true_peak_bytes) for r in timeline.summary().per_rank
    ]
