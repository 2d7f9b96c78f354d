"""A transformer runs through the same spec interface as the MLP: text form, partition, both
memory rules and the analytic executor; at GPT scale the peaks follow Korthikanti Table 2."""

from __future__ import annotations

import pytest

from schedules.registry import build_schedule
from simulator.analytic.costs import unit_costs
from simulator.analytic.executor import simulate
from simulator.errors import PebbleError
from simulator.model import partition
from simulator.model.parse import parse_model
from simulator.model.transformer.footprint import korthikanti_table2
from simulator.model.transformer.spec import TransformerSpec

TINY = "transformer:layers=4,hidden=64,heads=4,seq=32,vocab=96,mlp=gelu"


def test_text_form_round_trips_and_rejects_mistakes():
    spec = parse_model(TINY)
    assert isinstance(spec, TransformerSpec)
    assert parse_model(spec.to_text()) == spec
    for bad in (
        "transformer:layers=4,hidden=64,heads=4,seq=32",  # no vocab
        TINY + ",layers=5",  # twice
        TINY + ",colour=red",
        TINY + ",dropout=nan",
        TINY + ",tp=3",  # does not divide the heads
        TINY + ",tied=maybe",
    ):
        with pytest.raises(PebbleError):
            parse_model(bad)


@pytest.mark.parametrize("stages", [1, 2, 3, 6])
def test_partition_cuts_only_between_blocks(stages):
    spec = parse_model(TINY)
    infos = spec.layers()
    for layers in partition(spec, stages).stage_layers:
        first, last = infos[layers[0]], infos[layers[-1]]
        assert first.index == 0 or infos[first.index - 1].block != first.block
        assert last.index == len(infos) - 1 or infos[last.index + 1].block != last.block
    with pytest.raises(PebbleError, match="blocks but the schedule needs 7 stages"):
        partition(spec, 7)


@pytest.mark.parametrize(("t", "sp"), [(1, False), (8, False), (8, True)])
def test_analytic_peak_of_a_gpt_stage_is_korthikanti_times_in_flight(t, sp):
    """GPT-3-shaped blocks (h 12288, a 96, s 2048), bf16, no embedding or head on the stage
    measured: rank 1 of 1F1B on 4 ranks holds p - 1 = 3 microbatches of its blocks. The math
    attention core, the one Table 2 counts."""
    text = (
        "transformer:layers=8,hidden=12288,heads=96,seq=2048,vocab=64,dtype=bfloat16,"
        f"attention=math,tp={t},sp={int(sp)}"
    )
    spec = parse_model(text)
    schedule = build_schedule("1f1b", 4, 8)
    parts = partition(spec, 4)
    infos = spec.layers()
    blocks_on_rank_1 = {infos[i].block for i in parts.stage_layers[1]}
    assert all(1 <= b <= 8 for b in blocks_on_rank_1)  # only transformer blocks there
    timeline = simulate(schedule, unit_costs(schedule, parts), spec, parts, 1)
    per_block = korthikanti_table2(s=2048, b=1, h=12288, a=96, t=t, sp=sp)
    expected = 3 * len(blocks_on_rank_1) * per_block
    assert timeline.summary().per_rank[1].peak_activation_bytes == expected


def test_tensor_parallel_collectives_are_costed_as_rings_on_the_intra_node_link():
    """Per block and pass: two all-reduces of s*b*h activations, each 2(t-1)/t of the message
    per rank (Shoeybi et al. 2019); W moves nothing."""
    from simulator.analytic.costs import Hardware, flop_costs

    text = "transformer:layers=4,hidden=1024,heads=16,seq=512,vocab=64,dtype=bfloat16"
    hardware = Hardware(flops_per_second=1e14, tp_bandwidth=300e9)
    plain, sharded = parse_model(text), parse_model(text + ",tp=4")
    parts = partition(plain, 2)
    base = flop_costs(plain, parts, 2, hardware).stage_costs
    tp = flop_costs(sharded, partition(sharded, 2), 2, hardware).stage_costs
    message = 2 * 512 * 1024 * 2
    per_block = 2 * (2 * 3 / 4 * message / 300e9)
    blocks = [
        len({i.block for i in (sharded.layers()[j] for j in r) if 1 <= i.block <= 4})
        for r in partition(sharded, 2).stage_layers
    ]
    for b, t4, n in zip(base, tp, blocks, strict=True):
        assert t4.F == pytest.approx(b.F / 4 + n * per_block, rel=1e-9)
        assert t4.I == pytest.approx(b.I / 4 + n * per_block, rel=1e-9)
        assert t4.W == pytest.approx(b.W / 4, rel=1e-9)
