"""What an action kind costs and how it looks: the traits a ``KindRule`` carries besides its needs.

Why here, beside the dependency rule: the cost model, the profile, the Ray stage, the recorder's
readers and the figures all used to keep their own table of kind letters ("B is I + W", "I and B
re-run the forward", "W is yellow"). A kind now says once which shares of its stage's work it
does and how it is drawn, and every reader asks it.

A stage's work has three parts, named as the kinds that do each one whole::

    F  the forward            I  the backward for the inputs     W  the backward for the weights

so ``F`` does ``{F: 1}``, ``B`` does ``{I: 1, W: 1}``, ``I`` ``{I: 1}`` and ``W`` ``{W: 1}``; a
made-up kind may do, say, half of the forward (``Work(F=0.5)``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

WORK_PARTS = ("F", "I", "W")  # forward, backward for the inputs, backward for the weights


@dataclass(frozen=True)
class Work(Mapping):
    """The shares of its stage's work parts one action does, as a frozen mapping part -> share.

    Why a mapping of shares and not a time: times belong to a cost model (unit, FLOPs, a
    measured profile), which prices the three parts per stage; a kind's time is then its shares
    of them (``cost``), whatever the model. Only the parts with a share are keys."""

    F: float = 0.0
    I: float = 0.0
    W: float = 0.0

    def __post_init__(self) -> None:
        for part in WORK_PARTS:
            share = getattr(self, part)
            if not (isinstance(share, (int, float)) and math.isfinite(share) and share >= 0):
                raise ValueError(f"a work share must be a finite number >= 0, got {share!r}")
            object.__setattr__(self, part, float(share))

    def __getitem__(self, part: str) -> float:
        share = getattr(self, part) if part in WORK_PARTS else 0.0
        if not share:
            raise KeyError(part)
        return share

    def __iter__(self) -> Iterator[str]:
        return (part for part in WORK_PARTS if getattr(self, part))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @property
    def whole_part(self) -> str | None:
        """The one part this work is, whole (``F`` for the forward); None for any other mix."""
        parts = list(self)
        return parts[0] if len(parts) == 1 and self[parts[0]] == 1 else None

    def cost(self, parts: Mapping[str, float]) -> float:
        """The time of this work when each part costs ``parts[part]`` (a part it has no share
        of is never read, so it may be missing or infinite)."""
        return self.price(*(parts[p] if getattr(self, p) else 0.0 for p in WORK_PARTS))

    def price(self, forward: float, inputs: float, weights: float) -> float:
        """``cost`` with the parts' times given in order (F, I, W): the executor's hot path,
        one call per stage and kind. A part with no share is never multiplied (it may be
        infinite)."""
        total = 0.0
        if self.F:
            total += self.F * forward
        if self.I:
            total += self.I * inputs
        if self.W:
            total += self.W * weights
        return total

    def spread(self, total: float) -> dict[str, float]:
        """The part costs that make this work cost ``total``, its parts costing alike
        (``B=2`` means I = W = 1; half a forward costing 1 means F = 2)."""
        return {part: total / sum(self.values()) for part in self}

    def split(self, total: float, weights: Mapping[str, float]) -> dict[str, float]:
        """The part costs that make this work cost ``total``, each part's share of it in
        proportion to ``weights`` (FLOPs) times its share, equal shares if they are all 0; the
        last part takes the rest, so the shares add up exactly."""
        parts = list(self)
        weighted = [self[p] * weights[p] for p in parts]
        whole = sum(weighted)
        fractions = [w / whole for w in weighted] if whole else [self[p] for p in parts]
        if not whole:
            fractions = [f / sum(fractions) for f in fractions]
        out, used = {}, 0.0
        for n, part in enumerate(parts):
            fraction = fractions[n] if n + 1 < len(parts) else 1 - used
            used += fraction
            out[part] = total * fraction / self[part]
        return out


@dataclass(frozen=True)
class Display:
    """How the figures show a kind: its legend label and a colour key.

    Why a key and not a colour: ``schedules`` knows no palette; the figures map the key
    (``sky``, ``orange``: a name in their colour-blind-safe palette) to a colour, and take any
    other text as a colour matplotlib reads (``#CC79A7``)."""

    label: str
    colour: str
