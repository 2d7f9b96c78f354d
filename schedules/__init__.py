"""pebblesim.schedules: the action IR, one generator per schedule family, the validator, CSV I/O."""

from schedules.actions import KINDS, Action, Schedule, ScheduleError
from schedules.csv_io import read_csv, schedule_to_csv, write_csv
from schedules.registry import SCHEDULES, build_schedule, canonical_name, list_schedules
from schedules.validate import validate

__all__ = [
    "KINDS",
    "SCHEDULES",
    "Action",
    "Schedule",
    "ScheduleError",
    "build_schedule",
    "canonical_name",
    "list_schedules",
    "read_csv",
    "schedule_to_csv",
    "validate",
    "write_csv",
]
