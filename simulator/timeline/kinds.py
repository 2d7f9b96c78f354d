"""The action kinds as the Timeline's readers see them: the dependency rule's traits, re-exported.

Why here: a Timeline row names its kind by letter only, and the readers (the summary, the
schema, the figures) must know what a letter means: whether it is a forward or a backward,
whether it completes a weight gradient, which flow it receives, how it is labelled and
coloured. That is the one dependency rule's (``schedules.dependencies``), and ``visualize`` may
read only this package, so the traits reach it through here, never as a table of letters.

Every function takes the rule (default ``PIPELINE_RULE``, the kinds a Timeline file may hold),
so a run with a made-up kind is read with the rule that made it.
"""

from __future__ import annotations

from schedules.dependencies import (
    PIPELINE_RULE,
    WORK_PARTS,
    DependencyRule,
    Display,
    Flow,
    KindRule,
    Work,
)

__all__ = [
    "PIPELINE_RULE",
    "WORK_PARTS",
    "DependencyRule",
    "Display",
    "Flow",
    "KindRule",
    "Work",
    "backward_kinds",
    "forward_kinds",
    "kind_display",
    "received_flows",
    "weight_gradient_kinds",
]

NO_DISPLAY_COLOUR = "#999999"  # a kind without a display (or unknown to the rule): grey


def forward_kinds(rule: DependencyRule = PIPELINE_RULE) -> tuple[str, ...]:
    """The kinds that take a microbatch into a stage (``F``)."""
    return rule.having("is_forward")


def backward_kinds(rule: DependencyRule = PIPELINE_RULE) -> tuple[str, ...]:
    """The kinds that do backward work (``B``, ``I``, ``W``)."""
    return rule.having("is_backward")


def weight_gradient_kinds(rule: DependencyRule = PIPELINE_RULE) -> tuple[str, ...]:
    """The kinds that add a microbatch's weight-gradient share (``B``, ``W``)."""
    return rule.having("completes_weight_gradient")


def received_flows(rule: DependencyRule = PIPELINE_RULE) -> dict[str, str]:
    """Per kind that receives from a neighbouring stage, the flow it receives (the Timeline's
    comm kind): ``F`` the activation, ``I`` and ``B`` the gradient."""
    return {k: r.receives.value for k, r in rule.kinds.items() if r.receives is not None}


def kind_display(kind: str, rule: DependencyRule = PIPELINE_RULE) -> Display:
    """How the figures show ``kind``: its rule's display, or its letter in grey."""
    known = rule.kinds.get(kind)
    if known is not None and known.display is not None:
        return known.display
    return Display(kind, NO_DISPLAY_COLOUR)
