"""One block's tensor-parallel collectives (``tensor_comm``) against Megatron-LM's overlap, by
hand: the forward's collectives are exposed; the backward's column-parallel all-reduce runs
under the weight-gradient GEMM (``ColumnParallelLinearWithAsyncAllreduce``), and with sequence
parallelism the input's all-gather runs under the input-gradient GEMM and the reduce-scatter
under the weight-gradient GEMM, while the row-parallel linears' gathers of the gradient are
exposed (``ColumnParallelLinearWithSequenceParallelism``, ``megatron/mpu/layers.py`` at
02bb1f5c)."""

from __future__ import annotations

import pytest

from simulator.analytic.hardware import HARDWARE_PRESETS
from simulator.analytic.roofline_costs import link_of
from simulator.analytic.tensor_comm import block_collectives

MESSAGE = 4 * 2048 * 6144 * 2  # bytes: Korthikanti's 22B, microbatch 4, sequence 2048, bf16
LINK = link_of(HARDWARE_PRESETS["a100-80gb"], 8)


def _half(ranks: int = 8) -> float:
    bandwidth, latency = LINK
    return (ranks - 1) * latency + (ranks - 1) / ranks * MESSAGE / bandwidth


def test_without_sequence_parallelism_the_all_reduce_hides_under_a_long_enough_dw():
    half = _half()
    long_gemms = [(1.0, 1.0), (1.0, 1.0)]  # seconds: far longer than any collective
    hidden = block_collectives(MESSAGE, 8, False, long_gemms, LINK)
    assert hidden.F == pytest.approx(4 * half)  # two all-reduces, exposed
    assert hidden.I == 0.0 and hidden.hidden_I == pytest.approx(4 * half)
    short = block_collectives(MESSAGE, 8, False, [(1.0, half / 2), (1.0, 0.0)], LINK)
    assert short.I == pytest.approx(2 * half - half / 2 + 2 * half)
    assert short.hidden_I == pytest.approx(half / 2)


def test_with_sequence_parallelism_the_backward_moves_three_all_reduces_and_hides_two():
    half = _half()
    exposed = block_collectives(MESSAGE, 8, True, [(0.0, 0.0), (0.0, 0.0)], LINK)
    assert exposed.F == pytest.approx(4 * half)  # two all-gathers, two reduce-scatters
    assert exposed.I == pytest.approx(6 * half)  # and two gathers of the input again
    hidden = block_collectives(MESSAGE, 8, True, [(1.0, 1.0), (1.0, 1.0)], LINK)
    assert hidden.I == pytest.approx(2 * half)  # the row-parallel gathers of dY
    assert hidden.hidden_I == pytest.approx(4 * half)


def test_a_block_without_column_linears_hides_nothing_and_tp_overlap_hides_the_rest():
    half = _half()
    none = block_collectives(MESSAGE, 8, False, [], LINK)
    assert none.I == pytest.approx(4 * half) and none.hidden_I == 0.0
    overlapped = block_collectives(MESSAGE, 8, False, [], LINK, tp_overlap=0.25)
    assert overlapped.F == pytest.approx(0.75 * 4 * half)
    assert overlapped.hidden_F == pytest.approx(0.25 * 4 * half)
    assert overlapped.charged("F", 0.1) == pytest.approx(0.75 * 4 * half + 0.1 * 0.25 * 4 * half)
    assert block_collectives(MESSAGE, 1, True, [], LINK) == block_collectives(0, 8, True, [], LINK)
