"""Figures at scale: above GROUP_ABOVE rows the pebble graph and the gradient chart draw one row
per block (the most pebbles of any of its layers; ready when its last layer is), ``expand``
overrides. Timelines come from the analytic executor on a 40-block transformer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from simulator.analytic.run_plan import simulate_plan
from simulator.run import make_schedule, plan_run
from tests.visualize.synthetic import gpipe_timeline, patches_with, texts_with
from visualize.grads import grads_figure
from visualize.grads_data import chart_rows
from visualize.pebble import pebble_figure
from visualize.pebble_data import pebble_counts, row_counts, row_grads
from visualize.rows import GROUP_ABOVE, block_rows, should_group
from visualize.style import layer_info, layer_label

BIG = "transformer:layers=40,hidden=64,heads=4,seq=16,vocab=96"
SMALL = "transformer:layers=4,hidden=64,heads=4,seq=16,vocab=96"


def analytic(model: str, ranks: int = 4, microbatches: int = 4):
    return simulate_plan(plan_run(make_schedule("1f1b", ranks, microbatches), model))


@pytest.fixture(scope="module")
def big():
    return analytic(BIG)


def ticks(ax) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels()]


def diamonds(fig) -> dict[str, float]:
    return {
        line.get_gid().split(":", 1)[1]: line.get_xdata()[0]
        for line in fig.axes[0].lines
        if (line.get_gid() or "").startswith("ready:")
    }


def members(timeline) -> dict[int, list]:
    out: dict[int, list] = {}
    for layer in layer_info(timeline):
        out.setdefault(layer.block, []).append(layer)
    return out


def test_grouped_figures_have_one_row_per_block(big):
    blocks = members(big)
    assert len(blocks) < GROUP_ABOVE < len(big.meta.layers)
    pebble = pebble_figure(big).axes[0]
    assert ticks(pebble) == [
        f"B{b} · {len(layers)} layer{'s' * (len(layers) > 1)}"
        + (f" · L{layers[0].index}–L{layers[-1].index}" if len(layers) > 1 else "")
        for b, layers in blocks.items()
    ]
    first = blocks[5][0].index
    assert f"B5 · 14 layers · L{first}–L{first + 13}" in ticks(pebble)  # simulate's names
    (stages,) = pebble.child_axes
    assert ticks(stages) == [f"s{s} · r{s}" for s in range(4)]  # the bands, as before

    with_params = [b for b, layers in blocks.items() if any(x.has_params for x in layers)]
    labels = ticks(grads_figure(big).axes[0])
    assert len(labels) == len(with_params) < len(big.grad_ready)
    assert [label.split(" · ")[0] for label in labels] == [f"B{b}" for b in with_params]
    b1 = blocks[1]
    assert labels[1] == f"B1 · {len(b1)} layers · L{b1[0].index}–L{b1[-1].index} · s0 · r0"


def test_grouped_counts_are_the_most_of_any_layer(big):
    rows = block_rows(layer_info(big))
    grouped = row_counts(big, rows)
    per_layer = pebble_counts(big)
    end = max(c.end for c in per_layer)
    times = np.linspace(0.0, end, 401)
    times = np.concatenate([times, [(c.start + c.end) / 2 for c in per_layer]])

    def at(segments, t, keep):
        return max((s.count for s in segments if keep(s) and s.start <= t < s.end), default=0)

    for number, row in enumerate(rows):
        mine = [c for c in grouped if c.row == number]
        theirs = [c for c in per_layer if c.layer in row.layers]
        for t in times[::3]:
            assert at(mine, t, lambda _s: True) == at(theirs, t, lambda _s: True), (row.key, t)
        for a, b in zip(mine, mine[1:], strict=False):  # maximal spans
            assert a.end < b.start or a.count != b.count
    bars = patches_with(pebble_figure(big), "pebble:")
    assert len(bars) == len(grouped)
    assert {b.get_gid() for b in bars} <= {f"pebble:{row.key}" for row in rows}


def test_block_gradient_ready_is_the_latest_of_its_layers(big):
    ready = {g.layer: g.time for g in big.grad_ready}
    latest = {
        f"B{b}": max(ready[x.index] for x in layers if x.index in ready)
        for b, layers in members(big).items()
        if any(x.index in ready for x in layers)
    }
    rows = block_rows(layer_info(big))
    assert {rows[g.row].key: g.start for g in row_grads(big, rows)} == latest
    purple = {p.get_gid(): p.get_x() for p in patches_with(pebble_figure(big), "grad:")}
    assert purple == {f"grad:{key}:0": time for key, time in latest.items()}
    assert diamonds(grads_figure(big)) == latest
    assert all(g.ready == latest[row.key] for row, g in chart_rows(big))
    # the last block's gradients are complete first, the first block's last
    times = list(latest.values())
    assert times == sorted(times, reverse=True) and times[0] > times[-1]
    (gap,) = texts_with(grads_figure(big), "gap")
    assert gap.get_text().startswith(f"B{max(members(big))}'s gradients are ready ")


def test_expand_true_draws_one_row_per_layer():
    small = analytic(SMALL, ranks=2, microbatches=2)
    layers = layer_info(small)
    assert len(layers) > GROUP_ABOVE
    assert len(ticks(pebble_figure(small).axes[0])) == len({x.block for x in layers})
    fig = pebble_figure(small, expand=True)
    assert ticks(fig.axes[0]) == [layer_label(x) for x in layers]
    assert {p.get_gid() for p in patches_with(fig, "pebble:")} <= {
        f"pebble:{x.index}" for x in layers
    }
    assert sorted(map(int, diamonds(grads_figure(small, expand=True)))) == sorted(
        g.layer for g in small.grad_ready
    )
    # expand=False groups even a small model; without blocks, by runs of one stage
    grouped = pebble_figure(gpipe_timeline(), expand=False)
    assert ticks(grouped.axes[0]) == ["L0–L1 · 2 layers", "L2–L3 · 2 layers", "L4–L5 · 2 layers"]


def test_auto_threshold_switches_above_group_above_rows():
    assert GROUP_ABOVE == 48
    assert not should_group(48, None) and should_group(49, None)
    assert should_group(3, False) and not should_group(10_000, True)
    run = gpipe_timeline(25, 2)  # 50 layers, no blocks recorded
    for count, rows in ((48, 48), (49, 25)):
        run.meta = dataclasses.replace(run.meta, layers=gpipe_timeline(25, 2).meta.layers[:count])
        assert len(ticks(pebble_figure(run).axes[0])) == rows
    # the gradient chart counts its own rows: layers with parameters
    per_layer = ticks(grads_figure(gpipe_timeline(48, 2)).axes[0])  # 96 layers, 48 with params
    assert len(per_layer) == 48 and per_layer[0] == "L0 linear · s0 · r0"
    grouped = ticks(grads_figure(gpipe_timeline(49, 2)).axes[0])  # 49 with params: one per stage
    assert len(grouped) == 49 and grouped[0] == "L0–L1 · 2 layers · s0 · r0"


def test_too_many_blocks_share_rows_within_a_stage(big):
    layers = layer_info(big)
    rows = block_rows(layers, max_rows=10)
    assert len(rows) <= 10 + 4  # at most one extra row per stage boundary
    assert [i for row in rows for i in row.layers] == [x.index for x in layers]
    assert all(len({layers[i].stage for i in row.layers}) == 1 for row in rows)
    last = max(x.index for x in layers if x.block <= 4)
    assert rows[0].label == f"B0–B4 · {sum(x.block <= 4 for x in layers)} layers · L0–L{last}"
