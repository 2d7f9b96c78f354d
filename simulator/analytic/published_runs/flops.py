"""The FLOPs per training step each paper divides by its measured time, as formulas.

Why the papers' own formulas: a published TFLOP/s or MFU is a step time multiplied by a FLOP
count the authors chose. Turning the figure back into seconds needs *their* count, not ours;
where a paper does not give one (Llama 3), we say which count we use.

Symbols as in the papers: ``B`` sequences per step (over every replica), ``s`` sequence length,
``l`` transformer layers, ``h`` hidden size, ``V`` vocabulary.
"""

from __future__ import annotations

from simulator.run.rank_memory import model_flops_per_row


def _dims(spec) -> tuple[int, int, int, int]:
    config = spec.config
    return config.seq, config.layers, config.hidden, config.vocab


def narayanan_eq3(spec, batch: int) -> float:
    """Narayanan et al. 2021 (arXiv 2104.04473), equation (3): the GEMM FLOPs of one step *with*
    full activation recomputation (the extra forward pass counted),
    ``F = 96 B s l h^2 (1 + s / 6h + V / 16 l h)``. Table 1's TFLOP/s are F over time."""
    s, l, h, v = _dims(spec)
    return 96.0 * batch * s * l * h * h * (1 + s / (6 * h) + v / (16 * l * h))


def korthikanti_eq7(spec, batch: int) -> float:
    """Korthikanti et al. 2022 (arXiv 2205.05198), Appendix A, equation (7): model FLOPs of one
    step (one forward and one backward, no recomputation),
    ``72 B l s h^2 (1 + s / 6h + V / 12 h l)``. Table 5's MFU is this over time and peak."""
    s, l, h, v = _dims(spec)
    return 72.0 * batch * l * s * h * h * (1 + s / (6 * h) + v / (12 * h * l))


def korthikanti_eq8(spec, batch: int) -> float:
    """Korthikanti et al. 2022, equation (8): hardware FLOPs of one step with selective
    recomputation (the attention scores and attention over values run twice),
    ``72 B l s h^2 (1 + s / 3h + V / 12 h l)``. Table 5's HFU is this over time and peak."""
    s, l, h, v = _dims(spec)
    return 72.0 * batch * l * s * h * h * (1 + s / (3 * h) + v / (12 * h * l))


def pebblesim_model_flops(spec, batch: int) -> float:
    """pebblesim's model FLOPs of one step: ``model_flops_per_row`` (every layer's forward and
    backward, the attention scores over the whole s x s square as PaLM's appendix B counts
    them) times the sequences. Used where a paper gives no formula (Llama 3 Table 4)."""
    return model_flops_per_row(spec) * batch
