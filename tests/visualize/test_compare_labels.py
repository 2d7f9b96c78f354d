"""The comparison scatter's labels: every one readable, whatever the crowd. Clear of each other,
of the markers and of the axes' edges; named once; numbered in the table's order and listed
beside the plot when they cannot all sit beside their points."""

from __future__ import annotations

import math

import pytest

from tests.visualize.synthetic import gpipe_timeline
from tests.visualize.test_recompute import GPT_MATH, run
from visualize.compare import compare_figure
from visualize.compare_table import comparison_rows
from visualize.labels import NEAR, NUMBERS, place, rings

POLICIES = ("none", "selective", "full", "every:2")


@pytest.fixture(scope="module")
def crowd():
    """24 runs (3 schedules × 2 microbatch counts × 4 policies), 18 distinct points, most of
    them within a few points of another (the math attention core: selective is a point of its
    own)."""
    return [
        (f"{s} m={m} [{p}]", run(p, GPT_MATH, schedule=s, p=4, m=m))
        for s in ("1f1b", "zb-h1", "gpipe")
        for m in (6, 8)
        for p in POLICIES
    ]


@pytest.fixture(scope="module")
def few():
    return {f"gpipe-{p}x{m}": gpipe_timeline(p, m) for p, m in ((3, 4), (3, 8), (4, 4), (2, 6))}


def overlap(a, b, slack: float = 0.5) -> bool:
    return (
        a.x0 + slack < b.x1 and b.x0 + slack < a.x1 and a.y0 + slack < b.y1 and b.y0 + slack < a.y1
    )


def drawn(fig):
    """(label boxes, marker boxes, axes box) in display units, after the figure is drawn."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = [t.get_window_extent(renderer) for t in ax.texts]
    markers = []
    for points in ax.collections:
        x, y = ax.transData.transform(points.get_offsets()[0])
        r = math.sqrt(points.get_sizes()[0]) / 2 * fig.dpi / 72 * 0.9  # inside the marker
        markers.append(type(labels[0]).from_extents(x - r, y - r, x + r, y + r))
    return labels, markers, ax.bbox


def panel(fig) -> list[str]:
    """The numbered list's entries (the legend on the right), or [] without one."""
    listed = [legend for legend in fig.legends if legend.get_title().get_text().startswith("the")]
    return [t.get_text() for t in listed[0].get_texts()] if listed else []


@pytest.mark.parametrize("case", ["crowd", "few"])
def test_labels_overlap_nothing_and_stay_inside(case, request):
    fig = compare_figure(request.getfixturevalue(case))
    labels, markers, area = drawn(fig)
    assert labels
    for i, a in enumerate(labels):
        assert area.x0 - 0.5 <= a.x0 and a.x1 <= area.x1 + 0.5, fig.axes[0].texts[i].get_text()
        assert area.y0 - 0.5 <= a.y0 and a.y1 <= area.y1 + 0.5, fig.axes[0].texts[i].get_text()
        for b in labels[i + 1 :]:
            assert not overlap(a, b), (fig.axes[0].texts[i].get_text(), a, b)
        assert not any(overlap(a, m) for m in markers), fig.axes[0].texts[i].get_text()


def test_a_crowd_is_numbered_in_the_table_order_and_listed(crowd):
    fig = compare_figure(crowd)
    rows = comparison_rows(crowd)
    entries = panel(fig)
    numbers = [t.get_text() for t in fig.axes[0].texts]
    assert numbers == [str(n) for n in range(1, len(entries) + 1)]
    assert len(entries) == len({(r["bubble_percent"], r["peak_bytes_max"]) for r in rows}) == 18
    firsts = []
    for n, entry in enumerate(entries, 1):
        number, text = entry.replace("\u2007", " ").split(maxsplit=1)
        assert int(number) == n and " · " in text and text.endswith("units")  # the makespan
        firsts.append(next(i for i, r in enumerate(rows) if text.startswith(r["schedule"])))
    assert firsts == sorted(firsts)  # the table's order
    assert "makespans in the list" in fig.axes[0].get_title()


@pytest.mark.parametrize("case", ["crowd", "few"])
def test_every_run_is_named_once(case, request):
    runs = request.getfixturevalue(case)
    fig = compare_figure(runs)
    texts = [t.get_text() for t in fig.axes[0].texts] + panel(fig)
    for row in comparison_rows(runs):
        assert sum(row["schedule"] in text for text in texts) == 1, row["schedule"]


def test_few_points_are_labelled_beside_them(few):
    fig = compare_figure(few)
    assert not panel(fig) and not fig.legends
    assert sorted(t.get_text() for t in fig.axes[0].texts) == sorted(few)
    for t in fig.axes[0].texts:  # right beside its point: no leader line needed
        assert math.hypot(*t.xyann) < 30 and t.arrow_patch is None


def test_numbers_far_from_their_point_get_a_leader_line(crowd):
    for t in compare_figure(crowd).axes[0].texts:
        assert (t.arrow_patch is not None) == (math.hypot(*t.xyann) > 9)


@pytest.mark.parametrize(
    "anchors",
    [
        [(100 + 9 * i, 100 + 6 * (i % 2)) for i in range(8)],  # a zigzag, markers touching
        [(100 + 5 * i, 100 + 3 * i) for i in range(10)],  # a diagonal, markers overlapping
    ],
)
def test_place_numbers_a_tight_cluster_clear(anchors):
    placed = place(anchors, [(12.0, 9.0)] * len(anchors), NUMBERS, (0, 0, 400, 300), 5.5, 9)
    assert all(collisions == 0 for _, collisions in placed)


def test_place_labels_a_diagonal_of_long_labels_clear():
    anchors = [(100 + 8 * i, 100 + 8 * i) for i in range(8)]
    placed = place(anchors, [(60.0, 10.0)] * 8, NEAR + rings(40), (0, 0, 400, 300))
    assert all(collisions == 0 for _, collisions in placed)


def test_place_reports_a_label_that_cannot_fit():
    ((offset, collisions),) = place([(10, 10)], [(500.0, 10.0)], NEAR, (0, 0, 100, 100))
    assert collisions >= 1000 and offset in NEAR  # outside the area whatever it does
