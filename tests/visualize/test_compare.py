"""Comparing schedules: rows from the summaries, three table styles, one point per schedule."""

from __future__ import annotations

import csv
import io

import pytest

from tests.visualize.synthetic import gpipe_timeline
from visualize import human_bytes
from visualize.compare import compare_figure
from visualize.compare_table import comparison_rows, format_table


@pytest.fixture
def named():
    return {
        "gpipe-3x4": gpipe_timeline(3, 4),
        "gpipe-3x8": gpipe_timeline(3, 8),
        "gpipe-4x4": gpipe_timeline(4, 4),
    }


def test_rows_match_the_summaries(named):
    rows = comparison_rows(named)
    assert [r["schedule"] for r in rows] == list(named)
    for row, timeline in zip(rows, named.values(), strict=True):
        summary = timeline.summary()
        assert row["makespan"] == summary.makespan
        assert row["bubble_percent"] == pytest.approx(summary.bubble_fraction * 100)
        assert row["peak_bytes"] == [r.peak_activation_bytes for r in summary.per_rank]
        assert row["peak_bytes_max"] == max(row["peak_bytes"])
        assert row["peak_inflight"] == max(r.peak_inflight_microbatches for r in summary.per_rank)
    assert comparison_rows(list(named.items())) == rows  # pairs work too


def test_text_table_is_aligned(named):
    text = format_table(comparison_rows(named))
    lines = text.splitlines()
    assert len(lines) == 2 + len(named)
    assert lines[0].split()[:2] == ["schedule", "makespan"]
    assert set(lines[1]) <= {"-", " "}
    # right-aligned numeric columns end in the same place on every line
    bubble_end = lines[0].index("bubble %") + len("bubble %")
    for line in lines[2:]:
        assert line[bubble_end - 1].isdigit() and line[bubble_end] == " "
    rows = comparison_rows(named)
    assert human_bytes(rows[0]["peak_bytes_max"]) in lines[2]


def test_csv_keeps_raw_numbers(named):
    rows = comparison_rows(named)
    parsed = list(csv.DictReader(io.StringIO(format_table(rows, "csv"))))
    assert [p["schedule"] for p in parsed] == list(named)
    for p, row in zip(parsed, rows, strict=True):
        assert int(p["peak_bytes_max"]) == row["peak_bytes_max"]
        assert [int(b) for b in p["peak_bytes_per_rank"].split(";")] == row["peak_bytes"]
        assert float(p["bubble_percent"]) == pytest.approx(row["bubble_percent"], abs=1e-3)
        assert int(p["peak_inflight"]) == row["peak_inflight"]


def test_markdown_table(named):
    lines = format_table(comparison_rows(named), "markdown").splitlines()
    assert len(lines) == 2 + len(named)
    assert all(line.startswith("|") and line.endswith("|") for line in lines)
    assert lines[1].startswith("|---|")


def test_unknown_style_is_refused(named):
    with pytest.raises(ValueError, match="style"):
        format_table(comparison_rows(named), "html")


def test_scatter_has_one_labelled_point_per_schedule(named):
    fig = compare_figure(named)
    ax = fig.axes[0]
    points = {c.get_gid(): c.get_offsets()[0] for c in ax.collections}
    rows = {r["schedule"]: r for r in comparison_rows(named)}
    assert sorted(points) == sorted(f"point:{name}" for name in named)
    for name, row in rows.items():
        x, y = points[f"point:{name}"]
        assert x == pytest.approx(row["bubble_percent"])
        assert y == row["peak_bytes_max"]
    assert sorted(t.get_text() for t in ax.texts) == sorted(named)
    assert "bubble" in ax.get_xlabel() and "memory" in ax.get_ylabel()
