"""pebblesim.schedules: the action IR, one generator per schedule family, the validator, CSV I/O."""

from schedules.actions import KINDS, Action, Schedule
from schedules.csv_io import read_csv, schedule_to_csv, write_csv
from schedules.dependencies import (
    PIPELINE_RULE,
    DependencyRule,
    Display,
    Flow,
    Kind,
    KindRule,
    Need,
    Work,
)
from schedules.errors import PebbleError, ScheduleError
from schedules.registry import SCHEDULES, build_schedule, canonical_name, list_schedules
from schedules.validate import DryRun, validate

__all__ = [
    "KINDS",
    "PIPELINE_RULE",
    "SCHEDULES",
    "Action",
    "DependencyRule",
    "Display",
    "DryRun",
    "Flow",
    "Kind",
    "KindRule",
    "Need",
    "PebbleError",
    "Schedule",
    "ScheduleError",
    "Work",
    "build_schedule",
    "canonical_name",
    "list_schedules",
    "read_csv",
    "schedule_to_csv",
    "validate",
    "write_csv",
]
