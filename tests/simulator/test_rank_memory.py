"""Whole-rank memory besides activations: parameters, gradients, optimizer state, receive
buffers. Checked against ZeRO's published figures and against the parameter count."""

from __future__ import annotations

import pytest

from schedules.registry import build_schedule
from simulator.analytic.run_plan import simulate_plan
from simulator.model import partition
from simulator.model.layout import Layout
from simulator.model.parse import parse_model
from simulator.model.precision import PRECISIONS
from simulator.model.transformer.presets import parameter_count
from simulator.run import CostSource, make_schedule, plan_run
from simulator.run.rank_memory import static_memory


def test_mixed_precision_adam_matches_zero_figure_1():
    """Rajbhandari et al. 2020 (ZeRO), Figure 1: a 7.5B-parameter model with mixed-precision
    Adam needs 16 bytes per parameter, 120 GB; with the optimizer state partitioned over
    N_d = 64 data-parallel ranks (P_os), 31.4 GB. ZeRO's recipe keeps bf16 gradients."""
    psi = 7.5e9
    zero = PRECISIONS["bf16-grads"]
    weights, gradients, state = zero.weights, zero.gradients, zero.optimizer_state
    assert psi * (weights + gradients + state) == pytest.approx(120e9)
    assert psi * (weights + gradients + state / 64) == pytest.approx(31.4e9, rel=1e-3)


@pytest.mark.parametrize("name", ["gpt3-1.3b", "llama3-8b"])
def test_ranks_hold_every_parameter_once_plus_a_tied_head(name):
    spec = parse_model(name)
    schedule = build_schedule("1f1b", 4, 8)
    parts = partition(spec, 4)
    memory = static_memory(spec, schedule, parts, 1)
    recipe = spec.recipe  # the 2-byte default
    held = sum(m.parameters for m in memory) // recipe.weights
    tied_copy = spec.config.vocab * spec.config.hidden if spec.config.tied_embeddings else 0
    assert held == parameter_count(spec.config) + tied_copy
    for m in memory:
        params = m.parameters // recipe.weights
        assert m.parameters == params * recipe.weights
        assert m.gradients == params * recipe.gradients
        assert m.optimizer_state == params * recipe.optimizer_state
    sharded = static_memory(spec, schedule, parts, 1, Layout(data=8, sharding=1))
    for full, zero in zip(memory, sharded, strict=True):
        assert zero.optimizer_state == -(-full.optimizer_state // 8)


def test_receive_buffers_hold_one_activation_and_one_gradient_per_remote_neighbour():
    spec = parse_model("transformer:layers=8,hidden=64,heads=4,seq=32,vocab=96,dtype=float32")
    schedule = build_schedule("1f1b", 4, 8)
    memory = static_memory(spec, schedule, partition(spec, 4), 2)
    boundary = 2 * 32 * 64 * 4  # b * s * h * itemsize
    assert [m.receive_buffers for m in memory] == [boundary, 2 * boundary, 2 * boundary, boundary]
    v_schedule = build_schedule("zb-v", 4, 8)  # the V turn stays on the last rank
    v_memory = static_memory(spec, v_schedule, partition(spec, 8), 2)
    assert v_memory[3].receive_buffers == 2 * boundary  # from rank 2 twice; its turn is local


def _simulated(schedule_name, ranks, m, model, hardware, **kwargs):
    schedule = make_schedule(schedule_name, ranks, m)
    return simulate_plan(plan_run(schedule, model, costs=CostSource(hardware=hardware), **kwargs))


def test_mfu_on_one_rank_is_the_presets_efficiency():
    """One rank, no transfers, no tensor parallelism, math attention: every second is compute
    at peak x efficiency, so model FLOPs utilisation is exactly the efficiency."""
    model = "gpt3-1.3b,layers=2,attention=math"
    timeline = _simulated("gpipe", 1, 2, model, "h100,efficiency=0.37")
    throughput = timeline.throughput()
    assert throughput["mfu"] == pytest.approx(0.37, rel=1e-12)
    tokens = 2 * 2048  # two microbatches of one sequence of 2048 tokens
    assert throughput["tokens_per_second"] == pytest.approx(tokens / throughput["step_time"])


def test_mfu_counts_the_model_flops_not_what_a_fused_attention_executes():
    """Under flash the kernel computes only the causal tiles of the scores and its backward
    rebuilds them: the step runs other FLOPs than the math core's (fewer at 2,048 tokens: the
    skipped half outweighs the rebuild), while MFU counts the model's FLOPs, the math core's
    whole square (PaLM's convention), so it is the efficiency times model over executed."""
    math = _simulated("gpipe", 1, 2, "gpt3-1.3b,layers=2,attention=math", "h100,efficiency=0.37")
    flash = _simulated("gpipe", 1, 2, "gpt3-1.3b,layers=2", "h100,efficiency=0.37")
    assert flash.meta.flops_per_step == math.meta.flops_per_step
    executed = flash.throughput()["step_time"] / math.throughput()["step_time"]
    assert executed < 1
    assert flash.throughput()["mfu"] == pytest.approx(0.37 / executed, rel=1e-12)


def test_whole_rank_memory_fits_or_not_against_the_device():
    roomy = _simulated("1f1b", 4, 8, "llama3-8b,layers=8,tp=1", "h100")
    tight = _simulated("1f1b", 4, 8, "llama3-8b,layers=8,tp=1", "h100,memory=4GiB")
    for timeline, fits in ((roomy, True), (tight, False)):
        per_rank = timeline.summary().per_rank
        for r in per_rank:
            m = r.memory
            assert m["activations"] == r.true_peak_bytes >= r.peak_activation_bytes
            assert m["stored_activations"] == r.stored_activation_bytes
            assert m["total"] == sum(
                m[k]
                for k in (
                    "parameters",
                    "gradients",
                    "optimizer_state",
                    "activations",
                    "receive_buffers",
                )
            )
            assert m["fits"] is fits
    # 1F1B: the first rank holds p microbatches in flight, the last one (the partition
    # balances FLOPs, not bytes, so activations per rank also follow how many blocks it holds)
    assert [r.peak_inflight_microbatches for r in roomy.summary().per_rank] == [4, 3, 2, 1]
