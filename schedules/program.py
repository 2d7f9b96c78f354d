"""A rank's action list under construction, with a microbatch counter per (stage, kind).

Why: schedules such as ZB-V and DualPipeV are written as "next forward of chunk 0, next input
backward of chunk 1, oldest deferred weight backward, ..." rather than with explicit microbatch
numbers; the counters make that phrasing direct and keep each (stage, kind) in microbatch order.
"""

from __future__ import annotations

from schedules.actions import Action
from schedules.dependencies import Kind


class RankProgram:
    """Appends actions for one rank, numbering microbatches per (stage, kind) in order.

    ``B`` advances the ``I`` and ``W`` counters together, so a family may finish some
    microbatches with a full backward and others with ``I`` + ``W``. Every ``I`` leaves a
    deferred ``W``; ``add("W")`` runs the stage's next one, ``add_oldest_weight`` the oldest on
    the rank. ``limit`` drops actions whose microbatch is out of range, which lets a generator be
    written for "enough" microbatches and then cut to the real count.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.actions: list[Action] = []
        self.limit = limit
        self._next: dict[tuple[int, str], int] = {}
        # (stage, microbatch) with I placed and W not, oldest first (a dict keeps insertion order)
        self._deferred: dict[tuple[int, int], None] = {}

    def count(self, stage_index: int, kind: str) -> int:
        """How many actions of this kind this stage has been given (its next microbatch)."""
        return self._next.get((stage_index, "I" if kind == "B" else kind), 0)

    def add(self, stage_index: int, kind: str) -> None:
        """The next microbatch of ``kind`` on ``stage_index``."""
        counters = self._next
        key = (stage_index, "I" if kind == "B" else kind)
        microbatch_index = counters.get(key, 0)
        counters[key] = microbatch_index + 1
        if kind == "B":
            counters[(stage_index, "W")] = microbatch_index + 1
        elif kind == "I":
            self._deferred[(stage_index, microbatch_index)] = None
        elif kind == "W":
            del self._deferred[(stage_index, microbatch_index)]
        if self.limit is None or microbatch_index < self.limit:
            self.actions.append(Action(stage_index, Kind(kind), microbatch_index))

    def add_oldest_weight(self) -> bool:
        """Run the oldest deferred ``W`` on this rank; False (and nothing added) if none."""
        if not self._deferred:
            return False
        stage_index, microbatch_index = next(iter(self._deferred))
        del self._deferred[(stage_index, microbatch_index)]
        self._next[(stage_index, "W")] = microbatch_index + 1
        if self.limit is None or microbatch_index < self.limit:
            self.actions.append(Action(stage_index, Kind.W, microbatch_index))
        return True
