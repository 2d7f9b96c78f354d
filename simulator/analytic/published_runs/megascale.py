"""Jiang et al. 2024, "MegaScale: Scaling Large Language Model Training to More Than 10,000
GPUs" (arXiv 2402.15627): the *Megatron-LM* baseline it measured (commit 285068c8), not
MegaScale's own rows (those add a parallel transformer block, sliding-window attention, LAMB and
overlaps pebblesim does not model).

Table 2: GPT-style 175B (Table 1: 128 heads, hidden 12,288, 96 layers, t8, p8) strong scaling,
batch 768 on 256 to 1,024 GPUs and 6,144 on 3,072 to 12,288, iteration time, tokens/s and
MFU. Figure 9: 530B (160 heads, hidden 20,480, 105 layers, t8, p35) weak scaling, batch = GPUs,
MFU printed on the bars. Section 6.1: "interleaved pipeline-parallel schedule with six and three
interleaving stages for the 175B and 530B models", sequence 2,048, vocabulary 64,000, "NVIDIA
Ampere GPUs". The MFU column agrees with Korthikanti's equation (7) over 312 TFLOP/s (53.0% at
40.0 s on 256 GPUs), so it is read as that.
"""

from __future__ import annotations

from simulator.analytic.published_runs.run import Figure, PublishedRun, Source

_PAPER = "Jiang et al. 2024, MegaScale: Scaling Large Language Model Training to 10,000 GPUs"
_ARXIV = "2402.15627"
_SPEC = (
    "transformer:layers={},hidden={},heads={},seq=2048,vocab=64000,dtype=bfloat16,attention=math"
)
_175B = _SPEC.format(96, 12288, 128)
_530B = _SPEC.format(105, 20480, 160)
_DERIVED = (
    "GPU: 'NVIDIA Ampere'; A100 80 GB, the 312 TFLOP/s peak its MFU column implies",
    "microbatch: not published; 1 sequence (Megatron-LM's GPT-3 175B example)",
    "recompute and sequence parallelism: not published; selective with sequence parallelism "
    "(Korthikanti et al.'s configuration for these sizes in the same Megatron-LM)",
    "sharding: not published for the baseline; z1 (Megatron-LM's distributed optimizer; "
    "MegaScale's own runs use ZeRO-2)",
    "attention: not published for the baseline; math (FlashAttention-2 is listed as one of "
    "MegaScale's additions)",
)

# batch, GPUs, seconds per iteration, tokens/s (thousands), MFU % (Table 2, Megatron-LM rows)
_TABLE_2 = (
    (768, 256, 40.0, 39.3, 53.0),
    (768, 512, 21.2, 74.1, 49.9),
    (768, 768, 15.2, 103.8, 46.7),
    (768, 1024, 11.9, 132.7, 44.7),
    (6144, 3072, 29.02, 433.6, 48.7),
    (6144, 6144, 14.78, 851.6, 47.8),
    (6144, 8192, 12.24, 1027.9, 43.3),
    (6144, 12288, 8.57, 1466.8, 41.2),
)
# Half the last printed digit of each time: one decimal at batch 768. At 12,288 GPUs the printed
# 8.57 s is 0.1% below what the row's own tokens/s and MFU imply (8.578 s and 8.583 s), as a
# time cut, not rounded, to two decimals would be: read as within 0.01 s.
_TIME_ROUNDING = {256: 0.05, 512: 0.05, 768: 0.05, 1024: 0.05, 12288: 0.01}
_TRUNCATED = ("time: the printed 8.57 s read as within 0.01 s (its tokens/s and MFU imply 8.58)",)
# GPUs (= batch), MFU % (Figure 9, Megatron-LM bars)
_FIGURE_9 = ((2240, 49.2), (4480, 48.8), (11200, 48.2))


def _common(gpus: int, p: int, v: int, extra: tuple[str, ...] = ()) -> dict:
    return dict(
        gpu="a100-80gb",
        layout=f"p{p} v{v} t8 sp d{gpus // (8 * p)} z1",
        gpus=gpus,
        microbatch=1,
        schedule="interleaved-1f1b",
        recompute="selective",
        precision="not published (mixed precision, 2-byte)",
        derived=(*_DERIVED, *extra),
    )


def _strong(entry) -> PublishedRun:
    batch, gpus, seconds, kilotokens, mfu = entry
    return PublishedRun(
        id=f"megascale-t2-175b-{gpus}gpu",
        source=Source(_PAPER, _ARXIV, "Table 2", f"Megatron-LM, batch {batch}, {gpus:,} GPUs"),
        model=_175B,
        stated_parameters=175e9,
        global_batch=batch,
        measured=Figure(seconds, "seconds_per_iteration", _TIME_ROUNDING.get(gpus, 0.005)),
        cross_checks=(
            Figure(kilotokens * 1e3, "tokens_per_second", 50.0),
            Figure(mfu, "eq7_mfu_percent", 0.05),
        ),
        **_common(gpus, p=8, v=6, extra=_TRUNCATED if gpus == 12288 else ()),
    )


def _weak(entry) -> PublishedRun:
    gpus, mfu = entry
    return PublishedRun(
        id=f"megascale-f9-530b-{gpus}gpu",
        source=Source(_PAPER, _ARXIV, "Figure 9", f"Megatron-LM, {gpus:,} GPUs (bar label)"),
        model=_530B,
        stated_parameters=530e9,
        global_batch=gpus,
        measured=Figure(mfu, "eq7_mfu_percent", 0.05),
        **_common(gpus, p=35, v=3),
    )


RUNS = (*(_strong(entry) for entry in _TABLE_2), *(_weak(entry) for entry in _FIGURE_9))
