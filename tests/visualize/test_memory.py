"""The memory timeline: bytes per rank as a step function, peaks labelled like the summary."""

from __future__ import annotations

from tests.visualize.synthetic import (
    LINEAR_BYTES,
    LOSS_EXTRA,
    SECOND_BYTES,
    f_start,
    texts_with,
)
from visualize import human_bytes
from visualize.memory import memory_figure, memory_peaks, memory_steps


def test_peak_labels_equal_the_summary(gpipe, measured):
    for timeline in (gpipe, measured):
        fig = memory_figure(timeline)
        for rank_summary in timeline.summary().per_rank:
            (label,) = texts_with(fig, f"peak:{rank_summary.rank}")
            assert label.get_text() == f"peak {human_bytes(rank_summary.peak_activation_bytes)}"


def test_peak_values_and_where_they_are_marked(gpipe):
    m = 4
    peaks = memory_peaks(gpipe)
    assert peaks[0][0] == m * (LINEAR_BYTES + SECOND_BYTES)
    assert peaks[2][0] == m * (LINEAR_BYTES + SECOND_BYTES + LOSS_EXTRA)
    # GPipe's last rank peaks when its last forward has cached the loss's second tensor
    assert peaks[2][1] == f_start(3, m, 2, m - 1) + 0.75
    fig = memory_figure(gpipe)
    for rank, (peak, when, _replica) in peaks.items():
        (marker,) = [
            line for ax in fig.axes for line in ax.lines if line.get_gid() == f"peak-marker:{rank}"
        ]
        assert list(marker.get_xdata()) == [when]
        assert list(marker.get_ydata()) == [peak]


def test_step_function_starts_at_zero_and_returns_to_zero(gpipe):
    xs, ys = memory_steps(gpipe, 1)
    assert (xs[0], ys[0]) == (0.0, 0)
    assert ys[-1] == 0  # every cached byte freed by the end
    assert max(ys) == memory_peaks(gpipe)[1][0]
    fig = memory_figure(gpipe)
    assert len(fig.axes) == 3  # one panel per rank
    (line,) = [line for line in fig.axes[1].lines if line.get_drawstyle() == "steps-post"]
    assert list(line.get_ydata()) == ys


def test_axes_read_in_human_units(gpipe, measured):
    fig = memory_figure(gpipe)
    ticks = [fig.axes[0].yaxis.get_major_formatter()(v) for v in fig.axes[0].get_yticks()]
    assert all(t.endswith("KiB") for t in ticks)
    assert fig.axes[-1].get_xlabel() == "time (units)"
    assert memory_figure(measured).axes[-1].get_xlabel() == "time (ms)"


def test_other_replicas_are_drawn_dashed(measured):
    fig = memory_figure(measured)
    dashed = [line for line in fig.axes[0].lines if line.get_linestyle() == "--"]
    assert len(dashed) == 1
