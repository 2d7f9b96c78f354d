"""Every figure fits its canvas at the demo's size and at real scale: legends and titles lie
inside the figure, every legend entry names something drawn, and an SVG stays small.

The large run is written out in closed form (``synthetic.gpipe_timeline``): 64 ranks x 512
microbatches, 128 layers, 65,536 actions, with whole-rank memory against an 80 GiB device so the
breakdown and the device lines are drawn too. It is GPipe, whose warm-up is every forward, so
the zoomed panels are as wide as they get.
"""

from __future__ import annotations

import dataclasses

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from simulator.timeline import RankMemory
from tests.visualize.synthetic import gpipe_timeline
from visualize import breakdown_figure, grads_figure, memory_figure, pebble_figure, save
from visualize.pipeline import pipeline_figure

GIB = 2**30
KINDS = {
    "pipeline": pipeline_figure,
    "memory": memory_figure,
    "pebble": pebble_figure,
    "grads": grads_figure,
    "breakdown": breakdown_figure,
}


def with_device(timeline, static: int, capacity: int):
    ranks = timeline.num_ranks
    memory = tuple(RankMemory(static // 2, static // 4, static // 4, 0) for _ in range(ranks))
    timeline.meta = dataclasses.replace(timeline.meta, rank_memory=memory, memory_capacity=capacity)
    return timeline


@pytest.fixture(scope="module")
def small():
    return with_device(gpipe_timeline(3, 4, dp=2), static=20_000, capacity=60_000)


@pytest.fixture(scope="module")
def large():
    return with_device(gpipe_timeline(64, 512), static=60 * GIB, capacity=80 * GIB)


def inside(box, frame, slack: float = 1.0) -> bool:
    return (
        box.x0 >= frame.x0 - slack
        and box.y0 >= frame.y0 - slack
        and box.x1 <= frame.x1 + slack
        and box.y1 <= frame.y1 + slack
    )


def check_fits(fig) -> None:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    frame = fig.bbox
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    titles = [ax.title for ax in fig.axes if ax.get_title()]
    titles += [fig._suptitle] if fig._suptitle is not None else []
    assert legends and titles
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert inside(box, frame), f"legend {box} outside the figure {frame}"
        for text in legend.get_texts():  # each entry whole, none cut at an edge
            assert inside(text.get_window_extent(renderer), frame), text.get_text()
    for title in titles:
        box = title.get_window_extent(renderer)
        assert inside(box, frame), f"title {title.get_text()!r} at {box} outside {frame}"


@pytest.mark.parametrize("kind", KINDS)
def test_small_figures_fit(small, kind):
    check_fits(KINDS[kind](small))


@pytest.mark.parametrize("kind", KINDS)
def test_large_figures_fit_and_stay_small(large, kind, tmp_path):
    fig = KINDS[kind](large)
    check_fits(fig)
    png, svg = save(fig, tmp_path / kind)
    assert svg.stat().st_size < 2 * 10**6, f"{kind}.svg is {svg.stat().st_size:,} bytes"
    assert png.stat().st_size < 2 * 10**6


def test_the_large_pipeline_is_aggregated_and_zoomed(large):
    fig = pipeline_figure(large)
    main, *panels = fig.axes
    assert [im.get_gid() for im in main.images] == ["aggregate"]
    assert not [p for p in main.patches if (p.get_gid() or "").startswith("box:")]
    assert "each pixel column mixes" in main.get_title()
    assert [p.get_title() for p in panels] == ["warm-up, zoomed", "cool-down, zoomed"]


def test_the_aggregate_is_white_where_ranks_idle(large):
    """GPipe's last rank idles until its first forward at t = 63: the image's first pixels
    of that lane are white, rank 0's are the forward's colour."""
    fig = pipeline_figure(large)
    (image,) = fig.axes[0].images
    pixels = image.get_array()
    sub = pixels.shape[0] // 64
    first_rank, last_rank = pixels[sub // 2, 0, :3], pixels[63 * sub + sub // 2, 0, :3]
    assert list(last_rank) == [1.0, 1.0, 1.0]
    assert min(first_rank) < 0.9


def test_memory_shows_the_room_for_activations(small, large):
    room = 60_000 - 20_000
    lines = [ln for ax in memory_figure(small).axes for ln in ax.lines]
    assert {ln.get_ydata()[0] for ln in lines if (ln.get_gid() or "").startswith("room:")} == {room}
    heat = memory_figure(large)  # 64 ranks: one heat map, the room on its colour bar
    assert [im.get_gid() for im in heat.axes[0].images] == ["heat"]
    assert [ln.get_gid() for ln in heat.axes[1].lines] == ["room"]


def test_dashed_replicas_only_when_recorded(small):
    one = gpipe_timeline(3, 4, dp=2)
    one.cache = [c for c in one.cache if c.replica == 0]
    labels = [t.get_text() for t in memory_figure(one).legends[0].get_texts()]
    assert "other replicas" not in labels
    labels = [t.get_text() for t in memory_figure(small).legends[0].get_texts()]
    assert "other replicas" in labels


def test_the_pipeline_draws_data_parallel_all_reduces(small):
    fig = pipeline_figure(small)
    strips = [p for p in fig.axes[0].patches if (p.get_gid() or "").startswith("allreduce:")]
    assert {p.get_gid() for p in strips} == {f"allreduce:{r}" for r in range(3)}
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "data-parallel all-reduce" in labels
