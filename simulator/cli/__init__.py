"""The ``pebblesim`` command line: the only code that prints or draws figures.

Every error a user can cause is a PebbleError, printed as one sentence with a non-zero exit;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

from simulator.cli import commands
from simulator.cli.parser import build_parser
from simulator.errors import PebbleError


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return getattr(commands, f"cmd_{args.command}")(args)
    except PebbleError as exc:
        print(f"pebblesim: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pebblesim: interrupted", file=sys.stderr)
        return 130


__all__ = ["main"]
