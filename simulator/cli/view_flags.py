"""``pebblesim view``'s arguments (the command itself is ``simulator.cli.view``).

Why apart: the parser is built before anything heavy loads, so a command's flags live where
importing them costs nothing, and its work where numpy and plotly may load.
"""

from __future__ import annotations


def add_view(sub) -> None:
    view = sub.add_parser(
        "view",
        help="write a zoomable HTML viewer of a Timeline (or predicted against measured)",
    )
    view.add_argument(
        "timelines",
        nargs="+",
        metavar="TIMELINE.json",
        help="a Timeline, or two: the predicted one, then the measured one",
    )
    view.add_argument(
        "-o",
        "--output",
        metavar="FILE.html",
        help="page to write (default: the first Timeline's name with .html)",
    )


__all__ = ["add_view"]
