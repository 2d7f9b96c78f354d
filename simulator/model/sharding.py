"""Sharded data parallelism: what each sharding stage splits over the replicas, and the full
copies a rank still holds for a moment while it works.

Why a value of its own: the stage (``Layout.sharding``), the replicas it splits over and the two
knobs that set its transient memory (the gradient bucket, the parameter prefetch) are read by the
whole-rank memory (``simulator.run.rank_memory``), by ``advise``'s bounds and by the
communication volumes (``sharding_comm``); one frozen value keeps them counting the same rule.

The stages, ZeRO's names (Rajbhandari et al. 2020) and Megatron-FSDP's
(``data_parallel_sharding_strategy`` in Megatron-LM's
``megatron/core/distributed/distributed_data_parallel_config.py``):

=====  ================  ======================  =========================================
stage  ZeRO              Megatron-FSDP           split over the data-parallel replicas
=====  ================  ======================  =========================================
z0     baseline DP       ``no_shard``            nothing
z1     P_os (ZeRO-1)     ``optim``               the optimizer state the recipe lets shard
z2     P_os+g (ZeRO-2)   ``optim_grads``         ... and the gradients
z3     P_os+g+p (ZeRO-3) ``optim_grads_params``  ... and the weights (FSDP)
=====  ================  ======================  =========================================

What a precision recipe lets each stage split is ``Precision.sharded_parts``. Besides its shards
a rank holds, at z2 and z3, a *gradient bucket*: the full gradients accumulating before their
reduce-scatter; and at z3 the *gathered parameters* of the blocks in flight: the block it runs
and the next one, prefetched (``prefetch = 1``), in the forward and again in the backward. The
unit gathered and reduced at once is a block (a transformer block, the embedding, the head), as
FSDP wraps a model (``rank_memory.stage_units``).
Neither exists with one replica (nothing to reduce-scatter or gather), so ``d1`` at any stage
holds what z0 holds.

The bucket (``bucket``, in parameters) defaults to Megatron Core's: ``max(40,000,000,
1,000,000 x d)`` parameters (``DistributedDataParallelConfig.bucket_size``, same file, at commit
``MEGATRON_DDP_COMMIT``); DeepSpeed's ``reduce_bucket_size`` is 500,000,000. A parameter larger
than a bucket gets a bucket of its own (Megatron) and FSDP reduce-scatters one block at a time,
so the bucket is at least the rank's largest block, and at most all the rank's parameters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from simulator.errors import PebbleError

MEGATRON_DDP_COMMIT = "001199898c4badd01eaf0785c212d8ed7ce83042"
"""The Megatron-LM commit whose ``megatron/core/distributed/distributed_data_parallel_config.py``
gives the default bucket, ``max(40000000, 1000000 * dp_size)`` parameters."""

BUCKET_FLOOR = 40_000_000
BUCKET_PER_REPLICA = 1_000_000
DEEPSPEED_REDUCE_BUCKET = 500_000_000
"""DeepSpeed's ``zero_optimization.reduce_bucket_size`` default, in elements: an override to try."""


def default_bucket(data: int) -> int:
    """Megatron Core's gradient bucket for ``data`` replicas, in parameters."""
    return max(BUCKET_FLOOR, BUCKET_PER_REPLICA * data)


@dataclass(frozen=True)
class Sharding:
    """One rank's sharded data parallelism: the ``stage`` (0..3), the ranks that hold the same
    dense weights (``replicas``, what a stage of 1 or more splits over and what the gradients
    are reduced over) and the same routed experts (``expert_replicas``, the expert data-parallel
    group), the gradient ``bucket`` in parameters (None: Megatron's default) and how many blocks
    z3 gathers ahead of the one it runs (``prefetch``)."""

    stage: int = 0
    replicas: int = 1
    expert_replicas: int = 1
    bucket: int | None = None
    prefetch: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.stage, bool) or self.stage not in (0, 1, 2, 3):
            raise PebbleError(f"the sharding stage must be 0, 1, 2 or 3, got {self.stage!r}.")
        for name in ("replicas", "expert_replicas", "bucket", "prefetch"):
            value = getattr(self, name)
            if name == "bucket" and value is None:
                continue
            low = 0 if name == "prefetch" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise PebbleError(
                    f"the sharding's {name} must be a whole number of at least {low}, "
                    f"got {value!r}."
                )

    @classmethod
    def of_layout(cls, layout, bucket: int | None = None, prefetch: int = 1) -> Sharding:
        """The sharding a ``Layout`` runs: its stage, over the ranks that hold the same weights
        (what the layout's distributed optimizer shards over) and the same routed experts."""
        sharded = replace(layout, sharding=max(1, layout.sharding))
        return cls(
            stage=layout.sharding,
            replicas=sharded.optimizer_shards,
            expert_replicas=sharded.expert_optimizer_shards,
            bucket=bucket,
            prefetch=prefetch,
        )

    # ------------------------------------------------------------------ what is split
    def shards_of(self, expert: bool) -> int:
        """The replicas a dense (``expert`` False) or routed-expert parameter is split over;
        1 at stage 0."""
        if self.stage == 0:
            return 1
        return self.expert_replicas if expert else self.replicas

    @property
    def splits_gradients(self) -> bool:
        """Gradients are reduce-scattered into shards (z2 and z3, more than one replica)."""
        return self.stage >= 2 and max(self.replicas, self.expert_replicas) > 1

    @property
    def gathers_parameters(self) -> bool:
        """Weights live as shards and are all-gathered before use (z3, more than one replica)."""
        return self.stage >= 3 and max(self.replicas, self.expert_replicas) > 1

    @property
    def bucket_params(self) -> int:
        """The gradient bucket in parameters (Megatron's default unless given)."""
        return self.bucket if self.bucket is not None else default_bucket(self.replicas)

    # ------------------------------------------------------------------ what is in flight
    def gathered(self, params: int, experts: int = 0) -> int:
        """Parameters of one block (``params``, of which ``experts`` are routed experts) that z3
        gathers whole before running it: its parts that are sharded at all."""
        if not self.gathers_parameters:
            return 0
        dense = params - experts if self.replicas > 1 else 0
        routed = experts if self.expert_replicas > 1 else 0
        return dense + routed

    def in_flight_params(self, blocks: Iterable[tuple[int, int]]) -> int:
        """Gathered parameters a rank holds at once at z3: the ``1 + prefetch`` largest of its
        blocks, each ``(params, experts)``, whole (the block that runs and the ones fetched
        ahead; an upper bound on any run of consecutive blocks, exact for equal blocks)."""
        sizes = sorted((self.gathered(p, x) for p, x in blocks), reverse=True)
        return sum(sizes[: 1 + self.prefetch])

    def bucket_of(self, blocks: Iterable[tuple[int, int]]) -> int:
        """Full gradients a rank holds at once before their reduce-scatter at z2 and z3, in
        parameters: the bucket, at least the largest block, at most every parameter it has."""
        if not self.splits_gradients:
            return 0
        sizes = [p for p, _ in blocks]
        if not sizes:
            return 0
        return min(sum(sizes), max(self.bucket_params, max(sizes)))


NOT_SHARDED = Sharding()
"""Stage 0 on one replica: every copy whole, nothing in flight."""
