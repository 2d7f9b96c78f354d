"""One entry point for ``--model``: an MLP spec, a ``transformer:...`` spec, or a preset name.

Why one function: the CLI, profiles and the demo all turn text into a model; each would
otherwise learn the three forms separately.
"""

from __future__ import annotations

import re

from simulator.errors import PebbleError
from simulator.model.spec import ModelSpec
from simulator.model.transformer.presets import MODEL_PRESETS, model_preset
from simulator.model.transformer.spec import PREFIX, TransformerSpec

AnySpec = ModelSpec | TransformerSpec
PRESET_DTYPE = "bfloat16"  # presets are counted as trained: 2-byte activations and weights
_WIDTHS = re.compile(r"^[0-9x-]+$")


def parse_model(text: str) -> AnySpec:
    """``2-64-64-3`` / ``widths=...`` (an MLP), ``transformer:layers=...`` (a transformer), or
    a preset name with optional overrides: ``gpt3-175b`` or ``llama3-8b,seq=4096,tp=8``."""
    text = text.strip()
    if text.startswith(PREFIX):
        return TransformerSpec.parse(text)
    name, _, overrides = text.partition(",")
    name = name.strip()
    if "=" not in name and not _WIDTHS.match(name):
        if name.lower() not in MODEL_PRESETS:
            known = ", ".join(MODEL_PRESETS)
            raise PebbleError(f"unknown model preset {name!r}; presets are {known}.")
        base = TransformerSpec(model_preset(name), dtype=PRESET_DTYPE)
        return TransformerSpec.parse(overrides, base) if overrides.strip() else base
    return ModelSpec.parse(text)
