"""What ``auto_schedule`` is asked: sizes, per-stage costs and memory deltas, the limit, the layout.

Why a frozen dataclass checked on construction: every generator below reads flat per-stage lists
and trusts them, so every mistake a user can make (a negative cost, a tuple of the wrong length,
a limit no schedule can meet) is one ``ScheduleError`` sentence here, before any search runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from schedules.actions import loop_stage_to_rank, v_stage_to_rank
from schedules.errors import ScheduleError

LAYOUTS = ("loop", "v")
OBJECTIVES = ("makespan", "span")
F, I, W, B = 0, 1, 2, 3  # action kinds inside the package (``Kind`` values outside it)
KIND_NAMES = "FIWB"


@dataclass(frozen=True)
class AutoProblem:
    """A pipeline to schedule: p ranks, m microbatches, costs and activation memory per stage.

    Per-stage fields take one number (every stage alike) or one per stage (``loop``: p stages;
    ``v``: 2p, stage s on rank ``min(s, 2p-1-s)``). Times are in any one unit; memory in any one
    unit (bytes, or microbatches of activations). ``transfer`` is the time to move an activation
    or a gradient between neighbouring stages on different ranks: one number, or one per link
    (link s joins stages s and s+1); the turn of a V stays on its rank and is free.

    Memory follows the zero-bubble paper's bookkeeping (Qi et al. 2024, appendix G): ``F`` adds
    ``memory_forward``; ``I`` leaves ``memory_weight`` (what W still needs), so it adds
    ``memory_weight - memory_forward``, rising at most ``memory_input_rise`` above its start on
    the way (default: only to where it ends); ``W`` frees ``memory_weight``; a full ``B`` frees
    ``memory_forward``, rising at most ``memory_backward_rise`` above its start on the way
    (default: not at all). A rise is the pass's own working memory (the gradients it makes
    before it frees what it read), which a planned run's memory plans give. ``memory_limit``
    caps every rank's running total (one number, one per rank, or None for no cap).
    ``objective`` is what is minimised: ``makespan`` (every rank starts the step at 0 and the
    step ends with its last action: the analytic executor's step time) or ``span`` (the longest
    rank's first-to-last action time: the paper's "cost", the step time when steps overlap
    without a synchronising optimizer step)."""

    num_ranks: int
    num_microbatches: int
    forward: float | tuple[float, ...] = 1.0
    backward_input: float | tuple[float, ...] = 1.0
    backward_weight: float | tuple[float, ...] = 1.0
    transfer: float | tuple[float, ...] = 0.0
    memory_forward: float | tuple[float, ...] = 1.0
    memory_weight: float | tuple[float, ...] = 0.0
    memory_limit: float | tuple[float, ...] | None = None
    layout: str = "loop"
    objective: str = "makespan"
    backward: float | tuple[float, ...] | None = None  # full B time; None: I + W
    memory_input_rise: float | tuple[float, ...] | None = None
    memory_backward_rise: float | tuple[float, ...] = 0.0
    stage_to_rank: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        p, m = self.num_ranks, self.num_microbatches
        for label, value in (("ranks", p), ("microbatches", m)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ScheduleError(
                    f"auto needs a positive whole number of {label}, got {value!r}."
                )
        if self.layout not in LAYOUTS:
            raise ScheduleError(f"auto layout must be loop or v, got {self.layout!r}.")
        if self.objective not in OBJECTIVES:
            raise ScheduleError(f"auto objective must be makespan or span, got {self.objective!r}.")
        mapping = loop_stage_to_rank(p, 1) if self.layout == "loop" else v_stage_to_rank(p, 2)
        object.__setattr__(self, "stage_to_rank", mapping)
        stages = len(mapping)
        for name in ("forward", "backward_input", "backward_weight", "memory_forward"):
            object.__setattr__(self, name, _per(name, getattr(self, name), stages))
        weight = _per("memory_weight", self.memory_weight, stages)
        object.__setattr__(self, "memory_weight", weight)
        full = self.backward
        if full is None:
            full = tuple(
                i + w for i, w in zip(self.backward_input, self.backward_weight, strict=True)
            )
        object.__setattr__(self, "backward", _per("backward", full, stages))
        rise = self.memory_input_rise
        ends = tuple(max(0.0, w - f) for w, f in zip(weight, self.memory_forward, strict=True))
        rise = ends if rise is None else _per("memory_input_rise", rise, stages)
        if any(r < e for r, e in zip(rise, ends, strict=True)):
            raise ScheduleError(
                "memory_input_rise must be at least where I ends (weight - forward)."
            )
        object.__setattr__(self, "memory_input_rise", rise)
        backward_rise = _per("memory_backward_rise", self.memory_backward_rise, stages)
        object.__setattr__(self, "memory_backward_rise", backward_rise)
        object.__setattr__(self, "transfer", _per("transfer", self.transfer, max(stages - 1, 0)))
        if self.memory_limit is not None:
            object.__setattr__(self, "memory_limit", _per("memory_limit", self.memory_limit, p))
        self._check_floor()

    @property
    def num_stages(self) -> int:
        return len(self.stage_to_rank)

    def stages_of_rank(self, rank: int) -> list[int]:
        return [s for s, r in enumerate(self.stage_to_rank) if r == rank]

    def memory_floor(self) -> list[float]:
        """Per rank, the least activation memory any schedule needs: one microbatch's forwards
        of all the rank's stages, and each full backward's rise on the way back (deepest stage
        first, with the forwards of the rank's shallower stages still held)."""
        floors = []
        for r in range(self.num_ranks):
            held = sum(self.memory_forward[s] for s in self.stages_of_rank(r))
            floor = held
            for s in reversed(self.stages_of_rank(r)):
                floor = max(floor, held + self.memory_backward_rise[s])
                held -= self.memory_forward[s]
            floors.append(floor)
        return floors

    def work(self) -> list[float]:
        """Per rank, its compute time for the step with split backward (F + I + W per stage)."""
        cost = [
            f + i + w
            for f, i, w in zip(self.forward, self.backward_input, self.backward_weight, strict=True)
        ]
        return [
            self.num_microbatches * sum(cost[s] for s in self.stages_of_rank(r))
            for r in range(self.num_ranks)
        ]

    def _check_floor(self) -> None:
        if self.memory_limit is None:
            return
        for rank, (need, limit) in enumerate(
            zip(self.memory_floor(), self.memory_limit, strict=True)
        ):
            if need > limit * (1 + 1e-12):
                raise ScheduleError(
                    f"memory limit {limit:g} is below the {need:g} that rank {rank} needs for "
                    "one microbatch's activations; no schedule fits."
                )


def _per(name: str, value, count: int) -> tuple[float, ...]:
    """``value`` as ``count`` finite non-negative floats (a number is repeated)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        values = (float(value),) * count
    else:
        try:
            values = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise ScheduleError(f"auto {name} must be a number or a tuple of numbers.") from None
        if len(values) != count:
            raise ScheduleError(f"auto {name} needs {count} values, got {len(values)}.")
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise ScheduleError(f"auto {name} must be finite and not negative.")
    return values
