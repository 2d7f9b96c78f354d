"""The whole-rank memory figure: bars equal the summary's numbers, the capacity line and the
fits/OVER labels follow the device."""

from __future__ import annotations

import pytest

from simulator.errors import PebbleError
from tests.simulator.test_rank_memory import _simulated
from visualize import breakdown_figure
from visualize.breakdown import PARTS

from .synthetic import gpipe_timeline


def bar_stacks(fig) -> list[float]:
    ax = fig.axes[0]
    ranks = len(ax.get_xticks())
    totals = [0.0] * ranks
    for patch in ax.patches:
        totals[round(patch.get_x() + patch.get_width() / 2)] += patch.get_height()
    return totals


@pytest.mark.parametrize("memory", ["80GiB", "20GiB"])
def test_bars_are_the_summary_and_labels_say_fits_or_over(memory):
    timeline = _simulated("1f1b", 4, 8, "llama3-8b,layers=8", f"h100,memory={memory}")
    fig = breakdown_figure(timeline)
    summary = [r.memory for r in timeline.summary().per_rank]
    assert bar_stacks(fig) == pytest.approx([m["total"] for m in summary])
    assert len(fig.axes[0].patches) == len(PARTS) * 4
    capacity = timeline.meta.memory_capacity
    assert [line.get_ydata()[0] for line in fig.axes[0].lines] == [capacity]
    labels = {t.get_gid(): t.get_text() for t in fig.axes[0].texts}
    for rank, m in enumerate(summary):
        assert labels[f"total:{rank}"].endswith("fits" if m["total"] <= capacity else "OVER")


def test_a_timeline_without_whole_rank_memory_is_one_sentence():
    with pytest.raises(PebbleError, match="does not record whole-rank memory"):
        breakdown_figure(gpipe_timeline())
