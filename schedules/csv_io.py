"""PyTorch's compute-only schedule CSV: one row per rank, one action per cell, like ``0F0``.

This is the layout ``torch.distributed.pipelining`` dumps and loads (``_dump_csv`` /
``_load_csv`` with format "compute_only"), so schedules move between the two tools unchanged.
Empty cells are allowed and ignored. The stage -> rank mapping is not stored: it is read from
the row each stage appears on, so loop (interleaved) and V layouts both round-trip.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from schedules.actions import Action, Schedule, ScheduleError


def schedule_to_csv(schedule: Schedule) -> str:
    """The CSV text of ``schedule``: row r lists rank r's actions in order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in schedule.actions:
        writer.writerow([str(action) for action in row])
    return buffer.getvalue()


def write_csv(schedule: Schedule, path: str | os.PathLike) -> None:
    """Write ``schedule`` to ``path`` in PyTorch's compute-only CSV layout."""
    Path(path).write_text(schedule_to_csv(schedule))


def _text_of(path_or_text: str | os.PathLike) -> tuple[str, str]:
    """(text, label): a path-like, or a one-line string that names a file (or ends in .csv or
    holds a path separator), is read from disk; any other string is the CSV itself."""
    if isinstance(path_or_text, os.PathLike):
        is_path = True
    else:
        one_line = "\n" not in path_or_text and "," not in path_or_text
        is_path = one_line and (
            os.path.isfile(path_or_text)
            or path_or_text.strip().endswith(".csv")
            or os.sep in path_or_text
        )
    if not is_path:
        return str(path_or_text), "schedule CSV"
    path = Path(path_or_text)
    try:
        return path.read_text(), str(path)
    except OSError as exc:
        raise ScheduleError(f"cannot read schedule file {path} ({exc.strerror}).") from None


def read_csv(
    path_or_text: str | os.PathLike, num_microbatches: int, name: str | None = None
) -> Schedule:
    """Read a compute-only CSV (a file path or the text itself) into a ``Schedule``.

    Row r (counting from 0) is rank r. The stage -> rank mapping comes from the row each stage
    appears on; a stage on two rows, or a gap in the stage numbers, is an error. The CSV does
    not say how many microbatches it covers: pass ``num_microbatches``, and ``validate`` will
    name any action that is missing or out of range for it.
    """
    text, label = _text_of(path_or_text)
    rows: list[list[Action]] = []
    stage_rows: dict[int, int] = {}
    for row_number, cells in enumerate(csv.reader(io.StringIO(text))):
        actions = []
        for cell_number, cell in enumerate(cells):
            if not cell.strip():
                continue
            try:
                action = Action.parse(cell)
            except ScheduleError:
                raise ScheduleError(
                    f"{label} row {row_number}, cell {cell_number}: cannot read {cell.strip()!r} "
                    "as an action; write it like 2F0 (stage, kind F/B/I/W, microbatch)."
                ) from None
            first_row = stage_rows.setdefault(action.stage_index, row_number)
            if first_row != row_number:
                raise ScheduleError(
                    f"{label} row {row_number}, cell {cell_number}: stage {action.stage_index} "
                    f"({action}) also appears on row {first_row}; a stage lives on one rank."
                )
            actions.append(action)
        rows.append(actions)
    while rows and not rows[-1]:
        rows.pop()  # trailing blank lines are not ranks
    if not rows:
        raise ScheduleError(f"{label} holds no actions.")
    num_stages = max(stage_rows) + 1
    for stage_index in range(num_stages):
        if stage_index not in stage_rows:
            raise ScheduleError(
                f"{label} has no action for stage {stage_index}; stages must be numbered "
                f"0..{num_stages - 1} without gaps."
            )
    stage_to_rank = tuple(stage_rows[s] for s in range(num_stages))
    return Schedule(name or label, num_microbatches, stage_to_rank, rows)
