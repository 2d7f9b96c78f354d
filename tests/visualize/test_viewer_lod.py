"""The viewer's level of detail without a browser: what a window draws one by one and what it
merges per pixel column keeps every lane's busy time, the image paints what ran where it ran,
memory lines keep their extremes, and the page's packed data is the run in full (the page's
script, which repeats the split at every zoom, is checked against ``plan`` in
``test_viewer_browser.py``)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.analytic.run_plan import simulate_plan
from simulator.run import make_schedule, plan_run
from tests.visualize.synthetic import gpipe_timeline
from visualize.viewer import viewer_page
from visualize.viewer_data import action_boxes
from visualize.viewer_lod import (
    MAX_BOXES,
    Kind,
    SegmentLayer,
    envelope,
    overview_rgba,
    pack,
    plan,
    unpack,
)
from visualize.viewer_page import page_data

KINDS = [Kind("F", "#56B4E9", 8.0, "F", ""), Kind("B", "#E69F00", 8.0, "B", "")]


def lanes_of_boxes(draw_lengths: list[list[tuple[float, float, int]]]) -> SegmentLayer:
    """A layer from per-lane lists of (gap before, length, kind): boxes one after another."""
    lane, kind, start, end = [], [], [], []
    for number, boxes in enumerate(draw_lengths):
        t = 0.0
        for gap, length, letter in boxes:
            t += gap
            lane.append(number), kind.append(letter), start.append(t), end.append(t + length)
            t += length
    return SegmentLayer(
        panel="pipeline", noun="actions", lane_y=np.arange(len(draw_lengths), dtype=float),
        lane_row=np.arange(len(draw_lengths)), kinds=KINDS, lane=np.array(lane, np.int64),
        kind=np.array(kind, np.int64), start=np.array(start), end=np.array(end),
    )  # fmt: skip


def busy(starts, ends, edges) -> np.ndarray:
    """Per column between ``edges``, the time the spans cover (by brute force)."""
    left, right = edges[:-1], edges[1:]
    overlap = np.minimum(ends[:, None], right) - np.maximum(starts[:, None], left)
    return np.clip(overlap, 0, None).sum(axis=0)


box = st.tuples(
    st.floats(0, 5),  # idle before it
    st.one_of(st.floats(0.001, 0.05), st.floats(0.05, 20)),  # narrow or wide at most zooms
    st.integers(0, 1),
)


@settings(max_examples=60, deadline=None)
@given(
    lanes=st.lists(st.lists(box, min_size=1, max_size=60), min_size=1, max_size=4),
    window=st.tuples(st.floats(0, 0.9), st.floats(0.001, 1.0)),
    columns=st.integers(5, 300),
    max_boxes=st.integers(0, 80),
)
def test_each_lane_keeps_its_busy_time_in_every_pixel_column(lanes, window, columns, max_boxes):
    layer = lanes_of_boxes(lanes)
    end = float(layer.end.max())
    t0 = window[0] * end
    t1 = t0 + max(window[1] * (end - t0), 1e-3)
    drawn = plan(layer, t0, t1, columns, max_boxes=max_boxes)
    pixel = (t1 - t0) / columns
    edges = np.linspace(t0, t1, columns + 1)
    assert len(drawn.detail) <= max_boxes
    assert np.all(layer.end[drawn.detail] - layer.start[drawn.detail] >= pixel)
    assert drawn.visible == len(drawn.detail) + drawn.merged
    for number in range(len(lanes)):
        mine = layer.lane == number
        raw = busy(layer.start[mine], layer.end[mine], edges)
        kept = np.intersect1d(np.flatnonzero(mine), drawn.detail)
        shown = busy(layer.start[kept], layer.end[kept], edges)
        shown += drawn.shares[number].sum(axis=0) * pixel
        assert np.all(np.abs(shown - raw) <= pixel * 1e-6 + 1e-9), (shown - raw) / pixel


def test_the_image_paints_each_lane_band_where_it_ran():
    layer = lanes_of_boxes([[(0, 0.01, 0)] * 200, [(1.0, 0.01, 1)] * 20])
    drawn = plan(layer, 0.0, 40.0, 100)
    assert drawn.merged == 220 and not len(drawn.detail)
    image = overview_rgba(layer, drawn.shares, (1.5, -0.5), 40)  # 20 pixel rows per lane
    alpha = image[..., 3]
    assert alpha[6:14, :5].min() > 0 and alpha[:6].max() == alpha[14:20].max() == 0  # lane 0
    assert alpha[6:14, 5:].max() == 0  # it ran for 2 units: columns 0-4
    assert image[10, 0, :3].tolist() == [0x56, 0xB4, 0xE9]  # F's colour, fully busy
    assert alpha[26:34].max() > 0 and alpha[26:34].min() == 0  # lane 1: 1% busy, some idle


def test_memory_envelope_keeps_each_bucket_extreme_and_the_value_held_at_the_start():
    rng = np.random.default_rng(1)
    time = np.cumsum(rng.random(20_000))
    value = np.cumsum(rng.integers(-5, 6, size=len(time))).astype(float)
    t0, t1 = time[3000] + 0.5, time[15000]
    kept, collapsed = envelope(time, value, t0, t1, 50)
    assert collapsed and len(kept) <= 4 * 50 + 2
    assert kept[0] == 3000 and time[kept[-1]] >= t1  # holding at t0, first past t1
    inside = slice(3001, 15001)
    assert value[kept].max() == value[inside].max() and value[kept].min() == value[inside].min()
    whole, collapsed = envelope(time, value, t0, time[3100], 50)
    assert not collapsed and whole.tolist() == list(range(3000, 3101))


def test_packed_columns_read_back_exactly():
    columns = {
        "lane": np.array([0, 3, 200], np.int64),
        "kind": np.array([1, 0, 1], np.int64),
        "signed": np.array([-1, 5, 70_000], np.int64),
        "time": np.array([0.5, 1e6, 3.25]),
    }
    blob, table = pack(columns)
    back = unpack(blob, table)
    assert {name: entry["dtype"] for name, entry in table.items()} == {
        "lane": "u1", "kind": "u1", "signed": "i4", "time": "f4",
    }  # fmt: skip
    for name, values in columns.items():
        assert back[name].tolist() == values.astype(back[name].dtype).tolist()


def test_the_page_carries_every_box_and_draws_at_most_max_boxes():
    timeline = simulate_plan(plan_run(make_schedule("1f1b", 8, 1024)))
    page = viewer_page([timeline])
    data = page_data(page)
    columns = unpack(data["blob"], data["columns"])
    boxes = action_boxes(timeline)
    assert len(columns["pipeline.start"]) == boxes.count == 16_384
    got = zip(columns["pipeline.lane"].tolist(), columns["pipeline.start"].tolist(), strict=True)
    expected = zip(boxes.row.tolist(), boxes.start.astype(np.float32).tolist(), strict=True)
    assert sorted(got) == sorted(expected)
    pipeline = page.layers[0]
    lines = page.figure.data[pipeline.first : pipeline.first + len(pipeline.layer.kinds)]
    drawn = sum(int(np.isfinite(np.asarray(t.x, float)).sum()) // 2 for t in lines)
    assert drawn <= MAX_BOXES
    notes = [a.text for a in page.figure.layout.annotations]
    assert "aggregated per pixel: 16,384 actions · zoom in for each" in notes
    assert len(data["blob"]) < 200_000  # 16,384 boxes and their memory, packed


def test_a_small_run_draws_every_box_and_says_so():
    page = viewer_page([gpipe_timeline(3, 4)])
    notes = [a.text for a in page.figure.layout.annotations]
    assert "each of the 24 actions in view drawn" in notes
    image = page.figure.data[page.layers[0].first + len(page.layers[0].layer.kinds)]
    assert image.type == "image" and image.visible is False
