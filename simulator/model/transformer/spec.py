"""A transformer as a model spec: the same interface as the MLP's ``ModelSpec``, so partition,
both executors, the Timeline and the figures take either.

Text form (``--model``)::

    transformer:layers=4,hidden=64,heads=4,seq=32,vocab=96,mlp=gelu
    transformer:layers=32,hidden=4096,heads=32,kv_heads=8,ffn=14336,seq=8192,vocab=128256,
        mlp=swiglu,norm=rmsnorm,position=rope,tied=0,bias=0,dropout=0,dtype=bfloat16,tp=8,sp=1

``dtype`` is the activation and parameter type the rules count (``bfloat16`` and ``float16``:
2 bytes); only ``float64``, ``float32`` and ``float16`` can be built and run by numpy. ``tp``
and ``sp`` are the tensor-parallel degree and sequence parallelism the spec is counted under
(its ``layout``; a run's plan sets it from the run's ``Layout``); the numpy layers always run
unsharded.

``attention`` is the attention core, ``flash`` (the default) or ``math`` (what Korthikanti et
al. 2022 count); ``to_text`` always names it, so that a file's model text says which core it
counted: one written before flash became the default has no key and counted math
(``simulator.model.parse.recorded_model``).

A mixture of experts adds its keys (``TransformerConfig``'s docstring says what each means)::

    transformer:...,experts=8,top_k=2,expert_ffn=14336,shared_experts=1,capacity_factor=1.25,
        moe_aux_coef=0.01,norm_topk=1,dense_layers=3,router_imbalance=1.2

Multi-head latent attention (DeepSeek-V2/V3) adds its widths (``kv_lora_rank`` turns it on;
context parallelism is refused for it)::

    transformer:...,q_lora_rank=1536,kv_lora_rank=512,qk_nope_head_dim=128,
        qk_rope_head_dim=64,v_head_dim=128

``precision`` names the recipe whole-rank memory counts (``simulator.model.precision``: bytes of
weights, gradients, master weights and optimizer moments per parameter); left out, a 2-byte
model counts the 2-byte default and a float32/float64 model its own dtype. The text shows it only
when it is not that default.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from simulator.errors import PebbleError
from simulator.model.layers import Layer
from simulator.model.layout import UNSHARDED, Layout
from simulator.model.precision import Precision, default_precision, precision_named
from simulator.model.transformer.config import TransformerConfig
from simulator.model.transformer.dims import Dims
from simulator.model.transformer.layers import TransformerLayerInfo, transformer_layer_infos

PREFIX = "transformer:"
ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}
RUNNABLE = ("float64", "float32", "float16")
SPEC_DTYPE = "bfloat16"
"""What a ``transformer:`` text without ``dtype=`` is counted in: how such a model trains (the
presets' dtype too). It was float64, numpy's default, which counted 4x the bytes of the bf16
run a user meant and said nothing; ``train`` computes a bfloat16 spec in float32 and says so."""
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_CONFIG_KEYS = {f.name: f.type for f in fields(TransformerConfig)}
_ALIASES = {"tied": "tied_embeddings"}
_REQUIRED = ("layers", "hidden", "heads", "seq", "vocab")
_SPEC_KEYS = ("dtype", "seed", "tp", "sp", "precision")
_REAL_KEYS = ("dropout", "capacity_factor", "moe_aux_coef", "router_imbalance")


@dataclass(frozen=True)
class TransformerSpec:
    """A transformer ``config`` with the dtype, seed and parallel layout it is counted in.

    Why a spec apart from the config: the config is the architecture (what a preset names);
    the spec adds how one run holds it (2-byte activations, the degrees that shard a layer),
    which is what footprints and FLOPs depend on. ``layout`` keeps only those degrees
    (``Layout.for_layers``), so two runs that differ in pipeline or data degree count the same
    model.
    """

    config: TransformerConfig
    dtype: str = "float64"
    seed: int = 0
    layout: Layout = UNSHARDED
    precision: str | None = None  # a recipe name; None: the dtype's default

    def __post_init__(self) -> None:
        if self.dtype not in ITEMSIZE:
            raise PebbleError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(ITEMSIZE)}.")
        if not isinstance(self.layout, Layout):
            raise PebbleError(f"a transformer is counted under a Layout, got {self.layout!r}.")
        object.__setattr__(self, "layout", self.layout.for_layers())
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise PebbleError(f"the model seed must be a non-negative integer, got {self.seed!r}.")
        Dims(self.config, 1, self.itemsize, self.layout)  # the degrees must divide the model
        if self.config.is_latent and self.layout.context > 1:
            raise PebbleError(
                f"context parallelism (c{self.layout.context}) is not counted for multi-head "
                "latent attention, whose exchange pebblesim does not model; use c1."
            )
        if self.precision is not None:
            recipe = precision_named(self.precision)
            default = recipe == default_precision(self.itemsize)
            object.__setattr__(self, "precision", None if default else recipe.name)

    @property
    def itemsize(self) -> int:
        return ITEMSIZE[self.dtype]

    @property
    def recipe(self) -> Precision:
        """The precision recipe whole-rank memory counts (named, or the dtype's default)."""
        if self.precision is None:
            return default_precision(self.itemsize)
        return precision_named(self.precision)

    def computable(self) -> TransformerSpec:
        """The spec numpy can train: itself, or the same model in float32 when its dtype
        (bfloat16) has no numpy type, with float32's own recipe. Counted in the dtype it
        computes in, so measured bytes still equal predicted ones."""
        if self.dtype in RUNNABLE:
            return self
        return replace(self, dtype="float32", precision=None)

    @property
    def widths(self) -> tuple[int, int]:
        """(vocabulary in, vocabulary out): token ids in, logits out."""
        return (self.config.vocab, self.config.vocab)

    def layers(self) -> tuple[TransformerLayerInfo, ...]:
        return transformer_layer_infos(self.config, self.layout)

    def build(self, layer_indices: range | None = None) -> list[Layer]:
        if self.dtype not in RUNNABLE:
            raise PebbleError(
                f"numpy cannot run {self.dtype}; use dtype=float32 or float64 to train "
                f"(the analytic executor counts {self.dtype} as it is)."
            )
        infos = self.layers()
        chosen = infos if layer_indices is None else [infos[i] for i in layer_indices]
        return [info.build(self.dtype, self.seed) for info in chosen]

    def output_bytes(self, info: TransformerLayerInfo, rows: int) -> int:
        """Bytes one microbatch of ``rows`` sequences sends out of this layer to the next stage
        (the residual stream; sharded along the sequence with sequence parallelism)."""
        dims = Dims(self.config, rows, self.itemsize, self.layout)
        return dims.seq_tokens * self.config.hidden * self.itemsize

    def param_count(self, info: TransformerLayerInfo) -> int:
        """Parameters one tensor-parallel rank holds for ``info``."""
        return info.param_count()

    @property
    def is_transformer(self) -> bool:
        return True

    def to_text(self) -> str:
        values = [f"{f.name}={_text(getattr(self.config, f.name))}" for f in fields(self.config)]
        values += [
            f"dtype={self.dtype}",
            f"seed={self.seed}",
            f"tp={self.layout.tensor}",
            f"sp={int(self.layout.sequence_parallel)}",
        ]
        if self.precision is not None:
            values.append(f"precision={self.precision}")
        return PREFIX + ",".join(v for v in values if not v.endswith("=None"))

    @classmethod
    def parse(cls, text: str, base: TransformerSpec | None = None) -> TransformerSpec:
        """``transformer:key=value,...`` (or the keys alone, over ``base``, e.g. a preset)."""
        body = text[len(PREFIX) :] if text.startswith(PREFIX) else text
        config_values: dict[str, object] = {}
        spec_values: dict[str, object] = {}
        for part in filter(None, (p.strip() for p in body.split(","))):
            key, sep, value = (s.strip() for s in part.partition("="))
            key = _ALIASES.get(key, key)
            target = spec_values if key in _SPEC_KEYS else config_values
            if not sep or (key not in _CONFIG_KEYS and target is config_values):
                known = ", ".join(sorted([*_CONFIG_KEYS, *_SPEC_KEYS, "tied"]))
                raise PebbleError(f"cannot read {part!r} in model {text!r}; keys are {known}.")
            if key in target:
                raise PebbleError(f"model {text!r} gives {key} twice.")
            target[key] = _value(key, value, text)
        degrees = {
            field: spec_values.pop(key)
            for key, field in (("tp", "tensor"), ("sp", "sequence_parallel"))
            if key in spec_values
        }
        if base is None:
            missing = [k for k in _REQUIRED if k not in config_values]
            if missing:
                raise PebbleError(f"model {text!r} needs {', '.join(missing)}.")
            config = TransformerConfig(**config_values)  # type: ignore[arg-type]
            spec_values.setdefault("dtype", SPEC_DTYPE)
            return cls(config, layout=Layout(**degrees), **spec_values)  # type: ignore[arg-type]
        config = replace(base.config, **config_values)
        layout = replace(base.layout, **degrees)
        return replace(base, config=config, layout=layout, **spec_values)


def _text(value: object) -> str:
    return str(int(value)) if isinstance(value, bool) else str(value)


def _value(key: str, value: str, text: str) -> object:
    """One value of a transformer spec, typed by its key."""
    if key in ("mlp", "norm", "position", "dtype", "precision", "attention"):
        return value
    if key in ("tied_embeddings", "bias", "sp", "norm_topk"):
        if value.lower() not in _TRUE + _FALSE:
            raise PebbleError(f"{key} in model {text!r} takes 1/0, true/false, yes/no or on/off.")
        return value.lower() in _TRUE
    try:
        return float(value) if key in _REAL_KEYS else int(value)
    except ValueError:
        raise PebbleError(f"cannot read {key}={value!r} in model {text!r}.") from None
