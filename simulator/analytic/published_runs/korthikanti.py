"""Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models"
(arXiv 2205.05198), Table 5: end-to-end iteration time of the four Table 3 configurations on
Selene (DGX A100 80 GB), mixed precision, with full recomputation and no sequence parallelism
("Full Recompute") and with sequence parallelism and selective recomputation ("Present Work",
whose MFU and HFU the table also gives); and section 6.3's 530B run at 8-way data parallelism.

Table 3 gives heads, hidden size, layers, tensor and pipeline degrees, GPUs, global batch and
microbatch; section 6 gives the rest: tensor degree 8 throughout, "the interleaving schedule
with three interleaving stages" for 175B and 530B (so v3; the others run without), sequence
2,048, vocabulary 51,200, no data parallelism. MFU and HFU count equations (7) and (8) over
the A100's 312 TFLOP/s. The Megatron-LM README (NVIDIA/Megatron-LM, commit 841f789f, May 2022)
prints the same MFU and HFU. Megatron then had no distributed optimizer: z0.
"""

from __future__ import annotations

from simulator.analytic.published_runs.run import Figure, PublishedRun, Source

_PAPER = "Korthikanti et al. 2022, Reducing Activation Recomputation in Large Transformer Models"
_ARXIV = "2205.05198"
# fp16 mixed precision, gradients reduced in fp16 (Megatron-LM forces fp32 gradient
# accumulation and all-reduce only for bf16): the 2-byte-gradient bf16-grads recipe
_SPEC = (
    "transformer:layers={},hidden={},heads={},seq=2048,vocab=51200,dtype=bfloat16,"
    "attention=math,precision=bf16-grads"
)
_MODELS = {  # Table 3
    "22b": (_SPEC.format(48, 6144, 64), 22e9),
    "175b": ("gpt3-175b,vocab=51200,attention=math,precision=bf16-grads", 175e9),
    "530b": (_SPEC.format(105, 20480, 128), 530e9),
    "1t": (_SPEC.format(128, 25600, 160), 1e12),
}
_DERIVED = ("attention: Megatron's fused softmax over the full score matrix (math), 2022",)

# size, p, v, GPUs (= batch), microbatch (Table 3; v from section 6);
# Table 5: full-recompute seconds, present-work seconds, MFU %, HFU %.
_TABLE_5 = (
    ("22b", 1, 1, 8, 4, 4, 1.42, 1.10, 41.5, 43.7),
    ("175b", 8, 3, 64, 64, 1, 18.13, 13.75, 51.4, 52.8),
    ("530b", 35, 3, 280, 280, 1, 49.05, 37.83, 56.0, 57.0),
    ("1t", 64, 1, 512, 512, 1, 94.42, 71.49, 56.3, 57.0),
)


def _run(entry, selective: bool) -> PublishedRun:
    size, p, v, gpus, batch, mbs, full_s, present_s, mfu, hfu = entry
    model, stated = _MODELS[size]
    kind = "selective" if selective else "full"
    checks = (Figure(mfu, "eq7_mfu_percent", 0.05), Figure(hfu, "eq8_hfu_percent", 0.05))
    return PublishedRun(
        id=f"korthikanti-t5-{size}-{kind}",
        source=Source(
            _PAPER,
            _ARXIV,
            "Table 5",
            f"{size.upper()}, {'Present Work' if selective else 'Full Recompute'}",
        ),
        gpu="a100-80gb",
        model=model,
        stated_parameters=stated,
        layout=f"p{p} v{v} t8{' sp' if selective else ''} d1 z0",
        gpus=gpus,
        global_batch=batch,
        microbatch=mbs,
        schedule="interleaved-1f1b" if v > 1 else "1f1b",
        recompute=kind,
        precision="mixed precision (fp16 GEMMs, fp32 master weights)",
        measured=Figure(present_s if selective else full_s, "seconds_per_iteration", 0.005),
        cross_checks=checks if selective else (),
        derived=_DERIVED,
    )


_530B_DP8 = PublishedRun(
    id="korthikanti-s6.3-530b-d8",
    source=Source(_PAPER, _ARXIV, "section 6.3", "530B scaled to 8-way data parallelism"),
    gpu="a100-80gb",
    model=_MODELS["530b"][0],
    stated_parameters=530e9,
    layout="p35 v3 t8 sp d8 z0",
    gpus=2240,
    global_batch=2240,
    microbatch=1,
    schedule="interleaved-1f1b",
    recompute="selective",
    precision="mixed precision (fp16 GEMMs, fp32 master weights)",
    measured=Figure(39.15, "seconds_per_iteration", 0.005),
    cross_checks=(Figure(54.2, "eq7_mfu_percent", 0.05),),
    derived=(
        *_DERIVED,
        "global batch: Table 3's 280 times the 8 replicas ('the batch size is also multiplied "
        "by the data parallel size'); gradient all-reduce not overlapped (section 6.3)",
    ),
)

RUNS = (
    *(_run(entry, selective=True) for entry in _TABLE_5),
    *(_run(entry, selective=False) for entry in _TABLE_5),
    _530B_DP8,
)
