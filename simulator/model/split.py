"""How many blocks each stage takes: the rule a partition follows, as one value with a text form.

Three rules (``--split``):

* ``balanced`` (the default): contiguous stages balanced by forward + backward FLOPs
  (``partitioning.partition``); the embedding and the head weigh what their FLOPs weigh.
* ``even``: Megatron-LM's rule. A transformer's blocks are split evenly over the ``p * v``
  stages (each stage takes ``layers / (p * v)`` of them), the embedding joins the first stage and
  the final norm, LM head and loss join the last. An MLP's Linear blocks (each Linear with its
  norm and activation; the last with the loss) are split evenly. The blocks must divide.
* ``N,N,...``: the transformer blocks (an MLP's Linear blocks) of each stage, in model order;
  the embedding joins stage 0 and the head the last stage, as with ``even``. There are as many
  numbers as stages and they sum to the model's blocks.

Why a value: a plan records the rule it was split by, and the text parses back, so a printed
run can be given again.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.errors import PebbleError

RULES = ("balanced", "even")
_HINT = "write balanced, even or the blocks per stage like 6,6,5,5"


@dataclass(frozen=True)
class Split:
    """A split rule: ``balanced``, ``even``, or ``blocks`` (the blocks of each stage)."""

    rule: str = "balanced"
    blocks: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.rule not in (*RULES, "blocks"):
            raise PebbleError(f"unknown split rule {self.rule!r}; {_HINT}.")
        if (self.rule == "blocks") != bool(self.blocks):
            raise PebbleError(f"a split gives blocks per stage only with the blocks rule; {_HINT}.")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in self.blocks):
            raise PebbleError(
                f"a split's blocks per stage are whole numbers, 0 or more; got {self.to_text()}."
            )

    @classmethod
    def parse(cls, text: str | Split | None) -> Split:
        """``balanced``, ``even`` or ``6,6,5,5`` (None: balanced)."""
        if isinstance(text, Split):
            return text
        if text is None:
            return BALANCED
        words = str(text).strip().lower()
        if words in RULES:
            return cls(words)
        try:
            blocks = tuple(int(n) for n in words.split(","))
        except ValueError:
            raise PebbleError(f"cannot read split {str(text)[:60]!r}; {_HINT}.") from None
        return cls("blocks", blocks)

    def to_text(self) -> str:
        return ",".join(map(str, self.blocks)) if self.rule == "blocks" else self.rule

    def __str__(self) -> str:
        return self.to_text()

    def block_counts(self, blocks: int, stages: int, what: str) -> tuple[int, ...]:
        """Blocks of each of ``stages`` stages for a model of ``blocks`` ``what`` (``even`` and
        the explicit rule; one sentence when they do not fit)."""
        if self.rule == "even":
            if blocks % stages:
                low = blocks // stages
                example = ",".join(str(low + (s < blocks % stages)) for s in range(stages))
                raise PebbleError(
                    f"--split even needs the model's {blocks} {what} to divide evenly over the "
                    f"{stages} stages; use --split balanced or give the {what} per stage"
                    + (f", e.g. --split {example}." if low else ".")
                )
            return (blocks // stages,) * stages
        if self.rule != "blocks":
            raise ValueError(f"the {self.rule} rule has no block counts")
        if len(self.blocks) != stages or sum(self.blocks) != blocks:
            raise PebbleError(
                f"--split {self.to_text()} gives {sum(self.blocks)} {what} over "
                f"{len(self.blocks)} stages, but the model has {blocks} {what} and the schedule "
                f"{stages} stages."
            )
        return self.blocks


BALANCED = Split()
EVEN = Split("even")
