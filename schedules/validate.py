"""The validator every executor calls first: is this schedule runnable, and in what order?

A schedule is runnable when

* every action names a stage and microbatch in range, on the rank that owns the stage;
* every (stage, microbatch) runs ``F`` exactly once and either ``B`` or ``I`` then ``W``
  exactly once (a schedule may use ``B`` for some pairs and ``I`` + ``W`` for others);
* the per-rank orders respect the dependencies ``F(s-1) -> F(s)``, ``B|I(s+1) -> B|I(s)``,
  ``F(s) -> B|I(s)`` and ``I(s) -> W(s)`` without a deadlock.

The last point is checked by a dry run: each rank executes its list in order as soon as the
head action's inputs are done. The dry run's global order (every action after everything it
depends on) is what ``validate`` returns, and what the analytic executor and the Ray driver walk.

Errors are ``ScheduleError``: one sentence naming the first offending action, then the per-rank
grid around it.

Why so terse inside: at p=128, m=1024 this runs over half a million actions, so the work is
two linear passes over flat lists indexed by ``stage * m + microbatch``, and a worklist of ranks
for the dry run, where each blocked rank is woken by the one action it waits for.
"""

from __future__ import annotations

from schedules.actions import Action, Schedule, ScheduleError
from schedules.grid import format_grid

_NEVER = -1
_MAX_STUCK_LISTED = 3  # a deadlock message names at most this many other stuck ranks


def _fail(schedule: Schedule, sentence: str, mark: tuple[int, int] | None = None) -> ScheduleError:
    return ScheduleError(f"{sentence}\n{format_grid(schedule, mark)}")


def _check_layout(schedule: Schedule) -> None:
    num_ranks = schedule.num_ranks
    m = schedule.num_microbatches
    if num_ranks == 0:
        raise ScheduleError(f"schedule {schedule.name!r} has no ranks.")
    if not isinstance(m, int) or isinstance(m, bool) or m < 1:
        raise ScheduleError(
            f"schedule {schedule.name!r} needs a positive number of microbatches, got {m!r}."
        )
    if not schedule.stage_to_rank:
        raise ScheduleError(f"schedule {schedule.name!r} maps no stages to ranks.")
    owned = [0] * num_ranks
    for stage_index, rank in enumerate(schedule.stage_to_rank):
        if not isinstance(rank, int) or not 0 <= rank < num_ranks:
            raise ScheduleError(
                f"stage {stage_index} is mapped to rank {rank!r}, but the schedule has "
                f"{num_ranks} ranks (0..{num_ranks - 1})."
            )
        owned[rank] += 1
    for rank, count in enumerate(owned):
        if count == 0:
            raise ScheduleError(f"rank {rank} owns no stage; every rank needs at least one.")


class _Index:
    """Where each action sits: flat lists of global positions, one per kind, -1 if absent."""

    def __init__(self, schedule: Schedule) -> None:
        self.m = schedule.num_microbatches
        self.num_stages = schedule.num_stages
        size = self.num_stages * self.m
        self.forward = [_NEVER] * size
        self.full = [_NEVER] * size
        self.inputs = [_NEVER] * size
        self.weights = [_NEVER] * size
        self.offsets: list[int] = []
        self.rank_of: list[int] = []
        total = 0
        for rank, row in enumerate(schedule.actions):
            self.offsets.append(total)
            self.rank_of.extend([rank] * len(row))
            total += len(row)
        self.total = total

    def locate(self, g: int) -> tuple[int, int]:
        rank = self.rank_of[g]
        return rank, g - self.offsets[rank]


def _index_actions(schedule: Schedule) -> _Index:
    index = _Index(schedule)
    m, num_stages = index.m, index.num_stages
    owner = schedule.stage_to_rank
    tables = {"F": index.forward, "B": index.full, "I": index.inputs, "W": index.weights}
    g = 0
    for rank, row in enumerate(schedule.actions):
        for position, action in enumerate(row):
            stage_index, kind, microbatch_index = action
            if not (
                0 <= stage_index < num_stages
                and 0 <= microbatch_index < m
                and owner[stage_index] == rank
            ):
                _raise_misplaced(schedule, rank, position, action)
            table = tables.get(kind)
            if table is None:
                raise _fail(
                    schedule,
                    f"rank {rank} action {action} at position {position} has kind {kind!r}; "
                    "kinds are F, B, I and W.",
                    (rank, position),
                )
            key = stage_index * m + microbatch_index
            if table[key] != _NEVER:
                _, first = index.locate(table[key])
                raise _fail(
                    schedule,
                    f"rank {rank} action {action} at position {position} repeats the one at "
                    f"position {first}; every action runs exactly once.",
                    (rank, position),
                )
            table[key] = g
            g += 1
    return index


def _raise_misplaced(schedule: Schedule, rank: int, position: int, action: Action) -> None:
    stage_index, _, microbatch_index = action
    where = f"rank {rank} action {action} at position {position}"
    num_stages, m = schedule.num_stages, schedule.num_microbatches
    if not 0 <= stage_index < num_stages:
        sentence = (
            f"{where} names stage {stage_index}, but the schedule has {num_stages} stages "
            f"(0..{num_stages - 1})."
        )
    elif not 0 <= microbatch_index < m:
        sentence = (
            f"{where} names microbatch {microbatch_index}, but the schedule has {m} "
            f"microbatches (0..{m - 1})."
        )
    else:
        owner = schedule.stage_to_rank[stage_index]
        sentence = f"{where} belongs on rank {owner}, which owns stage {stage_index}."
    raise _fail(schedule, sentence, (rank, position))


def _gradient_locations(index: _Index) -> list[int]:
    """Per (stage, microbatch), the action that produces the input gradient: B, else I."""
    return [b if b != _NEVER else i for b, i in zip(index.full, index.inputs, strict=True)]


def _check_complete(schedule: Schedule, index: _Index, gradient: list[int]) -> None:
    size = len(gradient)
    full_count = size - index.full.count(_NEVER)
    input_count = size - index.inputs.count(_NEVER)
    if (
        _NEVER not in index.forward
        and _NEVER not in gradient
        and full_count + input_count == size
        and [i == _NEVER for i in index.inputs] == [w == _NEVER for w in index.weights]
    ):
        return
    m = index.m
    last_stage = index.num_stages - 1
    for key in range(size):
        stage_index, microbatch_index = divmod(key, m)
        forward, full = index.forward[key], index.full[key]
        inputs, weights = index.inputs[key], index.weights[key]
        owner = schedule.stage_to_rank[stage_index]
        if forward == _NEVER:
            needed = Action(stage_index, "F", microbatch_index)
            dependants = [gradient[key]]
            if stage_index < last_stage:
                dependants.append(index.forward[key + m])
            _raise_missing(schedule, index, needed, owner, dependants)
        if full != _NEVER and (inputs != _NEVER or weights != _NEVER):
            split = inputs if inputs != _NEVER else weights
            rank, position = index.locate(split)
            _, full_position = index.locate(full)
            action = schedule.actions[rank][position]
            raise _fail(
                schedule,
                f"rank {rank} action {action} at position {position} mixes with "
                f"{Action(stage_index, 'B', microbatch_index)} at position {full_position}; "
                "a stage and microbatch runs either B, or I and W.",
                (rank, position),
            )
        if gradient[key] == _NEVER:
            needed = Action(stage_index, "B", microbatch_index)
            dependants = [weights]
            if stage_index > 0:
                dependants.append(gradient[key - m])
            _raise_missing(schedule, index, needed, owner, dependants, also_input=True)
        if inputs != _NEVER and weights == _NEVER:
            rank, position = index.locate(inputs)
            raise _fail(
                schedule,
                f"rank {rank} action {schedule.actions[rank][position]} at position {position} "
                f"is never followed by {Action(stage_index, 'W', microbatch_index)}; every I "
                "needs its W on the same rank.",
                (rank, position),
            )


def _raise_missing(
    schedule: Schedule,
    index: _Index,
    needed: Action,
    owner: int,
    dependants: list[int],
    also_input: bool = False,
) -> None:
    what = str(needed)
    if also_input:
        what = f"{needed} (or {Action(needed.stage_index, 'I', needed.microbatch_index)})"
    for g in dependants:
        if g != _NEVER:
            rank, position = index.locate(g)
            action = schedule.actions[rank][position]
            if action.kind == "W":
                what = str(Action(needed.stage_index, "I", needed.microbatch_index))
            raise _fail(
                schedule,
                f"rank {rank} action {action} at position {position} needs {what}, "
                f"which never runs (it belongs on rank {owner}).",
                (rank, position),
            )
    raise _fail(
        schedule,
        f"{what} never runs: every stage needs a forward and a backward of every microbatch "
        f"(it belongs on rank {owner}).",
    )


def _dependency(index: _Index, gradient: list[int], action: Action, done: bytearray) -> int:
    """The first unfinished action ``action`` waits for, or -1 if it can run."""
    stage_index, kind, microbatch_index = action
    m = index.m
    key = stage_index * m + microbatch_index
    if kind == "F":
        if stage_index > 0 and not done[index.forward[key - m]]:
            return index.forward[key - m]
    elif kind == "W":
        if not done[index.inputs[key]]:
            return index.inputs[key]
    else:
        if not done[index.forward[key]]:
            return index.forward[key]
        if stage_index < index.num_stages - 1 and not done[gradient[key + m]]:
            return gradient[key + m]
    return _NEVER


def _dry_run(schedule: Schedule, index: _Index, gradient: list[int]) -> list[tuple[int, int]]:
    m = index.m
    last_stage = index.num_stages - 1
    forward, inputs, rank_of = index.forward, index.inputs, index.rank_of
    done = bytearray(index.total)
    waiter = [_NEVER] * index.total
    pointer = [0] * schedule.num_ranks
    order: list[tuple[int, int]] = []
    append = order.append
    worklist = list(range(schedule.num_ranks - 1, -1, -1))
    while worklist:
        rank = worklist.pop()
        row = schedule.actions[rank]
        base = index.offsets[rank]
        position = pointer[rank]
        length = len(row)
        while position < length:
            stage_index, kind, microbatch_index = row[position]
            key = stage_index * m + microbatch_index
            if kind == "F":
                need = forward[key - m] if stage_index > 0 else _NEVER
            elif kind == "W":
                need = inputs[key]
            else:
                need = forward[key]
                if done[need] and stage_index < last_stage:
                    need = gradient[key + m]
            if need != _NEVER and not done[need]:
                if rank_of[need] == rank:
                    _raise_same_rank_order(schedule, index, rank, position, need)
                waiter[need] = rank
                break
            g = base + position
            done[g] = 1
            append((rank, position))
            position += 1
            woken = waiter[g]
            if woken != _NEVER:
                worklist.append(woken)
        pointer[rank] = position
    if len(order) != index.total:
        _raise_deadlock(schedule, index, gradient, pointer, done)
    return order


def _raise_same_rank_order(
    schedule: Schedule, index: _Index, rank: int, position: int, need: int
) -> None:
    _, later = index.locate(need)
    action = schedule.actions[rank][position]
    raise _fail(
        schedule,
        f"rank {rank} action {action} at position {position} needs "
        f"{schedule.actions[rank][later]}, which comes later on the same rank "
        f"(position {later}).",
        (rank, position),
    )


def _raise_deadlock(
    schedule: Schedule, index: _Index, gradient: list[int], pointer: list[int], done: bytearray
) -> None:
    stuck = []
    for rank, row in enumerate(schedule.actions):
        position = pointer[rank]
        if position >= len(row):
            continue
        need = _dependency(index, gradient, row[position], done)
        need_rank, need_position = index.locate(need)
        stuck.append(
            (
                rank,
                position,
                f"rank {rank} action {row[position]} at position {position} waits for "
                f"{schedule.actions[need_rank][need_position]} (rank {need_rank}, position "
                f"{need_position})",
            )
        )
    rank, position, first = stuck[0]
    sentence = f"deadlock: {first}, and no rank can make progress."
    others = [text for _, _, text in stuck[1 : 1 + _MAX_STUCK_LISTED]]
    if others:
        sentence += f" Also stuck: {'; '.join(others)}"
        unlisted = len(stuck) - 1 - len(others)
        sentence += f"; and {unlisted} more ranks." if unlisted else "."
    raise _fail(schedule, sentence, (rank, position))


def validate(schedule: Schedule) -> list[tuple[int, int]]:
    """Check that ``schedule`` can run; return its dry-run order as (rank, position) pairs.

    The order lists every action once, each after all the actions it depends on, so an executor
    that walks it never meets an input that is not ready. Raises ``ScheduleError`` naming the
    first offending action (missing, repeated, misplaced, mixed B with I/W, out of order, or
    deadlocked) followed by the per-rank grid around it.
    """
    _check_layout(schedule)
    index = _index_actions(schedule)
    gradient = _gradient_locations(index)
    _check_complete(schedule, index, gradient)
    return _dry_run(schedule, index, gradient)
