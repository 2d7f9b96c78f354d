"""The ``pebblesim`` command line: the only code that prints or draws figures.

Every error a user can cause is a PebbleError, printed as one sentence with a non-zero exit;
anything else is a bug and keeps its traceback. SIGINT, SIGTERM and SIGHUP at any moment give one
sentence and exit 130, 143 or 129 after the run's staging and its Ray are cleaned up
(``simulator.cli.signals``); a full disk is one sentence naming the file.
"""

from __future__ import annotations

import os
import signal
import sys

from simulator.cli.outputs import DISK_FULL, disk_full_error
from simulator.cli.parser import build_parser
from simulator.cli.signals import SignalGuard, exit_code, reap_abandoned_runs
from simulator.errors import PebbleError


def _error(message: object) -> int:
    print(f"pebblesim: error: {message}", file=sys.stderr)
    return 1


def _run(argv: list[str] | None, guard: SignalGuard) -> int:
    try:
        args = build_parser().parse_args(argv)
        # Imports run to their end with a signal held, not raised: raised inside an import it
        # can land where Python only reports it ("Exception ignored in ..."), then it is raised
        # on the way out, a second or two later at most.
        with guard.held():
            guard.output_folder = getattr(args, "out", None)
            reap_abandoned_runs()  # what a run killed with SIGKILL left of its local Ray
            if hasattr(args, "address"):  # the commands with --address are the ones using Ray
                guard.prepare_ray()
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


def main(argv: list[str] | None = None) -> int:
    with SignalGuard() as guard:
        code = _run(argv, guard)
    if guard.signum is not None:
        guard.say()
        return exit_code(guard.signum)
    return code


__all__ = ["main"]
