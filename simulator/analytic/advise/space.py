"""What ``advise`` searches: every way to run one training step of a transformer on N GPUs.

A configuration (``Candidate``) fixes the pipeline, tensor and data degrees (``pp * tp * dp``
= the GPUs, ``tp`` within a node), the schedule family and its chunks, the microbatch size and
count (``dp * microbatches * microbatch_size`` = the global batch), the recompute policy and the
activation offload policy.
Tensor parallelism always comes with sequence parallelism (in this cost model it moves the same
bytes in the same time and holds a ``tp``-th of the activations), and with ``dp > 1`` the
optimizer state is sharded over the replicas (ZeRO-1) unless the request says otherwise.

``candidates`` enumerates them in a fixed order; a configuration a family's own size rule would
refuse (interleaved needs ``m % p == 0``, DualPipeV ``m >= 2p``) is never produced. Mistakes in
the request are one ``PebbleError`` sentence.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache

from schedules.actions import v_stage_to_rank
from schedules.dependencies import PIPELINE_RULE, KindRule
from schedules.registry import SCHEDULES, build_schedule, canonical_name
from simulator.analytic.hardware import HardwarePreset
from simulator.errors import PebbleError
from simulator.model import partition
from simulator.model.layout import Layout
from simulator.model.offload import OffloadPolicy
from simulator.model.recompute import RecomputePolicy, plan_stages
from simulator.model.spec import ModelSpec
from simulator.model.transformer.spec import TransformerSpec
from simulator.numbers import MAX_DP, MAX_TP

# The recompute policies ``advise`` searches by default (``simulate --recompute``; ``advise
# --recompute`` picks others). The bounds know each one's retained bytes and recompute seconds
# (``bounds.stage_table``); a policy whose plan equals an earlier one's on a split (selective on
# a model without attention) is skipped there.
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
    activation_limit: int | None = None  # auto's per-rank activation budget, bytes
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
        if not self.recompute:
            raise PebbleError("advise needs at least one recompute policy to search.")
        for text in self.recompute:
            policy = RecomputePolicy.parse(text)
            if policy.budget is not None or policy.per_stage:
                raise PebbleError(
                    f"advise searches whole-model recompute policies (none, selective, full, "
                    f"every:K, sqrt), not {text!r}: a budget or a per-stage policy depends on "
                    "the split, so try it on a row with simulate --recompute."
                )
        if not self.offload:
            raise PebbleError("advise needs at least one offload policy to search.")
        for text in self.offload:
            policy = OffloadPolicy.parse(text)
            if policy.budget is not None or policy.per_stage:
                raise PebbleError(
                    f"advise searches whole-model offload policies (none, full, selective), not "
                    f"{text!r}: a budget or a per-stage policy depends on the split, so try it "
                    "on a row with simulate --offload."
                )

    @property
    def searches_offload(self) -> bool:
        return any(text != "none" for text in self.offload)


@dataclass(frozen=True)
class FamilyTraits:
    """How a schedule family lays stages on ranks and runs the backward, found by building a
    tiny instance (2 ranks, 4 microbatches) once."""

    name: str
    layout: str  # "loop" (stage s on rank s mod p), "v" (down the ranks and back up) or "chunks"
    # (auto: loop with one chunk, V with two)
    split: bool  # any I or W action (a split backward): no B chain after a rank's last action
    fixed_chunks: bool
    default_chunks: int


def family_traits(name: str) -> FamilyTraits:
    if name == AUTO:  # a split backward (I and W), in a loop or a V: traits that bound any
        return FamilyTraits(AUTO, "chunks", True, False, 1)
    family = SCHEDULES[canonical_name(name)]
    probe = build_schedule(family.name, 2, 4, None)
    v = probe.chunks
    layout = "v" if v == 2 and probe.stage_to_rank == v_stage_to_rank(2, 2) else "loop"
    split = any(
        _splits_the_backward(PIPELINE_RULE.rule(a.kind)) for acts in probe.actions for a in acts
    )
    return FamilyTraits(family.name, layout, split, family.fixed_chunks, family.default_chunks)


def _splits_the_backward(rule: KindRule) -> bool:
    """A backward that does only one of the input and the weight gradient (``I`` or ``W``)."""
    return rule.is_backward and not (rule.sends_gradient and rule.completes_weight_gradient)


def divisors(n: int) -> list[int]:
    """Every divisor of ``n``, ascending (trial division up to its square root)."""
    small = [k for k in range(1, math.isqrt(n) + 1) if n % k == 0]
    return small + [n // k for k in reversed(small) if k * k != n]


def tensor_degrees(request: Request) -> list[int]:
    """Tensor-parallel degrees that stay within a node and divide the model (heads, kv heads,
    FFN, vocabulary)."""
    return sorted({t for t, _ in layer_degrees(request)})


def context_degrees(request: Request, tp: int) -> list[int]:
    """Context-parallel degrees to try beside ``tp``: the one fixed by ``--cp``, else powers of
    two with ``tp * c`` within a node (the K/V exchange runs on every attention layer, so it
    wants the node's links, as Megatron Core places the context group next to the tensor one)."""
    if request.context is not None:
        return [request.context]
    node = request.hardware.gpus_per_node
    out, c = [], 1
    while tp * c <= node and c <= MAX_TP:
        out.append(c)
        c *= 2
    return out


def layer_degrees(request: Request) -> list[tuple[int, int]]:
    """(tensor, context) pairs that divide the GPUs, keep the tensor group within a node and
    that the model can be split by (heads, kv heads, FFN, vocabulary; the sequence into
    ``2c`` chunks; attention that can exchange K/V)."""
    node = request.hardware.gpus_per_node
    out = []
    for t in divisors(request.gpus):
        if t > node or node % t or request.tensor not in (None, t):
            continue
        for c in context_degrees(request, t):
            if request.gpus % (t * c):
                continue
            try:
                sharded(request.spec, t, c, cp_comm=request.cp_comm)
            except PebbleError:
                continue
            out.append((t, c))
    return out


def expert_degrees(request: Request, tp: int, cp: int, dp: int) -> list[int]:
    """Expert-parallel degrees for a mixture of experts: those dividing ``dp * cp`` (the ranks
    it reuses) and the routed experts (the one fixed by ``--ep``); 1 for a dense model."""
    config = request.spec.config
    if not getattr(config, "is_moe", False):
        return [1] if request.expert in (None, 1) else []
    out = []
    for e in divisors(math.gcd(dp * cp, config.experts)):
        if e > MAX_TP or request.expert not in (None, e):
            continue
        try:
            sharded(request.spec, tp, cp, e, request.cp_comm)
        except PebbleError:
            continue
        out.append(e)
    return out


def sharded(
    spec: TransformerSpec, tp: int, cp: int = 1, ep: int = 1, cp_comm: str = "ring"
) -> TransformerSpec:
    """The spec held by one rank of tensor degree ``tp`` (sequence parallel with it), context
    degree ``cp`` and expert degree ``ep``."""
    layout = Layout(
        tensor=tp,
        sequence_parallel=tp > 1,
        context=cp,
        cp_comm=cp_comm if cp > 1 else "ring",
        expert=ep,
    )
    return replace(spec, layout=layout)


def blocks_of(spec: TransformerSpec) -> int:
    """Partition units (embedding, each transformer block, head): the most stages possible."""
    return len({info.block for info in spec.layers()})


@lru_cache(maxsize=1024)
def distinct_policies(
    spec: TransformerSpec | ModelSpec,
    tp: int,
    stages: int,
    policies: tuple[str, ...],
    cp: int = 1,
    ep: int = 1,
) -> tuple[str, ...]:
    """``policies`` less those whose plan on this split equals an earlier one's (the same run):
    selective on a model without an attention core is none, sqrt is full with one block a stage."""
    local = sharded(spec, tp, cp, ep) if spec.is_transformer else spec
    split = partition(local, stages)
    infos = local.layers()
    cores = [  # stages with an attention core, the only layer selective recompute changes
        any(getattr(infos[i].cls, "RECOMPUTED_SLOTS", None) is not None for i in layers)
        for layers in split.stage_layers
    ]
    seen, out = set(), []
    for text in policies:
        resolved = plan_stages(RecomputePolicy.parse(text), local, split).stages
        plan = tuple(
            replace(s, selective=s.selective and c) for s, c in zip(resolved, cores, strict=True)
        )
        if plan not in seen:
            seen.add(plan)
            out.append(text)
    return tuple(out)


def _schedule_choices(traits: FamilyTraits, p: int, m: int, max_chunks: int, blocks: int):
    """(family, chunks) pairs that suit p ranks and m microbatches."""
    names = {family.name for family in traits}
    for family in traits:
        if p == 1 and "1f1b" in names and family.name != "1f1b":
            continue  # one rank: every family is 1F1B or worse
        if family.name == AUTO:
            chunk_options = [1, 2]  # --layout loop, v
        elif family.fixed_chunks:
            chunk_options = [family.default_chunks]
        else:
            chunk_options = list(range(2, max_chunks + 1))
        for v in chunk_options:
            if p * v > blocks:
                continue
            if family.name == "interleaved-1f1b" and m % p:
                continue
            if family.name == "dualpipe-v" and m < 2 * p:
                continue
            yield family.name, v


def offload_choices(request: Request, schedule: str, pp: int) -> tuple[str, ...]:
    """The offload policies tried for a schedule on ``pp`` ranks: none on one rank (each
    backward follows its forward at once, so nothing could go out) and for auto (it plans its
    schedule to the memory limit without offload); ``none`` first, the twin the others are
    measured against."""
    if pp == 1 or schedule == AUTO:
        return ("none",) if "none" in request.offload else ()
    return tuple(sorted(request.offload, key=lambda text: text != "none"))


def candidates(request: Request) -> Iterator[Candidate]:
    """Every configuration of ``request``, tensor- then pipeline-major, each offload policy right
    after the same configuration without offload; raises when none is possible."""
    traits = [family_traits(name) for name in request.families]
    blocks = blocks_of(request.spec)
    found = False
    for t, cp in layer_degrees(request):
        for p in divisors(request.gpus // (t * cp)):
            d = request.gpus // (t * cp * p)
            if p > blocks or d > MAX_DP or request.global_batch % d:
                continue
            if request.data not in (None, d):
                continue
            zero = request.distributed_optimizer and d * cp > 1
            stages = request.shardings if zero and request.shardings else (request.sharding,)
            for e in expert_degrees(request, t, cp, d):
                for size in divisors(request.global_batch // d):
                    m = request.global_batch // (d * size)
                    for name, v in _schedule_choices(traits, p, m, request.max_chunks, blocks):
                        policies = distinct_policies(
                            request.spec, t, p * v, request.recompute, cp, e
                        )
                        offloads = offload_choices(request, name, p)
                        for policy in policies:
                            for z in stages:
                                for off in offloads:
                                    found = True
                                    yield Candidate(
                                        name,
                                        p,
                                        t,
                                        d,
                                        m,
                                        size,
                                        v,
                                        policy,
                                        zero,
                                        sharding=z,
                                        cp=cp,
                                        cp_comm=request.cp_comm,
                                        ep=e,
                                        offload=off,
                                    )
    if not found and "none" not in request.offload:
        raise PebbleError(
            f"advise --offload {','.join(request.offload)} searches pipelines of two or more "
            f"ranks with a named schedule, and {request.gpus} GPUs with this model and batch "
            "have none; add none to the list."
        )
    if not found:
        given = [
            (name, value)
            for name, value in (
                ("--tp", request.tensor),
                ("--cp", request.context),
                ("--ep", request.expert),
                ("--dp", request.data),
            )
            if value is not None
        ]
        fixed = "".join(f" with {name} {value}" for name, value in given)
        per_stage = [(name, value) for name, value in given if name != "--ep"]  # e is within d x c
        fixed_product = math.prod(value for _, value in per_stage)
        if request.gpus % fixed_product:
            named = " and ".join(f"{name} {value}" for name, value in per_stage)
            raise PebbleError(
                f"{named} use{'s' if len(per_stage) == 1 else ''} {fixed_product} GPUs per "
                f"pipeline stage, which does not divide the {request.gpus} GPUs; choose degrees "
                "whose product divides it."
            )
        raise PebbleError(
            f"no split of {request.gpus} GPUs into pipeline x tensor x data degrees{fixed} suits "
            f"a global batch of {request.global_batch} sequences and this model; the "
            "data-parallel degree must divide the batch."
        )
