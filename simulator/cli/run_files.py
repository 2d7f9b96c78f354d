"""The files a run leaves in ``--out``: its Timeline, its Chrome trace, and for a measured run
its cost profile and the prediction made from it."""

from __future__ import annotations

from simulator.timeline import Timeline, save_chrome_trace


def write_timeline(out, timeline: Timeline, prefix: str = "") -> None:
    timeline.save(out.path(f"{prefix}timeline.json"))
    save_chrome_trace(timeline, out.path(f"{prefix}trace.json"))


def write_measured_run(out, result, predicted: Timeline, prefix: str = "") -> None:
    """A Ray run's files: measured Timeline and trace, cost profile, and the prediction."""
    write_timeline(out, result.timeline, prefix)
    result.profile.save(out.path(f"{prefix}profile.json"))
    predicted.save(out.path(f"{prefix}predicted_timeline.json"))
