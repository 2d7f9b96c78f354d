"""pebblesim.schedules: the action IR, one generator per schedule family, the validator, CSV I/O."""

from schedules.actions import KINDS, Action, Schedule, ScheduleError

__all__ = ["KINDS", "Action", "Schedule", "ScheduleError"]
