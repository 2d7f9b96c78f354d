"""The parallel layout of a run, as one value: ``p8 v2 t8 sp c1 e1 d16 z1``.

Why one value: every part of pebblesim that depends on how a run is spread over devices (the
cost model, the memory model, both executors, ``advise`` and every command) reads it from here,
so a new parallel degree is a new field and its rules, not an argument threaded through a dozen
signatures. The text form is how a layout is shown everywhere (``advise`` rows, ``--json``,
figure titles, the report) and it parses back.

Why in ``model/``: a layer's footprint, FLOPs and parameters depend on the degrees that shard it
(tensor, sequence, context, expert), so a transformer spec is counted under a layout
(``for_layers``) and its rules read the degrees from it; ``simulator.run`` plans runs with it.

The degrees, with their letters in the text form:

=====  =====================  =====================================================
``p``  ``pipeline``           pipeline ranks (one Ray actor each)
``v``  ``chunks``             stages per pipeline rank (interleaved and V schedules)
``t``  ``tensor``             tensor-parallel degree (Megatron's column/row split)
``sp`` ``sequence_parallel``  sequence parallelism across the tensor group
``c``  ``context``            context-parallel degree (sequence split across ranks); ``c4``
                              exchanges K/V around a ring, ``c4ag`` all-gathers it
``e``  ``expert``             expert-parallel degree (mixture-of-experts layers)
``d``  ``data``               data-parallel replicas
``z``  ``sharding``           sharding stage: 0 none, 1 optimizer state (ZeRO-1, Megatron's
                              distributed optimizer), 2 plus gradients, 3 plus parameters
=====  =====================  =====================================================

The devices a layout occupies are ``p * t * c * d``; expert parallelism reuses the data and
context ranks (Megatron Core), so ``e`` does not multiply them: ``e`` must divide ``d * c``, and
the routed experts' gradients and optimizer state are data-parallel over the remaining
``d * c / e`` ranks (the expert data-parallel group, ``expert_optimizer_shards``). Context
parallelism splits each sequence ``c`` ways (``simulator.model.transformer.context_parallel``);
its ranks also reduce the gradients (Megatron Core's data-parallel group "with context
parallel"), so gradients are all-reduced over ``d * c`` ranks (``gradient_replicas``) and the
distributed optimizer shards over as many. The sharding stages split over those ranks (the
routed experts' over ``d * c / e``) what ``simulator.model.sharding`` says: z1 the optimizer
state, z2 the gradients too, z3 the weights too (ZeRO-1/2/3; z3 is FSDP); with one replica every
stage holds what z0 holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace

from simulator.errors import PebbleError
from simulator.numbers import MAX_CHUNKS, MAX_DP, MAX_RANKS, MAX_TP

_DEGREES = (  # (letter, field, largest value)
    ("p", "pipeline", MAX_RANKS),
    ("v", "chunks", MAX_CHUNKS),
    ("t", "tensor", MAX_TP),
    ("c", "context", MAX_TP),
    ("e", "expert", MAX_TP),
    ("d", "data", MAX_DP),
    ("z", "sharding", 3),
)
_LETTER_OF = {name: letter for letter, name, _ in _DEGREES}
_FIELD_OF = {letter: name for letter, name, _ in _DEGREES}
_TOKEN = re.compile(r"^([a-z])(\d+)$")
LAYER_DEGREES = ("tensor", "sequence_parallel", "context", "cp_comm", "expert")
"""The degrees that change what one rank holds of a layer (its footprint, FLOPs, parameters)."""
_NOT_YET: dict[str, str] = {}  # a degree above 1 no cost or memory rule models yet: field, what
CP_COMMS = ("ring", "allgather")
"""How context-parallel ranks exchange K/V: Megatron Core's ``p2p`` ring (the default) or the
all-gather Llama 3 used (``cp_comm_type="all_gather"``)."""
_CP_SUFFIX = {"ring": "", "allgather": "ag"}


@dataclass(frozen=True)
class Layout:
    """How one run spreads over devices: pipeline, tensor, context, expert and data degrees, and
    the sharding stage. Frozen and typed, so it pickles to actors and can be a dict key."""

    pipeline: int = 1
    chunks: int = 1
    tensor: int = 1
    sequence_parallel: bool = False
    context: int = 1
    cp_comm: str = "ring"
    expert: int = 1
    data: int = 1
    sharding: int = 0

    def __post_init__(self) -> None:
        for letter, name, largest in _DEGREES:
            value = getattr(self, name)
            low = 0 if name == "sharding" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                what = "0, 1, 2 or 3" if name == "sharding" else "a positive integer"
                raise PebbleError(
                    f"the layout's {name} degree ({letter}) must be {what}, got {value!r}."
                )
            if value > largest:
                raise PebbleError(
                    f"the layout's {name} degree ({letter}{value}) is above pebblesim's limit of "
                    f"{largest}."
                )
        if not isinstance(self.sequence_parallel, bool):
            raise PebbleError(
                f"the layout's sequence_parallel must be true or false, got "
                f"{self.sequence_parallel!r}."
            )
        self._check_cp_comm()
        for name, what in _NOT_YET.items():
            if getattr(self, name) > 1:
                letter = _LETTER_OF[name]
                raise PebbleError(
                    f"{what} ({letter}{getattr(self, name)}) is not modelled yet; use {letter}1."
                )

    def _check_cp_comm(self) -> None:
        if self.cp_comm not in CP_COMMS:
            raise PebbleError(
                f"the layout's cp_comm must be ring or allgather, got {self.cp_comm!r}."
            )
        if self.cp_comm != "ring" and self.context == 1:
            raise PebbleError(
                f"exchanging K/V by {self.cp_comm} (--cp-comm, or c2ag in a layout) needs "
                "context parallelism of 2 or more (--cp 2, or c2 in a layout)."
            )

    # ------------------------------------------------------------------ what it occupies
    @property
    def devices(self) -> int:
        """Devices the layout occupies: pipeline x tensor x context x data."""
        return self.pipeline * self.tensor * self.context * self.data

    @property
    def distributed_optimizer(self) -> bool:
        """The optimizer state is sharded over the data-parallel replicas (z1 and above)."""
        return self.sharding >= 1

    @property
    def gradient_replicas(self) -> int:
        """Ranks that hold the same weights and all-reduce their gradients: the data and
        context ranks (context-parallel ranks see other tokens of the same sequences)."""
        return self.data * self.context

    @property
    def optimizer_shards(self) -> int:
        """Ways the optimizer state of one pipeline rank is split (over ``gradient_replicas``,
        as Megatron Core's distributed optimizer shards over its data-and-context group)."""
        return self.gradient_replicas if self.distributed_optimizer else 1

    @property
    def expert_data(self) -> int:
        """Ranks that hold the same routed experts: the data and context ranks over ``e``."""
        return max(1, self.data * self.context // self.expert)

    @property
    def expert_optimizer_shards(self) -> int:
        """Ways the routed experts' optimizer state is split (over the expert data-parallel
        group, Megatron Core's distributed optimizer)."""
        return self.expert_data if self.distributed_optimizer else 1

    # ------------------------------------------------------------------ text form
    def to_text(self) -> str:
        """``p8 v2 t8 sp c1 e1 d16 z1``: every degree, in this order."""
        parts = [f"p{self.pipeline}", f"v{self.chunks}", f"t{self.tensor}"]
        if self.sequence_parallel:
            parts.append("sp")
        context = f"c{self.context}{_CP_SUFFIX[self.cp_comm]}"
        parts += [context, f"e{self.expert}", f"d{self.data}", f"z{self.sharding}"]
        return " ".join(parts)

    def __str__(self) -> str:
        return self.to_text()

    @classmethod
    def parse(cls, text: str) -> Layout:
        """A layout from its text form; degrees left out are 1 (``z``: 0), in any order,
        separated by spaces or commas: ``p8 t8 sp d16 z1``."""
        values: dict[str, object] = {}
        for token in filter(None, re.split(r"[\s,]+", str(text).strip().lower())):
            if token == "sp":
                name, value = "sequence_parallel", True
            elif re.fullmatch(r"c\d+ag", token):
                name, value = "context", int(token[1:-2])
                values["cp_comm"] = "allgather"
            else:
                match = _TOKEN.match(token)
                if not match or match.group(1) not in _FIELD_OF:
                    raise PebbleError(
                        f"cannot read {token[:20]!r} in layout {str(text)[:60]!r}; write degrees "
                        "like p8 v2 t8 sp c1 e1 d16 z1 (c2ag: context parallel by all-gather)."
                    )
                name, value = _FIELD_OF[match.group(1)], int(match.group(2))
            if name in values:
                raise PebbleError(f"layout {str(text)[:60]!r} gives {token[:1]} twice.")
            values[name] = value
        return cls(**values)  # type: ignore[arg-type]

    def for_layers(self) -> Layout:
        """Only the degrees that shard a layer (``LAYER_DEGREES``); the pipeline, data and
        sharding degrees at their defaults. What a model spec is counted under."""
        return Layout(**self.layer_degrees())

    def layer_degrees(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in LAYER_DEGREES}

    def to_dict(self) -> dict:
        """The layout for ``--json``: its text and each degree by name."""
        return {"text": self.to_text(), **{f.name: getattr(self, f.name) for f in fields(self)}}

    # ------------------------------------------------------------------ checks
    def with_pipeline(self, ranks: int, chunks: int) -> Layout:
        """This layout on a schedule of ``ranks`` ranks holding ``chunks`` stages each."""
        return replace(self, pipeline=ranks, chunks=chunks)

    def check_model(self, spec) -> None:
        """One sentence when the model cannot be split this way (only transformers take
        tensor, sequence or context parallelism; their heads and sequence must divide)."""
        if not spec.is_transformer and (self.tensor > 1 or self.sequence_parallel):
            raise PebbleError(
                "--tp and --sp apply to transformer models (--model PRESET or transformer:...)."
            )
        if not spec.is_transformer and self.context > 1:
            raise PebbleError(
                "--cp splits a transformer's sequences; it applies to transformer models "
                "(--model PRESET or transformer:...)."
            )
        if self.expert > 1:
            self._check_experts(spec)

    def _check_experts(self, spec) -> None:
        """Expert parallelism needs a mixture of experts and ``e`` dividing ``d * c``."""
        if not spec.is_transformer or not spec.config.is_moe:
            raise PebbleError(
                f"expert parallelism (e{self.expert}) needs a mixture-of-experts model "
                "(experts=N in its transformer: text, or a MoE preset)."
            )
        if (self.data * self.context) % self.expert:
            raise PebbleError(
                f"expert parallelism e{self.expert} must divide the data x context ranks "
                f"(d{self.data} x c{self.context}), which it reuses."
            )
        if spec.config.experts % self.expert:
            raise PebbleError(
                f"expert parallelism e{self.expert} does not divide the model's "
                f"{spec.config.experts} experts."
            )

    def check_devices(self, gpus: int) -> None:
        """One sentence when the layout does not use exactly ``gpus`` devices."""
        if self.devices != gpus:
            raise PebbleError(
                f"layout {self} occupies {self.devices} devices (p x t x c x d), not the "
                f"{gpus} asked for."
            )

    def check_node(self, gpus_per_node: int) -> None:
        """One sentence when the tensor group would cross a node (its collectives run on
        every layer and need the node's own links)."""
        if self.tensor > gpus_per_node:
            raise PebbleError(
                f"tensor parallelism t{self.tensor} would cross a node of {gpus_per_node} GPUs; "
                f"use t{gpus_per_node} or less."
            )


UNSHARDED = Layout()
"""One device: every degree 1, nothing sharded (what a model spec is counted under by default)."""
