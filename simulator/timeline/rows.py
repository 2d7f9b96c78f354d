"""The Timeline's row types, and the table that holds them as columns.

Why columns: a predicted run at p=128, m=1024 has half a million actions and a million cache
changes. One Python object per row made the Timeline the slowest and largest part of a
simulation. A ``RowTable`` keeps numpy columns when an executor builds it in bulk, and a list of
rows when code appends one at a time; either way it reads as a sequence of the row type, and
``columns()`` gives the arrays that summaries compute on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import numpy as np


class ComputeEvent(NamedTuple):
    rank: int
    stage: int
    kind: str
    microbatch: int
    step: int
    start: float
    end: float
    replica: int = 0


class CommEvent(NamedTuple):
    src_rank: int
    dst_rank: int
    stage: int
    kind: str
    microbatch: int
    step: int
    start: float
    end: float
    bytes: int
    replica: int = 0


class CacheChange(NamedTuple):
    time: float
    rank: int
    layer: int
    microbatch: int
    step: int
    bytes: int
    replica: int = 0


class GradReady(NamedTuple):
    layer: int
    step: int
    time: float
    replica: int = 0


class AllReduce(NamedTuple):
    layer: int
    step: int
    start: float
    end: float


class RecomputeSpan(NamedTuple):
    """A recompute sub-span inside a backward (I or B) action of (rank, stage, microbatch)."""

    rank: int
    stage: int
    microbatch: int
    step: int
    start: float
    end: float
    replica: int = 0


class OffloadSpan(NamedTuple):
    """A host-link copy of one microbatch's offloaded activations on (rank, stage): ``offload``
    (device to host, after its forward) or ``prefetch`` (host to device, before its backward),
    with its bytes; or a ``wait``: the backward held back because its prefetch had not ended
    (exposed transfer time, 0 bytes). Copies run on their own streams beside the compute."""

    rank: int
    stage: int
    kind: str
    microbatch: int
    step: int
    start: float
    end: float
    bytes: int
    replica: int = 0


class ActionCpu(NamedTuple):
    """CPU seconds the thread of one action (rank, stage, kind, microbatch) ran: the action's
    *work*. On a measured run with shared cores an action's span is its work plus the time it
    waited for a core; the difference is the contention. A prediction with shared cores writes
    each action's work (its cost) here, so the two compare part by part."""

    rank: int
    stage: int
    kind: str
    microbatch: int
    step: int
    cpu: float
    replica: int = 0


class OptimizerStep(NamedTuple):
    step: int
    start: float
    end: float


_TEXT_FIELDS = {"kind"}


class RowTable(Sequence):
    """Rows of one type, stored as a list or as numpy columns, converted on demand."""

    def __init__(self, row_type: type, rows: Iterable | None = None) -> None:
        self.row_type = row_type
        self._rows: list | None = list(rows) if rows is not None else []
        self._columns: dict[str, np.ndarray] | None = None

    @classmethod
    def from_columns(cls, row_type: type, columns: dict[str, np.ndarray]) -> RowTable:
        """A table over ``columns`` (one array per field; missing defaulted fields are 0)."""
        table = cls(row_type)
        length = len(next(iter(columns.values()))) if columns else 0
        table._columns = {
            name: np.asarray(columns[name]) if name in columns else np.zeros(length, dtype=int)
            for name in row_type._fields
        }
        table._rows = None
        return table

    # ---------------------------------------------------------------- storage
    def rows(self) -> list:
        if self._rows is None:
            lists = [self._columns[name].tolist() for name in self.row_type._fields]
            make = tuple.__new__
            row_type = self.row_type
            self._rows = [make(row_type, values) for values in zip(*lists, strict=True)]
        return self._rows

    def columns(self) -> dict[str, np.ndarray]:
        """One numpy array per field (strings for ``kind``)."""
        if self._columns is None:
            rows = self._rows
            self._columns = {
                name: np.array(
                    [row[i] for row in rows],
                    dtype=str if name in _TEXT_FIELDS else (float if not rows else None),
                )
                for i, name in enumerate(self.row_type._fields)
            }
        return self._columns

    def _changed(self) -> list:
        rows = self.rows()
        self._columns = None
        return rows

    # ---------------------------------------------------------------- list behaviour
    def append(self, row) -> None:
        self._changed().append(row)

    def extend(self, rows: Iterable) -> None:
        self._changed().extend(rows)

    def sort(self, **kwargs) -> None:
        self._changed().sort(**kwargs)

    def __len__(self) -> int:
        if self._rows is not None:
            return len(self._rows)
        return len(next(iter(self._columns.values()))) if self._columns else 0

    def __getitem__(self, index):
        return self.rows()[index]

    def __iter__(self) -> Iterator:
        return iter(self.rows())

    def __eq__(self, other) -> bool:
        if isinstance(other, RowTable):
            other = other.rows()
        return self.rows() == list(other)

    def __repr__(self) -> str:
        return f"RowTable({self.row_type.__name__}, {len(self)} rows)"

    def to_dicts(self) -> list[dict]:
        """The rows as JSON-ready dicts (from the columns when there are any)."""
        fields = self.row_type._fields
        if self._rows is not None:
            return [dict(zip(fields, row, strict=True)) for row in self._rows]
        lists = [self._columns[name].tolist() for name in fields]
        return [dict(zip(fields, values, strict=True)) for values in zip(*lists, strict=True)]
