"""``compare --offload``: offload policies beside recompute policies (issue 25, deliverable 5):
one run per (schedule, recompute, offload), named by both policies, with the host's peak and
the exposed prefetch wait in the table and a fixed marker per offload policy in the figure."""

from __future__ import annotations

import pytest

from simulator.analytic.compare import Comparison, compare_timelines
from simulator.errors import PebbleError
from simulator.run.offload_list import offload_policies
from simulator.run.plan import CostSource
from simulator.timeline.run_policy import policy_text
from tests.visualize.test_figures_fit import check_fits
from visualize.compare import compare_figure, run_marker
from visualize.compare_table import comparison_rows, format_table
from visualize.style import policy_marker


@pytest.fixture(scope="module")
def runs():
    timelines, _ = compare_timelines(
        Comparison(
            ranks=4,
            microbatches=8,
            names=("1f1b",),
            model="zb-6.2b",
            costs=CostSource(hardware="h100-80gb"),
            recompute=("none", "selective", "full"),
            offload=("none", "full", "selective"),
        )
    )
    return timelines


def test_the_list_keeps_stage_terms_together_and_refuses_repeats():
    assert offload_policies("none,full,0:full,1:none") == ["none", "full", "0:full,1:none"]
    assert offload_policies(None) is None
    with pytest.raises(PebbleError, match="twice"):
        offload_policies("full,full")
    with pytest.raises(PebbleError, match="--offload"):
        offload_policies("none,sometimes")


def test_policy_words():
    assert policy_text(None, None) == "none"
    assert policy_text("none", "") == "none"
    assert policy_text("full", None) == "full"
    assert policy_text(None, "selective") == "offload selective"
    assert policy_text("full", "full") == "full + offload full"


def test_one_run_per_pair_named_by_both_policies(runs):
    assert list(runs) == [
        "1f1b [none]",
        "1f1b [offload full]",
        "1f1b [offload selective]",
        "1f1b [selective]",
        "1f1b [selective + offload full]",
        "1f1b [selective + offload selective]",
        "1f1b [full]",
        "1f1b [full + offload full]",
        "1f1b [full + offload selective]",
    ]
    rows = {row["schedule"]: row for row in comparison_rows(runs)}
    assert rows["1f1b [none]"]["host_bytes_max"] == 0
    full = rows["1f1b [offload full]"]
    assert full["offload"] == "full" and full["recompute"] == "none"
    assert full["host_bytes_max"] > 0
    assert full["offload_wait_max"] > 0  # PCIe Gen5's share cannot hide every round trip
    assert full["makespan"] > rows["1f1b [none]"]["makespan"]
    selective = rows["1f1b [offload selective]"]
    assert selective["offload_wait_max"] == 0  # selective sends only what hides
    assert 0 < selective["host_bytes_max"] <= full["host_bytes_max"]


def test_the_table_gains_host_and_wait_columns(runs):
    text = format_table(comparison_rows(runs))
    header = text.splitlines()[0]
    assert "host peak" in header and "prefetch wait" in header
    csv_header = format_table(comparison_rows(runs), "csv").splitlines()[0]
    assert "host_bytes_max,offload_wait_max" in csv_header
    plain = {k: v for k, v in runs.items() if "offload" not in k}
    assert "host peak" not in format_table(comparison_rows(plain))


def test_markers_are_fixed_per_policy_and_distinct(runs):
    rows = comparison_rows(runs)
    markers = {row["policy"]: run_marker(row) for row in rows}
    assert markers["none"] == policy_marker("none")
    assert markers["full"] == policy_marker("full")
    assert markers["offload full"] == "X" and markers["offload selective"] == "*"
    assert len(set(markers.values())) == len(markers) == 9  # every pair its own marker
    again = {row["policy"]: run_marker(row) for row in comparison_rows(runs)}
    assert again == markers


def test_the_figure_draws_every_run_and_names_each_policy(runs):
    fig = compare_figure(runs)
    points = [c for c in fig.axes[0].collections if (c.get_gid() or "").startswith("point:")]
    assert len(points) == len(runs)
    legend_texts = {t.get_text() for legend in fig.legends for t in legend.get_texts()}
    assert {"offload full", "offload selective", "full + offload full"} <= legend_texts
    assert "device" in fig.axes[0].get_ylabel()
    check_fits(fig)
