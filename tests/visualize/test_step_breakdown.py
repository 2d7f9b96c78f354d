"""The step-time figure: one stacked bar per rank whose parts are the breakdown's, fitting its
canvas at the demo's size and at 64 ranks (``tests/cli/test_breakdown_cli.py``: the commands
that write it)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.timeline.breakdown import PARTS, step_breakdown
from tests.visualize.synthetic import gpipe_timeline
from tests.visualize.test_figures_fit import check_fits
from visualize import save, step_breakdown_figure


def segments(fig, part: str) -> list[float]:
    ax = fig.axes[0]
    bars = [p for p in ax.patches if (p.get_gid() or "").startswith(f"part:{part}:")]
    bars.sort(key=lambda p: int(p.get_gid().rsplit(":", 1)[1]))
    return [p.get_height() for p in bars]


@pytest.mark.parametrize(("p", "m"), [(3, 4), (64, 512)])
def test_bars_are_the_breakdown_and_fit(p, m, tmp_path):
    timeline = gpipe_timeline(p, m, dp=2 if p < 8 else 1)
    fig = step_breakdown_figure(timeline)
    check_fits(fig)
    means = step_breakdown(timeline).mean_per_rank()
    for i, part in enumerate(PARTS):
        np.testing.assert_allclose(segments(fig, part), means[:, i])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(label.startswith("pipeline wait (bubble)") for label in labels)
    assert not any(label.startswith("recompute") for label in labels)  # none was run
    png, svg = save(fig, tmp_path / "step")
    assert png.stat().st_size < 2 * 10**6 and svg.stat().st_size < 2 * 10**6
