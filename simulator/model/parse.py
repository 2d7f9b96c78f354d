"""One entry point for ``--model``: an MLP spec, a ``transformer:...`` spec, or a preset name.

Why one function: the CLI, profiles and the demo all turn text into a model; each would
otherwise learn the three forms separately.
"""

from __future__ import annotations

import re

from simulator.errors import PebbleError
from simulator.model.spec import ModelSpec
from simulator.model.transformer.config import LEGACY_ATTENTION
from simulator.model.transformer.hf_config import HF_PREFIX, hf_spec
from simulator.model.transformer.presets import MODEL_PRESETS, model_preset
from simulator.model.transformer.spec import PREFIX, TransformerSpec

AnySpec = ModelSpec | TransformerSpec
PRESET_DTYPE = "bfloat16"  # presets are counted as trained: 2-byte activations and weights
_WIDTHS = re.compile(r"^[0-9x-]+$")


def parse_model(text: str) -> AnySpec:
    """``2-64-64-3`` / ``widths=...`` (an MLP), ``transformer:layers=...`` (a transformer),
    ``hf:PATH/config.json`` (a Hugging Face config) or a preset name, these two with optional
    overrides: ``gpt3-175b`` or ``llama3-8b,seq=4096,tp=8``."""
    text = text.strip()
    if text.startswith(PREFIX):
        return TransformerSpec.parse(text)
    if text.startswith(HF_PREFIX):  # a Hugging Face config.json, counted as a preset is
        return hf_spec(text, PRESET_DTYPE)
    name, _, overrides = text.partition(",")
    name = name.strip()
    if "=" not in name and not _WIDTHS.match(name):
        if name.lower() not in MODEL_PRESETS:
            known = ", ".join(MODEL_PRESETS)
            raise PebbleError(f"unknown model preset {name!r}; presets are {known}.")
        base = TransformerSpec(model_preset(name), dtype=PRESET_DTYPE)
        return TransformerSpec.parse(overrides, base) if overrides.strip() else base
    return ModelSpec.parse(text)


def recorded_model(text: str) -> str:
    """A model text read back from a file pebblesim wrote (a Timeline's ``meta.model``, a cost
    profile's ``model``), with a transformer's attention core named.

    Why: a spec's text names its core (``attention=flash``) since flash became the default;
    a transformer text without the key was written before, when the default was math, and
    counted math. Read as typed it would now count flash, so an old profile would predict
    other FLOPs (flash's backward rebuilds the scores) than it did; ``attention=math`` keeps
    it predicting what it predicted. Other texts are returned as they are."""
    keys = {part.partition("=")[0].strip() for part in text.strip().removeprefix(PREFIX).split(",")}
    if "attention" in keys or not getattr(parse_model(text), "is_transformer", False):
        return text
    return f"{text.rstrip().rstrip(',')},attention={LEGACY_ATTENTION}"
