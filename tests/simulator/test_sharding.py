"""Sharded data parallelism (ZeRO-1/2/3, FSDP): what each stage splits under each recipe, the
full copies a rank holds while it works, ZeRO's Figure 1 and section 7.2, and advise's bounds
counting the same rule."""

from __future__ import annotations

import pytest

from schedules.registry import build_schedule
from simulator.analytic.advise import stage_table
from simulator.analytic.cost_source import parse_hardware
from simulator.errors import PebbleError
from simulator.model import partition
from simulator.model.layout import Layout
from simulator.model.parse import parse_model
from simulator.model.precision import PRECISIONS, precision_named
from simulator.model.sharding import (
    BUCKET_FLOOR,
    DEEPSPEED_REDUCE_BUCKET,
    Sharding,
    default_bucket,
)
from simulator.model.sharding_comm import (
    all_gather_bytes,
    all_reduce_bytes,
    block_traffic,
    reduce_scatter_bytes,
    ring_factor,
    step_traffic,
)
from simulator.run import make_schedule, plan_run
from simulator.run.rank_memory import rank_static_memory, stage_units, static_memory

GB = 10**9  # ZeRO's Figure 1 counts decimal gigabytes
GIB = 2**30


@pytest.mark.parametrize(
    ("stage", "published_gb"),
    [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)],  # baseline, P_os, P_os+g, P_os+g+p
)
def test_zero_figure_1(stage, published_gb):
    """Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter
    Models", Figure 1: Psi = 7.5B parameters, N_d = 64, K = 12 (mixed-precision Adam, 2 + 2 + K
    bytes: pebblesim's ``bf16-grads``). ZeRO's baseline is z0, P_os z1, P_os+g z2, P_os+g+p z3.
    The figure's GB are 10^9 bytes: 120 GB is exactly 16 x 7.5e9 bytes (111.8 GiB)."""
    psi, n_d = 7_500_000_000, 64
    held = sum(PRECISIONS["bf16-grads"].rank_bytes(psi, n_d, stage))
    assert round(held / GB, 1) == published_gb
    assert round(held / GIB, 1) != published_gb


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_zero_figure_1_through_a_ranks_whole_memory(stage):
    """The same 7.5B parameters as one pipeline rank of 60 blocks of 125M under ``d64 zN``: the
    resident shards are Figure 1's, plus what the rank holds while it works: at z2 and z3 the
    gradient bucket (the largest block, 125M, above Megatron's 64M for 64 replicas), at z3 two
    gathered blocks (the one running and the one prefetched)."""
    block, blocks = 125_000_000, 60
    recipe = PRECISIONS["bf16-grads"]
    (memory,) = rank_static_memory(
        [0],
        [block * blocks],
        [0],
        recipe,
        Sharding.of_layout(Layout(data=64, sharding=stage)),
        layer_params=[((block, 0),) * blocks],
    )
    figure = sum(recipe.rank_bytes(block * blocks, 64, stage))
    bucket = block * recipe.gradients if stage >= 2 else 0
    gathered = 2 * block * recipe.weights if stage == 3 else 0
    assert memory.total == figure + bucket + gathered
    assert memory.gradients - bucket == recipe.rank_bytes(block * blocks, 64, stage)[1]
    assert memory.parameters - gathered == recipe.rank_bytes(block * blocks, 64, stage)[0]


@pytest.mark.parametrize(
    ("name", "zero_1", "zero_2", "zero_3"),
    [  # (kept, split over d) bytes per parameter at each stage
        ("bf16", (6, 12), (2, 16), (0, 18)),  # Megatron: fp32 main grads split at z2
        ("bf16-grads", (4, 12), (2, 14), (0, 16)),  # ZeRO's 2 + 2 + K
        ("fp8", (6, 8), (2, 12), (0, 14)),
        ("fp32", (8, 8), (4, 12), (0, 16)),  # the weights are their own master: whole until z3
        ("fp64", (16, 16), (8, 24), (0, 32)),
    ],
)
def test_each_stage_splits_what_the_recipe_lets_it(name, zero_1, zero_2, zero_3):
    recipe = precision_named(name)
    for d in (1, 2, 8, 64):
        assert recipe.per_parameter(d, stage=0) == recipe.total
        for stage, (kept, split) in enumerate((zero_1, zero_2, zero_3), start=1):
            assert recipe.per_parameter(d, stage) == pytest.approx(kept + split / d, abs=1e-12)
    assert recipe.sharded_parts(0) == ()
    assert recipe.sharded_parts(2) == ("master", "moments", "gradients")
    assert recipe.sharded_parts(3)[-1] == "weights"


def test_rank_bytes_round_each_split_part_up():
    recipe = precision_named("bf16")
    assert recipe.rank_bytes(1000, 7, stage=2) == (2000, -(-4000 // 7), -(-12000 // 7))
    assert recipe.rank_bytes(1000, 7, stage=3) == (-(-2000 // 7), -(-4000 // 7), -(-12000 // 7))
    assert recipe.rank_bytes(1000, 7, stage=0) == (2000, 4000, 12000)


LLAMA = "llama3-8b,layers=4"
EMBEDDING = 128_256 * 4_096  # vocab x hidden, Llama 3 8B's config
BLOCK = 4_096 * (4_096 + 2 * 1_024) + 4_096 * 4_096 + 3 * 4_096 * 14_336 + 2 * 4_096
HEAD = EMBEDDING + 4_096  # the final RMSNorm lives in the head's block


def test_a_whole_model_on_one_rank_by_hand():
    """Llama 3 8B cut to 4 blocks on one pipeline rank, 8 replicas, Megatron's bf16: z2 adds a
    bucket the size of the largest block (the head, above Megatron's 40M), z3 also gathers the
    two largest blocks (the head and the embedding)."""
    spec = parse_model(LLAMA)
    assert stage_units(spec, partition(spec, 1).stage_layers) == [
        ((EMBEDDING, 0), *((BLOCK, 0),) * 4, (HEAD, 0))
    ]
    total = EMBEDDING + 4 * BLOCK + HEAD
    schedule = build_schedule("gpipe", 1, 2)
    parts = partition(spec, 1)
    by_stage = {
        s: static_memory(spec, schedule, parts, 1, Layout(data=8, sharding=s))[0] for s in range(4)
    }
    assert by_stage[0].parameters == 2 * total and by_stage[0].gradients == 4 * total
    assert by_stage[1].optimizer_state == -(-12 * total // 8)
    assert by_stage[2].gradients == -(-4 * total // 8) + 4 * HEAD
    assert by_stage[2].parameters == 2 * total
    assert by_stage[3].parameters == -(-2 * total // 8) + 2 * (HEAD + EMBEDDING)
    assert by_stage[3].gradients == by_stage[2].gradients
    assert by_stage[3].optimizer_state == by_stage[2].optimizer_state == by_stage[1].optimizer_state


def test_one_replica_holds_what_z0_holds_at_every_stage():
    spec = parse_model(LLAMA)
    schedule = build_schedule("1f1b", 2, 4)
    parts = partition(spec, 2)
    plain = static_memory(spec, schedule, parts, 1, Layout())
    for stage in (1, 2, 3):
        assert static_memory(spec, schedule, parts, 1, Layout(sharding=stage)) == plain


def test_the_bucket_is_megatrons_unless_given():
    """Megatron Core's default bucket is max(40M, 1M x d) parameters
    (megatron/core/distributed/distributed_data_parallel_config.py at 00119989); a bucket
    larger than the rank's parameters holds them all."""
    assert default_bucket(8) == BUCKET_FLOOR == 40_000_000
    assert default_bucket(128) == 128_000_000
    small = [((1_000_000, 0),) * 300]  # 300M parameters in blocks of 1M
    sharding = Sharding(stage=2, replicas=128)
    assert sharding.bucket_of(small[0]) == 128_000_000
    assert Sharding(stage=2, replicas=128, bucket=5).bucket_of(small[0]) == 1_000_000
    deepspeed = Sharding(stage=2, replicas=128, bucket=DEEPSPEED_REDUCE_BUCKET)
    assert deepspeed.bucket_of(small[0]) == 300_000_000
    spec = parse_model(LLAMA)
    schedule = build_schedule("gpipe", 1, 2)
    parts = partition(spec, 1)
    layout = Layout(data=8, sharding=2)
    total = EMBEDDING + 4 * BLOCK + HEAD
    (given,) = static_memory(spec, schedule, parts, 1, layout, bucket=10**9)
    assert given.gradients == -(-4 * total // 8) + 4 * 10**9


def test_z3_gathers_only_what_is_sharded_and_prefetches_as_told():
    """Routed experts are split over the expert group; with e = d x c that group is one rank,
    so nothing of the experts is gathered."""
    blocks = [(100, 60), (50, 0), (80, 40)]
    assert Sharding(stage=3, replicas=4, expert_replicas=2).in_flight_params(blocks) == 180
    assert Sharding(stage=3, replicas=4, expert_replicas=1).in_flight_params(blocks) == 90
    assert (
        Sharding(stage=3, replicas=4, expert_replicas=2, prefetch=0).in_flight_params(blocks) == 100
    )
    assert Sharding(stage=2, replicas=4).in_flight_params(blocks) == 0
    assert Sharding(stage=3, replicas=1).in_flight_params(blocks) == 0
    with pytest.raises(PebbleError, match="sharding stage must be 0, 1, 2 or 3, got 4"):
        Sharding(stage=4)
    with pytest.raises(PebbleError, match="prefetch must be a whole number of at least 0"):
        Sharding(stage=3, prefetch=-1)


def test_ring_collectives():
    assert ring_factor(1) == 0 and ring_factor(4) == 0.75
    assert all_gather_bytes(800, 4) == reduce_scatter_bytes(800, 4) == 600
    assert all_reduce_bytes(800, 4) == 1200
    assert all_reduce_bytes(800, 1) == 0


@pytest.mark.parametrize(("stage", "psi_moved"), [(0, 2), (1, 2), (2, 2), (3, 3)])
def test_zero_section_7_volumes(stage, psi_moved):
    """ZeRO section 7.2 (one step, no accumulation, fp16 weights and gradients): baseline data
    parallelism moves 2 Psi per rank, P_os and P_os+g the same 2 Psi (a reduce-scatter, then
    the updated parameters' all-gather), P_os+g+p 3 Psi, 1.5x (two all-gathers and a
    reduce-scatter), each times the ring's (N_d - 1)/N_d."""
    psi, n_d = 7_500_000_000, 64
    recipe = PRECISIONS["bf16-grads"]
    sharding = Sharding(stage=stage, replicas=n_d)
    moved = block_traffic(psi, recipe, sharding).per_step(1)
    assert moved == pytest.approx(psi_moved * psi * 2 * (n_d - 1) / n_d)


def test_when_each_collective_runs():
    """z0 and z1 reduce once a step whatever m; z2 reduce-scatters every microbatch; z3 also
    gathers every microbatch, in the forward and again in the backward."""
    recipe = PRECISIONS["bf16"]  # Megatron reduces its fp32 main gradients: 4 bytes
    params, d, m = 1_000, 8, 4
    g, w = params * 4 * 7 / 8, params * 2 * 7 / 8
    z = [block_traffic(params, recipe, Sharding(stage=s, replicas=d)) for s in range(4)]
    assert (z[0].collective, z[0].gradient, z[0].weight_gather) == ("all-reduce", 2 * g, 0)
    assert (z[1].collective, z[1].gradient, z[1].weight_gather) == ("reduce-scatter", g, w)
    assert not z[0].per_microbatch and not z[1].per_microbatch
    assert z[2].per_microbatch and z[2].per_step(m) == pytest.approx(m * g + w)
    assert (z[3].forward_gather, z[3].backward_gather, z[3].weight_gather) == (w, w, 0)
    assert z[3].per_step(m) == pytest.approx(m * (2 * w + g))
    assert z[0].per_step(m) == z[0].per_step(1)
    blocks = [(params, 0), (2 * params, 0)]
    assert step_traffic(blocks, recipe, Sharding(stage=3, replicas=d), m) == pytest.approx(
        3 * m * (2 * w + g)
    )


def test_routed_experts_move_over_their_own_group():
    recipe = PRECISIONS["bf16-grads"]
    sharding = Sharding(stage=3, replicas=8, expert_replicas=2)
    moved = block_traffic(300, recipe, sharding, experts=100)
    assert moved.forward_gather == pytest.approx(200 * 2 * 7 / 8 + 100 * 2 * 1 / 2)


@pytest.mark.parametrize("stage", [2, 3])
def test_advise_bounds_count_the_same_rule(stage):
    """``advise``'s closed-form static memory equals simulate's for z2 and z3 layouts."""
    model = "transformer:layers=8,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16"
    hardware = parse_hardware("a100-40gb")
    spec = parse_model(model)
    for p, d in ((2, 4), (4, 2)):
        layout = Layout(pipeline=p, data=d, sharding=stage)
        table = stage_table(spec, layout.for_layers(), p, hardware, "none")
        schedule = make_schedule("1f1b", p, 4)
        plan = plan_run(schedule, model, batch_size=4 * d, layout=layout)
        expected = static_memory(
            plan.spec, schedule, plan.partition, plan.microbatch_rows, plan.layout
        )
        bound = rank_static_memory(
            schedule.stage_to_rank,
            table.params,
            table.sends,
            table.recipe,
            Sharding.of_layout(layout),
            layer_params=table.layer_params,
        )
        assert bound == expected
        assert any(m.gradients > 0 for m in bound)
