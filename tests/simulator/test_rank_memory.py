"""Whole-rank memory besides activations: parameters, gradients, optimizer state, receive
buffers. Checked against ZeRO's published figures and against the parameter count."""

from __future__ import annotations

import pytest

from schedules.registry import build_schedule
from simulator.analytic.rank_memory import bytes_per_parameter, static_memory
from simulator.model import partition
from simulator.model.parse import parse_model
from simulator.model.transformer.presets import parameter_count


def test_mixed_precision_adam_matches_zero_figure_1():
    """Rajbhandari et al. 2020 (ZeRO), Figure 1: a 7.5B-parameter model with mixed-precision
    Adam needs 16 bytes per parameter, 120 GB; with the optimizer state partitioned over
    N_d = 64 data-parallel ranks (P_os), 31.4 GB."""
    psi = 7.5e9
    weights, gradients, state = bytes_per_parameter(2)
    assert psi * (weights + gradients + state) == pytest.approx(120e9)
    assert psi * (weights + gradients + state / 64) == pytest.approx(31.4e9, rel=1e-3)


@pytest.mark.parametrize("name", ["gpt3-1.3b", "llama3-8b"])
def test_ranks_hold_every_parameter_once_plus_a_tied_head(name):
    spec = parse_model(name)
    schedule = build_schedule("1f1b", 4, 8)
    parts = partition(spec, 4)
    memory = static_memory(spec, schedule, parts, 1)
    held = sum(m.parameters for m in memory) // 2  # bf16 weights
    tied_copy = spec.config.vocab * spec.config.hidden if spec.config.tied_embeddings else 0
    assert held == parameter_count(spec.config) + tied_copy
    for m in memory:
        assert m.gradients == m.parameters
        assert m.optimizer_state == 6 * m.parameters  # 12 bytes against 2
    sharded = static_memory(spec, schedule, parts, 1, dp=8, distributed_optimizer=True)
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
