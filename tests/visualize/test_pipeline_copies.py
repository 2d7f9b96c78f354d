"""The pipeline chart's copy lanes (issue 25, deliverable 4): with activation offload every
rank's lane is followed by a copy lane, offloads above its middle, prefetches below, and the
backwards' waits for a prefetch hatched on the compute lane; one shape per span of the
Timeline's ``offload`` table, at the demo's size and at scale."""

from __future__ import annotations

import pytest

from schedules import build_schedule
from simulator.analytic.run_plan import simulate_plan
from simulator.run.plan import CostSource, plan_run
from tests.visualize.test_figures_fit import check_fits
from visualize import save
from visualize.copies import copy_spans
from visualize.pipeline import pipeline_figure


def _run(ranks: int, microbatches: int, model: str, offload: str | None):
    plan = plan_run(
        build_schedule("1f1b", ranks, microbatches),
        model,
        costs=CostSource(hardware="h100-80gb"),
        offload=offload,
    )
    return simulate_plan(plan)


@pytest.fixture(scope="module")
def small():
    return _run(4, 8, "zb-6.2b", "full")


def _copies(fig) -> dict[str, int]:
    out = {}
    for collection in fig.axes[0].collections:
        gid = collection.get_gid() or ""
        if gid.startswith("copies:"):
            out[gid.split(":")[1]] = len(collection.get_paths())
    return out


def test_one_shape_per_copy_and_wait(small):
    spans = copy_spans(small)
    counts = {kind: sum(s.kind == kind for s in spans) for kind in ("offload", "prefetch", "wait")}
    assert counts["offload"] > 0 and counts["prefetch"] == counts["offload"]
    assert counts["wait"] > 0  # PCIe's share cannot hide every round trip of rank 2
    assert _copies(pipeline_figure(small)) == {k: n for k, n in counts.items() if n}


def test_each_rank_has_a_copy_lane_and_the_legend_names_every_kind(small):
    fig = pipeline_figure(small)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [
        "rank 0",
        "copies",
        "rank 1",
        "copies",
        "rank 2",
        "copies",
        "rank 3",
        "copies",
    ]
    entries = {t.get_text() for legend in fig.legends for t in legend.get_texts()}
    assert {"offload to host", "prefetch from host", "waits for prefetch (exposed)"} <= entries
    check_fits(fig)


def test_without_offload_there_is_no_copy_lane():
    fig = pipeline_figure(_run(2, 4, "zb-6.2b", None))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["rank 0", "rank 1"]
    assert not _copies(fig)


def test_at_scale_the_copy_lanes_fit_and_stay_small(tmp_path):
    large = _run(32, 128, "llama3-70b", "full")
    fig = pipeline_figure(large)
    check_fits(fig)
    assert sum(_copies(fig).values()) == len(copy_spans(large))
    png, svg = save(fig, tmp_path / "pipeline")
    assert svg.stat().st_size < 2 * 10**6 and png.stat().st_size < 2 * 10**6
