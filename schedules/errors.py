"""The one exception type for mistakes a user can make, and the schedule-specific kind of it.

Why here, at the bottom of the project: ``schedules`` is plain data and imports nothing of the
project, yet its errors must be the same type the CLI turns into one sentence. So the base
type lives here and ``simulator.errors`` re-exports it.
"""


class PebbleError(Exception):
    """A user-facing error: its message is one complete sentence. Anything else is a bug."""


class ScheduleError(PebbleError):
    """A schedule that cannot run: bad sizes, a missing or misplaced action, a deadlock."""
