"""Drawing a Timeline's figures into a staged output folder, for ``plot`` and ``simulate --out``.

Why one place: both commands draw the same kinds under the same ``--window``, and a run at
scale takes seconds per figure, so both show the same progress bar (tqdm on stderr, shown on a
terminal only: a pipe or a log file gets no bar).
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from simulator.cli.outputs import StagedOutput
from simulator.errors import PebbleError
from simulator.timeline import Timeline

TIME_AXIS = ("pebble", "pipeline", "memory", "grads")  # the kinds --window zooms


def figure_kinds(timeline: Timeline, kind: str = "all") -> list[str]:
    """The kinds ``--kind`` names for ``timeline``: one, or every kind it can draw (no
    breakdown for a Timeline written before whole-rank memory was recorded; ``step``, the
    step time per rank in parts, for every Timeline)."""
    kinds = [*TIME_AXIS, "breakdown", "step"] if kind == "all" else [kind]
    if kind == "all" and not timeline.meta.rank_memory:
        kinds.remove("breakdown")
    return kinds


def write_figures(
    out: StagedOutput, timeline: Timeline, kinds: list[str], window_text: str | None = None
) -> None:
    """Draw ``kinds`` of ``timeline`` into ``out`` (``pipeline.png``, ``pipeline.svg``, ...),
    the time-axis ones over ``--window`` ``window_text``."""
    import visualize  # start-up: matplotlib loads only for the commands that draw
    from visualize.window import parse_window

    if not timeline.events:
        raise PebbleError("the Timeline holds no compute events to draw.")
    window = parse_window(window_text, timeline)
    figures = {
        **visualize.FIGURES,
        "breakdown": visualize.breakdown_figure,
        "step": visualize.step_breakdown_figure,
    }
    with tqdm(kinds, desc="figures", unit="figure", file=sys.stderr, disable=None) as bar:
        for kind in bar:
            bar.set_postfix_str(kind)
            options = {"window": window} if kind in TIME_AXIS and window else {}
            visualize.save(figures[kind](timeline, **options), out.path(kind))


__all__ = ["TIME_AXIS", "figure_kinds", "write_figures"]
