"""The step-time figure: one stacked bar per rank whose parts are the breakdown's, fitting its
canvas at the demo's size and at 64 ranks; ``plot --kind step`` and ``simulate --out`` write it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simulator.cli import main
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


def test_plot_and_simulate_write_the_step_figure(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["simulate", "--schedule", "1f1b", "--ranks", "2", "--microbatches", "4"]
    assert main([*argv, "--out", str(out)]) == 0
    assert (out / "step.png").exists() and (out / "step.svg").exists()
    drawn = tmp_path / "drawn"
    assert main(["plot", str(out / "timeline.json"), "--kind", "step", "--out", str(drawn)]) == 0
    assert sorted(p.name for p in drawn.glob("*.png")) == ["step.png"]
    capsys.readouterr()


def test_a_timeline_without_steps_is_one_sentence(tmp_path, capsys):
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"version": 1, "meta": {}, "events": []}))
    code = main(["plot", str(path), "--kind", "step", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
