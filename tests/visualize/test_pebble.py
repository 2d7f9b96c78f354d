"""The pebble graph: one filled lifetime per cached (layer, microbatch, step), purple from each
layer's gradient-ready time."""

from __future__ import annotations

import pytest

from simulator.timeline import CacheChange
from tests.visualize.synthetic import (
    b_start,
    f_start,
    gpipe_timeline,
    patches_with,
)
from visualize.pebble import ROW, pebble_figure
from visualize.pebble_data import grad_segments, pebble_counts, pebble_intervals


def expected_intervals(p, m, steps=1, step_len=0.0):
    out = []
    for step in range(steps):
        base = step * step_len
        for r in range(p):
            for i in range(m):
                f, b = base + f_start(p, m, r, i), base + b_start(p, m, r, i)
                out.append((2 * r, i, step, f, b + 2))
                out.append((2 * r + 1, i, step, f + 0.5, b + 0.5))
    return sorted(out, key=lambda x: (x[0], x[2], x[1], x[3]))


def test_one_interval_per_cache_lifetime(gpipe):
    got = [tuple(i) for i in pebble_intervals(gpipe)]
    assert got == expected_intervals(3, 4)


def test_a_lifetime_spans_several_tensors_of_one_layer(gpipe):
    # the loss (layer 5) caches two tensors and frees them at different times
    loss = [i for i in pebble_intervals(gpipe) if i.layer == 5]
    assert len(loss) == 4
    first = loss[0]
    assert (first.start, first.end) == (f_start(3, 4, 2, 0) + 0.5, b_start(3, 4, 2, 0) + 0.5)


def test_intervals_per_step_and_replica(measured):
    both = pebble_intervals(measured)
    assert len(both) == 2 * 3 * 2 * 4  # steps x ranks x layers per rank x microbatches
    assert {i.step for i in both} == {0, 1}
    other = pebble_intervals(measured, replica=1)
    assert len(other) == len(both)
    assert all(
        b.start == pytest.approx(a.start + 0.25e-3) for a, b in zip(both, other, strict=True)
    )


def test_a_lifetime_still_open_ends_with_the_run(gpipe):
    gpipe.cache.append(CacheChange(1.0, 0, 0, 9, 0, 100))  # never freed
    gpipe.cache.append(CacheChange(2.0, 0, 0, 9, 0, 100))  # a second put adds, same lifetime
    open_ = [i for i in pebble_intervals(gpipe) if i.microbatch == 9]
    assert len(open_) == 1
    assert open_[0].start == 1.0
    assert open_[0].end == max(o.end for o in gpipe.optimizer)


def test_counts_match_the_intervals(gpipe):
    intervals = pebble_intervals(gpipe)
    segments = pebble_counts(gpipe)
    for s in segments:
        middle = (s.start + s.end) / 2
        covering = [i for i in intervals if i.layer == s.layer and i.start <= middle < i.end]
        assert s.count == len(covering) > 0
    # GPipe: layer 0 holds all 4 microbatches between its last F and its first B's end
    assert max(s.count for s in segments if s.layer == 0) == 4


def test_figure_draws_the_counts_as_bars(gpipe):
    fig = pebble_figure(gpipe)
    bars = patches_with(fig, "pebble:")
    segments = pebble_counts(gpipe)
    assert len(bars) == len(segments)
    drawn = sorted(
        (int(b.get_gid().split(":")[1]), b.get_x(), b.get_width(), b.get_height()) for b in bars
    )
    wanted = sorted((s.layer, s.start, s.end - s.start, ROW * s.count / 4) for s in segments)
    assert len(drawn) == len(wanted)
    for d, w in zip(drawn, wanted, strict=True):
        assert d == pytest.approx(w)


def test_purple_starts_exactly_at_grad_ready(gpipe):
    fig = pebble_figure(gpipe)
    purple = {p.get_gid(): p for p in patches_with(fig, "grad:")}
    assert sorted(purple) == [f"grad:{layer}:0" for layer in (0, 2, 4)]
    for ready in gpipe.grad_ready:
        patch = purple[f"grad:{ready.layer}:{ready.step}"]
        assert patch.get_x() == ready.time
        optimizer_end = gpipe.optimizer[0].end
        assert patch.get_x() + patch.get_width() == pytest.approx(optimizer_end)
    # the last layer's gradient is ready first
    assert purple["grad:4:0"].get_x() < purple["grad:2:0"].get_x() < purple["grad:0:0"].get_x()


def test_parameterless_layers_never_turn_purple(gpipe):
    fig = pebble_figure(gpipe)
    layers = {int(p.get_gid().split(":")[1]) for p in patches_with(fig, "grad:")}
    no_params = {l.index for l in gpipe.meta.layers if not l.has_params}
    assert layers and not layers & no_params


def test_each_step_has_its_own_purple_segment(measured):
    segments = grad_segments(measured)
    assert len(segments) == 3 * 2
    for s in segments:
        assert s.end == measured.optimizer[s.step].end
    fig = pebble_figure(measured)
    assert len(patches_with(fig, "grad:")) == 6


def test_rows_labels_and_axes(gpipe, measured):
    fig = pebble_figure(gpipe)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [
        "L0 linear",
        "L1 relu",
        "L2 linear",
        "L3 relu",
        "L4 linear",
        "L5 cross_entropy",
    ]
    bottom, top = ax.get_ylim()
    assert top < bottom  # inverted: layer 0 at the top
    assert ax.get_xlabel() == "time (units)"
    assert "gpipe" in ax.get_title() and "analytic" in ax.get_title()
    (stage_axis,) = ax.child_axes  # the right-hand "stage · rank" axis
    stage_labels = [t.get_text() for t in stage_axis.get_yticklabels()]
    assert stage_labels == ["s0 · r0", "s1 · r1", "s2 · r2"]
    assert any("microbatches cached" in a.get_ylabel() for a in fig.axes)
    assert pebble_figure(measured).axes[0].get_xlabel() == "time (ms)"


def test_bigger_run_stays_drawable():
    big = gpipe_timeline(8, 16)
    fig = pebble_figure(big)
    assert len(patches_with(fig, "pebble:")) == len(pebble_counts(big))
