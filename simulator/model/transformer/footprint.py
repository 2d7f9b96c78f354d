"""Published closed forms that the per-layer rules must reproduce exactly.

Why keep the papers' formulas in code when the layers carry their own rules: the per-layer
rules are the single source of truth the analytic executor uses, and these formulas are the
independent check on them. They are written as printed, in exact rational arithmetic, so a test
can demand equality rather than closeness.

Letters as in the papers: ``s`` sequence length, ``b`` microbatch size (sequences), ``h`` hidden
size, ``a`` attention heads, ``t`` tensor-parallel degree, ``L`` blocks, ``V`` vocabulary,
``B`` global batch size (sequences).

Sources:

* Korthikanti, Casper, Lym, McAfee, Andersch, Shoeybi, Catanzaro, "Reducing Activation
  Recomputation in Large Transformer Models", MLSys 2023, arXiv 2205.05198, Table 2: activation
  bytes per transformer layer, 16-bit activations and 1-byte dropout masks. Section 4.1 itemises
  the 34 sbh + 5 as^2 b of one block (attention 11 sbh + 5 as^2 b, MLP 19 sbh, norms 4 sbh).
* Narayanan, Shoeybi, Casper, LeGresley, Patwary, Korthikanti, et al., "Efficient Large-Scale
  Language Model Training on GPU Clusters Using Megatron-LM", SC 2021, Section 5.1 and its
  FLOPs appendix: a block's forward is 24 bsh^2 + 4 bs^2h FLOPs, the backward twice that, the
  logit layer 2 bshV forward and 4 bshV backward; eq. (2) parameters, eq. (3) FLOPs per
  iteration with full recomputation.
"""

from __future__ import annotations

from fractions import Fraction

# ---------------------------------------------------------------- Korthikanti et al., Table 2


def activations_no_parallelism(s: int, b: int, h: int, a: int) -> Fraction:
    """Table 2, "no parallelism": ``sbh (34 + 5as/h)`` bytes."""
    return s * b * h * (34 + Fraction(5 * a * s, h))


def activations_tensor_parallel(s: int, b: int, h: int, a: int, t: int) -> Fraction:
    """Table 2, "tensor parallel (baseline)": ``sbh (10 + 24/t + 5as/(ht))`` bytes."""
    return s * b * h * (10 + Fraction(24, t) + Fraction(5 * a * s, h * t))


def activations_tensor_sequence_parallel(s: int, b: int, h: int, a: int, t: int) -> Fraction:
    """Table 2, "tensor + sequence parallel": ``sbh (34/t + 5as/(ht))`` bytes."""
    return s * b * h * (Fraction(34, t) + Fraction(5 * a * s, h * t))


def activations_tensor_parallel_selective(s: int, b: int, h: int, t: int) -> Fraction:
    """Table 2, "tensor parallel + selective activation recompute": ``sbh (10 + 24/t)``."""
    return s * b * h * (10 + Fraction(24, t))


def activations_tensor_sequence_parallel_selective(s: int, b: int, h: int, t: int) -> Fraction:
    """Table 2, "tensor + sequence parallel + selective activation recompute": ``sbh (34/t)``."""
    return s * b * h * Fraction(34, t)


def activations_full_recompute(s: int, b: int, h: int) -> Fraction:
    """Table 2, "full activation recompute": ``sbh (2)``, the block's 16-bit input."""
    return Fraction(2 * s * b * h)


def korthikanti_table2(s: int, b: int, h: int, a: int, t: int = 1, sp: bool = False) -> Fraction:
    """The row of Table 2 without recomputation for this parallel layout."""
    if t == 1 and not sp:
        return activations_no_parallelism(s, b, h, a)
    if sp:
        return activations_tensor_sequence_parallel(s, b, h, a, t)
    return activations_tensor_parallel(s, b, h, a, t)


# ---------------------------------------------------------------- Narayanan et al., FLOPs


def block_forward_flops(b: int, s: int, h: int) -> Fraction:
    """Forward FLOPs of one GPT block (ffn = 4h): ``24 bsh^2 (1 + s/(6h))``
    = ``24 bsh^2 + 4 bs^2 h``: the QKV, projection and two MLP matrix multiplies plus the
    attention scores and the weighted sum of V."""
    return 24 * b * s * h * h * (1 + Fraction(s, 6 * h))


def model_training_flops(B: int, s: int, L: int, h: int, V: int) -> Fraction:
    """FLOPs of one iteration without recomputation, forward and backward (each forward FLOP
    costs two in the backward): ``72 BsLh^2 (1 + s/(6h) + V/(12hL))``."""
    return 72 * B * s * L * h * h * (1 + Fraction(s, 6 * h) + Fraction(V, 12 * h * L))


def model_training_flops_full_recompute(B: int, s: int, L: int, h: int, V: int) -> Fraction:
    """Narayanan et al. eq. (3): every block's forward runs twice, the logit layer's once:
    ``96 BsLh^2 (1 + s/(6h) + V/(16Lh))``."""
    return 96 * B * s * L * h * h * (1 + Fraction(s, 6 * h) + Fraction(V, 16 * L * h))


def gpt_parameter_count(L: int, h: int, V: int, s: int) -> Fraction:
    """Narayanan et al. eq. (2): ``12 L h^2 (1 + 13/(12h) + (V + s)/(12Lh))`` for a GPT with
    biases, LayerNorms, learned positions and tied embeddings. It leaves out the final
    LayerNorm's 2h parameters."""
    return 12 * L * h * h * (1 + Fraction(13, 12 * h) + Fraction(V + s, 12 * L * h))
