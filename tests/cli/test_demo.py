"""`pebblesim demo` (the README's main command) writes its whole tour; here at a small size."""

from __future__ import annotations

import re

from simulator.cli import demo


def test_demo_writes_every_figure_and_a_report_whose_links_resolve(
    ray_session, monkeypatch, tmp_path
):
    monkeypatch.setattr(demo, "MODEL", "widths=2-32-32-32-32-32-32-32-32-3,dtype=float32")
    monkeypatch.setattr(demo, "ROWS_PER_MICROBATCH", 8)
    monkeypatch.setattr(demo, "STEPS", 2)
    report = demo.run_demo(tmp_path / "tour")
    text = report.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links, text
    for link in links:
        assert (report.parent / link).exists(), link
    for name in demo.DEMO_SCHEDULES:
        folder = tmp_path / "tour" / name
        for stem in ("pebble", "pipeline", "memory", "grads", "overlay"):
            assert (folder / f"{stem}.png").stat().st_size > 1000
        for data in ("timeline.json", "trace.json", "profile.json", "predicted_timeline.json"):
            assert (folder / data).exists()
    assert (tmp_path / "tour" / "1f1b" / "pebble.gif").exists()
    assert (tmp_path / "tour" / "compare.csv").read_text().count("\n") >= 4
    assert not list((tmp_path / "tour").glob(".pebblesim-staging-*"))
