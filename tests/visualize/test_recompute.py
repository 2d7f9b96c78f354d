"""Activation recomputation in the figures: hatched pebbles exactly where a recompute span put a
pebble back, outlined checkpoints, dotted gaps, hatched R boxes inside their backward."""

from __future__ import annotations

import io

import pytest

from schedules.registry import build_schedule
from simulator.analytic.costs import unit_costs
from simulator.analytic.executor import simulate
from simulator.model.parse import parse_model
from simulator.model.partitioning import partition
from simulator.model.recompute import RecomputePolicy, plan_stages
from tests.visualize.synthetic import patches_with
from visualize.compare import compare_figure
from visualize.compare_table import comparison_rows, format_table
from visualize.pebble import pebble_figure
from visualize.pebble_data import pebble_intervals
from visualize.pipeline import pipeline_figure
from visualize.pipeline_data import pipeline_boxes, recompute_boxes
from visualize.recompute import recompute_pebbles
from visualize.rows import GROUP_ABOVE

MLP = "2-16-16-16-16-3"
GPT = "transformer:layers=4,hidden=16,heads=4,seq=8,vocab=96,dropout=0.1,dtype=float64"
# the math attention core: selective recompute drops and puts back its scores (a fused core has
# none, and selective draws nothing)
GPT_MATH = GPT + ",attention=math"


def run(policy: str, model: str = MLP, schedule: str = "1f1b", p: int = 2, m: int = 4):
    spec = parse_model(model)
    sch = build_schedule(schedule, p, m)
    parts = partition(spec, sch.num_stages)
    kwargs = {}
    if policy != "none":
        kwargs["recompute"] = plan_stages(RecomputePolicy.parse(policy), spec, parts)
    return simulate(sch, unit_costs(sch, parts), spec, parts, 8, **kwargs)


def recompute_rows(timeline) -> list:
    """Positive cache rows inside a recompute span of their rank, microbatch, step, replica."""
    spans = list(timeline.recompute)
    return [
        c
        for c in timeline.cache
        if c.bytes > 0
        and any(
            (s.rank, s.microbatch, s.step, s.replica) == (c.rank, c.microbatch, c.step, c.replica)
            and s.start <= c.time <= s.end
            for s in spans
        )
    ]


def hatched(fig) -> list:
    return [p for ax in fig.axes for p in ax.patches if p.get_hatch()]


def renders(fig) -> bool:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=60)
    return buffer.tell() > 1000


@pytest.fixture(scope="module")
def full():
    return run("full")


def test_a_hatched_pebble_per_recompute_cache_row(full):
    fig = pebble_figure(full)
    rows = recompute_rows(full)
    assert rows and renders(fig)
    marks = patches_with(fig, "recompute:")
    assert len(hatched(fig)) == len(marks) == len(rows)
    drawn = sorted(tuple(p.get_gid().split(":")[1:]) for p in marks)
    assert drawn == sorted((str(c.layer), str(c.microbatch), str(c.step)) for c in rows)
    # each put back at the row's time, and held until that pebble's lifetime ends
    for c in rows:
        (mark,) = [p for p in marks if p.get_gid() == f"recompute:{c.layer}:{c.microbatch}:0"]
        assert mark.get_x() == c.time


def test_no_hatching_without_recompute():
    plain = run("none")
    assert not len(plain.recompute)
    for fig in (pebble_figure(plain), pipeline_figure(plain)):
        assert not hatched(fig)
        assert not patches_with(fig, "recompute:") and not patches_with(fig, "checkpoint:")
        assert "recompute" not in fig.axes[0].get_title()
        assert not [t for t in fig.legends[0].get_texts() if "recomput" in t.get_text()]


def test_each_span_pops_one_checkpoint_kept_since_the_forward(full):
    recomputed, checkpoints = recompute_pebbles(full, pebble_intervals(full))
    assert len(recomputed) == len(recompute_rows(full))
    assert len(checkpoints) == len(full.recompute)  # full: one segment per span
    starts = {s.start for s in full.recompute}
    firsts = {}
    for p in recomputed:
        firsts[p.span_start] = min(firsts.get(p.span_start, p.layer), p.layer)
    for c in checkpoints:
        assert c.end in starts and c.start < c.end
        assert c.layer == firsts[c.span_start]  # the segment's first layer
    fig = pebble_figure(full)
    assert len(patches_with(fig, "checkpoint:")) == len(checkpoints)
    assert not any(p.get_hatch() for p in patches_with(fig, "checkpoint:"))


def test_dropped_layers_show_a_gap_until_recomputed(full):
    fig = pebble_figure(full)
    gaps = [
        line for ax in fig.axes for line in ax.lines if (line.get_gid() or "")[:8] == "dropped:"
    ]
    dropped = {int(line.get_gid().split(":")[1]) for line in gaps}
    kinds = {layer.index: layer.kind for layer in full.meta.layers}
    assert dropped and {kinds[layer] for layer in dropped} == {"relu"}
    # a dropped layer held nothing between its forward and the recompute that put it back
    intervals = pebble_intervals(full)
    for c in recompute_rows(full):
        if c.layer in dropped:
            lifetimes = [i for i in intervals if i[:2] == (c.layer, c.microbatch)]
            assert lifetimes and all(i.start >= c.time for i in lifetimes)


def test_legend_and_title_name_the_policy(full):
    fig = pebble_figure(full)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(label.startswith("recomputed") for label in labels)
    assert any(label.startswith("checkpoint") for label in labels)
    assert "recompute full" in fig.axes[0].get_title()


def test_pipeline_draws_an_r_box_inside_each_backward(full):
    fig = pipeline_figure(full)
    assert renders(fig)
    marks = patches_with(fig, "recompute:")
    assert len(marks) == len(hatched(fig)) == len(full.recompute) == len(recompute_boxes(full))
    backwards = [b for b in pipeline_boxes(full) if b.kind in "BI"]
    for r in recompute_boxes(full):
        (outer,) = [
            b
            for b in backwards
            if (b.row, b.stage, b.microbatch, b.step) == (r.row, r.stage, r.microbatch, r.step)
            and b.start <= r.start <= r.end <= b.end
        ]
        assert outer.kind == "B"
    gids = {p.get_gid() for p in marks}
    assert all(gid.split(":")[2][1] == "R" for gid in gids)
    assert "R (recompute) inside its backward" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert "recompute full" in fig.axes[0].get_title()


def test_zero_bubble_recomputes_inside_i():
    zb = run("full", schedule="zb-h1")
    backwards = {(b.rank, b.stage, b.microbatch): b for b in pipeline_boxes(zb) if b.kind == "I"}
    assert len(zb.recompute)
    for r in recompute_boxes(zb):
        outer = backwards[r.rank, r.stage, r.microbatch]
        assert outer.start <= r.start <= r.end <= outer.end
    assert len(hatched(pipeline_figure(zb))) == len(zb.recompute)


def test_selective_transformer_grouped_and_expanded():
    gpt = run("selective", GPT_MATH)
    rows = recompute_rows(gpt)
    kinds = {layer.index: layer.kind for layer in gpt.meta.layers}
    assert rows and {kinds[c.layer] for c in rows} == {"attention"}
    assert len(gpt.meta.layers) > GROUP_ABOVE
    expanded = pebble_figure(gpt, expand=True)
    assert len(hatched(expanded)) == len(rows)
    assert not patches_with(expanded, "checkpoint:")  # selective keeps q, k, v: no checkpoint
    grouped = pebble_figure(gpt)  # one row per block: a block's one attention core per span
    marks = patches_with(grouped, "recompute:")
    assert len(hatched(grouped)) == len(marks) == len(rows)
    assert {p.get_gid().split(":")[1][0] for p in marks} == {"B"}
    assert renders(grouped)
    assert "recompute selective" in grouped.axes[0].get_title()


def test_grouped_full_merges_a_block_span_into_one_mark():
    gpt = run("full", GPT)
    grouped = pebble_figure(gpt, expand=False)
    # full: each span re-runs one block, so one hatched mark per span on its block's row
    assert len(hatched(grouped)) == len(gpt.recompute)
    expanded = pebble_figure(gpt, expand=True)
    assert len(hatched(expanded)) == len(recompute_rows(gpt))


@pytest.fixture(scope="module")
def pairs(full):
    return [("1f1b", run("none")), ("1f1b", full), ("gpipe [full]", run("full", schedule="gpipe"))]


def test_compare_rows_name_each_schedule_policy_pair(pairs):
    rows = comparison_rows(pairs)
    assert [r["schedule"] for r in rows] == ["1f1b [none]", "1f1b [full]", "gpipe [full]"]
    assert [r["recompute"] for r in rows] == ["none", "full", "full"]
    assert rows[1]["makespan"] > rows[0]["makespan"]  # recomputation costs time
    assert rows[1]["peak_bytes_max"] < rows[0]["peak_bytes_max"]
    table = format_table(rows)
    assert "1f1b [none]" in table and "1f1b [full]" in table
    plain = comparison_rows([("1f1b", run("none"))])  # no policy anywhere: names as given
    assert plain[0]["schedule"] == "1f1b" and plain[0]["recompute"] == "none"


def test_compare_figure_colours_schedules_and_marks_policies(pairs):
    fig = compare_figure(pairs)
    assert renders(fig)
    ax = fig.axes[0]
    points = {c.get_gid(): c for c in ax.collections}
    assert sorted(points) == ["point:1f1b [full]", "point:1f1b [none]", "point:gpipe [full]"]
    colour = {gid: tuple(c.get_facecolor()[0]) for gid, c in points.items()}
    assert (
        colour["point:1f1b [none]"] == colour["point:1f1b [full]"] != colour["point:gpipe [full]"]
    )
    paths = {gid: c.get_paths()[0].vertices.shape for gid, c in points.items()}
    assert paths["point:1f1b [none]"] != paths["point:1f1b [full]"]  # circle vs square
    labels = sorted(t.get_text() for t in ax.texts)
    assert labels[0].startswith("1f1b [full] · ") and labels[0].endswith("units")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["1f1b", "gpipe", "none", "full"]
    assert "recompute" in ax.get_title()
