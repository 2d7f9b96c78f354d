"""Units, titles and saving shared by every figure."""

from __future__ import annotations

import pytest

from tests.visualize.synthetic import gpipe_timeline
from visualize import human_bytes, save
from visualize.pipeline import pipeline_figure
from visualize.style import byte_unit, format_time, run_title, time_axis


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (33792, "33.0 KiB"),
        (3 * 1024**2 // 2, "1.5 MiB"),
        (5 * 1024**3, "5.0 GiB"),
    ],
)
def test_human_bytes(n, text):
    assert human_bytes(n) == text


def test_byte_unit_picks_the_largest_unit_below_1024():
    assert byte_unit(1000) == (1.0, "B")
    assert byte_unit(2048) == (1024.0, "KiB")
    assert byte_unit(3 * 1024**2) == (1024.0**2, "MiB")


@pytest.mark.parametrize(
    ("unit", "span", "expected"),
    [
        ("unit", 33.0, (1.0, "time (units)")),
        ("s", 12.0, (1.0, "time (s)")),
        ("s", 0.287, (1e3, "time (ms)")),
        ("s", 0.0004, (1e6, "time (µs)")),
    ],
)
def test_time_axis_reads_short_runs_in_ms(unit, span, expected):
    assert time_axis(unit, span) == expected


def test_format_time():
    assert format_time(33.0, "unit") == "33 units"
    assert format_time(1.234, "s") == "1.23 s"
    assert format_time(0.0269, "s") == "26.9 ms"
    assert format_time(4.5e-5, "s") == "45 µs"


def test_run_title_names_schedule_sizes_and_source():
    title = run_title(gpipe_timeline(3, 4, steps=2, dp=2, source="ray"), "Chart")
    assert title.startswith("Chart — gpipe")
    for part in ("3 ranks", "4 microbatches", "2 steps", "dp=2", "measured on Ray"):
        assert part in title


def test_save_writes_png_and_svg(tmp_path, gpipe):
    paths = save(pipeline_figure(gpipe), tmp_path / "sub" / "chart")
    assert [p.name for p in paths] == ["chart.png", "chart.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in paths[1].read_text()[:500]
