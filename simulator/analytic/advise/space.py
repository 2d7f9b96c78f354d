"""What ``advise`` searches: every way to run one training step of a transformer on N GPUs.

A configuration (``Candidate``) fixes the pipeline, tensor and data degrees (``pp * tp * dp``
= the GPUs, ``tp`` within a node), the schedule family and its chunks, the microbatch size and
count (``dp * microbatches * microbatch_size`` = the global batch), the recompute policy and the
activation offload policy.
Tensor parallelism always comes with sequence parallelism (in this cost model it moves the same
bytes in the same time and holds a ``tp``-th of the activations), and with ``dp > 1`` the
optimizer state is sharded over the replicas (ZeRO-1) unless the request says otherwise.

This module holds the configuration, the request and the policy lists; ``enumeration.candidates``
walks the space in a fixed order, built from ``degrees``, ``families`` and ``policies``; a
configuration a family's own size rule would refuse (interleaved needs
``m % p == 0``, DualPipeV ``m >= 2p``) is never produced. Mistakes in the request are one
``PebbleError`` sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from simulator.analytic.hardware import HardwarePreset
from simulator.errors import PebbleError
from simulator.model.layout import Layout
from simulator.model.offload import OffloadPolicy
from simulator.model.recompute import RecomputePolicy
from simulator.model.transformer.spec import TransformerSpec

# The recompute policies ``advise`` searches by default (``simulate --recompute``; ``advise
# --recompute`` picks others). The bounds know each one's retained bytes and recompute seconds
# (``stage_tables.stage_table``); a policy whose plan equals an earlier one's on a split
# (selective on a model without attention) is skipped (``policies.distinct_policies``).
RECOMPUTE_POLICIES = ("none", "selective", "full")
AUTO = "auto"  # the automatic schedule (``--schedule auto``), not a registry family
# The offload policies ``advise --offload`` searches when offload is searched (``simulate
# --offload``). Offload never shortens a step (a backward can only wait for its prefetch), so a
# configuration with offload is only worth a row where the same one without it does not fit;
# by default advise searches ``none`` and turns to these only when nothing fits
# (``simulator.cli.advise``).
OFFLOAD_POLICIES = ("none", "full", "selective")


@dataclass(frozen=True)
class Candidate:
    """One configuration: enough to rebuild its run with ``pebblesim simulate``."""

    schedule: str
    pp: int
    tp: int
    dp: int
    microbatches: int
    microbatch_size: int  # sequences per microbatch on one replica
    chunks: int = 1  # stages per rank
    recompute: str = "none"
    distributed_optimizer: bool = False
    auto_memory: int | None = None  # auto: each rank's whole memory, bytes (--memory-limit
    # total:...): a rank's activations get what its own static memory leaves of it
    sharding: int = 1  # the stage of a distributed optimizer (2, 3: ZeRO-2, ZeRO-3)
    cp: int = 1  # context-parallel degree (each sequence in 2 cp chunks, within the node with tp)
    cp_comm: str = "ring"  # how the context ranks exchange K/V (ring or allgather)
    ep: int = 1  # expert-parallel degree (MoE models: divides dp * cp and the experts)
    offload: str = "none"  # the activation offload policy (``simulate --offload``)

    @property
    def sp(self) -> bool:
        return self.tp > 1

    @property
    def gpus(self) -> int:
        return self.layout.devices

    @property
    def layout(self) -> Layout:
        """The parallel layout (tensor parallelism always with sequence parallelism)."""
        return Layout(
            pipeline=self.pp,
            chunks=self.chunks,
            tensor=self.tp,
            sequence_parallel=self.sp,
            context=self.cp,
            cp_comm=self.cp_comm if self.cp > 1 else "ring",
            expert=self.ep,
            data=self.dp,
            sharding=self.sharding if self.distributed_optimizer else 0,
        )

    @property
    def layer(self) -> Layout:
        """Its layer layout (``Layout.for_layers``): the degrees that change what one rank holds
        of a layer, the one key of the stage tables (``stage_tables``) and the bounds' groups."""
        return self.layout.for_layers()

    @property
    def global_batch(self) -> int:
        return self.dp * self.microbatches * self.microbatch_size

    @property
    def stages(self) -> int:
        return self.pp * self.chunks

    def rows(self, split: bool, layers: int) -> int:
        """Rows of its one-step Timeline, what simulating it costs (about 0.4 us each): F and B
        (or F, I and W) per stage and microbatch, and each layer's cache growing in its forward
        and shrinking in its backward, per microbatch."""
        return ((3 if split else 2) * self.stages + 2 * layers) * self.microbatches

    def label(self) -> str:
        """``zb-v p8 v2 t8 sp c1 e1 d1 z0 m64x1``: the short name a figure or log uses (the
        family, its layout, then m microbatches x their sequences)."""
        schedule = self.schedule
        if self.schedule == AUTO:
            schedule = f"auto {'v' if self.chunks == 2 else 'loop'}"
        policy = "" if self.recompute == "none" else f" rc={self.recompute}"
        if self.offload != "none":
            policy += f" off={self.offload}"
        return f"{schedule} {self.layout} m{self.microbatches}x{self.microbatch_size}{policy}"

    def without_offload(self) -> Candidate:
        """The same configuration keeping every activation on the device."""
        return replace(self, offload="none")


@dataclass(frozen=True)
class Request:
    """What the user asked: the model (a transformer spec, unsharded), the device, the GPUs and
    the global batch in sequences, the per-GPU memory limit in bytes (what a configuration may
    use: the device, or ``--memory-limit``, less the ``headroom`` reserved for the CUDA context
    and fragmentation), and the choices to try."""

    spec: TransformerSpec
    hardware: HardwarePreset
    gpus: int
    global_batch: int
    memory_limit: int
    families: tuple[str, ...]
    recompute: tuple[str, ...] = RECOMPUTE_POLICIES
    max_chunks: int = 4
    distributed_optimizer: bool = True
    sharding: int = 1  # its stage when distributed (``--zero 2`` or ``3`` fixes a higher one)
    shardings: tuple[int, ...] = ()  # stages to search instead (``--zero-stages 1,2,3``)
    max_rows: int = 5_000_000  # a configuration whose Timeline has more rows is not simulated
    tensor: int | None = None  # the tensor-parallel degree, when fixed (``--tp``)
    data: int | None = None  # the data-parallel degree, when fixed (``--dp``)
    context: int | None = None  # the context-parallel degree, when fixed (``--cp``)
    cp_comm: str = "ring"  # how context-parallel ranks exchange K/V (``--cp-comm``)
    expert: int | None = None  # the expert-parallel degree, when fixed (``--ep``)
    headroom: int = 0  # bytes per GPU kept free beyond ``memory_limit`` (``advise.headroom``)
    offload: tuple[str, ...] = ("none",)  # activation offload policies to search (``--offload``)

    def __post_init__(self) -> None:
        node = self.hardware.gpus_per_node
        if self.gpus > node and self.gpus % node:
            raise PebbleError(
                f"{self.gpus} GPUs is not a whole number of {node}-GPU {self.hardware.name} "
                f"nodes; use at most {node} or a multiple of {node}."
            )
        if not self.families:
            raise PebbleError("advise needs at least one schedule family to search.")
        for move, texts, parse, named in (
            (
                "recompute",
                self.recompute,
                RecomputePolicy.parse,
                "none, selective, full, every:K, sqrt",
            ),
            ("offload", self.offload, OffloadPolicy.parse, "none, full, selective"),
        ):
            if not texts:
                raise PebbleError(f"advise needs at least one {move} policy to search.")
            for text in texts:
                policy = parse(text)
                if policy.budget is not None or policy.per_stage:
                    raise PebbleError(
                        f"advise searches whole-model {move} policies ({named}), not {text!r}: "
                        "a budget or a per-stage policy depends on the split, so try it on a "
                        f"row with simulate --{move}."
                    )

    @property
    def searches_offload(self) -> bool:
        return any(text != "none" for text in self.offload)
