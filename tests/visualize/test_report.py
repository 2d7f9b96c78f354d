"""The Markdown report: headings, embedded figures with captions, relative links."""

from __future__ import annotations

import pytest

from simulator.errors import PebbleError
from simulator.timeline import Timeline
from visualize import (
    FIGURES,
    animate_pebbles,
    compare_figure,
    comparison_rows,
    format_table,
    save,
    write_report,
)
from visualize.report import Section


def test_report_embeds_figures_with_captions(tmp_path, gpipe):
    figures = tmp_path / "figures"
    sections = []
    for kind, draw in FIGURES.items():
        png, _svg = save(draw(gpipe), figures / kind)
        sections.append(Section(kind.title(), png, f"The {kind} figure."))
    sections.append(("Table", None, "", "| a | b |\n|---|---|\n| 1 | 2 |"))
    sections.append({"title": "Notes", "text": "Made by a test."})
    path = write_report(tmp_path, sections, title="Demo", intro="What this is.")
    text = path.read_text()
    assert path == tmp_path / "report.md"
    assert text.startswith("# Demo\n\nWhat this is.\n")
    for kind in FIGURES:
        assert f"## {kind.title()}" in text
        assert f"![The {kind} figure.](figures/{kind}.png)" in text
        assert f"*The {kind} figure.*" in text
    assert "| 1 | 2 |" in text and "## Notes" in text and "Made by a test." in text


def test_missing_figure_is_an_error(tmp_path):
    with pytest.raises(PebbleError, match="does not exist"):
        write_report(tmp_path, [Section("Gone", tmp_path / "nope.png")])


def test_every_cli_figure_renders(tmp_path, measured):
    assert set(FIGURES) == {"pebble", "pipeline", "memory", "grads"}
    for kind, draw in FIGURES.items():
        png, svg = save(draw(measured), tmp_path / kind)
        assert png.stat().st_size > 10_000 and svg.stat().st_size > 10_000


def test_an_empty_run_still_draws(tmp_path):
    empty = Timeline(meta={"ranks": 2, "schedule": "none", "microbatches": 1, "time_unit": "s"})
    for draw in FIGURES.values():
        assert draw(empty).axes
    assert compare_figure({"none": empty}).axes
    assert "none" in format_table(comparison_rows({"none": empty}))
    animate_pebbles(empty, tmp_path / "empty.gif", frames=3)
