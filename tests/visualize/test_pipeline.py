"""The pipeline chart: one box per compute event, at its real start and duration."""

from __future__ import annotations

from matplotlib.colors import to_hex

from tests.visualize.synthetic import gpipe_timeline, patches_with
from visualize.pipeline import BOX, pipeline_figure
from visualize.pipeline_data import pipeline_boxes
from visualize.style import KIND_COLORS


def test_one_box_per_compute_event(gpipe):
    boxes = pipeline_boxes(gpipe)
    assert len(boxes) == len(gpipe.events) == 3 * 4 * 2
    fig = pipeline_figure(gpipe)
    drawn = {p.get_gid(): p for p in patches_with(fig, "box:")}
    assert len(drawn) == len(boxes)
    for e in gpipe.events:
        patch = drawn[f"box:{e.rank}:{e.stage}{e.kind}{e.microbatch}:{e.step}"]
        assert patch.get_x() == e.start
        assert patch.get_width() == e.end - e.start
        assert patch.get_y() == e.rank - BOX / 2  # lane = rank, rank 0 at the top
        assert to_hex(patch.get_facecolor()) == KIND_COLORS[e.kind].lower()


def test_rank_zero_is_the_top_lane(gpipe):
    ax = pipeline_figure(gpipe).axes[0]
    bottom, top = ax.get_ylim()
    assert top < bottom
    assert [t.get_text() for t in ax.get_yticklabels()] == ["rank 0", "rank 1", "rank 2"]


def test_kinds_have_distinct_colours():
    assert len({to_hex(c) for c in KIND_COLORS.values()}) == 4


def test_replica_zero_by_default_and_all_on_request(measured):
    ours = pipeline_boxes(measured)
    assert {b.replica for b in ours} == {0}
    assert len(ours) == len([e for e in measured.events if e.replica == 0])
    fig = pipeline_figure(measured, replica=None)
    assert len(patches_with(fig, "box:")) == len(measured.events)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[3] == "replica 1 · rank 0"


def test_microbatch_numbers_only_where_they_fit(gpipe):
    ax = pipeline_figure(gpipe).axes[0]
    numbers = [t.get_text() for t in ax.texts]
    assert sorted(numbers) == sorted(str(e.microbatch) for e in gpipe.events)
    # six steps: an F box is ~6 pt wide; the font shrinks so that F and B boxes alike are
    # numbered, all at one size
    six = gpipe_timeline(3, 4, steps=6)
    texts = pipeline_figure(six).axes[0].texts
    assert len(texts) == len(six.events)
    assert len({t.get_fontsize() for t in texts}) == 1
    assert texts[0].get_fontsize() < 8
    # a long run squeezes the boxes below one digit's width: no numbers at all
    long = gpipe_timeline(2, 2, steps=60)
    texts = pipeline_figure(long).axes[0].texts
    assert [t.get_text() for t in texts if t.get_text().isdigit()] == []


def test_titles_axes_and_legend(gpipe, measured):
    fig = pipeline_figure(gpipe)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time (units)"
    bubble = gpipe.summary().bubble_fraction * 100
    assert f"bubble {bubble:.1f}%" in ax.get_title()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "F forward" in legend and "B backward" in legend and "idle (bubble)" in legend
    assert pipeline_figure(measured).axes[0].get_xlabel() == "time (ms)"


def test_communication_arrows_are_optional(gpipe):
    plain = len(pipeline_figure(gpipe).axes[0].texts)
    with_comms = len(pipeline_figure(gpipe, comms=True).axes[0].texts)
    assert with_comms - plain == len(gpipe.comms)
