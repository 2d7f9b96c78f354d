"""The stretch of time a figure shows: the whole run, a pipeline phase, or two times.

Why: at real scale (hundreds of microbatches) the whole run is hundreds of actions per rank, and
a figure of the whole run shows its shape, not its actions. ``--window warmup|steady|cooldown``
zooms any time-axis figure on a phase of the first step; ``--window T0:T1`` on two times
(``12.5:13``, ``12.5s:13s``, ``200ms:350ms``; a bare number is in the Timeline's own unit).

The phases are read off the events of step 0, replica 0:

* **warm-up** runs from the step's first action until every rank has finished its first
  backward action (B, I or W): the pipeline fills and the first gradients flow back;
* **cool-down** runs from the earliest start of any rank's last forward action (from then on a
  rank only drains) until the step's last action ends;
* **steady** is what lies between. A schedule without one (GPipe: every forward before any
  backward) has no steady state, which is one sentence, not an empty figure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from simulator.errors import PebbleError
from simulator.timeline import PIPELINE_RULE, Timeline, backward_kinds, forward_kinds
from simulator.units import human_time

PHASES = ("warmup", "steady", "cooldown")
_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}
_TIME = re.compile(r"^\s*([-+0-9.eE]+)\s*(s|ms|us|µs)?\s*$")


@dataclass(frozen=True)
class TimeWindow:
    """``start`` to ``end`` in the Timeline's unit, and what to call it on a figure
    (``warm-up``, ``12.5 s – 13 s``)."""

    start: float
    end: float
    name: str

    def clip(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Which of the spans ``starts``..``ends`` overlap the window (a mask)."""
        return (ends > self.start) & (starts < self.end)

    @property
    def length(self) -> float:
        return self.end - self.start

    def note(self, unit: str) -> str:
        """``window: warm-up, 0 s – 3.2 s`` for a figure's title."""
        times = f"{human_time(self.start, unit)} – {human_time(self.end, unit)}"
        return f"window: {self.name}, {times}" if self.name != times else f"window: {times}"


def phase_bounds(timeline: Timeline) -> tuple[float, float, float, float]:
    """(step start, warm-up end, cool-down start, step end) of step 0, replica 0."""
    columns = timeline.events.columns()
    if not len(columns["start"]):
        raise PebbleError("the Timeline holds no compute events, so it has no phases.")
    mine = (columns["step"] == 0) & (columns["replica"] == 0)
    starts, ends = columns["start"][mine], columns["end"][mine]
    ranks, kinds = columns["rank"][mine], columns["kind"][mine]
    backward = np.isin(kinds, list(backward_kinds(PIPELINE_RULE)))
    forward = np.isin(kinds, list(forward_kinds(PIPELINE_RULE)))
    warm_end, cool_start = float(starts.min()), float(ends.max())
    for rank in np.unique(ranks):
        here = ranks == rank
        if (here & backward).any():
            warm_end = max(warm_end, float(ends[here & backward].min()))
        if (here & forward).any():
            cool_start = min(cool_start, float(starts[here & forward].max()))
    return float(starts.min()), warm_end, cool_start, float(ends.max())


def parse_window(text: str | None, timeline: Timeline) -> TimeWindow | None:
    """The window ``text`` names for ``timeline`` (None: the whole run). A mistake is one
    sentence (PebbleError)."""
    if text is None or text.strip() in ("", "all"):
        return None
    text = text.strip().lower()
    if text in ("warm-up", "cool-down"):
        text = text.replace("-", "")
    if text in PHASES:
        return _phase(text, timeline)
    if ":" not in text:
        raise PebbleError(
            f"--window {text!r} is not warmup, steady, cooldown or T0:T1 (e.g. 12.5s:13s)."
        )
    first, second = text.split(":", 1)
    start, end = _time(first, timeline), _time(second, timeline)
    if not end > start:
        raise PebbleError(f"--window {text!r} ends before it starts; give T0:T1 with T0 < T1.")
    unit = timeline.time_unit
    return TimeWindow(start, end, f"{human_time(start, unit)} – {human_time(end, unit)}")


def _time(text: str, timeline: Timeline) -> float:
    match = _TIME.match(text)
    value = None
    if match:
        try:
            value = float(match.group(1))
        except ValueError:
            value = None
    if value is None or not np.isfinite(value):
        raise PebbleError(f"--window time {text.strip()!r} is not a number (e.g. 12.5, 12.5s).")
    suffix = match.group(2)
    if suffix is None:
        return value
    if timeline.time_unit != "s":
        raise PebbleError(
            f"--window time {text.strip()!r} has a unit, but this Timeline counts in "
            f"{timeline.time_unit}s; give bare numbers."
        )
    return value * _SECONDS[suffix]


def _phase(name: str, timeline: Timeline) -> TimeWindow:
    start, warm_end, cool_start, end = phase_bounds(timeline)
    unit = timeline.time_unit
    if name == "warmup":
        return TimeWindow(start, warm_end, "warm-up")
    if name == "cooldown":
        return TimeWindow(cool_start, end, "cool-down")
    if not cool_start > warm_end:
        raise PebbleError(
            f"{timeline.meta.schedule} has no steady state here: its warm-up ends at "
            f"{human_time(warm_end, unit)}, after its cool-down begins at "
            f"{human_time(cool_start, unit)}; try --window warmup, cooldown or T0:T1."
        )
    return TimeWindow(warm_end, cool_start, "steady state")


__all__ = ["PHASES", "TimeWindow", "parse_window", "phase_bounds"]
