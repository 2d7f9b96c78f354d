"""Deadlines that scale with how slow this machine is right now.

Why: a test that waits for something (a process to appear, a child to exit) needs a deadline so
that a bug fails it instead of hanging it, but a fixed number of seconds fails on a busy machine
(the suite once failed on a 2-core box at load 6-19 because "the moment to interrupt never came"
within a fixed 30 s). Here every deadline is a quiet machine's figure times ``slowdown()``: how
much longer than on a quiet machine a fresh Python takes to import Ray now, measured once per
test session. Tests wait on events; the deadline only bounds how long a broken one hangs.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time

QUIET_IMPORT = 1.0  # seconds `python -c "import ray"` takes on a quiet 2-core machine (0.7 s CPU)


@functools.cache
def slowdown() -> float:
    """How many times slower than a quiet machine this one is now (at least 1)."""
    began = time.monotonic()
    probe = subprocess.run([sys.executable, "-c", "import ray"], capture_output=True)
    took = time.monotonic() - began
    if probe.returncode != 0:  # no Ray here: the interpreter's own start-up is the measure
        return 1.0
    return max(1.0, took / QUIET_IMPORT)


def scaled(seconds: float) -> float:
    """``seconds`` on a quiet machine, as a deadline on this one now."""
    return seconds * slowdown()
