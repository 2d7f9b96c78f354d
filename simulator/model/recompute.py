"""Activation recomputation: which cached tensors a stage drops after its forward and puts back
just before the backward that needs them.

Why: caching is half of the pebble game; the other half is choosing pebbles to drop and
recompute. A stage that recomputes a *segment* of its layers keeps only the segment's input
(the *checkpoint*) after the forward; its backward (``I`` or ``B``) first re-runs the segment's
forward from the checkpoint, caching as usual, then runs the segment's backward. Everything is
deterministic (dropout masks come from seeds), so the gradients are bit for bit the same.

The unit of recomputation is the model's block (``LayerInfo.block``): an MLP's Linear with its
norm and activation, a transformer's attention + MLP block. Blocks begin where a plain array
flows, so a checkpoint is one array. The block holding the loss is never dropped (its forward
needs the targets), nor a transformer's embedding or head (Megatron recomputes transformer
layers only).

Policies (``--recompute``), per stage or for the whole model:

* ``none``: cache everything (no recomputation);
* ``full``: every block is its own segment: a stage keeps only its block inputs, Megatron's
  full recompute (Korthikanti et al. 2022: ``2 sbh`` per layer with 16-bit activations);
* ``selective``: the attention core drops its softmax probabilities, dropout mask and dropped
  probabilities, keeping q, k and v, and recomputes them from q and k in its backward
  (Korthikanti et al. 2022, section 4.2). Only attention has such a core: on an MLP it is
  ``none``;
* ``every:K``: segments of K blocks (a checkpoint every K blocks);
* ``sqrt``: Chen et al. 2016's segments of ceil(sqrt(n)) blocks for a stage of n blocks;
* ``budget:BYTES`` or ``budget:P%`` (whole model only): the fewest recompute FLOPs whose peak
  activation memory on every rank stays within the budget under the chosen schedule (solved in
  ``simulator.run.recompute_budget``, which needs the schedule and the cost model).

Recomputation is not a schedule action: the schedule stays the same list. It is a *flagged
sub-span* of a backward (``I`` or ``B``) action, recorded in the Timeline's ``recompute`` table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from simulator.errors import PebbleError
from simulator.model.layers import Loss
from simulator.units import parse_bytes

CHECKPOINT = "checkpoint"  # the cache key of a segment's input
MAX_EVERY = 1_000_000
_POLICY_HELP = (
    "none, full, selective, every:K, sqrt or budget:BYTES|P% (whole model), "
    "optionally per stage as STAGE:POLICY, e.g. 0:full,1:none"
)
_STAGE_TERM = re.compile(r"^\s*(\d+)\s*:(.*)$")


@dataclass(frozen=True)
class StageRecompute:
    """What one stage recomputes: ``segments`` are (first, last) global layer indices, each
    kept as its input only after the forward; ``selective`` drops attention cores' scores.

    Typed and frozen so it pickles to a Ray actor and keys a cache of memory plans."""

    segments: tuple[tuple[int, int], ...] = ()
    selective: bool = False

    @property
    def active(self) -> bool:
        return bool(self.segments) or self.selective

    def relative(self, first_layer: int) -> StageRecompute:
        """The same plan with layer indices counted from ``first_layer``."""
        return StageRecompute(
            tuple((a - first_layer, b - first_layer) for a, b in self.segments), self.selective
        )


NO_RECOMPUTE = StageRecompute()


@dataclass(frozen=True)
class RecomputePlan:
    """A policy resolved for one partition: its text (for reports) and each stage's plan."""

    policy: str
    stages: tuple[StageRecompute, ...]

    @property
    def active(self) -> bool:
        return any(stage.active for stage in self.stages)


@dataclass(frozen=True)
class RecomputePolicy:
    """A parsed ``--recompute``: the policy of each stage (``default`` where not named)."""

    default: str = "none"
    per_stage: tuple[tuple[int, str], ...] = ()
    budget: int | float | None = None  # bytes (int) or a fraction of the no-recompute peak

    @classmethod
    def parse(cls, text: str) -> RecomputePolicy:
        """``full``, ``0:full,1:none``, ``every:2,3:none`` or ``budget:40GiB``/``budget:60%``."""
        if not isinstance(text, str) or not text.strip():
            raise PebbleError(f"--recompute needs a policy: {_POLICY_HELP}.")
        default, per_stage = None, {}
        for term in (t.strip() for t in text.split(",")):
            match = _STAGE_TERM.match(term)
            if match:
                stage, policy = int(match.group(1)), _policy_name(match.group(2), text)
                if policy.startswith("budget"):
                    raise PebbleError(
                        f"--recompute {text!r}: budget applies to the whole model, not stage "
                        f"{stage}."
                    )
                if stage in per_stage:
                    raise PebbleError(f"--recompute {text!r} names stage {stage} twice.")
                per_stage[stage] = policy
            elif default is not None:
                raise PebbleError(
                    f"--recompute {text!r} gives two whole-model policies; name the stages, "
                    "e.g. 0:full,1:none."
                )
            else:
                default = _policy_name(term, text)
        default = default or "none"
        budget = _budget(default, text) if default.startswith("budget") else None
        if budget is not None and per_stage:
            raise PebbleError(f"--recompute {text!r}: a budget decides every stage itself.")
        return cls(default, tuple(sorted(per_stage.items())), budget)

    @property
    def is_none(self) -> bool:
        return self.default == "none" and all(p == "none" for _, p in self.per_stage)

    def stage_policy(self, stage_index: int) -> str:
        return dict(self.per_stage).get(stage_index, self.default)

    def check_stages(self, num_stages: int) -> None:
        for stage, _ in self.per_stage:
            if stage >= num_stages:
                raise PebbleError(
                    f"--recompute names stage {stage}, but the model has {num_stages} stages "
                    f"(0..{num_stages - 1})."
                )

    def to_text(self) -> str:
        terms = [] if self.default == "none" and self.per_stage else [self.default]
        return ",".join(terms + [f"{s}:{p}" for s, p in self.per_stage])


def _policy_name(term: str, text: str) -> str:
    term = term.strip().lower()
    if term in ("none", "full", "selective", "sqrt"):
        return term
    if term.startswith("every:"):
        value = term.partition(":")[2].strip()
        if not value.isdigit() or not 1 <= int(value) <= MAX_EVERY:
            raise PebbleError(
                f"--recompute {text!r}: every:K needs a whole number of blocks K >= 1, "
                f"got {value!r}."
            )
        return f"every:{int(value)}"
    if term.startswith("budget:"):
        return term
    raise PebbleError(f"--recompute {text!r}: cannot read {term!r}; use {_POLICY_HELP}.")


def _budget(policy: str, text: str) -> int | float:
    value = policy.partition(":")[2].strip()
    if value.endswith("%"):
        try:
            share = float(value[:-1])
        except ValueError:
            share = -1.0
        if not 0 < share <= 100 or not math.isfinite(share):
            raise PebbleError(
                f"--recompute {text!r}: a budget share is a percentage in (0, 100], got {value!r}."
            )
        return share / 100.0
    try:
        size = parse_bytes(value)
    except ValueError:
        size = 0
    if size < 1:
        raise PebbleError(
            f"--recompute {text!r}: budget takes bytes (e.g. 40GiB, 1.5e9) or a percentage of "
            f"the peak without recomputation (e.g. 60%), got {value!r}."
        )
    return int(size)


# ------------------------------------------------------------------ blocks and segments
def recompute_units(stage_infos) -> list[tuple[int, int]]:
    """The blocks of one stage that may be dropped, as (first, last) global layer indices, in
    order: runs of layers of one block, without a loss and (in a transformer) inside the
    transformer layers."""
    units: list[list] = []
    for info in stage_infos:
        if units and units[-1][0].block == info.block:
            units[-1].append(info)
        else:
            units.append([info])
    return [
        (unit[0].index, unit[-1].index)
        for unit in units
        if not any(issubclass(i.cls, Loss) for i in unit)
        and all(getattr(i, "is_transformer_block", True) for i in unit)
    ]


def group_units(units: list[tuple[int, int]], size: int) -> tuple[tuple[int, int], ...]:
    """Consecutive units, ``size`` at a time (a shorter last group), each as one segment; a
    group never spans a gap between units (a layer that may not be dropped)."""
    segments: list[tuple[int, int]] = []
    count = 0
    for first, last in units:
        if segments and count < size and segments[-1][1] + 1 == first:
            segments[-1] = (segments[-1][0], last)
            count += 1
        else:
            segments.append((first, last))
            count = 1
    return tuple(segments)


def stage_recompute(policy: str, stage_infos) -> StageRecompute:
    """The plan of one stage under a named policy (not ``budget``, which the solver decides)."""
    if policy == "none":
        return NO_RECOMPUTE
    if policy == "selective":
        return StageRecompute(selective=True)
    units = recompute_units(stage_infos)
    if policy == "full":
        size = 1
    elif policy == "sqrt":
        size = max(1, math.ceil(math.sqrt(len(units))))
    elif policy.startswith("every:"):
        size = int(policy.partition(":")[2])
    else:
        raise PebbleError(f"recompute policy {policy!r} has no fixed plan.")
    return StageRecompute(group_units(units, size))


def plan_stages(policy: RecomputePolicy, spec, partition) -> RecomputePlan:
    """Per stage, the plan of ``policy`` (named policies only; a budget needs the solver)."""
    if policy.budget is not None:
        raise PebbleError("a recompute budget is solved against a schedule (recompute_budget).")
    policy.check_stages(partition.num_stages)
    infos = spec.layers()
    stages = tuple(
        stage_recompute(policy.stage_policy(s), [infos[i] for i in layers])
        for s, layers in enumerate(partition.stage_layers)
    )
    return RecomputePlan(policy.to_text(), stages)
