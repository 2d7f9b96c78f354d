"""One command from its arguments to its exit code: parse, dispatch, and the errors a user can
cause as one sentence.

Why apart from ``simulator.cli``'s ``main``: this module imports the parser, the output helpers
and the error type, which pull in numpy (seconds on a busy machine); ``main`` installs the
signal guard first and imports this under it, so a signal at any moment after the interpreter
starts is the one sentence, never a traceback from inside an import.
"""

from __future__ import annotations

import os
import signal
import sys

from simulator.cli.outputs import DISK_FULL, disk_full_error
from simulator.cli.parser import build_parser
from simulator.cli.signals import SignalGuard, exit_code, reap_abandoned_runs
from simulator.errors import PebbleError

LOCAL_RAY = ("train", "demo")  # the commands that start a local Ray without --address


def _uses_ray(args) -> bool:
    """Whether the command runs on Ray: ``train`` and ``demo`` always (a local Ray without
    ``--address``), ``advise`` only on the cluster ``--address`` names (else its workers are
    this machine's processes, and starting Ray would only take a core from them)."""
    address = getattr(args, "address", None)
    return bool(address) or (hasattr(args, "address") and args.command in LOCAL_RAY)


def _error(message: object) -> int:
    print(f"pebblesim: error: {message}", file=sys.stderr)
    return 1


def run_command(argv: list[str] | None, guard: SignalGuard) -> int:
    try:
        args = build_parser().parse_args(argv)
        # Imports run to their end with a signal held, not raised: raised inside an import it
        # can land where Python only reports it ("Exception ignored in ..."), then it is raised
        # on the way out, a second or two later at most.
        with guard.held():
            guard.output_folder = getattr(args, "out", None)
            reap_abandoned_runs()  # what a run killed with SIGKILL left of its local Ray
            if _uses_ray(args):
                guard.prepare_ray(local=not args.address)
            from simulator.cli import commands  # start-up: numpy and more load under the guard

        return getattr(commands, f"cmd_{args.command}")(args)
    except PebbleError as exc:
        return _error(exc)
    except BrokenPipeError:  # the reader left (``| head``): stop quietly, as Unix tools do
        _silence_stdout()
        return 141
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        return _error(disk_full_error(exc))
    except KeyboardInterrupt:
        guard.note(signal.SIGINT)  # a plain Ctrl-C that did not pass through the guard
        return exit_code(guard.signum)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
