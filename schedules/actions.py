"""The action IR: what one rank does next, as data.

An action is ``(stage_index, kind, microbatch_index)`` printed the way PyTorch's
``torch.distributed.pipelining`` prints it: ``2F0`` is stage 2's forward of microbatch 0,
``1I3`` the input-gradient backward of microbatch 3 on stage 1, ``0W3`` its weight-gradient part,
``0B3`` a full backward. A schedule is ``{rank: [action, ...]}`` in execution order, plus an
explicit stage -> rank mapping. Nothing here runs anything: schedules are generated, validated,
printed, diffed, exported, simulated and executed without change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from schedules.dependencies import Kind
from schedules.errors import ScheduleError
from schedules.grid import format_grid

KINDS = tuple(kind.value for kind in Kind)
_ACTION_RE = re.compile(r"^\s*(\d+)\s*([" + "".join(KINDS) + r"])\s*(\d+)\s*$")


class Action(NamedTuple):
    """One unit of work on one rank. Immutable and hashable; ``str`` gives ``2F0``."""

    stage_index: int
    kind: Kind
    microbatch_index: int

    def __str__(self) -> str:
        return f"{self.stage_index}{self.kind}{self.microbatch_index}"

    @classmethod
    def parse(cls, text: str) -> Action:
        match = _ACTION_RE.match(text)
        if not match:
            raise ScheduleError(
                f"cannot read action {text.strip()!r}; write it like 2F0 "
                "(stage, kind F/B/I/W, microbatch)."
            )
        return cls(int(match.group(1)), Kind(match.group(2)), int(match.group(3)))


def loop_stage_to_rank(num_ranks: int, chunks: int) -> tuple[int, ...]:
    """Megatron's interleaved layout: stage s lives on rank s mod p."""
    return tuple(s % num_ranks for s in range(num_ranks * chunks))


def v_stage_to_rank(num_ranks: int, chunks: int = 2) -> tuple[int, ...]:
    """V layout: down the ranks, then back up (rank 0 holds the first and the last stage)."""
    mapping = []
    for chunk in range(chunks):
        ranks = range(num_ranks) if chunk % 2 == 0 else range(num_ranks - 1, -1, -1)
        mapping.extend(ranks)
    return tuple(mapping)


@dataclass(frozen=True)
class Schedule:
    """Per-rank action lists plus the stage -> rank mapping they assume.

    Why frozen tuples: a schedule is a value. Two generators that produce the same schedule
    compare equal, a schedule can be a dict key, and nobody mutates one behind the validator.
    """

    name: str
    num_microbatches: int
    stage_to_rank: tuple[int, ...]
    actions: tuple[tuple[Action, ...], ...]
    _rank_stages: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage_to_rank", tuple(self.stage_to_rank))
        object.__setattr__(self, "actions", tuple(tuple(a) for a in self.actions))
        rank_stages: list[list[int]] = [[] for _ in self.actions]
        for stage_index, rank in enumerate(self.stage_to_rank):
            if isinstance(rank, int) and 0 <= rank < len(rank_stages):
                rank_stages[rank].append(stage_index)
        object.__setattr__(self, "_rank_stages", tuple(tuple(s) for s in rank_stages))

    @classmethod
    def from_dict(
        cls,
        name: str,
        num_microbatches: int,
        stage_to_rank: tuple[int, ...],
        per_rank: dict[int, list[Action]],
    ) -> Schedule:
        num_ranks = max(stage_to_rank) + 1
        return cls(
            name,
            num_microbatches,
            stage_to_rank,
            tuple(tuple(per_rank.get(r, ())) for r in range(num_ranks)),
        )

    @property
    def num_ranks(self) -> int:
        return len(self.actions)

    @property
    def num_stages(self) -> int:
        return len(self.stage_to_rank)

    @property
    def chunks(self) -> int:
        return self.num_stages // self.num_ranks

    def stages_of_rank(self, rank: int) -> list[int]:
        """The stages ``rank`` holds, in model order (a lookup, not a scan)."""
        return list(self._rank_stages[rank])

    def as_dict(self) -> dict[int, list[Action]]:
        return {rank: list(actions) for rank, actions in enumerate(self.actions)}

    def __len__(self) -> int:
        return sum(len(a) for a in self.actions)

    def grid(self, mark: tuple[int, int] | None = None) -> str:
        """Every rank's actions, positions as a header; ``mark=(rank, position)`` bracketed."""
        return format_grid(self.actions, mark, max_columns=None, max_rows=None)

    def __str__(self) -> str:
        return self.grid()
