"""Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters Using
Megatron-LM" (arXiv 2104.04473), Table 1: weak scaling of GPT models from 1.7B to 1T
parameters on Selene (DGX A100 80 GB, 8 HDR InfiniBand NICs a node), mixed precision.

What the table gives: parameters (billion), attention heads, hidden size, layers, tensor and
pipeline degrees, GPUs, batch size, achieved TFLOP/s per GPU, percentage of the 312 TFLOP/s
peak and aggregate PFLOP/s. Section 5.1: vocabulary 51,200, sequence 2,048, "the interleaved
pipeline schedule with the scatter/gather optimization enabled"; the TFLOP/s count equation
(3), which includes the recomputed forward pass (activation recomputation is on).

What it does not give, taken from the authors' scripts for this table (NVIDIA/Megatron-LM,
``examples/sc21/run_table_1.sh`` at commit 79a3bb6bf2c85b748c46749dd0695e23310d4e16, the same
values as its first version cf547dea839f709ec2f147da0679d663da3c20da): the microbatch size
(``MBS``), the layers per virtual pipeline stage (``--num-layers-per-virtual-pipeline-stage``,
so v = layers / p / that; absent means no interleaving, the 1T row included) and full
recomputation (``--recompute-method uniform``). Data-parallel degree = GPUs / (t p). No
distributed optimizer (Megatron had none in 2021): z0. No sequence parallelism (2022).
"""

from __future__ import annotations

from simulator.analytic.published_runs.run import Figure, PublishedRun, Source

_PAPER = "Narayanan et al. 2021, Efficient Large-Scale Language Model Training on GPU Clusters"
_ARXIV = "2104.04473"
_SCRIPT = (
    "microbatch, v and recompute: NVIDIA/Megatron-LM examples/sc21/run_table_1.sh "
    "(commit 79a3bb6b), MODEL_SIZE={size}"
)
# fp16 mixed precision: Megatron-LM reduces fp16 gradients in fp16 (arguments.py forces fp32
# accumulation and all-reduce only for bf16), so 2-byte gradients: the bf16-grads recipe
_MODEL = (
    "transformer:layers={layers},hidden={hidden},heads={heads},seq=2048,vocab=51200,"
    "dtype=bfloat16,attention=math,precision=bf16-grads"
)

# params (B), heads, hidden, layers, t, p, GPUs, batch, TFLOP/s/GPU, % peak, PFLOP/s (Table 1);
# microbatch and layers per virtual stage (run_table_1.sh; 0: not interleaved); script size.
_TABLE_1 = (
    (1.7, 24, 2304, 24, 1, 1, 32, 512, 137, 44, 4.4, 16, 0, "1.7B"),
    (3.6, 32, 3072, 30, 2, 1, 64, 512, 138, 44, 8.8, 16, 0, "3.6B"),
    (7.5, 32, 4096, 36, 4, 1, 128, 512, 142, 46, 18.2, 16, 0, "7.5B"),
    (18.4, 48, 6144, 40, 8, 1, 256, 1024, 135, 43, 34.6, 8, 0, "18B"),
    (39.1, 64, 8192, 48, 8, 2, 512, 1536, 138, 44, 70.8, 4, 0, "39B"),
    (76.1, 80, 10240, 60, 8, 4, 1024, 1792, 140, 45, 143.8, 2, 5, "76B"),
    (145.6, 96, 12288, 80, 8, 8, 1536, 2304, 148, 47, 227.1, 2, 5, "145B"),
    (310.1, 128, 16384, 96, 8, 16, 1920, 2160, 155, 50, 297.4, 1, 3, "310B"),
    (529.6, 128, 20480, 105, 8, 35, 2520, 2520, 163, 52, 410.2, 1, 1, "530B"),
    (1008.0, 160, 25600, 128, 8, 64, 3072, 3072, 163, 52, 502.0, 1, 0, "1T"),
)


def _row(entry) -> PublishedRun:
    params, heads, hidden, layers, t, p, gpus, batch, tflops, peak, pflops, mbs, lpv, size = entry
    chunks = layers // p // lpv if lpv else 1
    data = gpus // (t * p)
    name = f"{params:g}b" if params < 1000 else "1t"
    return PublishedRun(
        id=f"narayanan-t1-{name}",
        source=Source(_PAPER, _ARXIV, "Table 1", f"{params:g} billion parameters"),
        gpu="a100-80gb",
        model=_MODEL.format(layers=layers, hidden=hidden, heads=heads),
        stated_parameters=params * 1e9,
        layout=f"p{p} v{chunks} t{t} d{data} z0",
        gpus=gpus,
        global_batch=batch,
        microbatch=mbs,
        schedule="interleaved-1f1b" if chunks > 1 else "1f1b",
        recompute="full",
        precision="mixed precision (fp16 GEMMs, fp32 master weights)",
        measured=Figure(tflops, "eq3_tflops_per_gpu", 0.5),
        cross_checks=(
            Figure(peak, "eq3_percent_of_peak", 0.5),
            Figure(pflops, "eq3_aggregate_pflops", 0.05),
        ),
        derived=(
            _SCRIPT.format(size=size),
            "data-parallel degree: GPUs / (t p)",
            "attention: Megatron's fused softmax over the full score matrix (math), 2021",
        ),
    )


RUNS = tuple(_row(entry) for entry in _TABLE_1)
