"""Precision recipes: what one parameter costs a rank in weights, gradients, main (master)
weights and optimizer moments, as one named value.

Why a value of the model layer: the bytes a run keeps per parameter are a choice of the training
recipe, not of the activation dtype alone (Megatron-LM and ZeRO both train "in bf16" and keep 18
and 16 bytes per parameter). A transformer spec names its recipe (``precision=NAME`` in its
text); the whole-rank memory (``simulator.run.rank_memory``) and ``advise``'s bounds count by it.

The recipes (bytes per parameter over ``d`` data-parallel replicas; ZeRO-1, ``Layout.sharding
>= 1``, splits the main weights and the moments, ZeRO-2 the gradients too, ZeRO-3 the weights
too, ``sharded_parts``):

==============  =======  =========  ======  =======  =====  =========  =========  ======
name            weights  gradients  master  moments  total  ZeRO-1     ZeRO-2     ZeRO-3
==============  =======  =========  ======  =======  =====  =========  =========  ======
``bf16``        2        4          4       8        18     6 + 12/d   2 + 16/d   18/d
``bf16-grads``  2        2          4       8        16     4 + 12/d   2 + 14/d   16/d
``fp8``         2        4          4       4        14     6 + 8/d    2 + 12/d   14/d
``fp32``        4        4          0       8        16     8 + 8/d    4 + 12/d   16/d
``fp64``        8        8          0       16       32     16 + 16/d  8 + 24/d   32/d
==============  =======  =========  ======  =======  =====  =========  =========  ======

Megatron's fp32 main weights are optimizer state (``master``), split from ZeRO-1 on; a recipe
without them (``fp32``, ``fp64``) keeps its weights whole until ZeRO-3. ``bf16``'s gradients are
the fp32 main gradients Megatron accumulates and reduces, so ZeRO-2 splits 4 bytes. The copies a
rank holds only for a moment (the gradient bucket, the gathered layers) are
``simulator.model.sharding``'s; these are the resident shards, what ZeRO's Figure 1 counts.

The default: a 2-byte (bfloat16/float16) model counts ``DEFAULT_TWO_BYTE``; a numpy float32 or
float64 model keeps weights, gradients and Adam's two moments in its own dtype (``fp32``,
``fp64``), which is what the Ray executor's numpy stages really hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.errors import PebbleError

MEGATRON_COMMIT = "d98e8a64ddf34856e74b24714e3bedb2f5a39553"
"""The Megatron-LM commit whose ``megatron/training/theoretical_memory_usage.py`` and
``docs/user-guide/features/dist_optimizer.md`` the ``bf16`` and ``fp32`` recipes were read from."""

SHARDABLE = ("master", "moments")
"""What a recipe may let ZeRO-1 shard: the optimizer's own state (stage 2 adds the gradients and
stage 3 the weights, whatever the recipe: ``Precision.sharded_parts``)."""
STAGE_ADDS = {2: "gradients", 3: "weights"}
"""What each sharding stage above 1 splits besides the stages below it."""


@dataclass(frozen=True)
class Precision:
    """One recipe: bytes per parameter of each copy a rank keeps, what ZeRO-1 shards, and where
    the numbers come from. ``master`` is 0 when the weights are their own master copy."""

    name: str
    weights: int
    gradients: int
    master: int
    moments: int
    summary: str
    source: str
    sharded: tuple[str, ...] = SHARDABLE

    def __post_init__(self) -> None:
        for part in ("weights", "gradients", "master", "moments"):
            value = getattr(self, part)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PebbleError(
                    f"precision {self.name!r}: {part} must be whole bytes, got {value!r}."
                )
        if not set(self.sharded) <= set(SHARDABLE):
            raise PebbleError(
                f"precision {self.name!r}: ZeRO-1 shards only {' and '.join(SHARDABLE)}."
            )

    @property
    def optimizer_state(self) -> int:
        """Main weights and moments: what the optimizer keeps, bytes per parameter."""
        return self.master + self.moments

    @property
    def total(self) -> int:
        """Bytes per parameter with nothing sharded."""
        return self.weights + self.gradients + self.optimizer_state

    def sharded_parts(self, stage: int = 1) -> tuple[str, ...]:
        """What sharding ``stage`` splits over the replicas under this recipe: nothing (0), the
        optimizer state this recipe lets ZeRO-1 shard (1), plus the gradients (2), plus the
        weights (3)."""
        if stage <= 0:
            return ()
        return self.sharded + tuple(STAGE_ADDS[s] for s in (2, 3) if s <= stage)

    def per_parameter(self, shards: int = 1, stage: int = 1) -> float:
        """Bytes per parameter with what ``stage`` shards split ``shards`` ways (Megatron's
        ``6 + 12/d`` at stage 1; ZeRO's ``2 + 14/d`` at stage 2 under ``bf16-grads``)."""
        split = sum(getattr(self, part) for part in self.sharded_parts(stage))
        return self.total - split + split / shards

    def rank_bytes(self, params: int, shards: int = 1, stage: int = 1) -> tuple[int, int, int]:
        """(weights, gradients, optimizer state) bytes of ``params`` parameters, what ``stage``
        shards split ``shards`` ways (each part rounded up)."""
        parts = self.sharded_parts(stage)

        def held(part_bytes: int, split: bool) -> int:  # one part's bytes on a rank, rounded up
            return -(-params * part_bytes // shards) if split else params * part_bytes

        state_split = sum(getattr(self, part) for part in self.sharded)
        return (
            held(self.weights, "weights" in parts),
            held(self.gradients, "gradients" in parts),
            held(self.optimizer_state - state_split, False) + held(state_split, bool(parts)),
        )

    def to_text(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name


BF16 = Precision(
    "bf16",
    weights=2,
    gradients=4,
    master=4,
    moments=8,
    summary="bf16 weights, fp32 gradient accumulation, fp32 main weights and Adam moments",
    source=(
        "Megatron-LM's bf16 default: 18 bytes, 6 + 12/d with the distributed optimizer "
        "(megatron/training/theoretical_memory_usage.py, num_bytes_per_parameter, and "
        f"docs/user-guide/features/dist_optimizer.md, at commit {MEGATRON_COMMIT[:8]})"
    ),
)
BF16_GRADS = Precision(
    "bf16-grads",
    weights=2,
    gradients=2,
    master=4,
    moments=8,
    summary="bf16 weights and gradients, fp32 master weights and Adam moments",
    source=(
        "ZeRO's mixed-precision Adam: 2 + 2 + K with K = 12, 16 bytes (Rajbhandari et al. 2020, "
        "section 3.1 and Figure 1)"
    ),
)
FP8 = Precision(
    "fp8",
    weights=2,
    gradients=4,
    master=4,
    moments=4,
    summary=(
        "FP8 GEMMs on bf16 weights, fp32 gradient accumulation and master weights, "
        "bf16 AdamW moments"
    ),
    source=(
        "DeepSeek-V3 Technical Report (arXiv 2412.19437), section 3.3: the master weights and "
        "the gradients used for batch-size accumulation are kept in FP32, the AdamW first and "
        "second moments in BF16; as Transformer Engine does, a GEMM quantizes its bf16 weight "
        "to FP8 as it runs (that transient copy is not counted)"
    ),
)
FP32 = Precision(
    "fp32",
    weights=4,
    gradients=4,
    master=0,
    moments=8,
    summary="fp32 weights (their own master copy), gradients and Adam moments",
    source=(
        "pure fp32 training: 16 bytes, 8 + 8/d with the distributed optimizer (Megatron-LM "
        f"docs/user-guide/features/dist_optimizer.md at commit {MEGATRON_COMMIT[:8]}); what a "
        "numpy float32 model holds"
    ),
)
FP64 = Precision(
    "fp64",
    weights=8,
    gradients=8,
    master=0,
    moments=16,
    summary="float64 weights, gradients and Adam moments",
    source="what a numpy float64 model holds (pebblesim's Ray stages)",
)

PRECISIONS: dict[str, Precision] = {p.name: p for p in (BF16, BF16_GRADS, FP8, FP32, FP64)}

DEFAULT_TWO_BYTE = BF16
"""The recipe a 2-byte (bfloat16/float16) model counts unless told otherwise: Megatron-LM's bf16
default (fp32 gradient accumulation), what a user reproducing a published Megatron run expects."""

_OWN_DTYPE = {4: FP32, 8: FP64}


def precision_named(name: str) -> Precision:
    """The recipe called ``name`` (case-insensitive), or one sentence naming the recipes."""
    key = str(name).strip().lower()
    if key not in PRECISIONS:
        raise PebbleError(
            f"unknown precision recipe {str(name)[:40]!r}; choose one of {', '.join(PRECISIONS)}."
        )
    return PRECISIONS[key]


def default_precision(itemsize: int) -> Precision:
    """The recipe of a model whose weights and activations are ``itemsize`` bytes."""
    if itemsize == 2:
        return DEFAULT_TWO_BYTE
    if itemsize not in _OWN_DTYPE:
        raise PebbleError(f"no precision recipe for {itemsize}-byte weights.")
    return _OWN_DTYPE[itemsize]
