"""PyTorch as an outside oracle for the activation bytes pebblesim charges a transformer block.

For one real block written with PyTorch's own ops in bfloat16, every tensor autograd saves for
the backward is caught with ``torch.autograd.graph.saved_tensors_hooks`` and counted once per
storage (views of one buffer, such as q, k and v split from a packed projection, are one
buffer), parameters left out. That total is what the block really keeps between its forward and
its backward; pebblesim's is the sum of the block's layers' forward footprints. Three blocks:

* GPT with the math attention core, dropout 0.1: Korthikanti et al. 2022's block (34 sbh +
  5 as^2 b), with the scores, softmax and dropout written out as Megatron runs them;
* GPT with ``scaled_dot_product_attention`` at dropout 0: pebblesim's ``attention=flash``;
* Llama: RMSNorm, grouped-query SDPA, RoPE, SwiGLU, no biases, no dropout (Hugging Face's
  LlamaDecoderLayer: separate q, k, v projections, a packed [gate | up] as Megatron's fc1).

Where eager CPU PyTorch keeps something a GPU kernel (or a fused training kernel) would not,
the tensor is named in ``CpuOnly`` with why, found among the saved tensors by shape and dtype
(so a PyTorch that stops saving it fails the test), and taken out before comparing. What
remains must agree with pebblesim within 1%.

Skipped when torch is not installed; the project does not depend on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pytest

from simulator.model.transformer import TransformerConfig, transformer_layer_infos

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOLERANCE = 0.01
ROWS = 2  # b, sequences in the microbatch
ITEMSIZE = 2  # bfloat16 activations
BF16, FP32 = torch.bfloat16, torch.float32
EPS = 1e-5

GPT_MATH = TransformerConfig(
    layers=1, hidden=256, heads=4, seq=128, vocab=64, dropout=0.1, attention="math"
)
GPT_FLASH = replace(GPT_MATH, dropout=0.0, attention="flash")
LLAMA = TransformerConfig(
    layers=1,
    hidden=256,
    heads=4,
    kv_heads=2,
    seq=128,
    vocab=64,
    ffn=688,
    mlp="swiglu",
    norm="rmsnorm",
    position="rope",
    dropout=0.0,
    tied_embeddings=False,
    bias=False,
    attention="flash",
)


# ---------------------------------------------------------------- counting what autograd saves


@dataclass(frozen=True)
class Saved:
    """One storage autograd saved: its bytes, and the shape and dtype it was first saved as."""

    nbytes: int
    shape: tuple[int, ...]
    dtype: object


class SavedTensors:
    """A ``saved_tensors_hooks`` pack hook that records each saved storage once, parameters
    excluded. Why storages: a view (q of a packed q|k|v, the merged heads of SDPA's output)
    keeps its whole buffer alive, and two saves of one buffer cost its bytes once."""

    def __init__(self, params):
        self.parameters = {p.untyped_storage().data_ptr() for p in params}
        self.storages: dict[int, Saved] = {}

    def pack(self, tensor):
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer not in self.parameters and pointer not in self.storages:
            self.storages[pointer] = Saved(storage.nbytes(), tuple(tensor.shape), tensor.dtype)
        return tensor

    @staticmethod
    def unpack(tensor):
        return tensor

    @property
    def total(self) -> int:
        return sum(saved.nbytes for saved in self.storages.values())


def saved_by(block, config: TransformerConfig, every_weight: bool = True) -> list[Saved]:
    """The storages ``block`` saves for one (ROWS, seq, hidden) bfloat16 input (``every_weight``:
    the block uses all of ``weight_shapes``, and each gets its gradient)."""
    torch.manual_seed(0)
    params = {
        name: (torch.randn(shape, dtype=FP32) / math.sqrt(shape[-1])).to(BF16).requires_grad_()
        for name, shape in weight_shapes(config).items()
    }
    x = torch.randn(ROWS, config.seq, config.hidden, dtype=BF16, requires_grad=True)
    hooks = SavedTensors(params.values())
    with torch.autograd.graph.saved_tensors_hooks(hooks.pack, hooks.unpack):
        out = block(x, params, config)
    out.float().sum().backward()  # the saved tensors were what this backward needed
    assert x.grad is not None
    assert not every_weight or all(p.grad is not None for p in params.values())
    return list(hooks.storages.values())


def weight_shapes(config: TransformerConfig) -> dict[str, tuple[int, ...]]:
    """(out, in) like torch.nn.Linear; norms' gains (and GPT's shifts and biases)."""
    h, d, ffn = config.hidden, config.head_dim, config.ffn_hidden
    shapes = {"norm1.g": (h,), "norm2.g": (h,), "proj.W": (h, config.heads * d)}
    if config.norm == "layernorm":
        shapes |= {"norm1.b": (h,), "norm2.b": (h,)}
    if config.mlp == "swiglu":
        shapes |= {"up.W": (2 * ffn, h), "down.W": (h, ffn)}
    else:
        shapes |= {"up.W": (ffn, h), "down.W": (h, ffn)}
    if config.bias:
        shapes |= {"qkv.W": (3 * h, h), "qkv.b": (3 * h,), "proj.b": (h,)}
        shapes |= {"up.b": (shapes["up.W"][0],), "down.b": (h,)}
    else:  # Hugging Face Llama: three projections
        kv = config.num_kv_heads * d
        shapes |= {"q.W": (config.heads * d, h), "k.W": (kv, h), "v.W": (kv, h)}
    return shapes


# ---------------------------------------------------------------- the blocks, in PyTorch


def dropout(t, p: float):
    """``torch.native_dropout``: the op CUDA's ``F.dropout`` runs, keeping a 1-byte bool mask.
    (CPU's ``F.dropout`` instead multiplies by a mask in the activation dtype, 2 bytes.)"""
    return torch.native_dropout(t, p, True)[0] if p > 0 else t


def linear(x, w, name):
    return F.linear(x, w[f"{name}.W"], w.get(f"{name}.b"))


def heads(t, n: int, d: int):
    """(b, s, n d) -> (b, n, s, d), a view."""
    return t.unflatten(-1, (n, d)).transpose(1, 2)


def math_attention(q, k, v, config: TransformerConfig):
    """Scores, causal mask, softmax, dropout, weighted sum of V, as Megatron's unfused core
    keeps them: the mask is an additive constant (no saved tensor), like its fused
    scale-mask-softmax, which saves only the probabilities."""
    s = q.shape[-2]
    causal = torch.full((s, s), -math.inf, dtype=q.dtype).triu(1)
    scores = q @ k.transpose(-1, -2) * (1.0 / math.sqrt(q.shape[-1])) + causal
    probs = torch.softmax(scores, dim=-1)
    return dropout(probs, config.dropout) @ v


def flash_attention(q, k, v, config: TransformerConfig):
    return F.scaled_dot_product_attention(
        q, k, v, is_causal=True, enable_gqa=config.num_kv_heads != config.heads
    )


def gpt_block(x, w, config: TransformerConfig):
    b, s, h = x.shape
    a, d, p = config.heads, config.head_dim, config.dropout
    y = F.layer_norm(x, (h,), w["norm1.g"], w["norm1.b"], eps=EPS)
    q, k, v = (heads(t, a, d) for t in linear(y, w, "qkv").split(h, dim=-1))
    core = math_attention if config.attention == "math" else flash_attention
    o = core(q, k, v, config).transpose(1, 2).reshape(b, s, h)
    x = x + dropout(linear(o, w, "proj"), p)
    y = F.layer_norm(x, (h,), w["norm2.g"], w["norm2.b"], eps=EPS)
    u = F.gelu(linear(y, w, "up"), approximate="tanh")
    return x + dropout(linear(u, w, "down"), p)


def rope_tables(s: int, d: int):
    """Hugging Face Llama's cos and sin (rotate-half layout), in the activation dtype."""
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    angles = torch.outer(torch.arange(s, dtype=torch.float64), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().to(BF16), angles.sin().to(BF16)


def rotate(t, cos, sin):
    """Hugging Face's ``apply_rotary_pos_emb``: ``t cos + rotate_half(t) sin``."""
    half = t.shape[-1] // 2
    return t * cos + torch.cat([-t[..., half:], t[..., :half]], dim=-1) * sin


def llama_block(x, w, config: TransformerConfig):
    b, s, h = x.shape
    a, kv, d = config.heads, config.num_kv_heads, config.head_dim
    y = F.rms_norm(x, (h,), w["norm1.g"], eps=EPS)
    cos, sin = rope_tables(s, d)
    q = rotate(heads(linear(y, w, "q"), a, d), cos, sin)
    k = rotate(heads(linear(y, w, "k"), kv, d), cos, sin)
    v = heads(linear(y, w, "v"), kv, d)
    o = flash_attention(q, k, v, config).transpose(1, 2).reshape(b, s, a * d)
    x = x + linear(o, w, "proj")
    y = F.rms_norm(x, (h,), w["norm2.g"], eps=EPS)
    gate, up = linear(y, w, "up").chunk(2, dim=-1)
    return x + linear(F.silu(gate) * up, w, "down")


# ---------------------------------------------------------------- what only CPU PyTorch keeps


@dataclass(frozen=True)
class CpuOnly:
    """A tensor eager CPU PyTorch saves beyond what pebblesim counts, and why.

    ``counted`` is the part of it pebblesim does count (an upcast copy standing in for the
    bf16 input pebblesim keeps); the rest, ``nbytes - counted``, is taken out before comparing.
    """

    name: str
    why: str
    shape: tuple[int, ...]
    dtype: object
    counted: int = 0

    def is_(self, saved: Saved) -> bool:
        """``saved`` is this tensor: its shape and dtype, and a buffer of its own (not a view
        into a larger one, as ``gate`` is of the packed [gate | up])."""
        size = math.prod(self.shape) * torch.tensor([], dtype=self.dtype).element_size()
        return (saved.shape, saved.dtype, saved.nbytes) == (self.shape, self.dtype, size)


def layer_norm_statistics(config: TransformerConfig) -> list[CpuOnly]:
    """Both LayerNorms' per-token mean and rstd: pebblesim's norms recompute them from the
    cached input (Korthikanti et al. count only the input, 2 sbh)."""
    token = (ROWS, config.seq, 1)
    why = (
        "native_layer_norm saves its per-token statistics (on CPU in the activation dtype, "
        "float32 on CUDA); pebblesim's norm recomputes them from its input"
    )
    return [
        CpuOnly(f"{norm}.{stat}", why, token, BF16)
        for norm in ("norm1", "norm2")
        for stat in ("mean", "rstd")
    ]


def rms_norm_composite(config: TransformerConfig) -> list[CpuOnly]:
    """CPU has no fused rms_norm: ``F.rms_norm`` runs as float32 ops, each saving its operands."""
    full, token = (ROWS, config.seq, config.hidden), (ROWS, config.seq, 1)
    bf16_input = ROWS * config.seq * config.hidden * ITEMSIZE
    out = []
    for norm in ("norm1", "norm2"):
        out += [
            CpuOnly(
                f"{norm}.input_fp32",
                "the input upcast to float32 (4 bytes an element): it stands for the bf16 "
                "input pebblesim counts (2 bytes), as a fused CUDA kernel keeps it",
                full,
                FP32,
                counted=bf16_input,
            ),
            CpuOnly(
                f"{norm}.normalised_fp32",
                "x * rstd in float32, saved by the multiply with the gain; a fused kernel "
                "rebuilds it from the input and rstd",
                full,
                FP32,
            ),
            CpuOnly(
                f"{norm}.rstd",
                "the per-token rstd in float32 (a fused kernel keeps it too); pebblesim's "
                "norm recomputes it from its input",
                token,
                FP32,
            ),
        ]
    return out


def llama_cpu_only(config: TransformerConfig) -> list[CpuOnly]:
    table = (config.seq, config.head_dim)
    rope = [
        CpuOnly(
            f"rope.{name}",
            f"RoPE's {name} table (s x d, shared by every head and sequence), saved by the "
            "eager multiply; a fused RoPE kernel recomputes it, and pebblesim rebuilds it",
            table,
            BF16,
        )
        for name in ("cos", "sin")
    ]
    silu = CpuOnly(
        "swiglu.silu_out",
        "silu(gate), saved by the eager multiply silu(gate) * up; a fused SwiGLU (Megatron's "
        "bias_swiglu_impl) keeps only [gate | up] and recomputes it, as pebblesim counts",
        (ROWS, config.seq, config.ffn_hidden),
        BF16,
    )
    return rms_norm_composite(config) + rope + [silu]


BLOCKS = {
    "gpt-math": (GPT_MATH, gpt_block, layer_norm_statistics),
    "gpt-flash": (GPT_FLASH, gpt_block, layer_norm_statistics),
    "llama-flash": (LLAMA, llama_block, llama_cpu_only),
}


# ---------------------------------------------------------------- the comparison


def pebblesim_block_bytes(config: TransformerConfig) -> int:
    """What one block's layers cache in their forwards (block 1 of the flat layer list)."""
    return sum(
        sum(info.footprint(ROWS, ITEMSIZE).F)
        for info in transformer_layer_infos(config)
        if info.block == 1
    )


@dataclass(frozen=True)
class OracleRow:
    block: str
    torch_bytes: int
    cpu_only: tuple[tuple[str, int], ...]  # (name, bytes taken out)
    pebblesim_bytes: int

    @property
    def accounted(self) -> int:
        return self.torch_bytes - sum(n for _, n in self.cpu_only)

    @property
    def ratio(self) -> float:
        return self.accounted / self.pebblesim_bytes


def oracle_row(name: str) -> OracleRow:
    config, block, cpu_only = BLOCKS[name]
    saved = saved_by(block, config)
    torch_bytes = sum(s.nbytes for s in saved)
    taken = []
    for extra in cpu_only(config):
        match = next((s for s in saved if extra.is_(s)), None)
        assert match is not None, f"{name}: PyTorch no longer saves {extra.name}"
        saved.remove(match)
        taken.append((extra.name, match.nbytes - extra.counted))
    return OracleRow(name, torch_bytes, tuple(taken), pebblesim_block_bytes(config))


@pytest.mark.parametrize("name", list(BLOCKS))
def test_pebblesim_charges_what_pytorch_saves(name):
    row = oracle_row(name)
    assert abs(row.ratio - 1) <= TOLERANCE, (
        f"{name}: PyTorch saves {row.accounted:,} bytes beyond its CPU-only tensors, "
        f"pebblesim charges {row.pebblesim_bytes:,} (ratio {row.ratio:.4f})"
    )


def test_the_math_block_is_korthikantis():
    """The oracle's math block is the one Table 2 counts: 34 sbh + 5 as^2 b, the LayerNorms'
    statistics aside (so the oracle checks the paper's itemisation, not only pebblesim)."""
    row = oracle_row("gpt-math")
    s, b, h, a = GPT_MATH.seq, ROWS, GPT_MATH.hidden, GPT_MATH.heads
    assert row.accounted == 34 * s * b * h + 5 * a * s * s * b


def test_a_fused_core_keeps_its_output_once():
    """SDPA's saved output is the output projection's saved input: one buffer, 2 sbh. With the
    log-sum-exp (float32, 4 as b) the flash block keeps Korthikanti's 34 sbh less the two
    dropout masks: 32 sbh + 4 asb."""
    row = oracle_row("gpt-flash")
    s, b, h, a = GPT_FLASH.seq, ROWS, GPT_FLASH.hidden, GPT_FLASH.heads
    assert row.accounted == 32 * s * b * h + 4 * a * s * b


def test_the_count_is_per_storage_and_leaves_out_parameters():
    """Two views of one buffer saved by one multiply cost the buffer once; a parameter saved
    by a matrix multiply costs nothing; a copy is a buffer of its own."""
    weight = torch.ones(4, 4, dtype=BF16, requires_grad=True)
    x = torch.ones(3, 8, dtype=BF16, requires_grad=True)
    hooks = SavedTensors([weight])
    with torch.autograd.graph.saved_tensors_hooks(hooks.pack, hooks.unpack):
        y = x * 2.0  # saves nothing (a constant factor)
        left, right = y[:, :4], y[:, 4:]
        product = left * right  # saves both views: y's buffer, once
        assert hooks.total == 3 * 8 * 2
        (product @ weight).sum()  # saves product (a buffer of its own) and the weight
    assert hooks.total == 3 * 8 * 2 + 3 * 4 * 2
