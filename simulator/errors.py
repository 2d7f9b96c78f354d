"""The one exception type for mistakes a user can make (bad sizes, bad specs, bad schedules).

Why: the CLI turns exactly this type into one clear sentence and a non-zero exit; anything else
is a bug in pebblesim and is allowed to show its traceback. It is defined in ``schedules`` (the
bottom layer, which imports nothing of the project) and re-exported here.
"""

from schedules.errors import PebbleError

__all__ = ["PebbleError"]
