"""Llama Team 2024, "The Llama 3 Herd of Models" (arXiv 2407.21783), Table 4: the three stages
of Llama 3 405B pre-training on H100 80 GB (HBM3, 700 W) in BF16.

What the table gives: GPUs, TP, CP, PP, DP, sequence length, batch size per DP group, tokens
per batch, TFLOP/s per GPU and BF16 MFU. Section 3.3.2 adds: FSDP that "shards the optimizer
states and gradients" but does not reshard the weights after the forward pass, with "FP32
gradient accumulation during backward computation over multiple micro-batches" and the
gradients reduce-scattered in FP32, synchronising "after each training step": one
reduce-scatter and one weight all-gather a step, what pebblesim times as z1 (a distributed
optimizer; z2 and z3 reduce-scatter in every microbatch's backward, ``sharded_comm``), and
whose full weights and FP32 gradients during the step z1 also counts; an interleaved schedule
"with V pipeline stages on one pipeline rank", in which "the first model chunk on the first
stage has only the embedding, and the last model chunk on the last stage has only output
projection and loss calculation", having taken one transformer layer each from the first and
last stages: a chunk is one layer slot, so 126 layers plus the embedding and the head fill
128 = 16 x 8 chunks, V = 8 (pebblesim's balanced split of 128 stages gives exactly that);
context parallelism by all-gathering K and V (``c16ag``), and "we could pre-train Llama 3 on
sequences of 8K tokens without activation checkpointing".

The CP row: arXiv v3 prints DP = 8 (8 x 16 x 16 x 8 = 16,384 GPUs, the GPU count the row
gives; 16 sequences per DP group x 8 x 131,072 tokens = the 16M tokens per batch); some
renderings of the earlier versions print 4, which multiplies to 8,192 GPUs.

The paper gives no FLOP formula for its TFLOP/s; we count pebblesim's model FLOPs (the
attention scores over the whole s x s square, PaLM's appendix B convention that the MFU it
cites follows). Table 4's TFLOP/s are all multiples of ten: read as rounded to tens.
"""

from __future__ import annotations

from simulator.analytic.published_runs.run import Figure, PublishedRun, Source

_PAPER = "Llama Team 2024, The Llama 3 Herd of Models"
_ARXIV = "2407.21783"
_DERIVED = (
    "microbatch: not published; 1 sequence (the bubble (PP-1)/(V M) counts M microbatches "
    "of the batch per DP group)",
    "v: 8, from section 3.3.2 (the first chunk holds only the embedding and the last only the "
    "output and loss, after one layer each was taken from the first and last stages: one "
    "layer slot a chunk, (126 + 2) / 16 = 8); Figure 6 draws 2 for a toy pipeline",
    "sharding: z1 timing (FP32 gradients accumulated over the micro-batches, reduce-scattered "
    "once a step; weights gathered once, not resharded after the forward; section 3.3.2)",
    "sequence parallelism: not published; on (the TP cited is Korthikanti et al.'s)",
    "attention: flash (a fused kernel; MFU counts the math core's FLOPs regardless)",
)

# GPUs, CP, DP, sequence, sequences per DP group, TFLOP/s per GPU, BF16 MFU % (TP 8, PP 16)
_TABLE_4 = (
    (8192, 1, 64, 8192, 32, 430, 43),
    (16384, 1, 128, 8192, 16, 400, 41),
    (16384, 16, 8, 131072, 16, 380, 38),
)


def _row(entry) -> PublishedRun:
    gpus, cp, dp, seq, per_dp, tflops, mfu = entry
    long = cp > 1
    context = f" c{cp}ag" if long else ""
    return PublishedRun(
        id=f"llama3-t4-{seq // 1024}k-{gpus}gpu" + (f"-cp{cp}" if long else ""),
        source=Source(_PAPER, _ARXIV, "Table 4", f"{gpus:,} GPUs, CP {cp}, DP {dp}"),
        gpu="h100-80gb",
        model="llama3-405b,attention=flash" + (f",seq={seq}" if seq != 8192 else ""),
        stated_parameters=405e9,
        layout=f"p16 v8 t8 sp{context} d{dp} z1",
        gpus=gpus,
        global_batch=per_dp * dp,
        microbatch=1,
        schedule="interleaved-1f1b",
        recompute="none",
        precision="bf16 (fp32 gradient accumulation and reduce-scatter)",
        measured=Figure(tflops, "model_tflops_per_gpu", 5.0),
        cross_checks=(Figure(mfu, "model_mfu_percent", 0.5),),
        derived=(
            *_DERIVED,
            *(
                (
                    "recompute: not published for 128K; none, as at 8K (a CP rank holds "
                    "131,072 / 16 = 8,192 tokens, as an 8K rank does)",
                )
                if long
                else ()
            ),
        ),
    )


RUNS = tuple(_row(entry) for entry in _TABLE_4)
