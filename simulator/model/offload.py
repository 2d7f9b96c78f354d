"""Activation offload: the third move of the pebble game, a cached activation sent to host memory
after its forward and brought back before the backward that needs it.

Why: keeping and recomputing are the two moves ``simulator.model.recompute`` plays. Real systems
(Megatron Core's fine-grained offloading; PipeOffload, Wan, Qi et al. 2025, arXiv 2503.01328)
have a third: copy a pebble to the host over the host link while the device computes something
else, and copy it back in time. This is Hong and Kung's red-blue pebble game: red pebbles on the
device, blue ones on the host, and a pebble in flight between them while a copy runs.

The unit of offload is the block, as for recomputation (``recompute_units``): what a block's
forward leaves cached (with recomputation, the checkpoints) goes out whole. The block holding
the loss never goes (its backward follows its forward at once), nor a transformer's embedding
or head; and a microbatch whose backward is the very next action of its rank after its forward
stays, since no copy could go out and come back in between (``simulator.analytic.offload_clock``).

Policies (``--offload``), per stage (``0:full,1:none``) or for the whole model:

* ``none``: everything stays on the device;
* ``full``: every offloadable block of every microbatch goes to the host after its forward and
  is prefetched for its backward;
* ``selective``: PipeOffload's choice, solved against the schedule's timing
  (``simulator.analytic.offload_solve``): the microbatches whose round trip hides;
* ``budget:BYTES`` or ``budget:P%`` (whole model): the least exposed transfer time keeping every
  rank's device peak within the budget (``simulator.analytic.offload_solve``).

Offload is not a schedule action either: copies run on each rank's two copy streams (device to
host, host to device) beside its compute, and are recorded in the Timeline's ``offload`` table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from simulator.errors import PebbleError
from simulator.model.action_work import action_work
from simulator.model.memory_plan import input_bytes
from simulator.model.recompute import NO_RECOMPUTE, recompute_units
from simulator.units import parse_bytes

_POLICY_HELP = (
    "none, full, selective or budget:BYTES|P% (whole model), optionally per stage as "
    "STAGE:POLICY with none or full, e.g. 0:full,1:none"
)
_STAGE_TERM = re.compile(r"^\s*(\d+)\s*:(.*)$")
_NAMED = ("none", "full", "selective")


@dataclass(frozen=True)
class StageOffload:
    """What one stage sends to the host after each forward: ``units`` are (first, last) global
    layer indices of the blocks whose cached bytes go out. Frozen so it pickles and keys."""

    units: tuple[tuple[int, int], ...] = ()
    microbatches: frozenset[int] | None = None  # which go out (None: every one)

    @property
    def active(self) -> bool:
        return bool(self.units) and (self.microbatches is None or bool(self.microbatches))

    def sends(self, microbatch: int) -> bool:
        """Does this microbatch's forward send its blocks out?"""
        return self.microbatches is None or microbatch in self.microbatches

    def layers(self) -> set[int]:
        """Every layer index inside one of the offloaded blocks."""
        return {j for a, b in self.units for j in range(a, b + 1)}


NO_OFFLOAD = StageOffload()


@dataclass(frozen=True)
class OffloadPlan:
    """A policy resolved for one partition: its text (for reports) and each stage's plan."""

    policy: str
    stages: tuple[StageOffload, ...]
    # a selective or budget policy waiting for the schedule's timing (``stages`` then empty):
    # ``simulator.analytic.offload_solve`` solves it where the costs are known
    pending: OffloadPolicy | None = None

    @property
    def active(self) -> bool:
        return self.pending is not None or any(stage.active for stage in self.stages)


@dataclass(frozen=True)
class OffloadPolicy:
    """A parsed ``--offload``: the policy of each stage (``default`` where not named)."""

    default: str = "none"
    per_stage: tuple[tuple[int, str], ...] = ()
    budget: int | float | None = None  # bytes (int) or a share of the no-offload peak

    @classmethod
    def parse(cls, text: str) -> OffloadPolicy:
        """``full``, ``0:full,1:none``, ``selective`` or ``budget:40GiB``/``budget:60%``."""
        if not isinstance(text, str) or not text.strip():
            raise PebbleError(f"--offload needs a policy: {_POLICY_HELP}.")
        default, per_stage = None, {}
        for term in (t.strip() for t in text.split(",")):
            match = _STAGE_TERM.match(term)
            if match:
                stage, policy = int(match.group(1)), _policy_name(match.group(2), text)
                if policy not in ("none", "full"):
                    raise PebbleError(
                        f"--offload {text!r}: {policy} applies to the whole model, not stage "
                        f"{stage}; a stage takes none or full."
                    )
                if stage in per_stage:
                    raise PebbleError(f"--offload {text!r} names stage {stage} twice.")
                per_stage[stage] = policy
            elif default is not None:
                raise PebbleError(
                    f"--offload {text!r} gives two whole-model policies; name the stages, "
                    "e.g. 0:full,1:none."
                )
            else:
                default = _policy_name(term, text)
        default = default or "none"
        if per_stage and default not in ("none", "full"):
            raise PebbleError(f"--offload {text!r}: {default} decides every stage itself.")
        budget = _budget(default, text) if default.startswith("budget") else None
        return cls(default, tuple(sorted(per_stage.items())), budget)

    @property
    def is_none(self) -> bool:
        return self.default == "none" and all(p == "none" for _, p in self.per_stage)

    @property
    def solved(self) -> bool:
        """Does the schedule decide the plan (``selective``, ``budget:``)?"""
        return self.default == "selective" or self.budget is not None

    def stage_policy(self, stage_index: int) -> str:
        return dict(self.per_stage).get(stage_index, self.default)

    def check_stages(self, num_stages: int) -> None:
        for stage, _ in self.per_stage:
            if stage >= num_stages:
                raise PebbleError(
                    f"--offload names stage {stage}, but the model has {num_stages} stages "
                    f"(0..{num_stages - 1})."
                )

    def to_text(self) -> str:
        terms = [] if self.default == "none" and self.per_stage else [self.default]
        return ",".join(terms + [f"{s}:{p}" for s, p in self.per_stage])


def _policy_name(term: str, text: str) -> str:
    term = term.strip().lower()
    if term in _NAMED or term.startswith("budget:"):
        return term
    raise PebbleError(f"--offload {text!r}: cannot read {term!r}; use {_POLICY_HELP}.")


def _budget(policy: str, text: str) -> int | float:
    value = policy.partition(":")[2].strip()
    if value.endswith("%"):
        try:
            share = float(value[:-1])
        except ValueError:
            share = -1.0
        if not math.isfinite(share) or not 0 < share <= 100:
            raise PebbleError(
                f"--offload {text!r}: a budget share is a percentage in (0, 100], got {value!r}."
            )
        return share / 100.0
    try:
        size = parse_bytes(value)
    except ValueError:
        size = 0
    if size < 1:
        raise PebbleError(
            f"--offload {text!r}: budget takes bytes (e.g. 40GiB, 1.5e9) or a percentage of "
            f"the device peak without offload (e.g. 60%), got {value!r}."
        )
    return int(size)


def offload_units(stage_infos) -> tuple[tuple[int, int], ...]:
    """The blocks of one stage that may go to the host: those that may be recomputed (no loss,
    and in a transformer only the transformer layers)."""
    return tuple(recompute_units(stage_infos))


def plan_stages(policy: OffloadPolicy, spec, partition) -> OffloadPlan:
    """Per stage, the plan of a named policy (``none``/``full``); a solved one (``selective``,
    ``budget:``) is left pending, to be solved against the schedule's timing."""
    policy.check_stages(partition.num_stages)
    if policy.solved:
        return OffloadPlan(policy.to_text(), (), pending=policy)
    infos = spec.layers()
    stages = tuple(
        StageOffload(offload_units([infos[i] for i in layers]))
        if policy.stage_policy(s) == "full"
        else NO_OFFLOAD
        for s, layers in enumerate(partition.stage_layers)
    )
    return OffloadPlan(policy.to_text(), stages)


def stage_offload_bytes(
    spec, partition, rows: int, rule, offload: OffloadPlan, recompute=None
) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Per stage, (global layer, bytes) of what one microbatch's forward sends to the host:
    what the forward's work items (``action_work``, with the stage's recompute plan: a
    checkpoint is what stays of a dropped segment) cache inside the offloaded blocks."""
    infos = spec.layers()
    forward = rule.rule(rule.having("is_forward")[0])
    out = []
    for s, layers in enumerate(partition.stage_layers):
        plan = offload.stages[s]
        if not plan.active:
            out.append(())
            continue
        first = layers[0]
        stage_infos = [infos[i] for i in layers]
        kept = recompute[s].relative(first) if recompute else NO_RECOMPUTE
        inputs = tuple(input_bytes(spec, infos, first + a, rows) for a, _ in kept.segments)
        sent: dict[int, int] = {}
        chosen = plan.layers()
        for item in action_work(stage_infos, rows, spec.itemsize, forward, kept, inputs):
            if first + item.layer in chosen and item.delta:
                sent[first + item.layer] = sent.get(first + item.layer, 0) + item.delta
        out.append(tuple(sorted(sent.items())))
    return tuple(out)
