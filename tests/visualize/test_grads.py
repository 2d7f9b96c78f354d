"""Gradient availability: a diamond at each layer's grad-ready time, all-reduce bars, the gap."""

from __future__ import annotations

from tests.visualize.synthetic import b_start, patches_with, texts_with
from visualize.grads import grads_figure
from visualize.grads_data import grad_rows, step_window


def diamonds(fig) -> dict[int, tuple[float, float]]:
    out = {}
    for line in fig.axes[0].lines:
        gid = line.get_gid() or ""
        if gid.startswith("ready:"):
            out[int(gid.split(":")[1])] = (line.get_xdata()[0], line.get_ydata()[0])
    return out


def test_one_diamond_per_parametric_layer_at_its_ready_time(gpipe):
    fig = grads_figure(gpipe)
    marks = diamonds(fig)
    assert sorted(marks) == [0, 2, 4]
    for ready in gpipe.grad_ready:
        assert marks[ready.layer][0] == ready.time
    # rows top to bottom in layer order
    assert marks[0][1] < marks[2][1] < marks[4][1]


def test_rows_start_at_the_stage_first_backward(gpipe):
    rows = {r.layer: r for r in grad_rows(gpipe)}
    for r in range(3):
        assert rows[2 * r].first_backward == b_start(3, 4, r, 0)
        assert rows[2 * r].ready == b_start(3, 4, r, 3) + 2


def test_gap_between_last_and_first_layer_is_annotated(gpipe):
    fig = grads_figure(gpipe)
    (gap,) = texts_with(fig, "gap")
    # L4 (last) ready at 14, L0 (first) at 18 units
    assert gap.get_text() == "L4's gradient is ready 4 units before L0's"


def test_allreduce_bars_with_data_parallelism(measured):
    fig = grads_figure(measured, step=1)
    bars = {p.get_gid(): p for p in patches_with(fig, "allreduce:")}
    wanted = [a for a in measured.allreduce if a.step == 1]
    assert len(bars) == len(wanted) == 3
    for a in wanted:
        assert bars[f"allreduce:{a.layer}"].get_x() == a.start
    assert "all-reduce" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert "step 1" in fig.axes[0].get_title()
    start, end = step_window(measured, 1)
    left, right = fig.axes[0].get_xlim()
    assert left < start < end < right
    assert fig.axes[0].get_xlabel() == "time (ms)"


def test_no_allreduce_without_data_parallelism(gpipe):
    assert patches_with(grads_figure(gpipe), "allreduce:") == []
