"""Decoder-only transformers: the architecture config, numpy layers with split backward, and
footprint/FLOP rules that reproduce Korthikanti et al. 2022 at any scale."""

from simulator.model.transformer.config import TransformerConfig
from simulator.model.transformer.layers import (
    TransformerLayerInfo,
    set_dropout_step,
    transformer_layer_infos,
    transformer_layers,
)
from simulator.model.transformer.presets import parameter_count

__all__ = [
    "TransformerConfig",
    "TransformerLayerInfo",
    "parameter_count",
    "set_dropout_step",
    "transformer_layer_infos",
    "transformer_layers",
]
