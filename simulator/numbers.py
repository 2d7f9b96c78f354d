"""Every number a user gives pebblesim, checked in one place.

Why: a value such as ``nan``, ``inf`` or ``99999999999999999999999`` is accepted by ``float`` and
``int`` and then travels far before it does harm (a 0 % bubble, a run that allocates gigabytes,
``NaN`` in ``--json``). The library's parsers and the CLI's flag types refuse it at the door in
one sentence that names the limit; the limits are the named constants here, and README's
"Limits and safety" lists them.
"""

from __future__ import annotations

import math

from simulator.errors import PebbleError

# Sizes. Each is far beyond what a simulator run on one machine is useful for, and low enough that
# what the value sizes (one actor, one Timeline row or one list per unit) cannot exhaust a machine
# before a finer check sees it. Raise one here if a real use needs more.
MAX_RANKS = 100_000  # pipeline ranks: one Ray actor (train) or one Timeline row block each
MAX_MICROBATCHES = 1_000_000  # per step: the validator keeps a list per (stage, microbatch)
MAX_CHUNKS = 64  # stages per rank: interleaved schedules use 2-8 in practice
MAX_STEPS = 100_000  # optimizer steps: every step is simulated or trained in full
MAX_TP = 1024  # tensor-parallel degree: no node has more GPUs than this
MAX_DP = 1024  # data-parallel replicas: each is a full pipeline of actors under train
MAX_BATCH_SIZE = 100_000_000  # rows per step: the data set of one step is held in memory
MAX_RETRIES = 1000  # restarts after a rank dies: each restarts a whole step
MAX_WORKERS = 64  # advise --jobs: each worker is a fork of the search, with its own caches

# Real values. Times are seconds (measured costs) or units (unit costs); 1e9 is 30 years, so any
# makespan the simulator sums from them stays finite.
MAX_TIME = 1e9
MAX_STEP_TIMEOUT = 7 * 24 * 3600.0  # one week; Ray's wait converts the timeout to milliseconds
MAX_LEARNING_RATE = 100.0  # every optimizer here diverges at once far below this
MAX_RATE = 1e21  # FLOP/s or bytes/s (--hardware): a zetta-unit per second is beyond any machine

SHOWN_CHARS = 40  # at most this much of a bad value is quoted back


def _shown(text: str) -> str:
    """The value quoted back to the user, cut short: a 100,000-digit number is not repeated."""
    text = str(text)
    return repr(text) if len(text) <= SHOWN_CHARS else repr(text[:SHOWN_CHARS]) + "..."


def parse_int(text: str, *, minimum: int = 1, maximum: int, limit: str = "") -> int:
    """An integer in ``[minimum, maximum]``; ``limit`` names the constant for the message."""
    cleaned = str(text).strip()
    kind = "positive integer" if minimum == 1 else f"integer of at least {minimum}"
    article = "a" if minimum == 1 else "an"
    digits = cleaned.removeprefix("+")
    if digits.isdigit() and len(digits.lstrip("0")) > len(str(maximum)):
        value = None  # too many digits: beyond the limit, and int() might refuse it
    else:
        try:
            value = int(cleaned)
        except ValueError:
            raise PebbleError(f"expected {article} {kind}, got {_shown(text)}.") from None
        if value < minimum:
            raise PebbleError(f"expected {article} {kind}, got {value}.")
    if value is None or value > maximum:
        named = f" ({limit} in simulator/numbers.py)" if limit else ""
        raise PebbleError(f"got {_shown(text)}, above pebblesim's limit of {maximum}{named}.")
    return value


def parse_float(
    text: str,
    *,
    minimum: float = 0.0,
    maximum: float = MAX_TIME,
    allow_minimum: bool = True,
    what: str = "a number",
) -> float:
    """A finite real number in ``[minimum, maximum]`` (``(minimum, maximum]`` when
    ``allow_minimum`` is false). NaN and infinities are refused by name."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise PebbleError(f"expected {what}, got {_shown(text)}.") from None
    if not math.isfinite(value):
        raise PebbleError(f"expected {what}, got {_shown(text)}, which is not a finite number.")
    if value < minimum or (value == minimum and not allow_minimum):
        bound = f"of at least {minimum:g}" if allow_minimum else f"above {minimum:g}"
        raise PebbleError(f"expected {what} {bound}, got {value:g}.")
    if value > maximum:
        raise PebbleError(f"expected {what} of at most {maximum:g}, got {value:g}.")
    return value
