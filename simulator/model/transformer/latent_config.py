"""The checks of multi-head latent attention's config fields (``TransformerConfig``).

Why apart from ``config``: the fields' meaning is stated in ``TransformerConfig``'s docstring;
the rules of which combinations pebblesim can count are this file's one job. Each refusal is one
sentence, raised when the config is built.

What the latent layers (``mla``) take for granted, so a config without it is refused rather
than miscounted: rotary positions (the decoupled RoPE key is the point of the design), no
dropout and no biases (DeepSeek-V2/V3 have neither: ``attention_dropout`` 0, ``attention_bias``
false) and one key/value head per query head. The core is the fused one whatever
``attention`` says (``mla.LatentAttention``); ``attention=math`` counts its backward without
the rebuilt scores, the convention model FLOPs utilisation counts by
(``simulator.run.rank_memory.model_flops_per_row``), and nothing else.
"""

from __future__ import annotations

from simulator.errors import PebbleError

LATENT_FIELDS = (
    "q_lora_rank",
    "kv_lora_rank",
    "qk_nope_head_dim",
    "qk_rope_head_dim",
    "v_head_dim",
)
LATENT_REQUIRED = ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
LATENT_LIMIT = 1_000_000
"""Far beyond DeepSeek-V3's widths (1536, 512, 128, 64, 128)."""


def check_latent(config) -> None:
    """One sentence for a latent attention field out of range, missing, given without
    ``kv_lora_rank``, or on a model the latent layers cannot be (module docstring)."""
    if config.kv_lora_rank is None:
        given = [name for name in LATENT_FIELDS if getattr(config, name) is not None]
        if given:
            raise PebbleError(
                f"transformer {given[0]} needs kv_lora_rank (multi-head latent attention)."
            )
        return
    for name in LATENT_FIELDS:
        value = getattr(config, name)
        if value is None and name not in LATENT_REQUIRED:
            continue
        if value is None:
            raise PebbleError(f"multi-head latent attention needs transformer {name}.")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PebbleError(f"transformer {name} must be a positive integer, got {value!r}.")
        if value > LATENT_LIMIT:
            raise PebbleError(
                f"transformer {name} {value:,} is over pebblesim's limit of {LATENT_LIMIT:,}."
            )
    if config.qk_rope_head_dim % 2:
        raise PebbleError(
            f"transformer qk_rope_head_dim must be even (rotary pairs), got "
            f"{config.qk_rope_head_dim}."
        )
    for wrong, why in (
        (config.position != "rope", "rotary positions (position=rope)"),
        (config.dropout > 0.0, "no dropout (dropout=0)"),
        (config.bias, "no biases (bias=0)"),
        (config.kv_heads not in (None, config.heads), "no kv_heads of its own"),
    ):
        if wrong:
            raise PebbleError(f"multi-head latent attention is counted with {why}.")
