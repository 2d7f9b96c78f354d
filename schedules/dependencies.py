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

Each ``KindRule`` also carries what the kind *is* to everything that is not the dependency
rule (``kind_traits``): which shares of its stage's work it does (the cost models price a kind
from them, the Ray stage picks its handler by them), and its legend label and colour key (the
figures draw it by them). So a made-up kind that computes, say half a forward, is one
``KindRule`` passed to ``PIPELINE_RULE.with_kind`` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from schedules.kind_traits import WORK_PARTS, Display, Work

__all__ = [
    "PIPELINE_RULE",
    "WORK_PARTS",
    "DependencyRule",
    "Display",
    "Flow",
    "Kind",
    "KindRule",
    "Need",
    "Work",
]


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
    """Everything about one action kind: its dependencies and the traits its readers ask.

    ``output`` is what the action sends to a neighbouring stage (``None``: nothing leaves).
    ``completes_weight_gradient``: the action adds this microbatch's weight-gradient share.
    ``work``: the shares of its stage's forward (``F``), input-backward (``I``) and
    weight-backward (``W``) work it does, which is what it costs under any cost model.
    ``display``: its legend label and colour key (None: drawn as its letter, in grey).
    """

    kind: str
    needs: tuple[Need, ...]
    output: Flow | None
    completes_weight_gradient: bool = False
    description: str = ""
    work: Work = Work()
    display: Display | None = None

    @property
    def is_forward(self) -> bool:
        """Its output flows down the pipeline: it takes a microbatch into the stage (the stage's
        data on stage 0, the targets on the last), caching what the backward needs."""
        return self.output is Flow.ACTIVATION

    @property
    def sends_gradient(self) -> bool:
        """Its output is the input gradient, up the pipeline: it consumes the microbatch's
        cached forward, so it is where a dropped segment's forward is re-run (recompute)."""
        return self.output is Flow.GRADIENT

    @property
    def is_backward(self) -> bool:
        """It does backward work (for the inputs or the weights): it carries the gradient on
        or consumes what the forward cached."""
        return bool(self.work.I or self.work.W)

    @property
    def receives(self) -> Flow | None:
        """What it receives from a neighbouring stage (its first need with a flow), or None."""
        return next((n.flow for n in self.needs if n.flow is not None), None)

    @property
    def label(self) -> str:
        """Its legend label (``F forward``); the kind's letter when it has no display."""
        return self.display.label if self.display else self.kind


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

    def __hash__(self) -> int:  # a key of the simulator's per-stage memory plan cache
        return hash((tuple(self.kinds.items()), self.requirements))

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

    def having(self, trait: str) -> tuple[str, ...]:
        """The kinds whose ``KindRule`` has ``trait`` (a property name such as
        ``is_backward``), in the rule's order."""
        return tuple(k for k, r in self.kinds.items() if getattr(r, trait))

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
            work=Work(F=1),
            display=Display("F forward", "sky"),
        ),
        Kind.B.value: KindRule(
            Kind.B.value,
            needs=(Need((Kind.F.value,), 0), Need(_GRADIENT_PRODUCERS, +1, Flow.GRADIENT)),
            output=Flow.GRADIENT,
            completes_weight_gradient=True,
            description="full backward",
            work=Work(I=1, W=1),
            display=Display("B backward", "orange"),
        ),
        Kind.I.value: KindRule(
            Kind.I.value,
            needs=(Need((Kind.F.value,), 0), Need(_GRADIENT_PRODUCERS, +1, Flow.GRADIENT)),
            output=Flow.GRADIENT,
            description="backward for the input",
            work=Work(I=1),
            display=Display("I backward (inputs)", "green"),
        ),
        Kind.W.value: KindRule(
            Kind.W.value,
            needs=(Need((Kind.I.value,), 0),),
            output=None,
            completes_weight_gradient=True,
            description="backward for the weights",
            work=Work(W=1),
            display=Display("W backward (weights)", "yellow"),
        ),
    },
    requirements=(((Kind.F.value,),), ((Kind.B.value,), (Kind.I.value, Kind.W.value))),
)
