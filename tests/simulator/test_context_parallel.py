"""Context parallelism (``c`` in the layout): a rank holds s / c tokens of every sequence.

Published numbers these tests hold the rules to:

* Korthikanti et al. 2022 (arXiv 2205.05198), Table 2: a block's activation bytes. Megatron
  Core's context-parallel docs say "The activation memory footprint per GPU is also CP times
  smaller" (NVIDIA/Megatron-LM docs/user-guide/features/context_parallel.md at d98e8a64), so
  every row divided by c is what a rank stores. Megatron-LM's
  ``megatron/training/theoretical_memory_usage.py`` (at 00caa53a) has no context-parallel term
  (its activation formulas read seq_length, tensor and pipeline sizes only), so there is
  nothing of it to test against; its weight-and-optimizer formula shards over
  ``data_parallel_size``, which excludes the context ranks, whereas Megatron Core's optimizer
  shards over the data-and-context group (``dp_cp_group`` in
  megatron/core/optimizer/__init__.py at d98e8a64): pebblesim follows the optimizer's code.
* Narayanan et al. 2021: a block's forward is 24 bsh^2 + 4 bs^2 h FLOPs; with causal load
  balancing a rank does 1/c of it.
* Dubey et al. 2024, The Llama 3 Herd of Models, Table 4: Llama 3 405B on 16,384 GPUs with
  TP 8, CP 16, PP 16 and sequences of 131,072 tokens, 16M tokens a batch, against the rows of
  8,192-token sequences without context parallelism.
* The K/V exchange's volumes and buffers: NVIDIA/TransformerEngine
  transformer_engine/pytorch/attention/dot_product_attention/context_parallel.py at d0067d0d
  (``simulator.model.transformer.context_parallel``'s docstring).
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from schedules.dependencies import PIPELINE_RULE
from schedules.registry import build_schedule
from simulator.analytic.run_plan import simulate_plan
from simulator.errors import PebbleError
from simulator.model import partition
from simulator.model.action_work import action_work
from simulator.model.layout import Layout
from simulator.model.parse import parse_model
from simulator.model.recompute import StageRecompute
from simulator.model.transformer import TransformerConfig, transformer_layer_infos
from simulator.model.transformer import footprint as paper
from simulator.model.transformer.context_parallel import (
    context_parallel_bytes,
    kv_block_bytes,
    kv_exchange,
)
from simulator.model.transformer.dims import Dims
from simulator.model.transformer.flash_attention import causal_share
from simulator.model.transformer.flash_dropout import RNG_STATE_BYTES
from simulator.model.transformer.presets import model_preset
from simulator.run import CostSource, make_schedule, plan_run
from simulator.run.plan import counted_under
from simulator.run.rank_memory import static_memory


def block(config: TransformerConfig, layout: Layout):
    return [info for info in transformer_layer_infos(config, layout) if info.block == 1]


def stored(infos, b: int) -> int:
    """What a block caches in its forward (the sum of its layers' F footprints)."""
    return sum(sum(info.footprint(b, 2).F) for info in infos)


def gpt(s: int, h: int, a: int, attention: str = "math") -> TransformerConfig:
    return TransformerConfig(
        layers=1, hidden=h, heads=a, seq=s, vocab=96, dropout=0.1, attention=attention
    )


GRID = [  # (s, b, h, a, t, sp, c)
    (2048, 1, 12288, 96, 8, True, 2),
    (2048, 2, 6144, 48, 4, False, 4),
    (512, 4, 1024, 16, 1, False, 8),
    (512, 1, 2560, 40, 2, True, 16),
    (64, 3, 12, 4, 2, True, 2),
]


@pytest.mark.parametrize(("s", "b", "h", "a", "t", "sp", "c"), GRID)
def test_a_block_stores_korthikantis_table_2_divided_by_c(s, b, h, a, t, sp, c):
    layout = Layout(tensor=t, sequence_parallel=sp, context=c)
    row = paper.korthikanti_table2(s, b, h, a, t, sp)
    assert stored(block(gpt(s, h, a), layout), b) == row / c
    assert stored(block(gpt(s, h, a), replace(layout, cp_comm="allgather")), b) == row / c


@pytest.mark.parametrize(("s", "b", "h", "a", "t", "sp", "c"), GRID)
def test_a_flash_block_stores_the_selective_row_divided_by_c(s, b, h, a, t, sp, c):
    """The fused core keeps Table 2's selective-recompute row, its log-sum-exp (4 asb / t) and
    its RNG state; under context parallelism the first two count s / c tokens."""
    layout = Layout(tensor=t, sequence_parallel=sp, context=c)
    if sp:
        row = paper.activations_tensor_sequence_parallel_selective(s, b, h, t)
    else:
        row = paper.activations_tensor_parallel_selective(s, b, h, t)
    lse = 4 * a * s * b // t
    ours = stored(block(gpt(s, h, a, "flash"), layout), b)
    assert ours == (row + lse) / c + RNG_STATE_BYTES


@pytest.mark.parametrize(("s", "h", "a", "c"), [(2048, 12288, 96, 2), (512, 1024, 16, 8)])
def test_a_rank_does_one_c_th_of_the_block_flops(s, h, a, c):
    """Narayanan et al.'s 24 bsh^2 + 4 bs^2 h per block forward (b = 1), 1/c of it per rank:
    the linear layers' s / c tokens and the core's s / c queries against all s keys."""
    infos = block(gpt(s, h, a), Layout(context=c))
    assert sum(info.flops().F for info in infos) == paper.block_forward_flops(1, s, h) / c
    whole = block(gpt(s, h, a), Layout())
    for ours, theirs in zip(infos, whole, strict=True):  # the backward shrinks as the forward
        assert ours.flops().I * c == theirs.flops().I and ours.flops().W * c == theirs.flops().W


def test_llama3_table_4_cp16_rank_stores_what_the_8k_rows_store():
    """Llama 3 405B (Dubey et al. 2024, Table 4): the 131,072-token row with CP 16 and the
    8,192-token rows without it run the same TP 8; a fused attention's footprint is linear in
    the tokens a rank holds, and 131,072 / 16 = 8,192, so a rank of the long-context row stores
    exactly what a rank of the short one does, while its attention core computes 16 times the
    FLOPs of the square (s / c queries against 16 times as many keys), of which a fused kernel
    computes the causal tiles. 16,384 GPUs = 8 x 16 x 16 x 8 (DP 8),
    and 16 sequences a replica make the 16M tokens a batch."""
    config = model_preset("llama3-405b")
    long_layout = Layout(pipeline=16, tensor=8, sequence_parallel=True, context=16, data=8)
    assert long_layout.devices == 16_384
    assert 8 * 16 * 131_072 == 16_777_216  # DP 8 x 16 sequences: "16M" tokens a batch
    long = block(replace(config, seq=131_072), long_layout.for_layers())
    short = block(replace(config, seq=8_192), Layout(tensor=8, sequence_parallel=True))
    assert stored(long, 1) == stored(short, 1)
    for ours, theirs in zip(long, short, strict=True):
        if ours.kind == "attention":
            # the causal tiles of each square (``causal_share``: half, plus the diagonal's)
            tiles = causal_share(131_072) / causal_share(8_192)
            assert ours.flops().F == pytest.approx(16 * theirs.flops().F * tiles, rel=1e-12)
        else:
            assert ours.flops() == theirs.flops()


def test_the_kv_exchange_of_llama3_70b_by_hand():
    """Llama 3 70B (8 kv heads of 128, bf16) at 131,072 tokens on TP 8, CP 16: a rank holds
    8,192 tokens of one kv head, so one K/V block is 2 x 8,192 x 1 x 128 x 2 bytes = 4 MiB; the
    ring and the all-gather both send 15 blocks forward and 30 backward. Grouped-query
    attention sends 8 heads where multi-head attention would send 64 (Megatron Core's docs:
    "Exchanging KV also can leverage MQA/GQA to reduce communication volumes")."""
    config = replace(model_preset("llama3-70b"), seq=131_072)
    mib = 1 << 20
    for comm in ("ring", "allgather"):
        exchange = context_parallel_bytes(config, Layout(tensor=8, context=16, cp_comm=comm), 1, 2)
        assert exchange.block == 4 * mib
        assert (exchange.forward, exchange.backward) == (60 * mib, 120 * mib)
        assert exchange.forward_buffers == 16 * 4 * mib
    ring = context_parallel_bytes(config, Layout(tensor=8, context=16), 1, 2)
    gather = context_parallel_bytes(config, Layout(tensor=8, context=16, cp_comm="allgather"), 1, 2)
    assert ring.backward_buffers == 4 * 4 * mib  # [K/V, dK/dV] double-buffered
    assert gather.backward_buffers == 2 * 16 * 4 * mib  # K/V gathered again, full dK/dV
    mha = context_parallel_bytes(replace(config, kv_heads=64), Layout(tensor=8, context=16), 1, 2)
    assert mha.forward == 8 * ring.forward


def test_one_rank_exchanges_nothing():
    dims = Dims(gpt(64, 12, 4), 2)
    exchange = kv_exchange(dims)
    assert exchange.forward == exchange.backward == 0
    assert exchange.forward_buffers == exchange.backward_buffers == 0
    assert exchange.exposed_seconds(1.0, 1e9) == 0.0
    assert exchange.block == kv_block_bytes(dims) == 2 * 2 * 64 * 4 * 3 * 2


def test_the_ring_hides_behind_the_compute_and_the_all_gather_does_not():
    config = gpt(64, 12, 4)
    ring = kv_exchange(Dims(config, 1, 2, Layout(context=4)))
    gather = kv_exchange(Dims(config, 1, 2, Layout(context=4, cp_comm="allgather")))
    assert ring.overlapped and not gather.overlapped
    bandwidth = float(ring.block)  # one block a second
    assert ring.exposed_seconds(8.0, bandwidth) == 0.0  # 2 s of compute a step, 1 s a transfer
    assert ring.exposed_seconds(2.0, bandwidth) == pytest.approx(3 * 0.5)  # 0.5 s a step shows
    assert ring.exposed_seconds(8.0, bandwidth, backward=True) == 0.0
    assert ring.exposed_seconds(0.0, bandwidth, backward=True) == pytest.approx(6.0)
    assert gather.exposed_seconds(8.0, bandwidth, 0.25) == pytest.approx(3 * 0.25 + 3.0)
    assert gather.exposed_seconds(8.0, bandwidth, backward=True) == pytest.approx(6.0)
    with pytest.raises(PebbleError, match="positive bandwidth"):
        ring.exposed_seconds(1.0, 0.0)


def test_the_kv_buffers_are_held_while_the_attention_runs():
    """The forward's K/V in flight is the attention core's working memory in a forward action;
    the backward's is part of the gradients its backward holds."""
    config = gpt(64, 12, 4, "flash")
    for comm, backward_blocks in (("ring", 4), ("allgather", 2 * 4)):
        layout = Layout(context=4, cp_comm=comm)
        infos = block(config, layout)
        (core,) = [i for i in infos if i.kind == "attention"]
        block_bytes = kv_block_bytes(core.dims(3, 2))
        forward_rule = PIPELINE_RULE.kinds["F"]
        items = action_work(infos, 3, 2, forward_rule, StageRecompute())
        held = {infos[item.layer].kind: item.working for item in items}
        assert held["attention"] == 4 * block_bytes
        assert sum(held.values()) == held["attention"]
        plain = [i for i in block(config, Layout()) if i.kind == "attention"][0]
        assert core.gradient_bytes(3, 2) == plain.gradient_bytes(3, 2) // 4 + (
            backward_blocks * block_bytes
        )


def test_context_ranks_share_the_optimizer_state_with_the_data_ranks():
    """z1 shards the optimizer state over d x c ranks (Megatron Core's dp_cp group): c2 d2 and
    c1 d4 hold the same state, a quarter of what an unsharded rank holds; the receive buffers
    (one activation, one gradient of s / c tokens) halve."""
    spec = parse_model("transformer:layers=4,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16")
    schedule = build_schedule("1f1b", 2, 4)

    def memory(layout: Layout):
        counted = counted_under(spec, layout)
        return static_memory(counted, schedule, partition(counted, 2), 1, layout)

    full = memory(Layout())
    context = memory(Layout(context=2, data=2, sharding=1))
    for ours, data_only, whole in zip(
        context, memory(Layout(data=4, sharding=1)), full, strict=True
    ):
        assert ours.optimizer_state == data_only.optimizer_state
        assert ours.optimizer_state == -(-whole.optimizer_state // 4)
        assert ours.parameters == whole.parameters and ours.gradients == whole.gradients
        assert 2 * ours.receive_buffers == whole.receive_buffers
    assert Layout(context=2, data=2).gradient_replicas == 4


@pytest.mark.parametrize(
    ("config", "layout", "says"),
    [
        (gpt(64, 12, 4), Layout(context=3), "seq 64 is not a multiple of 6"),
        (gpt(64, 12, 4), Layout(context=64), "seq 64 is not a multiple of 128"),
        (
            gpt(64, 12, 4),
            Layout(tensor=4, sequence_parallel=True, context=32),
            "multiple of t = 4 x c = 32",
        ),
    ],
)
def test_a_sequence_that_does_not_split_is_one_sentence(config, layout, says):
    with pytest.raises(PebbleError, match=re.escape(says)) as error:
        Dims(config, 1, 2, layout)
    assert str(error.value).endswith(".") and "\n" not in str(error.value)


def test_the_exchange_refuses_what_is_not_a_count():
    with pytest.raises(PebbleError, match="microbatch_sequences must be a positive integer"):
        context_parallel_bytes(gpt(64, 12, 4), Layout(context=2), 0, 2)


def test_context_ranks_all_reduce_gradients_and_mfu_counts_whole_sequences():
    """At c2 d1 the two context ranks hold the same weights and reduce their gradients (one
    all-reduce per weighted layer, as at c1 d2); the model FLOPs of a step count every token
    of every sequence, so MFU divides them over the two devices."""

    def run(layout: Layout):
        schedule = make_schedule("gpipe", 1, 2)
        costs = CostSource(hardware="h100")
        plan = plan_run(schedule, "gpt3-1.3b,layers=2,attention=math", costs=costs, layout=layout)
        return simulate_plan(plan)

    alone, context, data = run(Layout()), run(Layout(context=2)), run(Layout(data=2))
    assert not alone.allreduce
    assert len(context.allreduce) == len(data.allreduce) > 0
    assert context.meta.flops_per_step == alone.meta.flops_per_step
    assert (alone.meta.devices, context.meta.devices) == (1, 2)
    assert context.meta.tokens_per_step == alone.meta.tokens_per_step
