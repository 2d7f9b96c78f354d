"""The HTML viewer without a browser: what the page embeds, that it needs no network, and that
its numbers are the Timeline's (the browser test, ``test_viewer_browser.py``, renders it)."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from simulator.errors import PebbleError
from tests.visualize.synthetic import (
    LINEAR_BYTES,
    LOSS_EXTRA,
    SECOND_BYTES,
    b_start,
    f_start,
    gpipe_timeline,
)
from visualize.pebble_data import row_counts
from visualize.viewer import PAIR_OFFSET, PLOT_ID, viewer_figure, viewer_html, viewer_page
from visualize.viewer_data import MEMORY_POINTS, _envelope, action_boxes, memory_steps, pebble_rows
from visualize.viewer_layers import count_bins
from visualize.viewer_layout import SLIDER_FRAMES
from visualize.viewer_lod import unpack
from visualize.viewer_page import page_data

P, M = 3, 4


def page_figure(html: str) -> dict:
    """The figure the page hands to ``Plotly.newPlot``: its data, layout and frames."""
    start = html.index(f'Plotly.newPlot(                        "{PLOT_ID}",')
    decoder = json.JSONDecoder()
    position = html.index("[", start)
    data, position = decoder.raw_decode(html, position)
    position = html.index("{", position)
    layout, position = decoder.raw_decode(html, position)
    frames_at = html.find(".addFrames(", position)
    frames = []
    if frames_at >= 0:
        frames, _ = decoder.raw_decode(html, html.index("[", frames_at))
    return {"data": data, "layout": layout, "frames": frames}


def decoded(value) -> np.ndarray:
    """A trace array as the page holds it: a typed base64 block, or a plain list."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        if "shape" in value:
            array = array.reshape([int(n) for n in str(value["shape"]).split(",")])
        return array
    return np.asarray(value, dtype=float)


def traces_named(figure: dict, name: str, mode: str) -> list[dict]:
    return [t for t in figure["data"] if t.get("name") == name and t.get("mode") == mode]


@pytest.fixture(scope="module")
def page() -> str:
    return viewer_html([gpipe_timeline(P, M)])


def test_the_page_is_self_contained(page):
    assert "<script src=" not in page.replace(" ", "")
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)\s*=\s*["']?https?:""", page)
    assert "plotly.js v" in page[:2000]  # plotly.js itself is inlined
    assert f'id="{PLOT_ID}"' in page


def test_the_page_embeds_every_box_with_its_times(page):
    figure = page_figure(page)
    forward = traces_named(figure, "F forward", "lines")[0]
    x = decoded(forward["x"]).astype(float)
    y = decoded(forward["y"]).astype(float)
    starts, middles, ends, gaps = x[0::4], x[1::4], x[2::4], x[3::4]
    assert np.isnan(gaps).all() and np.allclose(middles, (starts + ends) / 2)
    expected = sorted(
        (r, f_start(P, M, r, i), f_start(P, M, r, i) + 1) for r in range(P) for i in range(M)
    )
    got = sorted(zip(y[0::4].tolist(), starts.tolist(), ends.tolist(), strict=True))
    assert got == expected
    data = decoded(forward["customdata"])[0::4]  # the hover's numbers at each box's points
    rows = sorted(zip(data[:, 0].tolist(), data[:, 4].tolist(), strict=True))
    assert rows == [(r, s) for r, s, _e in expected]
    assert set(forward["text"][1::4]) >= {f"{r}F0 (F forward)" for r in range(P)}
    assert "microbatch %{customdata[2]}" in forward["hovertemplate"]


def test_backward_boxes_start_where_gpipe_puts_them(page):
    figure = page_figure(page)
    backward = traces_named(figure, "B backward", "lines")[0]
    x = decoded(backward["x"]).astype(float)
    rows = decoded(backward["y"])[0::4].astype(int)
    expected = sorted((r, b_start(P, M, r, i)) for r in range(P) for i in range(M))
    assert sorted(zip(rows.tolist(), x[0::4].tolist(), strict=True)) == expected


def test_one_trace_per_kind_not_per_action():
    small = viewer_figure([gpipe_timeline(P, 4)])
    large = viewer_figure([gpipe_timeline(P, 40)])
    pipeline = lambda fig: [t for t in fig.data if t.xaxis == "x"]  # noqa: E731
    assert len(pipeline(small)) == len(pipeline(large)) == 3  # F and B, and the image
    assert len(large.data[0].x) == 4 * P * 40


def test_each_action_carries_the_bytes_it_cached_and_freed():
    boxes = action_boxes(gpipe_timeline(P, M))
    per_stage = {0: LINEAR_BYTES + SECOND_BYTES, 1: LINEAR_BYTES + SECOND_BYTES}
    per_stage[P - 1] = LINEAR_BYTES + SECOND_BYTES + LOSS_EXTRA
    for kind, stage, cached in zip(boxes.kind, boxes.stage, boxes.bytes, strict=True):
        expected = per_stage[int(stage)]
        assert cached == (expected if kind == "F" else -expected)


def test_the_time_panels_share_one_axis_and_the_slider_moves_only_shapes(page):
    figure = page_figure(page)
    layout = figure["layout"]
    assert layout["xaxis2"]["matches"] == "x" and layout["xaxis3"]["matches"] == "x"
    frames = figure["frames"]
    assert len(frames) == SLIDER_FRAMES + 1
    assert all(set(frame) <= {"name", "layout"} for frame in frames)  # no copied data
    middle = frames[SLIDER_FRAMES // 2]["layout"]["shapes"]
    veil = [s for s in middle if s["type"] == "rect" and s.get("fillcolor") == "white"][0]
    span = frames[-1]["layout"]["shapes"][-1]["x0"]
    assert veil["x0"] == pytest.approx(span / 2)
    assert len(layout["sliders"][0]["steps"]) == SLIDER_FRAMES + 1


def test_pebble_spans_are_the_figures_counts():
    timeline = gpipe_timeline(P, M)
    data = page_data(viewer_page([timeline]))
    columns = unpack(data["blob"], data["columns"])
    rows = pebble_rows(timeline)
    expected = sorted((c.row, c.start, c.end, c.count) for c in row_counts(timeline, rows))
    counts = [k["title"].endswith("cached") for k in data["layers"][1]["kinds"]]
    mine = np.array(counts)[columns["pebble.kind"]]
    got = zip(
        *(columns[f"pebble.{name}"][mine].tolist() for name in ("lane", "start", "end", "value")),
        strict=True,
    )
    assert sorted(got) == expected


def test_memory_lines_are_the_rank_totals():
    timeline = gpipe_timeline(P, M)
    for steps in memory_steps(timeline, end=100.0):
        times, totals = timeline.rank_memory(steps.rank)
        assert steps.time.tolist() == [0.0, *times, 100.0]
        assert steps.bytes.tolist() == [0, *totals, totals[-1]]
        assert not steps.decimated


def test_decimation_keeps_every_bucket_extreme():
    rng = np.random.default_rng(0)
    value = np.cumsum(rng.integers(-5, 6, size=10 * MEMORY_POINTS))
    time = np.arange(len(value), dtype=float)
    kept_time, kept = _envelope(time, value, 500)
    assert len(kept) <= 4 * 500
    assert kept.max() == value.max() and kept.min() == value.min()
    assert kept_time[0] == 0 and kept_time[-1] == time[-1]
    assert np.all(np.diff(kept_time) > 0)


def test_count_bins_cover_every_count_once():
    assert count_bins(3) == [(1, 1), (2, 2), (3, 3)]
    bins = count_bins(300)
    covered = [c for low, high in bins for c in range(low, high + 1)]
    assert covered == list(range(1, 301))
    assert len(bins) <= 8


def test_predicted_against_measured_draws_both_runs_lane_by_lane():
    predicted = gpipe_timeline(P, M, scale=1.1e-3, time_unit="s", source="analytic")
    measured = gpipe_timeline(P, M, scale=1e-3, time_unit="s", source="ray")
    figure = viewer_figure([predicted, measured])
    lanes = {}
    for trace in figure.data:
        if trace.xaxis == "x" and trace.type == "scatter":
            y = np.asarray(trace.y, float)
            lanes.setdefault(trace.name.split()[0], set()).update(np.round(y, 2).tolist())
    assert lanes["predicted"] == {round(r - PAIR_OFFSET, 2) for r in range(P)}
    assert lanes["measured"] == {round(r + PAIR_OFFSET, 2) for r in range(P)}
    assert "error 10.0% (over)" in figure.layout.title.text
    assert figure.layout.xaxis.title.text == "time (ms)"


def test_a_pair_in_different_units_reads_as_shares_of_each_makespan():
    predicted = gpipe_timeline(P, M, time_unit="unit", source="analytic")
    measured = gpipe_timeline(P, M, scale=1e-3, time_unit="s", source="ray")
    figure = viewer_figure([predicted, measured])
    assert figure.layout.xaxis.title.text == "time (% of each run's makespan)"
    ends = [np.nanmax(t.x) for t in figure.data if t.xaxis == "x" and t.type == "scatter"]
    last_event = max(e.end for e in measured.events)  # the optimizer step ends the makespan
    share = 100 * last_event / measured.summary().makespan
    assert max(ends) == pytest.approx(share, rel=1e-6) and share < 100


def test_a_pair_of_different_configurations_is_one_sentence():
    with pytest.raises(PebbleError, match="not the same configuration: microbatches"):
        viewer_figure([gpipe_timeline(P, M), gpipe_timeline(P, M + 1)])
