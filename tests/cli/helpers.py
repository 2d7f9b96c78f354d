"""What several CLI tests share: running ``main`` quietly, and the flags a command takes."""

from __future__ import annotations

import contextlib
import io

from simulator.cli import main
from simulator.cli.parser import build_parser


def quiet_main(argv) -> tuple[int, str]:
    """``pebblesim ARGV``'s exit code and what it printed on stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    return code, out.getvalue()


def flags_of(command: str) -> set[str]:
    """Every option string ``command`` accepts."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {flag for action in sub._actions for flag in action.option_strings}
