"""The ``pebblesim`` command line: the only code that prints or draws figures.

Every error a user can cause is a PebbleError, printed as one sentence with a non-zero exit;
anything else is a bug and keeps its traceback. SIGINT, SIGTERM and SIGHUP at any moment give one
sentence and exit 130, 143 or 129 after the run's staging and its Ray are cleaned up
(``simulator.cli.signals``, in force before anything but the standard library is imported); a
full disk is one sentence naming the file (``run_command``).
"""

from __future__ import annotations

import signal

from simulator.cli.signals import SignalGuard, exit_code  # the standard library only: it is fast


def main(argv: list[str] | None = None) -> int:
    with SignalGuard() as guard:
        try:
            with guard.held():  # the rest of the CLI loads (numpy: seconds on a busy machine)
                from simulator.cli.run_command import run_command  # start-up: after the guard

            code = run_command(argv, guard)
        except KeyboardInterrupt:  # a signal held during the imports, raised after them
            guard.note(signal.SIGINT)
            code = exit_code(guard.signum)
    if guard.signum is not None:
        guard.say()
        return exit_code(guard.signum)
    return code


__all__ = ["main"]
