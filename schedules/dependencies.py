"""The dependency rule, once: what each action kind consumes and where its output goes.

Every part of pebblesim that needs to know "which action feeds which" asks this module: the
validator (completeness, order, deadlock), the analytic executor (when an input is ready, what
crosses ranks), the Ray wiring (which object reference an action takes and where its result
goes), the Ray worker (which stage receives an output) and the comms reconstruction. None of
them re-derives it, so adding an action kind is one new ``KindRule`` here.

The rule, for stage ``s`` and microbatch ``mb`` (PyTorch's ``_Action`` vocabulary)::

    F(s)  needs  F(s-1)           receives the activation    sends its output to s+1
    B(s)  needs  F(s), B|I(s+1)   receives the gradient      sends the input gradient to s-1
    I(s)  needs  F(s), B|I(s+1)   receives the gradient      sends the input gradient to s-1
    W(s)  needs  I(s)             (state in the stage's cache)  sends nothing

A need whose stage falls off either end of the pipeline does not exist (stage 0's forward reads
the data; the last stage's backward starts from its loss). Every (stage, microbatch) runs each
*requirement*: ``F``, and either ``B`` or ``I`` then ``W``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Kind(str, Enum):
    """An action kind. A ``str`` so ``"F" == Kind.F``, and CSV and JSON text stay ``F``."""

    F = "F"  # forward
    B = "B"  # full backward: input gradient and weight gradient at once
    I = "I"  # backward for the input (the part on the critical path)
    W = "W"  # backward for the weights (needed only by the optimizer step)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Flow(str, Enum):
    """What travels along a dependency between two stages."""

    ACTIVATION = "activation"  # down the pipeline, stage s -> s+1
    GRADIENT = "gradient"  # up the pipeline, stage s -> s-1

    def __str__(self) -> str:
        return self.value

    @property
    def stage_step(self) -> int:
        """+1: the receiver is the next stage; -1: the previous one."""
        return 1 if self is Flow.ACTIVATION else -1


@dataclass(frozen=True)
class Need:
    """One input of an action: the first of ``kinds`` that the schedule runs for
    (stage + ``stage_offset``, same microbatch).

    ``flow`` is what arrives from that producer (it may cross ranks); ``None`` means a same-stage
    ordering dependency whose data stays in the stage's cache.
    """

    kinds: tuple[str, ...]
    stage_offset: int
    flow: Flow | None = None


@dataclass(frozen=True)
class KindRule:
    """Everything about one action kind that is not computation.

    ``output`` is what the action sends to a neighbouring stage (``None``: nothing leaves).
    ``completes_weight_gradient``: the action adds this microbatch's weight-gradient share.
    """

    kind: str
    needs: tuple[Need, ...]
    output: Flow | None
    completes_weight_gradient: bool = False
    description: str = ""


@dataclass(frozen=True)
class DependencyRule:
    """The kinds a schedule may use and what every (stage, microbatch) must run.

    ``requirements``: per (stage, microbatch), each entry is a tuple of *alternatives*; exactly
    one alternative must run, all of its kinds once, in the order listed (``("I", "W")``: the
    ``W`` after the ``I``). The default is ``F``, and ``B`` or ``I`` + ``W``.
    """

    kinds: dict[str, KindRule]
    requirements: tuple[tuple[tuple[str, ...], ...], ...]
    _needs_of: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_needs_of", {k: r.needs for k, r in self.kinds.items()})

    def rule(self, kind: str) -> KindRule:
        return self.kinds[kind]

    def needs(self, kind: str) -> tuple[Need, ...]:
        return self._needs_of[kind]

    def receiver(self, kind: str, stage_index: int, num_stages: int) -> int | None:
        """The stage that receives this action's output, or None (nothing leaves, or the
        output would fall off the pipeline's end: the loss, or stage 0's input gradient)."""
        flow = self.kinds[kind].output
        if flow is None:
            return None
        target = stage_index + flow.stage_step
        return target if 0 <= target < num_stages else None

    def with_kind(
        self, rule: KindRule, requirement: tuple[tuple[str, ...], ...] = ()
    ) -> DependencyRule:
        """A copy with one more (or a replaced) kind, and optionally one more requirement."""
        kinds = {**self.kinds, rule.kind: rule}
        requirements = self.requirements + ((requirement,) if requirement else ())
        return DependencyRule(kinds, requirements)

    @property
    def kind_names(self) -> str:
        """``F, B, I and W``: for error sentences."""
        names = list(self.kinds)
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


_GRADIENT_PRODUCERS = (Kind.B.value, Kind.I.value)

PIPELINE_RULE = DependencyRule(
    kinds={
        Kind.F.value: KindRule(
            Kind.F.value,
            needs=(Need((Kind.F.value,), -1, Flow.ACTIVATION),),
            output=Flow.ACTIVATION,
            description="forward",
        ),
        Kind.B.value: KindRule(
            Kind.B.value,
            needs=(Need((Kind.F.value,), 0), Need(_GRADIENT_PRODUCERS, +1, Flow.GRADIENT)),
            output=Flow.GRADIENT,
            completes_weight_gradient=True,
            description="full backward",
        ),
        Kind.I.value: KindRule(
            Kind.I.value,
            needs=(Need((Kind.F.value,), 0), Need(_GRADIENT_PRODUCERS, +1, Flow.GRADIENT)),
            output=Flow.GRADIENT,
            description="backward for the input",
        ),
        Kind.W.value: KindRule(
            Kind.W.value,
            needs=(Need((Kind.I.value,), 0),),
            output=None,
            completes_weight_gradient=True,
            description="backward for the weights",
        ),
    },
    requirements=(((Kind.F.value,),), ((Kind.B.value,), (Kind.I.value, Kind.W.value))),
)
