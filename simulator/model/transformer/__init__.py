"""Decoder-only transformers: the architecture config, numpy layers with split backward, and
footprint/FLOP rules that reproduce Korthikanti et al. 2022 at any scale."""

from simulator.model.transformer.config import TransformerConfig

__all__ = ["TransformerConfig"]
