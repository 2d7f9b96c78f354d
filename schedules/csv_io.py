"""PyTorch's compute-only schedule CSV: one row per rank, one action per cell, like ``0F0``.

This is the layout ``torch.distributed.pipelining`` dumps and loads (``_dump_csv`` /
``_load_csv`` with format "compute_only"), so schedules move between the two tools unchanged.
Empty cells are allowed and ignored. The stage -> rank mapping is not stored: it is read from
the row each stage appears on, so loop (interleaved) and V layouts both round-trip.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from pathlib import Path

from schedules.actions import Action, Schedule, ScheduleError
from schedules.files import read_bounded


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


MAX_CSV_BYTES = 256 << 20  # a schedule file: about 30 million actions
MAX_INDEX = 10**9  # a stage or microbatch index in a cell
_MAX_CELL_CHARS = 40  # longer than any action with indices up to MAX_INDEX, plus spaces
_BOMS = (  # UTF-32 before UTF-16: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_csv(data: bytes, label: str) -> str:
    """The text of a CSV file's bytes: UTF-8, or UTF-8/16/32 with a byte-order mark (what
    spreadsheets write for "CSV UTF-8" and "Unicode text"). Anything else, such as Latin-1
    text or a binary file, is one ScheduleError naming the file and the first bad byte."""
    bom, encoding = next(((b, e) for b, e in _BOMS if data.startswith(b)), (b"", "utf-8"))
    nul = data.find(b"\0") if encoding == "utf-8" else -1
    if nul >= 0:
        raise ScheduleError(f"{label} is not a text CSV file (a NUL byte at offset {nul}).")
    try:
        text = data[len(bom) :].decode(encoding)
    except UnicodeDecodeError as exc:
        offset = len(bom) + exc.start
        raise ScheduleError(
            f"{label} is not a text CSV file (byte 0x{data[offset]:02x} at offset {offset} "
            f"is not {encoding.upper()}); save it as UTF-8."
        ) from None
    return _plain_text(text, label)


def _plain_text(text: str, label: str) -> str:
    """``text`` without a leading byte-order mark; a NUL character means a binary file."""
    text = text[1:] if text.startswith("\ufeff") else text
    nul = text.find("\0")
    if nul >= 0:
        raise ScheduleError(f"{label} is not a text CSV file (a NUL character at position {nul}).")
    return text


def _read_file(path: Path) -> bytes:
    """The bytes of a regular file or a pipe (not a directory or device), at most
    MAX_CSV_BYTES."""
    try:
        return read_bounded(
            path,
            f"schedule file {path}",
            "CSV",
            MAX_CSV_BYTES,
            "MAX_CSV_BYTES in schedules/csv_io.py",
            ScheduleError,
        )
    except OSError as exc:
        raise ScheduleError(f"cannot read schedule file {path} ({exc.strerror}).") from None


def _text_of(path_or_text: str | bytes | os.PathLike, name: str | None) -> tuple[str, str]:
    """(text, label): a path-like, or a one-line string that names a file (or ends in .csv or
    holds a path separator), is read from disk and decoded; bytes are decoded; any other string
    is the CSV itself. The label names the file in messages (``name`` for text or bytes)."""
    if isinstance(path_or_text, bytes):
        label = name or "schedule CSV"
        return decode_csv(path_or_text, label), label
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
        label = name or "schedule CSV"
        return _plain_text(str(path_or_text), label), label
    path = Path(path_or_text)
    return decode_csv(_read_file(path), str(path)), str(path)


def _parse_cell(cell: str, where: str) -> Action:
    """One action, with indices up to MAX_INDEX; ``where`` names the file, row and cell."""
    text = cell.strip()
    shown = repr(text) if len(text) <= _MAX_CELL_CHARS else repr(text[:_MAX_CELL_CHARS]) + "..."
    if len(text) > _MAX_CELL_CHARS:
        raise ScheduleError(
            f"{where}: {shown} ({len(text)} characters) is too long for an action; stage and "
            f"microbatch indices stop at {MAX_INDEX} (MAX_INDEX)."
        )
    try:
        action = Action.parse(text)
    except ScheduleError:
        raise ScheduleError(
            f"{where}: cannot read {shown} as an action; write it like 2F0 (stage, kind "
            "F/B/I/W, microbatch)."
        ) from None
    if action.stage_index > MAX_INDEX or action.microbatch_index > MAX_INDEX:
        raise ScheduleError(
            f"{where}: {shown} names an index over {MAX_INDEX} (MAX_INDEX); stage and "
            "microbatch indices stop there."
        )
    return action


def read_csv(
    path_or_text: str | bytes | os.PathLike, num_microbatches: int, name: str | None = None
) -> Schedule:
    """Read a compute-only CSV (a file path, the file's bytes, or the text) into a ``Schedule``.

    Row r (counting from 0) is rank r. The stage -> rank mapping comes from the row each stage
    appears on; a stage on two rows, or a gap in the stage numbers, is an error. The CSV does
    not say how many microbatches it covers: pass ``num_microbatches``, and ``validate`` will
    name any action that is missing or out of range for it. Files are UTF-8 (a byte-order mark
    is skipped) or UTF-16/32 with a byte-order mark; every error names the file (``name`` when
    text or bytes are given), the row and the cell.
    """
    text, label = _text_of(path_or_text, name)
    rows: list[list[Action]] = []
    stage_rows: dict[int, int] = {}
    reader = csv.reader(io.StringIO(text))
    try:
        for row_number, cells in enumerate(reader):
            actions = []
            for cell_number, cell in enumerate(cells):
                if not cell.strip():
                    continue
                action = _parse_cell(cell, f"{label} row {row_number}, cell {cell_number}")
                first_row = stage_rows.setdefault(action.stage_index, row_number)
                if first_row != row_number:
                    raise ScheduleError(
                        f"{label} row {row_number}, cell {cell_number}: stage "
                        f"{action.stage_index} ({action}) also appears on row {first_row}; a "
                        "stage lives on one rank."
                    )
                actions.append(action)
            rows.append(actions)
    except csv.Error as exc:
        raise ScheduleError(
            f"{label} line {reader.line_num}: not a CSV row ({str(exc).rstrip('.')})."
        ) from None
    while rows and not rows[-1]:
        rows.pop()  # trailing blank lines are not ranks
    if not rows:
        raise ScheduleError(f"{label} holds no actions.")
    stages = sorted(stage_rows)
    gap = next((s for s, stage in enumerate(stages) if s != stage), None)
    if gap is not None:
        raise ScheduleError(
            f"{label} has no action for stage {gap}; stages must be numbered "
            f"0..{stages[-1]} without gaps."
        )
    stage_to_rank = tuple(stage_rows[s] for s in stages)
    return Schedule(name or label, num_microbatches, stage_to_rank, rows)
