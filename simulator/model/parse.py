"""One entry point for ``--model``: an MLP spec, a ``transformer:...`` spec, or a preset name.

Why one function: the CLI, profiles and the demo all turn text into a model; each would
otherwise learn the three forms separately.
"""

from __future__ import annotations

from simulator.model.spec import ModelSpec
from simulator.model.transformer.spec import PREFIX, TransformerSpec

AnySpec = ModelSpec | TransformerSpec


def parse_model(text: str) -> AnySpec:
    """``2-64-64-3`` / ``widths=...`` (an MLP), ``transformer:layers=...`` (a transformer)."""
    text = text.strip()
    if text.startswith(PREFIX):
        return TransformerSpec.parse(text)
    return ModelSpec.parse(text)
