"""One transformer layer of the 22B model against Korthikanti et al. 2022 (arXiv 2205.05198),
Table 4: "Time to complete the forward and backward pass of a single transformer layer of the
22B model" on A100 80 GB, tensor degree 8, microbatch 4, sequence 2,048 (Table 3):

    Experiment                 Forward (ms)  Backward (ms)  Combined (ms)  Overhead
    Baseline no recompute          7.7           11.9           19.6           -
    Sequence Parallelism           7.2           11.8           19.0          -3%
    Baseline with recompute        7.7           19.5           27.2          39%
    Selective Recompute            7.7           13.2           20.9           7%
    Selective + Sequence           7.2           13.1           20.3           4%

Why a check and not a fitted row: Table 4 is not one of the published runs
(``published_runs``) and nothing is fitted on it. It isolates what the end-to-end rows mix
together: the element-wise kernels that run replicated without sequence parallelism (the
reason Table 5's "Full Recompute" rows once came out 15% slow) and the recompute's price.

Ours is one block as ``roofline_costs.stage_seconds`` charges it (its kernels on the roofline
plus its two tensor-parallel all-reduces, or all-gathers and reduce-scatters, a pass), the
backward its input- and weight-backward plus the recompute as the executor prices it
(``recompute_costs``: the recomputed FLOPs' share of the forward). Tolerances are what the
model reaches, stated per column in ``TOLERANCE``; what is left is written next to them.
Before the element-wise kernels were Megatron-LM's fused ones (``roofline._elementwise``) the
rows without sequence parallelism came out 20% slow (forward 9.18 ms against 7.7).
"""

from __future__ import annotations

import dataclasses
import types

import pytest

from schedules.dependencies import PIPELINE_RULE
from simulator.analytic.hardware import HARDWARE_PRESETS
from simulator.analytic.published_runs import PUBLISHED_RUNS
from simulator.analytic.recompute_costs import stage_recompute_shares
from simulator.analytic.roofline_costs import layer_recompute_seconds, stage_seconds

# (experiment, sequence parallel, recompute, forward ms, backward ms, combined ms): Table 4
TABLE_4 = (
    ("Baseline no recompute", False, "none", 7.7, 11.9, 19.6),
    ("Sequence Parallelism", True, "none", 7.2, 11.8, 19.0),
    ("Baseline with recompute", False, "full", 7.7, 19.5, 27.2),
    ("Selective Recompute", False, "selective", 7.7, 13.2, 20.9),
    ("Selective + Sequence", True, "selective", 7.2, 13.1, 20.3),
)

TOLERANCE = {"forward": 0.08, "backward": 0.06, "combined": 0.06}
"""Relative error allowed per column: what the model reaches, rounded up (the issue's 10% is
met on every column). Ours, paper (ms): forward 8.24 / 7.7 without sequence parallelism
(+7.1%), 7.65 / 7.2 with it (+6.2%); backward +3.1% (no recompute), +3.2% (SP), +5.2% (full),
+2.6% (selective), +2.9% (selective + SP); combined +4.6%, +4.4%, +5.7%, +4.2%, +4.1%. The
backward without sequence parallelism was +16% while its input-gradient all-reduce was charged
exposed; Megatron-LM runs it under the weight-gradient GEMM (``tensor_comm``). Selective
recompute was -5% while priced at its FLOPs' share of the forward; it re-runs the memory-bound
softmax and dropout over the s x s scores (``roofline.selective_seconds``), the paper's
+1.3 ms."""


def _layer_ms(sequence_parallel: bool, recompute: str) -> tuple[float, float]:
    """(forward, backward) milliseconds of block 1 of the 22B run (Table 5's layout)."""
    base = {run.id: run for run in PUBLISHED_RUNS}["korthikanti-t5-22b-full"]
    layout = "p1 v1 t8" + (" sp" if sequence_parallel else "") + " d1 z0"
    plan = dataclasses.replace(base, layout=layout, recompute=recompute).plan()
    spec, rows = plan.spec, plan.microbatch_rows
    block = tuple(info.index for info in spec.layers() if info.block == 1)
    one_block = types.SimpleNamespace(stage_layers=(block,))
    preset = HARDWARE_PRESETS["a100-80gb"]
    (cost,), _ = stage_seconds(spec, one_block, rows, preset, plan.layout)
    ratio = 0.0
    if plan.recompute is not None and plan.recompute.active:
        first = dataclasses.replace(plan.recompute, stages=plan.recompute.stages[:1])
        timed = types.SimpleNamespace(recompute_seconds=layer_recompute_seconds(spec, rows, preset))
        (ratio,) = stage_recompute_shares(timed, spec, one_block, first, PIPELINE_RULE)
    return cost.F * 1e3, (cost.I + cost.W + ratio * cost.F) * 1e3


@pytest.fixture(scope="module")
def ours() -> dict[str, tuple[float, float]]:
    return {name: _layer_ms(sp, recompute) for name, sp, recompute, *_ in TABLE_4}


@pytest.mark.parametrize("row", TABLE_4, ids=[row[0] for row in TABLE_4])
def test_each_row_is_within_the_stated_tolerance(row, ours):
    name, _, _, forward, backward, combined = row
    f, b = ours[name]
    for column, paper, value in (
        ("forward", forward, f),
        ("backward", backward, b),
        ("combined", combined, f + b),
    ):
        assert abs(value / paper - 1) <= TOLERANCE[column], (name, column, value, paper)


def test_the_orderings_the_paper_reports(ours):
    combined = {name: sum(times) for name, times in ours.items()}
    baseline = combined["Baseline no recompute"]
    # sequence parallelism saves time: the forward (7.7 -> 7.2 ms) and the layer
    assert ours["Sequence Parallelism"][0] < ours["Baseline no recompute"][0]
    assert combined["Sequence Parallelism"] < baseline
    assert combined["Selective + Sequence"] < combined["Selective Recompute"]
    # selective recompute costs a few percent (7% and 4% in the paper), full recompute ~39%
    assert 0 < combined["Selective Recompute"] / baseline - 1 < 0.10
    assert 0.30 < combined["Baseline with recompute"] / baseline - 1 < 0.45
    # recompute leaves the forward alone
    assert ours["Baseline with recompute"][0] == pytest.approx(ours["Baseline no recompute"][0])
