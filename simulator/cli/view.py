"""``pebblesim view``: one Timeline (or a predicted and a measured one) as a zoomable HTML page.

Why a command of its own: ``plot`` writes still figures for a report; ``view`` writes the one
page a person explores (zoom, pan, hover, play), and it opens from disk with no server and no
network, so it can be mailed or attached to an issue (``visualize.viewer``).
"""

from __future__ import annotations

from pathlib import Path

from simulator.cli.outputs import write_output_file
from simulator.errors import PebbleError
from simulator.timeline import Timeline


def output_name(args) -> Path:
    """``-o``, else ``timeline.html`` beside ``timeline.json``."""
    if args.output:
        return Path(args.output)
    return Path(args.timelines[0]).with_suffix(".html")


def cmd_view(args) -> int:
    if len(args.timelines) > 2:
        raise PebbleError(
            f"view takes one Timeline, or two (predicted, then measured); got "
            f"{len(args.timelines)}."
        )
    target = output_name(args)
    if target.suffix.lower() not in (".html", ".htm"):
        raise PebbleError(f"-o {target} is not an .html file name; give e.g. {target.stem}.html.")
    if any(Path(name).resolve() == target.resolve() for name in args.timelines):
        raise PebbleError(f"-o {target} would overwrite the Timeline it reads.")
    timelines = [Timeline.load(name) for name in args.timelines]
    for name, timeline in zip(args.timelines, timelines, strict=True):
        if not len(timeline.events):
            raise PebbleError(f"{name} holds no compute events to view.")
    from visualize.viewer import viewer_html  # start-up: plotly loads only for this command

    write_output_file(target, viewer_html(timelines))
    print(target)
    return 0


__all__ = ["cmd_view", "output_name"]
