"""The per-rank grid that error messages show, cut to a window around the offending action.

Why a window: a schedule at p=128, m=1024 has thousands of actions per rank; an error needs the
neighbourhood of the problem, not ten thousand columns.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_COLUMNS = 12
MAX_ROWS = 12


def _window(total: int, size: int, centre: int) -> tuple[int, int]:
    if total <= size:
        return 0, total
    start = min(max(0, centre - size // 2), total - size)
    return start, start + size


def format_grid(
    rows: Sequence[Sequence[object]],
    mark: tuple[int, int] | None = None,
    max_columns: int | None = MAX_COLUMNS,
    max_rows: int | None = MAX_ROWS,
) -> str:
    """Rows of actions per rank (``schedule.actions``), positions as a header,
    ``mark=(rank, position)`` bracketed.

    Only ``max_columns`` positions around the mark (the start if there is none) and
    ``max_rows`` ranks around the marked rank are shown (None: all); elisions are ``...``.
    """
    longest = max((len(row) for row in rows), default=0)
    max_columns = longest if max_columns is None else max_columns
    max_rows = len(rows) if max_rows is None else max_rows
    mark_rank, mark_position = mark if mark is not None else (0, 0)
    first_column, last_column = _window(longest, max_columns, mark_position)
    first_rank, last_rank = _window(len(rows), max_rows, mark_rank)

    shown = [
        str(action)
        for row in rows[first_rank:last_rank]
        for action in row[first_column:last_column]
    ]
    cell = max((len(text) for text in shown), default=3) + 3  # room for [ ] and a space
    label = len(f"rank {len(rows) - 1}: ")
    lead = "... " if first_column > 0 else ""

    lines = [
        " " * label
        + " " * len(lead)
        + "".join(str(p).ljust(cell) for p in range(first_column, last_column)).rstrip()
    ]
    if first_rank > 0:
        lines.append(f"({first_rank} ranks above not shown)")
    for rank in range(first_rank, last_rank):
        row = rows[rank]
        cells = []
        for position in range(first_column, min(last_column, len(row))):
            text = str(row[position])
            if (rank, position) == mark:
                text = f"[{text}]"
            cells.append(text.ljust(cell))
        tail = " ..." if len(row) > last_column else ""
        lines.append(f"rank {rank}: ".ljust(label) + lead + "".join(cells).rstrip() + tail)
    if last_rank < len(rows):
        lines.append(f"({len(rows) - last_rank} ranks below not shown)")
    return "\n".join(lines)
